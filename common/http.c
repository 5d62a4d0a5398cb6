/* http: libmicrohttpd server, one thread per connection (handlers may block).
 *
 * Request life: first access-handler call (headers complete) creates a struct http_req and
 * refuses early what can be refused early (Content-Length above max_body, path or query
 * that is not valid UTF-8 or holds an encoded NUL); body calls accumulate up to max_body;
 * the final call runs the handler, which queues one reply. NOTIFY_COMPLETED frees the
 * request. SIGPIPE is ignored process-wide by http_start (a client that goes away must not
 * kill the server). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <microhttpd.h>
#include "common/addr.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/http.h"
#include "common/http_guard.h"
#include "common/json.h"
#include "common/log.h"

#define HTTP_CONN_MEMORY (160 * 1024)  /* request line + headers; a cursor token is <= 64 KiB */
#ifdef __SANITIZE_ADDRESS__
#define HTTP_STACK_SIZE  (1024 * 1024)  /* ASan frames are several times larger */
#else
#define HTTP_STACK_SIZE  (256 * 1024)   /* hundreds of waiting long-polls stay cheap */
#endif
#define HTTP_STREAM_BLOCK 4096
#define HTTP_DISCARD_MAX (1024 * 1024)  /* body bytes read past max_body before closing */

struct http_server {
	struct MHD_Daemon *d;
	http_handler handler;
	void *ctx;
	struct http_limits lim;
	unsigned port;
	int stopping;  /* __atomic */
	struct http_guard *guard;
};

struct http_hdr {
	char *name, *value;
	struct http_hdr *next;
};

struct http_req {
	struct http_server *srv;
	struct MHD_Connection *conn;
	const char *method;
	char *path;
	struct buf body;
	struct http_hdr *hdrs;
	int replied;
	int too_large;      /* body exceeded max_body: being discarded */
	size_t discarded;
	unsigned status;
	struct timespec start;
	char ip[INET6_ADDRSTRLEN];
};

struct http_stream {
	struct http_server *srv;
	struct MHD_Connection *conn;
	http_stream_next next;
	void (*done)(void *ctx);
	void *ctx;
};

static unsigned long http_errors;   /* __atomic: http_protocol_errors() */
static struct log_limit http_error_log = LOG_LIMIT_INIT;

unsigned long http_protocol_errors(void)
{
	return __atomic_load_n(&http_errors, __ATOMIC_RELAXED) + http_guard_closed_total();
}

static int http_stopping(const struct http_server *srv)
{
	return __atomic_load_n(&srv->stopping, __ATOMIC_RELAXED);
}

/* 1 when the peer closed its end of conn (recv peeks EOF or an error). */
static int http_peer_closed(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;
	char c;
	ssize_t n;

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return 1;
	n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return 1;
	return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

int http_path_param(const char *path, const char *prefix, const char *suffix, char *out,
                    size_t outlen)
{
	size_t pl = strlen(prefix), sl = strlen(suffix), len = strlen(path), n;

	if (len <= pl + sl || strncmp(path, prefix, pl) || strcmp(path + len - sl, suffix))
		return 0;
	n = len - pl - sl;
	if (n >= outlen || memchr(path + pl, '/', n))
		return 0;
	memcpy(out, path + pl, n);
	out[n] = '\0';
	return 1;
}

/* ---- replies ---- */

/* Queues resp (destroyed here in every case) unless a reply was already queued. */
static int http_queue(struct http_req *req, unsigned status, const char *ctype,
                      struct MHD_Response *resp)
{
	int rc = -1;

	if (!resp || req->replied)
		goto out;
	if (ctype && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES)
		goto out;
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	for (struct http_hdr *h = req->hdrs; h; h = h->next)
		if (MHD_add_response_header(resp, h->name, h->value) != MHD_YES)
			log_warn("http: cannot add response header %s", h->name);
	if (MHD_queue_response(req->conn, status, resp) != MHD_YES) {
		log_warn("http: cannot queue %u reply for %s %s", status, req->method, req->path);
		goto out;
	}
	req->replied = 1;
	req->status = status;
	rc = 0;
out:
	if (resp)
		MHD_destroy_response(resp);
	return rc;
}

int http_reply_json(struct http_req *req, unsigned status, cJSON *body)
{
	char *text = NULL;
	struct MHD_Response *resp = NULL;
	int rc = -1;

	if (req->replied)
		goto out;
	text = body ? cJSON_PrintUnformatted(body) : NULL;
	if (!text) {
		log_error("http: cannot print JSON reply for %s %s", req->method, req->path);
		goto out;
	}
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		goto out;
	text = NULL;  /* owned by resp now */
	rc = http_queue(req, status, "application/json", resp);
out:
	if (!text && !resp && !req->replied && status != 500)
		http_reply_error(req, 500, "internal error");
	free(text);
	cJSON_Delete(body);
	return rc;
}

int http_reply_error(struct http_req *req, unsigned status, const char *fmt, ...)
{
	char msg[1024];
	cJSON *o = NULL;
	va_list ap;

	if (req->replied)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!json_utf8_valid(msg, strlen(msg)))  /* the message may echo client bytes */
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
	o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "error", msg)) {
		static const char oom[] = "{\"error\":\"out of memory\"}";

		cJSON_Delete(o);
		return http_queue(req, status, "application/json",
		                  MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom,
		                                                  MHD_RESPMEM_PERSISTENT));
	}
	return http_reply_json(req, status, o);
}

