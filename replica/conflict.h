/* conflict: listing and resolving tdgl_replica.conflicts (the SQL function tdgl_replica.resolve_conflict
 * does the work: 'Accept Primary' applies the stored primary snapshot and clears the local
 * edit; 'Keep Local' keeps the local row and its protection). Returned cJSON owned by the
 * caller. */
#ifndef TDGL_REPLICA_CONFLICT_H
#define TDGL_REPLICA_CONFLICT_H
#include <stddef.h>
#include <libpq-fe.h>
#include <cjson/cJSON.h>
#include "common/result.h"

/* status: NULL (all), "open" or "resolved" (case-insensitive). NULL on error. */
cJSON *conflict_list(PGconn *c, const char *status, long limit);
/* "Accept Primary"/"accept-primary"/"Keep Local"/"keep-local" -> canonical, else NULL. */
const char *conflict_resolution(const char *s);
/* Returns RESULT_OK (*out = the resolved conflict), RESULT_INVALID (bad resolution),
 * RESULT_NOT_FOUND (unknown id), RESULT_CONFLICT (already resolved) or RESULT_INTERNAL
 * (logged); err holds the message when not RESULT_OK. */
enum result conflict_resolve(PGconn *c, long id, const char *resolution, cJSON **out,
                             char *err, size_t errlen);

#endif
