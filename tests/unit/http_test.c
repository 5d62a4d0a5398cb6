/* Loopback tests of common/http.c and common/httpc.c: a server on 127.0.0.1:0 and the client
 * against it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/http.h"
#include "common/httpc.h"
#include "common/json.h"
#include "tests/unit/unit.h"

struct http_test_stream { int n; };

static long http_test_next(void *ctx, char *out, size_t max)
{
	struct http_test_stream *st = ctx;

	if (st->n >= 3)
		return -1;
	st->n++;
	return snprintf(out, max, "data: %d\n\n", st->n);
}

static void http_test_done(void *ctx)
{
	free(ctx);
}

static void http_test_handler(struct http_req *req, void *ctx)
{
	const char *path = http_path(req);
	cJSON *o;
	size_t len;

	(void)ctx;
	if (!strcmp(path, "/noreply"))
		return;
	if (!strcmp(path, "/stream")) {
		http_reply_stream(req, "text/event-stream", http_test_next, http_test_done,
		                  calloc(1, sizeof(struct http_test_stream)));
		return;
	}
	if (!strcmp(path, "/big")) {
		char *big = calloc(1, 100000);
		http_reply_data(req, 200, "application/octet-stream", big, 100000);
		free(big);
		return;
	}
	o = cJSON_CreateObject();
	http_body(req, &len);
	cJSON_AddStringToObject(o, "method", http_method(req));
	cJSON_AddStringToObject(o, "path", path);
	cJSON_AddStringToObject(o, "q", http_query(req, "q") ? http_query(req, "q") : "(none)");
	cJSON_AddStringToObject(o, "h", http_header(req, "x-t") ? http_header(req, "x-t") : "");
	cJSON_AddStringToObject(o, "body", http_body(req, NULL));
	cJSON_AddNumberToObject(o, "len", (double)len);
	cJSON_AddStringToObject(o, "ip", http_client_ip(req));
	http_add_header(req, "X-Reply", "yes");
	http_reply_json(req, 201, o);
}

/* GETs or POSTs path and returns the parsed JSON reply (NULL when not JSON). */
static cJSON *http_test_call(unsigned port, const char *method, const char *path,
                             const char *body, size_t blen, long *status)
{
	char url[512], err[128];
	const char *hdrs[] = { "X-T: hv", NULL };
	struct httpc_resp r;
	cJSON *j = NULL;

	snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
	*status = -1;
	if (httpc_request(method, url, hdrs, body, blen, NULL, &r) == 0) {
		*status = r.status;
		j = json_parse_strict(r.body, r.len, err, sizeof err);
	}
	httpc_resp_free(&r);
	return j;
}