int http_reply_data(struct http_req *req, unsigned status, const char *content_type,
                    const void *data, size_t len)
{
	if (req->replied)
		return -1;
	return http_queue(req, status, content_type,
	                  MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY));
}

int http_reply_fd(struct http_req *req, unsigned status, const char *content_type,
                  int fd, size_t size)
{
	struct MHD_Response *resp = NULL;

	if (!req->replied)
		resp = MHD_create_response_from_fd64((uint64_t)size, fd);
	if (!resp) {
		close(fd);  /* the fd is ours to close whatever happens */
		return -1;
	}
	return http_queue(req, status, content_type, resp);
}

void http_add_header(struct http_req *req, const char *name, const char *value)
{
	struct http_hdr *h = calloc(1, sizeof *h);

	if (!h || !(h->name = strdup(name)) || !(h->value = strdup(value)))
		abort();
	h->next = req->hdrs;
	req->hdrs = h;
}

static ssize_t http_stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct http_stream *st = cls;
	const struct timespec pause = { 0, 10 * 1000 * 1000 };

	(void)pos;
	for (;;) {
		long n;

		if (http_stopping(st->srv) || http_peer_closed(st->conn))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		n = st->next(st->ctx, out, max);
		if (n > 0)
			return (size_t)n > max ? (ssize_t)max : (ssize_t)n;
		if (n < 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
		/* Returning 0 to MHD busy-loops in this threading mode; wait here instead. */
		nanosleep(&pause, NULL);
	}
}

static void http_stream_free(void *cls)
{
	struct http_stream *st = cls;

	if (st->done)
		st->done(st->ctx);
	free(st);
}

int http_reply_stream(struct http_req *req, const char *content_type,
                      http_stream_next next, void (*done)(void *ctx), void *ctx)
{
	struct http_stream *st = NULL;
	struct MHD_Response *resp = NULL;

	if (req->replied || !(st = calloc(1, sizeof *st))) {
		if (done)
			done(ctx);
		return -1;
	}
	*st = (struct http_stream){ req->srv, req->conn, next, done, ctx };
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK,
	                                         http_stream_read, st, http_stream_free);
	if (!resp) {
		http_stream_free(st);
		return -1;
	}
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	return http_queue(req, 200, content_type, resp);  /* destroying resp calls done */
}

/* ---- request accessors ---- */

const char *http_method(const struct http_req *req)
{
	return req->method;
}

const char *http_path(const struct http_req *req)
{
	return req->path;
}

const char *http_query(const struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(const struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_body(const struct http_req *req, size_t *len)
{
	if (len)
		*len = req->body.len;
	return req->body.data ? req->body.data : "";
}

const char *http_client_ip(const struct http_req *req)
{
	struct http_req *r = (struct http_req *)req;  /* cached on first use */
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	if (r->ip[0])
		return r->ip;
	ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	sa = ci ? ci->client_addr : NULL;
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->ip, sizeof r->ip);
	else if (sa && sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a))  /* an IPv4 client of a dual-stack socket */
			inet_ntop(AF_INET, &a->s6_addr[12], r->ip, sizeof r->ip);
		else
			inet_ntop(AF_INET6, a, r->ip, sizeof r->ip);
	}
	if (!r->ip[0])
		snprintf(r->ip, sizeof r->ip, "unknown");
	return r->ip;
}

