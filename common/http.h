/* http: the HTTP server both processes embed (libmicrohttpd, one thread per connection so
 * a handler may block, e.g. for a long-poll or an event stream).
 *
 * The dispatcher collects the whole request body (up to limits.max_body, else 413 JSON),
 * then calls the handler once. The handler must queue exactly one reply with an
 * http_reply_* function before returning; if it does not, the request gets a 500 JSON error.
 * Header, URL and connection limits and per-connection timeouts are enforced here:
 * each complete request (headers + body) must arrive within timeout_s (slowloris guard);
 * handlers themselves have no deadline. Some malformed requests are answered by
 * libmicrohttpd itself before any handler runs (431 headers too large, 413 for an absurd
 * Content-Length, 400 for bad framing), with an HTML body.
 * Paths and query values are percent-decoded and valid UTF-8 (else 400 before the handler;
 * an encoded NUL counts as invalid). http_start ignores SIGPIPE for the whole process. */
#ifndef TDGL_HTTP_H
#define TDGL_HTTP_H
#include <stddef.h>
#include <cjson/cJSON.h>

struct http_req;
typedef void (*http_handler)(struct http_req *req, void *ctx);

struct http_limits {
	size_t   max_body;        /* bytes; default 1 MiB */
	unsigned max_conns;       /* default 1024 */
	unsigned max_conns_per_ip;/* one client address holds at most this many; default
	                             max_conns / 4 (so one client never holds every slot) */
	unsigned timeout_s;       /* idle/slow-client timeout per connection; default 30
	                             (serve's --http-timeout) */
};

/* Starts serving on "host:port" (e.g. "127.0.0.1:8080", "0.0.0.0:80", ":8080").
 * Returns NULL with a message in err on failure (bad address, port in use). */
struct http_server *http_start(const char *listen, const struct http_limits *limits,
                               http_handler handler, void *ctx, char *err, size_t errlen);
/* Requests refused or cut before a handler ran, in every server of the process: malformed,
 * aborted, over a connection limit, too slow (what libmicrohttpd reports and the slow-client
 * guard closes). Logged at most once a minute, so this count is where they show. */
unsigned long http_protocol_errors(void);
/* The port actually bound (useful with port 0). */
unsigned http_port(const struct http_server *srv);
void http_stop(struct http_server *srv);

/* Request accessors; returned strings live as long as the request. */
const char *http_method(const struct http_req *req);
const char *http_path(const struct http_req *req);      /* decoded path, no query */
const char *http_query(const struct http_req *req, const char *name);  /* NULL if absent */
const char *http_header(const struct http_req *req, const char *name); /* NULL if absent */
const char *http_body(const struct http_req *req, size_t *len);      /* NUL-terminated */
const char *http_client_ip(const struct http_req *req);
/* 1 once the client went away, or the server is stopping (lets long waits stop early;
 * http_stop waits for handlers, so long waits must poll this). */
int http_client_gone(const struct http_req *req);

/* 1 when path is prefix + X + suffix with X non-empty, without '/' and shorter than outlen
 * (a path parameter: "/api/sources/" X "/pull"); X is copied into out. Else 0. */
int http_path_param(const char *path, const char *prefix, const char *suffix, char *out,
                    size_t outlen);

/* Replies. Each returns 0 on success, -1 if a reply was already queued or queuing failed. */
int http_reply_json(struct http_req *req, unsigned status, cJSON *body);  /* takes body */
int http_reply_error(struct http_req *req, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));  /* {"error": "..."} */
int http_reply_data(struct http_req *req, unsigned status, const char *content_type,
                    const void *data, size_t len);                        /* copies data */
/* Sends an open file descriptor (closed by the server when done, or here on failure). */
int http_reply_fd(struct http_req *req, unsigned status, const char *content_type,
                  int fd, size_t size);
/* Adds a response header to the next reply (e.g. "Retry-After"). */
void http_add_header(struct http_req *req, const char *name, const char *value);

/* Streaming reply (Server-Sent Events): `next` is called repeatedly from the connection's
 * thread; it writes up to max bytes into out and returns the count, 0 to wait (it should block
 * briefly itself; the server also pauses 10 ms), or -1 to end the stream. The stream ends by
 * itself when the client goes away or the server stops. `done` is called exactly once with
 * ctx, also when queuing fails. */
typedef long (*http_stream_next)(void *ctx, char *out, size_t max);
int http_reply_stream(struct http_req *req, const char *content_type,
                      http_stream_next next, void (*done)(void *ctx), void *ctx);

#endif
