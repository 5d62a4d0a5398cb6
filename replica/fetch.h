/* fetch: GET requests from a replica to one primary, as a sync engine should make them:
 * rate limited per source (ratelimit.h; 0 = unlimited), and retried with exponential
 * backoff and jitter, up to FETCH_ATTEMPTS attempts, when the primary could not be reached
 * (connection refused or failed, no reply, a timeout before any byte arrived) or answered
 * 5xx. A 429 or 503 with Retry-After (the primary is busy: a per-key cap, its page-query
 * queue full) is retried too, long-polls included, after what Retry-After says (at most
 * FETCH_RETRY_AFTER_MAX_S) plus the backoff. A transfer cut or truncated midway is not retried: that
 * is a broken link, better left to the scheduler's backoff than retried into another stall.
 * Another 4xx is an answer.
 * fetch_health() is the check made before a pull (not before a webhook-triggered one: the
 * primary has just called).
 * The Authorization header value is the caller's; it is never logged or put in an error. */
#ifndef TDGL_REPLICA_FETCH_H
#define TDGL_REPLICA_FETCH_H
#include <stddef.h>
#include <libpq-fe.h>
#include "common/httpc.h"

#define FETCH_ATTEMPTS        5
#define FETCH_BACKOFF_BASE_S  0.2
#define FETCH_BACKOFF_CAP_S   5.0
#define FETCH_RETRY_AFTER_MAX_S 60

struct fetch {
	const char *source;              /* names the rate limiter and log lines */
	const char *base_url;            /* the primary, e.g. "http://host:8080" */
	const char *const *headers;      /* NULL-terminated, e.g. the Authorization header */
	double rate;                     /* requests per second; 0: unlimited */
	const volatile int *stop;        /* optional: set on shutdown, ends waits early */
	int attempts;                    /* 0: FETCH_ATTEMPTS; 1: no retries (long-polls) */
	char error[512];                 /* why the last call failed */
};

/* GET base_url + path into *resp (freed and reset first). Returns the final HTTP status
 * (after retries), or -1 when no answer came (error: "primary unreachable: ..."). */
long fetch_get(struct fetch *f, const char *path, long timeout_ms, struct httpc_resp *resp);
/* GET /health: 0 when it answers 200, else -1 with error "primary unreachable: ...".
 * Not retried: a pull against a primary that is down fails at once and touches nothing. */
int fetch_health(struct fetch *f);
/* The rate limit configured for a source (tdgl.sources.rate_limit, 0 when none). */
double fetch_rate_of(PGconn *c, const char *source);

#endif