int http_client_gone(const struct http_req *req)
{
	return http_stopping(req->srv) || http_peer_closed(req->conn);
}

/* ---- dispatcher ---- */

static void http_conn_start(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                            enum MHD_ConnectionNotificationCode code)
{
	struct http_server *srv = cls;
	const union MHD_ConnectionInfo *ci;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci)
			*socket_ctx = http_guard_conn_start(srv->guard, ci->connect_fd);
	} else if (*socket_ctx) {
		http_guard_conn_end(srv->guard, *socket_ctx);
		*socket_ctx = NULL;
	}
}

/* Starts (armed) or lifts the deadline for conn's next complete request. */
static void http_conn_arm(struct http_server *srv, struct MHD_Connection *conn, int armed)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci && ci->socket_context)
		http_guard_conn_arm(srv->guard, ci->socket_context, armed);
}

/* Percent-decoding for path and query (MHD applies '+' -> ' ' to query parts first).
 * An encoded NUL becomes 0xff, invalid UTF-8 that the request check then refuses. */
static int http_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t http_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	char *r = s, *w = s;

	(void)cls;
	(void)conn;
	while (*r) {
		int hi = r[0] == '%' ? http_hexval(r[1]) : -1;
		int lo = hi >= 0 ? http_hexval(r[2]) : -1;

		if (lo >= 0) {
			int v = hi * 16 + lo;
			*w++ = v ? (char)v : (char)0xff;
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

static enum MHD_Result http_check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
	int *bad = cls;

	(void)kind;
	if (!json_utf8_valid(key, strlen(key)) || (value && !json_utf8_valid(value, strlen(value)))) {
		*bad = 1;
		return MHD_NO;
	}
	return MHD_YES;
}

/* Counts Content-Length and Transfer-Encoding headers: a request with two lengths, or a
 * length and chunking, is ambiguous (request smuggling behind a proxy) and refused. */
static enum MHD_Result http_count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                          const char *value)
{
	int *n = cls;

	(void)kind;
	(void)value;
	if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) ||
	    !strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		(*n)++;
	return MHD_YES;
}

/* First call: create the request and refuse early what can be refused early. */
static struct http_req *http_req_new(struct http_server *srv, struct MHD_Connection *conn,
                                     const char *url, const char *method)
{
	struct http_req *req = calloc(1, sizeof *req);
	const char *cl;
	int bad = 0, framing = 0;

	if (!req || !(req->path = strdup(url)))
		abort();
	req->srv = srv;
	req->conn = conn;
	req->method = method;
	clock_now(&req->start);
	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, http_check_arg, &bad);
	MHD_get_connection_values(conn, MHD_HEADER_KIND, http_count_framing, &framing);
	if (url[0] != '/' || !json_utf8_valid(url, strlen(url)) || bad)
		http_reply_error(req, 400, "invalid characters in URL");
	else if (framing > 1)
		http_reply_error(req, 400, "conflicting Content-Length / Transfer-Encoding headers");
	else if (cl && strtoull(cl, NULL, 10) > srv->lim.max_body)
		http_reply_error(req, 413, "request body larger than %zu bytes", srv->lim.max_body);
	return req;
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version,
                                   const char *upload, size_t *upload_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_req *req = *con_cls;

	(void)version;
	if (!req) {
		*con_cls = http_req_new(srv, conn, url, method);
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;

		*upload_size = 0;
		if (req->replied)
			return MHD_YES;  /* discarding the rest of a refused body */
		if (req->too_large || n > srv->lim.max_body - req->body.len) {
			/* MHD cannot queue a reply mid-upload: drop the body and answer 413 at its end,
			 * unless the client keeps sending far beyond the limit (then just close). */
			buf_free(&req->body);
			req->too_large = 1;
			req->discarded += n;
			return req->discarded > srv->lim.max_body + HTTP_DISCARD_MAX ? MHD_NO : MHD_YES;
		}
		buf_append(&req->body, upload, n);
		return MHD_YES;
	}
	if (req->too_large)
		http_reply_error(req, 413, "request body larger than %zu bytes", srv->lim.max_body);
	if (req->replied)
		return MHD_YES;
	http_conn_arm(srv, conn, 0);
	srv->handler(req, srv->ctx);
	if (!req->replied) {
		log_error("http: %s %s: handler queued no reply", req->method, req->path);
		http_reply_error(req, 500, "internal error");
	}
	return MHD_YES;
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
	struct http_req *req = *con_cls;
	struct timespec now;

	if (!req)
		return;
	http_conn_arm(cls, conn, 1);
	clock_now(&now);
	log_debug("http: %s %s %u %.1f ms%s", req->method, req->path, req->status,
	          (double)(now.tv_sec - req->start.tv_sec) * 1e3 +
	          (double)(now.tv_nsec - req->start.tv_nsec) / 1e6,
	          toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
	while (req->hdrs) {
		struct http_hdr *h = req->hdrs;
		req->hdrs = h->next;
		free(h->name);
		free(h->value);
		free(h);
	}
	buf_free(&req->body);
	free(req->path);
	free(req);
	*con_cls = NULL;
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	/* every line libmicrohttpd logs is a request it refused or lost: a client can cause
	 * them at will, so they are counted, and logged at most once a minute */
	__atomic_add_fetch(&http_errors, 1, __ATOMIC_RELAXED);
	log_limited(&http_error_log, LOG_WARN, "http: %s", msg);
}

