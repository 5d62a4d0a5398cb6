/* purge: deletes change-log rows older than the retention period, never past what an API
 * key seen within the window still needs (tdgl.purge() in sql/primary.sql). */
#ifndef TDGL_PRIMARY_PURGE_H
#define TDGL_PRIMARY_PURGE_H
#include <libpq-fe.h>

#define PURGE_RETENTION_DEFAULT "7d"

/* Returns the number of rows deleted, or -1 (logged). */
long long purge_run(PGconn *c, long retention_s);
#endif
