/* jobs_api: the sync-job routes of the admin API (issue 4), behind api.c's token check:
 *   GET  /api/events                      Server-Sent Events (events.h)
 *   POST /api/log/<id>/retry              retry a Failed change now (retry.h)
 *   GET  /api/sources/<name>              schedule, limits, control flags (settings.h)
 *   PATCH /api/sources/<name>             change them (JSON patch, see settings.h)
 *   POST /api/sources/<name>/pull?dry_run=1   what a pull would do (dryrun.h)
 * Bad input: 4xx JSON. */
#ifndef TDGL_REPLICA_JOBS_API_H
#define TDGL_REPLICA_JOBS_API_H
#include "common/http.h"
#include "replica/api.h"

/* Handles req and returns 1 when it is one of the routes above, else 0 (api.c routes it). */
int jobs_api_handle(struct api *a, struct http_req *req);

#endif
