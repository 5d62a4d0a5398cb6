/* admin: the primary's web console and its read-only admin API, both off unless the server
 * runs with --admin-token (TDGL_ADMIN_TOKEN): without it every path below answers 404.
 *   GET /                       the console page (and /console/ files, common/console.h)
 *   GET /api/admin/overview     tracked tables (trigger ok / stale / missing), change-log
 *                               size and rate, purge horizon
 *   GET /api/admin/log          the change log's tail, newest first, with each snapshot,
 *                               paged by id (?before=ID&limit=N&table=T)
 *   GET /api/admin/keys         API keys: label, last seen, cursor horizon, how far behind
 *   GET /api/admin/push         push targets with their last delivery
 * /api/admin/... needs "Authorization: Bearer <admin token>" (constant-time compare; else
 * 401 JSON); the API keys of replicas do not open it. Bad input: 400 JSON. */
#ifndef TDGL_PRIMARY_ADMIN_H
#define TDGL_PRIMARY_ADMIN_H
#include "common/http.h"
#include "primary/api.h"

#define ADMIN_LOG_WINDOW 50000    /* ids one /api/admin/log request examines at most */
#define ADMIN_BEHIND_MAX 100000   /* changes counted per key at most */

/* Handles req and returns 1 when its path is one of the above, else 0. */
int admin_handle(struct api *api, struct http_req *req);

#endif