UNIT_TEST(http_loopback)
{
	struct http_limits lim = { .max_body = 1000, .max_conns = 16, .timeout_s = 5 };
	char err[256], *q = httpc_escape("a b&c=d/é"), path[256], body[2000];
	struct http_server *srv;
	struct httpc_resp r;
	struct httpc_opts small = { .max_body = 1000 };
	static const char *const bad[] = { "/a%00b", "/a?q=%00", "/a?q=%ff", "/%c0%af" };
	long st;
	cJSON *j;
	unsigned port;

	httpc_global_init();
	CHECK(http_start("nonsense", &lim, http_test_handler, NULL, err, sizeof err) == NULL);
	CHECK(strstr(err, "HOST:PORT") != NULL);
	srv = http_start("127.0.0.1:0", &lim, http_test_handler, NULL, err, sizeof err);
	CHECK(srv != NULL);
	if (!srv)
		goto out;
	port = http_port(srv);
	CHECK(port > 0);

	CHECK_STR(q, "a%20b%26c%3Dd%2F%C3%A9");
	snprintf(path, sizeof path, "/x%%20y?q=%s", q);
	j = http_test_call(port, "GET", path, NULL, 0, &st);
	CHECK(st == 201 && j);
	CHECK_STR(json_get_string(j, "path"), "/x y");
	CHECK_STR(json_get_string(j, "q"), "a b&c=d/é");
	CHECK_STR(json_get_string(j, "h"), "hv");
	CHECK_STR(json_get_string(j, "ip"), "127.0.0.1");
	cJSON_Delete(j);

	j = http_test_call(port, "POST", "/p", "hello", 5, &st);
	CHECK(st == 201 && j && json_get_int(j, "len", -1) == 5);
	CHECK_STR(json_get_string(j, "body"), "hello");
	cJSON_Delete(j);

	memset(body, 'x', sizeof body);
	j = http_test_call(port, "POST", "/p", body, sizeof body, &st);
	CHECK(st == 413 && j && strstr(json_get_string(j, "error"), "larger") != NULL);
	cJSON_Delete(j);

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		j = http_test_call(port, "GET", bad[i], NULL, 0, &st);
		CHECK(st == 400 && j && json_get_string(j, "error"));
		cJSON_Delete(j);
	}

	{
		/* a handler that queues no reply gets a 500 and an error line (captured, so a
		 * passing run prints nothing alarming) */
		char tmpl[] = "/tmp/tdgl-log-XXXXXX", text[512] = "";
		int fd = mkstemp(tmpl), saved = dup(2);
		ssize_t n;

		fflush(stderr);
		dup2(fd, 2);
		j = http_test_call(port, "GET", "/noreply", NULL, 0, &st);
		fflush(stderr);
		dup2(saved, 2);
		close(saved);
		n = pread(fd, text, sizeof text - 1, 0);
		text[n > 0 ? n : 0] = '\0';
		close(fd);
		unlink(tmpl);
		CHECK(st == 500 && j && json_get_string(j, "error"));
		CHECK(strstr(text, "GET /noreply: handler queued no reply") != NULL);
		cJSON_Delete(j);
	}

	snprintf(path, sizeof path, "http://127.0.0.1:%u/stream", port);
	CHECK(httpc_request("GET", path, NULL, NULL, 0, NULL, &r) == 0);
	CHECK(r.status == 200);
	CHECK_STR(r.body, "data: 1\n\ndata: 2\n\ndata: 3\n\n");
	httpc_resp_free(&r);

	snprintf(path, sizeof path, "http://127.0.0.1:%u/big", port);
	CHECK(httpc_request("GET", path, NULL, NULL, 0, &small, &r) == -1);
	CHECK(strstr(r.err, "larger") != NULL && r.body == NULL);
	httpc_resp_free(&r);
	{
		char tmpl[] = "/tmp/tdgl-httpc-XXXXXX";
		int fd = mkstemp(tmpl);
		struct httpc_opts to_file = { .write_to_path = tmpl };

		close(fd);
		CHECK(httpc_request("GET", path, NULL, NULL, 0, &to_file, &r) == 0);
		CHECK(r.status == 200 && r.len == 0);
		httpc_resp_free(&r);
		to_file.max_body = 1000;
		CHECK(httpc_request("GET", path, NULL, NULL, 0, &to_file, &r) == -1);
		CHECK(access(tmpl, F_OK) != 0);  /* no partial file left */
		httpc_resp_free(&r);
		unlink(tmpl);
	}
	http_stop(srv);
	CHECK(httpc_request("GET", path, NULL, NULL, 0, NULL, &r) == -1);
	CHECK(r.status == 0 && r.err[0]);
	httpc_resp_free(&r);
out:
	free(q);
}

static void http_test_slow_handler(struct http_req *req, void *ctx)
{
	(void)ctx;
	usleep(2500 * 1000);  /* longer than the request deadline: handlers have none */
	http_reply_data(req, 200, "text/plain", "done", 4);
}

/* Connects to port, sends a partial request, returns seconds until the server closed it
 * (or -1 after 6 s). */
static int http_test_trickle(unsigned port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), secs = -1;
	struct timeval tv = { 0, 200 * 1000 };
	char c;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
		goto out;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (send(fd, "GET / HTTP/1.1\r\n", 16, MSG_NOSIGNAL) < 0)
		goto out;
	for (int i = 0; i < 30; i++)  /* a header line every 200 ms: never idle, never done */
		if (recv(fd, &c, 1, 0) == 0 || send(fd, "X-A: b\r\n", 8, MSG_NOSIGNAL) < 0) {
			secs = i / 5;
			break;
		}
out:
	if (fd >= 0)
		close(fd);
	return secs;
}

UNIT_TEST(http_request_deadline)
{
	struct http_limits lim = { .timeout_s = 1 };
	char err[256], url[128];
	struct http_server *srv = http_start("127.0.0.1:0", &lim, http_test_slow_handler, NULL,
	                                     err, sizeof err);
	struct httpc_resp r;
	int secs;

	CHECK(srv != NULL);
	if (!srv)
		return;
	secs = http_test_trickle(http_port(srv));
	CHECK(secs >= 0 && secs <= 3);  /* cut at the 1 s deadline, checked once a second */
	snprintf(url, sizeof url, "http://127.0.0.1:%u/", http_port(srv));
	CHECK(httpc_request("GET", url, NULL, NULL, 0, NULL, &r) == 0);
	CHECK(r.status == 200);
	CHECK_STR(r.body, "done");
	httpc_resp_free(&r);
	http_stop(srv);
}
