/* upstream: the replica's one client of a primary. Every request to a primary goes through
 * here (health, snapshot, changes, rows as JSON or COPY, hashes, files), and every URL of
 * the primary's API is built here. Requests are made as a sync engine should make them:
 * rate limited per source (ratelimit.h; 0 = unlimited), and retried with exponential
 * backoff and jitter (backoff.h), up to UPSTREAM_ATTEMPTS attempts, when the primary could
 * not be reached (connection refused or failed, no reply, a timeout before any byte
 * arrived) or answered 5xx. A 429 or 503 with Retry-After (the primary is busy: a per-key
 * cap, its page-query queue full) is retried too, long-polls included, after what
 * Retry-After says (at most UPSTREAM_RETRY_AFTER_MAX_S) plus the backoff. A transfer cut or
 * truncated midway is not retried: that is a broken link, better left to the scheduler's
 * backoff than retried into another stall. Another 4xx is an answer. A long-poll (changes
 * with wait > 0), a health probe and a file are tried once (but for busy answers).
 * upstream_health() is the check made before a pull (not before a
 * webhook-triggered one: the primary has just called).
 * The Authorization header is built from the source's opened secret by upstream_open and
 * owned by u; it is never logged or put in an error, and upstream_close wipes it. */
#ifndef TDGL_REPLICA_UPSTREAM_H
#define TDGL_REPLICA_UPSTREAM_H
#include <stdatomic.h>
#include <stddef.h>
#include "common/httpc.h"
#include "replica/source.h"

#define UPSTREAM_ATTEMPTS        5
#define UPSTREAM_BACKOFF_BASE_S  0.2
#define UPSTREAM_BACKOFF_CAP_S   5.0
#define UPSTREAM_RETRY_AFTER_MAX_S 60

/* One source's primary. A struct copy (a thread of its own, an error of its own) shares the
 * original's header, so the original is closed last. */
struct upstream {
	const char *source;              /* names the rate limiter and log lines */
	const char *base_url;            /* the primary, e.g. "http://host:8080" */
	char *auth;                      /* "Authorization: token KEY:SECRET" (owned) */
	double rate;                     /* requests per second; 0: unlimited */
	const atomic_int *stop;          /* optional: set on shutdown, ends waits early */
	char peer[40];                   /* this site's identity when the source syncs a table
	                                    both ways: changes are asked for as its peer
	                                    (docs/design.md "Two-way sync"); else "" */
	char error[512];                 /* why the last call failed */
};

/* Sets u up for source s (secrets opened, source.h; its rate limit). s must outlive u. */
void upstream_open(struct upstream *u, const struct source *s, const atomic_int *stop);
/* Wipes and frees the header. */
void upstream_close(struct upstream *u);

/* Each GET below reads the answer into *resp (freed and reset first) and returns the final
 * HTTP status (after retries), or -1 when no answer came (error: "primary unreachable:
 * ..."). */

/* GET /health: 0 when it answers 200, else -1 with error "primary unreachable: ...".
 * Not retried: a pull against a primary that is down fails at once and touches nothing. */
int upstream_health(struct upstream *u);
/* GET /api/snapshot: the cursor an initial sync starts from. */
long upstream_snapshot(struct upstream *u, struct httpc_resp *resp);
/* GET /api/changes after cursor for tables ("t1,t2"); wait_s > 0 long-polls (tried once).
 * As u->peer when that is set. */
long upstream_changes(struct upstream *u, const char *cursor, const char *tables, int limit,
                      int wait_s, struct httpc_resp *resp);
/* GET /api/rows of table, in key order after `after` (NULL: from the start), matching
 * filter (NULL: all). columns (comma-separated) asks for format=copy; NULL for JSON, which
 * as u->peer (when set) comes with each row's version. */
long upstream_rows(struct upstream *u, const char *table, const char *filter,
                   const char *after, long limit, const char *columns, long timeout_ms,
                   struct httpc_resp *resp);
/* GET path (as "/api/hashes?..."), retried. For verify's /api/hashes requests, whose
 * parameters are verify's own (verify.c builds them, in one place). */
long upstream_get(struct upstream *u, const char *path, long timeout_ms,
                  struct httpc_resp *resp);
/* GET /api/files/<rel> (rel: the path below /files/, escaped here). Tried once. */
long upstream_file(struct upstream *u, const char *rel, struct httpc_resp *resp);

#endif
