/* purge: deletes change-log rows older than the retention period, never past what an API
 * key seen within the window still needs (tdgl.purge() in sql/primary.sql). */
#ifndef TDGL_PRIMARY_PURGE_H
#define TDGL_PRIMARY_PURGE_H
#include <libpq-fe.h>

#define PURGE_RETENTION_DEFAULT "7d"

/* Returns the number of rows deleted (0 when another process serving the database was
 * purging it: one at a time), or -1 (logged). */
long long purge_run(PGconn *c, long retention_s);
#endif
