/* browse: the read routes of the admin API the web console pages through (behind api.c's
 * token check), plus "retry every Failed change":
 *   GET  /api/overview            every source with its state, lag, last run, next run, counts
 *   GET  /api/log/page            sync log page, newest first, by id cursor, with filters
 *   POST /api/log/retry-failed    retry every Failed change now (?source=NAME: one source)
 *   GET  /api/local-edits         rows edited here (newest first), with their open conflict
 *   GET  /api/conflicts/<id>      one conflict with its column-by-column comparison
 * Log pages stay fast over any log size: a page reads at most BROWSE_LOG_WINDOW ids below
 * its cursor (primary-key range scan), and at most the rows that hold that many entries (the
 * changes one apply statement synced are one log row, hence one id); a time range is turned
 * into an id range first (ids follow created_at), so no page scans the log. A page ends on a
 * log row: the entries of one row (one id) are never split between pages. Bad input: 4xx
 * JSON. */
#ifndef TDGL_REPLICA_BROWSE_H
#define TDGL_REPLICA_BROWSE_H
#include "common/http.h"
#include "replica/api.h"

#define BROWSE_LOG_WINDOW 50000   /* ids (entries) one /api/log/page request examines at most */

/* Handles req and returns 1 when it is one of the routes above, else 0. */
int browse_handle(struct api *a, struct http_req *req);

#endif