/* ---- server ---- */

struct http_server *http_start(const char *listen, const struct http_limits *limits,
                               http_handler handler, void *ctx, char *err, size_t errlen)
{
	struct http_server *srv = calloc(1, sizeof *srv);
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *di;
	struct rlimit rl;
	int fd = -1;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
	                 MHD_USE_POLL | MHD_USE_ERROR_LOG;

	if (!srv)
		abort();
	signal(SIGPIPE, SIG_IGN);
	/* Each connection costs a descriptor; allow as many as the hard limit permits. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	srv->handler = handler;
	srv->ctx = ctx;
	srv->lim.max_body = limits && limits->max_body ? limits->max_body : 1024 * 1024;
	srv->lim.max_conns = limits && limits->max_conns ? limits->max_conns : 1024;
	srv->lim.max_conns_per_ip = limits && limits->max_conns_per_ip ? limits->max_conns_per_ip
	                            : (srv->lim.max_conns + 3) / 4;
	srv->lim.timeout_s = limits && limits->timeout_s ? limits->timeout_s : 30;
	if (addr_parse_listen(listen, &ss, err, errlen) < 0)
		goto fail;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
		/* "[::]:port" means every address, IPv4 included. */
		flags |= IN6_IS_ADDR_UNSPECIFIED(a) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
	}
	if (!(srv->guard = http_guard_start(srv->lim.timeout_s))) {
		snprintf(err, errlen, "cannot start HTTP guard thread");
		goto fail;
	}
	/* bound here, so a refused address is reported once and exactly */
	if ((fd = addr_listen(&ss, listen, err, errlen)) < 0)
		goto fail;
	srv->d = MHD_start_daemon(flags, 0, NULL, NULL, http_access, srv,
		MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, srv,  /* must come first */
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)srv->lim.max_conns,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)srv->lim.max_conns_per_ip,
		/* HTTP/1.1 without Host, whitespace in header names: refused (400) */
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)srv->lim.timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
		MHD_OPTION_THREAD_STACK_SIZE, (size_t)HTTP_STACK_SIZE,
		MHD_OPTION_NOTIFY_COMPLETED, http_completed, srv,
		MHD_OPTION_NOTIFY_CONNECTION, http_conn_start, srv,
		MHD_OPTION_UNESCAPE_CALLBACK, http_unescape, srv,
		MHD_OPTION_END);
	if (!srv->d) {
		snprintf(err, errlen, "cannot start the HTTP server on %s", listen);
		goto fail;
	}
	fd = -1;   /* the daemon's now */
	di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = di ? di->port : 0;
	return srv;
fail:
	if (fd >= 0)
		close(fd);
	http_guard_stop(srv->guard);
	free(srv);
	return NULL;
}

unsigned http_port(const struct http_server *srv)
{
	return srv->port;
}

void http_stop(struct http_server *srv)
{
	if (!srv)
		return;
	/* Streams and long waits polling http_client_gone end once they see this. */
	__atomic_store_n(&srv->stopping, 1, __ATOMIC_RELAXED);
	MHD_stop_daemon(srv->d);
	http_guard_stop(srv->guard);
	free(srv);
}
