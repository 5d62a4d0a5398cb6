/* httpc: a small blocking HTTP client (libcurl). Thread-safe after httpc_global_init(). */
#ifndef TDGL_HTTPC_H
#define TDGL_HTTPC_H
#include <stdatomic.h>
#include <stddef.h>

struct httpc_resp {
	long   status;      /* HTTP status, 0 when no response */
	char  *body;        /* malloc'd, NUL-terminated; "" for an empty body; NULL on failure */
	size_t len;
	long   retry_after; /* seconds a Retry-After header asked for (delta form), 0 when none */
	char   err[256];    /* transport error text when the call returns -1 */
};

struct httpc_opts {
	long   timeout_ms;          /* whole request; default 30000 */
	long   connect_timeout_ms;  /* default 5000 */
	size_t max_body;            /* larger responses fail; default 64 MiB */
	const char *write_to_path;  /* when set, the body (of any status: check it) is streamed
	                             * into this file (created 0644, truncated) instead; the file
	                             * is removed when the call returns -1 */
	const atomic_int *cancel; /* when set and it becomes nonzero, the request is abandoned
	                             * within about a second (err "cancelled"): a long-poll does
	                             * not hold up a shutdown */
};

void httpc_global_init(void);
/* headers: NULL-terminated array of "Name: value". body may be NULL. Redirects are not
 * followed; only http and https URLs. err never contains headers or bodies (no secrets).
 * Returns 0 when a response arrived (any status), -1 on transport failure (err set). */
int httpc_request(const char *method, const char *url, const char *const *headers,
                  const char *body, size_t body_len, const struct httpc_opts *opts,
                  struct httpc_resp *out);
void httpc_resp_free(struct httpc_resp *r);
/* Percent-encodes s for a query string; malloc'd, caller frees. */
char *httpc_escape(const char *s);

#endif
