/* conflict: listing and resolving tdgl_replica.conflicts (the SQL function tdgl_replica.resolve_conflict
 * does the work: 'Accept Primary' applies the stored primary snapshot and clears the local
 * edit; 'Keep Local' keeps the local row and its protection). Returned cJSON owned by the
 * caller. */
#ifndef TDGL_REPLICA_CONFLICT_H
#define TDGL_REPLICA_CONFLICT_H
#include <stddef.h>
#include <libpq-fe.h>
#include <cjson/cJSON.h>

/* status: NULL (all), "open" or "resolved" (case-insensitive). NULL on error. */
cJSON *conflict_list(PGconn *c, const char *status, long limit);
/* "Accept Primary"/"accept-primary"/"Keep Local"/"keep-local" -> canonical, else NULL. */
const char *conflict_resolution(const char *s);
/* Returns 200 (*out = the resolved conflict), 400 bad resolution, 404 unknown id,
 * 409 already resolved, 500; err holds the message when not 200. */
unsigned conflict_resolve(PGconn *c, long id, const char *resolution, cJSON **out,
                          char *err, size_t errlen);

#endif
