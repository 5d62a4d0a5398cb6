/* source_api: the admin API's routes under /api/sources, behind api.c's token check; each
 * handled here and nowhere else:
 *   GET    /api/sources                   the sources (source.h; never secrets)
 *   POST   /api/sources                   add one (body: source_spec_from_json)
 *   GET    /api/sources/<name>            schedule, limits, control flags (settings.h)
 *   PATCH  /api/sources/<name>            change them (JSON patch, see settings.h)
 *   DELETE /api/sources/<name>            remove it
 *   POST   /api/sources/<name>/pull[?wait=1]   queue a pull (or wait for it, scheduler.h)
 *   POST   /api/sources/<name>/pull?dry_run=1  what a pull would do (dryrun.h)
 * (POST /api/sources/<name>/verify: verify_api.h.) Bad input: 4xx JSON. */
#ifndef TDGL_REPLICA_SOURCE_API_H
#define TDGL_REPLICA_SOURCE_API_H
#include "common/http.h"
#include "replica/api.h"

/* Handles req and returns 1 when it is one of the routes above, else 0 (api.c answers). */
int source_api_handle(struct api *a, struct http_req *req);

#endif
