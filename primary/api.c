/* api: request routing, authentication, parameter checks and replies. Every reply goes
 * through api_reply_* so /metrics counts it. A request holds a database connection only
 * while it runs queries: a long-poll waits on the watch without one. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/args.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/cursor.h"
#include "common/log.h"
#include "primary/admin.h"
#include "primary/api.h"
#include "primary/capture.h"
#include "primary/changes.h"
#include "primary/files.h"
#include "primary/hashes.h"
#include "primary/metrics.h"
#include "primary/rows.h"

#define API_POOL_WAIT_MS 5000
#define API_LIMIT_DEFAULT 100
#define API_LIMIT_MAX 500
#define API_WAIT_MAX 60
#define API_PARAM_MAX 8192      /* longest pk/after/filter/tables value */

static void api_error(struct http_req *req, unsigned status, const char *msg)
{
	metrics_request(status);
	http_reply_error(req, status, "%s", msg);
}

static void api_body(struct http_req *req, unsigned status, const char *type,
                     const char *data, size_t len)
{
	metrics_request(status);
	http_reply_data(req, status, type, data, len);
}

static void api_json_buf(struct http_req *req, unsigned status, const struct buf *b)
{
	api_body(req, status, "application/json", b->data ? b->data : "", b->len);
}

/* A connection from the pool, or NULL after answering 503. */
static PGconn *api_conn(struct api *api, struct http_req *req)
{
	PGconn *c = db_pool_get(api->pool, API_POOL_WAIT_MS);

	if (!c) {
		http_add_header(req, "Retry-After", "1");
		api_error(req, 503, "database unavailable");
	}
	return c;
}

/* Checks credentials; answers 401/503 itself and returns 0 when the request must stop. */
static int api_auth(struct api *api, struct http_req *req, PGconn *c, char *key)
{
	int r = auth_verify(api->auth, c, http_header(req, "Authorization"), key);

	if (r < 0)
		api_error(req, 503, "database unavailable");
	else if (r == 0)
		api_error(req, 401, "unauthorized");
	return r > 0;
}

/* An optional integer parameter within [min, max]; answers 400 and returns -1 when bad. */
static int api_int_param(struct http_req *req, const char *name, long min, long max,
                         long def, long *out)
{
	const char *v = http_query(req, name);
	char msg[128];

	*out = def;
	if (!v)
		return 0;
	if (args_int(v, min, max, out) < 0) {
		snprintf(msg, sizeof msg, "%s must be an integer from %ld to %ld", name, min, max);
		api_error(req, 400, msg);
		return -1;
	}
	return 0;
}

/* A string parameter no longer than API_PARAM_MAX; answers 400 and returns -1 when too long. */
static int api_str_param(struct http_req *req, const char *name, const char **out)
{
	char msg[96];

	*out = http_query(req, name);
	if (*out && strlen(*out) > API_PARAM_MAX) {
		snprintf(msg, sizeof msg, "%s is too long", name);
		api_error(req, 400, msg);
		return -1;
	}
	return 0;
}

/* Takes one of key's slots of kind k, or answers 429: the key holds its cap already. */
static int api_quota(struct api *api, struct http_req *req, const char *key,
                     enum quota_kind k)
{
	if (quota_take(api->quota, key, k) == 0)
		return 0;
	http_add_header(req, "Retry-After", "1");
	api_error(req, 429, k == QUOTA_WAIT ? "too many long-polls open with this key"
	                                    : "too many requests in flight with this key");
	return -1;
}

/* 1 when s is a UUID in its canonical text form (8-4-4-4-12 hex digits). */
static int api_is_uuid(const char *s)
{
	static const char form[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	size_t i;

	for (i = 0; form[i]; i++)
		if (form[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return 0;
	return s[i] == '\0';
}

static void api_changes(struct api *api, struct http_req *req)
{
	struct cursor cur = {0};
	struct changes_page page = {0};
	struct buf body = {0};
	PGconn *c = NULL;
	char key[AUTH_KEY_MAX], err[256];
	const char *token = http_query(req, "cursor"), *tables_csv = http_query(req, "tables");
	const char *peer = http_query(req, "peer");
	char *tables = NULL, *tok = NULL;
	long limit, wait;
	int64_t deadline;
	int bad, took[QUOTA_KINDS] = { 0 };

	c = api_conn(api, req);
	if (!c || !api_auth(api, req, c, key) || api_quota(api, req, key, QUOTA_REQUEST) < 0)
		goto out;
	took[QUOTA_REQUEST] = 1;
	if (api_int_param(req, "limit", 1, API_LIMIT_MAX, API_LIMIT_DEFAULT, &limit) < 0 ||
	    api_int_param(req, "wait", 0, API_WAIT_MAX, 0, &wait) < 0)
		goto out;
	if (peer && !api_is_uuid(peer)) {
		api_error(req, 400, "peer must be a site identity (a UUID, as `tdgl-replica status` "
		          "shows it)");
		goto out;
	}
	if (token && *token) {
		if (cursor_decode(token, &cur, err, sizeof err) < 0) {
			api_error(req, 400, err);
			goto out;
		}
	} else {
		cursor_init_start(&cur);
	}
	if (tables_csv) {
		tables = capture_tables_literal(c, tables_csv, &bad, err, sizeof err);
		if (!tables) {
			api_error(req, bad ? 400 : 503, err);
			goto out;
		}
	}
	deadline = clock_ms() + wait * 1000;
	for (;;) {
		uint64_t gen = watch_generation(api->watch);
		int rc = changes_fetch(c, &cur, tables, peer, (int)limit, &page, err, sizeof err);
		int64_t left;

		metrics_page_query();
		if (rc == CHANGES_GONE) {
			api_error(req, 410, err);
			goto out;
		}
		if (rc != CHANGES_OK) {
			api_error(req, 503, "database error");
			goto out;
		}
		left = deadline - clock_ms();
		if (page.count > 0 || left <= 0 || *api->stopping || http_client_gone(req))
			break;
		cursor_free(&cur);
		cur = page.next;
		memset(&page.next, 0, sizeof page.next);
		changes_page_free(&page);
		if (cur.open)
			continue;     /* an empty window inside a batch: read on at once */
		/* Nothing new: continue from the page's cursor after the head moves, holding no
		 * database connection while waiting. */
		if (!took[QUOTA_WAIT]) {
			if (api_quota(api, req, key, QUOTA_WAIT) < 0)
				goto out;
			took[QUOTA_WAIT] = 1;
		}
		db_pool_put(api->pool, c);
		c = NULL;
		metrics_longpoll(1);
		/* the page is asked again only when new changes became visible (the watch's
		 * generation moved) or at the deadline: an idle long-poll costs its database one
		 * query per round, not one a second; the 1 s slices notice a client gone */
		while (watch_generation(api->watch) == gen && (left = deadline - clock_ms()) > 0 &&
		       !*api->stopping && !http_client_gone(req))
			watch_wait(api->watch, gen, left > 1000 ? 1000 : (int)left);
		metrics_longpoll(-1);
		c = api_conn(api, req);
		if (!c)
			goto out;
	}
	auth_note_cursor(api->auth, c, key, page.horizon);
	tok = cursor_encode(&page.next);
	buf_puts(&body, "{\"changes\":[");
	if (page.items.len)
		buf_append(&body, page.items.data, page.items.len);
	buf_printf(&body, "],\"cursor\":\"%s\",\"more\":%s", tok, page.more ? "true" : "false");
	if (page.site[0])     /* a two-way peer learns whom it applies from (its changes' via) */
		buf_printf(&body, ",\"site\":\"%s\"", page.site);
	buf_puts(&body, "}");
	metrics_served(page.count);
	api_json_buf(req, 200, &body);
out:
	for (int k = 0; k < QUOTA_KINDS; k++)
		if (took[k])
			quota_give(api->quota, key, (enum quota_kind)k);
	db_pool_put(api->pool, c);
	changes_page_free(&page);
	cursor_free(&cur);
	buf_free(&body);
	free(tables);
	free(tok);
}

static void api_snapshot(struct api *api, struct http_req *req)
{
	struct cursor cur = {0};
	struct buf body = {0};
	PGconn *c = NULL;
	char key[AUTH_KEY_MAX], *tok = NULL;

	c = api_conn(api, req);
	if (!c || !api_auth(api, req, c, key))
		goto out;
	if (changes_snapshot(c, &cur) < 0) {
		api_error(req, 503, "database error");
		goto out;
	}
	auth_note_cursor(api->auth, c, key, cursor_snapshot_xmin(cur.s2));
	tok = cursor_encode(&cur);
	buf_printf(&body, "{\"cursor\":\"%s\"}", tok);
	api_json_buf(req, 200, &body);
out:
	db_pool_put(api->pool, c);
	cursor_free(&cur);
	buf_free(&body);
	free(tok);
}

static void api_rows(struct api *api, struct http_req *req, int one)
{
	struct buf body = {0};
	PGconn *c = NULL;
	char key[AUTH_KEY_MAX], err[512];
	const char *table, *after, *filter, *pk, *format, *columns;
	long limit;
	enum result status;
	int copy, took = 0;

	c = api_conn(api, req);
	if (!c || !api_auth(api, req, c, key) || api_quota(api, req, key, QUOTA_REQUEST) < 0)
		goto out;
	took = 1;
	if (api_str_param(req, "table", &table) < 0 || api_str_param(req, "after", &after) < 0 ||
	    api_str_param(req, "filter", &filter) < 0 || api_str_param(req, "pk", &pk) < 0 ||
	    api_str_param(req, "format", &format) < 0 || api_str_param(req, "columns", &columns) < 0)
		goto out;
	copy = !one && format && !strcmp(format, "copy");
	if (!one && format && !copy && strcmp(format, "json") != 0) {
		api_error(req, 400, "format must be json or copy");
		goto out;
	}
	if (!copy && columns) {
		api_error(req, 400, "columns: only with format=copy");
		goto out;
	}
	if (one) {
		status = rows_get(c, table, pk, &body, err, sizeof err);
	} else if (copy) {
		if (api_int_param(req, "limit", 1, ROWS_COPY_LIMIT_MAX, ROWS_COPY_LIMIT_DEFAULT,
		                  &limit) < 0)
			goto out;
		status = rows_copy_page(c, table, after && *after ? after : NULL,
		                        filter && *filter ? filter : NULL, columns, (int)limit, &body,
		                        err, sizeof err);
	} else {
		if (api_int_param(req, "limit", 1, ROWS_LIMIT_MAX, ROWS_LIMIT_DEFAULT, &limit) < 0)
			goto out;
		status = rows_page(c, table, after && *after ? after : NULL,
		                   filter && *filter ? filter : NULL, (int)limit, &body, err,
		                   sizeof err);
	}
	if (status == RESULT_OK && copy)
		api_body(req, 200, "text/plain; charset=utf-8", body.data ? body.data : "", body.len);
	else if (status == RESULT_OK)
		api_json_buf(req, 200, &body);
	else
		api_error(req, result_http_status(status), err);
out:
	if (took)
		quota_give(api->quota, key, QUOTA_REQUEST);
	db_pool_put(api->pool, c);
	buf_free(&body);
}

/* GET /api/hashes: what a replica's verify compares (hashes.h). */
static void api_hashes(struct api *api, struct http_req *req)
{
	struct buf body = {0};
	PGconn *c = NULL;
	char key[AUTH_KEY_MAX], err[512];
	struct hashes_req r = {
		.table = http_query(req, "table"), .columns = http_query(req, "columns"),
		.filter = http_query(req, "filter"), .mode = http_query(req, "mode"),
		.bits = http_query(req, "bits"), .prefix_bits = http_query(req, "prefix_bits"),
		.prefixes = http_query(req, "prefixes"), .keys = http_query(req, "keys"),
		.cursor = http_query(req, "cursor"),
	};
	unsigned status;

	c = api_conn(api, req);
	if (!c || !api_auth(api, req, c, key))
		goto out;
	status = hashes_answer(c, &r, &body, err, sizeof err);
	if (status == 200)
		api_json_buf(req, 200, &body);
	else
		api_error(req, status, err);
out:
	db_pool_put(api->pool, c);
	buf_free(&body);
}

static void api_files(struct api *api, struct http_req *req, const char *rel)
{
	PGconn *c = NULL;
	char key[AUTH_KEY_MAX], err[256];
	enum result r;
	size_t size = 0;
	int fd;

	c = api_conn(api, req);
	if (!c || !api_auth(api, req, c, key))
		goto out;
	db_pool_put(api->pool, c);
	c = NULL;
	r = files_open(api->files_dir, rel, &fd, &size, err, sizeof err);
	if (r != RESULT_OK) {
		api_error(req, result_http_status(r), err);
		goto out;
	}
	metrics_request(200);
	http_add_header(req, "X-Content-Type-Options", "nosniff");
	http_reply_fd(req, 200, files_content_type(rel), fd, size);
out:
	db_pool_put(api->pool, c);
}

static void api_metrics(struct api *api, struct http_req *req)
{
	PGconn *c = NULL;
	char key[AUTH_KEY_MAX], *text = NULL;

	c = api_conn(api, req);
	if (!c)
		goto out;
	if (!api->metrics_public && !api_auth(api, req, c, key))
		goto out;
	text = metrics_render(c);
	api_body(req, 200, "text/plain; version=0.0.4", text, strlen(text));
out:
	db_pool_put(api->pool, c);
	free(text);
}

void api_handle(struct http_req *req, void *ctx)
{
	struct api *api = ctx;
	const char *path = http_path(req), *method = http_method(req);

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		http_add_header(req, "Allow", "GET");
		api_error(req, 405, "method not allowed");
		return;
	}
	if (admin_handle(api, req)) {   /* the console and /api/admin/... (admin.h) */
		return;
	} else if (!strcmp(path, "/health")) {
		static const char ok[] = "{\"status\":\"ok\"}";
		api_body(req, 200, "application/json", ok, sizeof ok - 1);
	} else if (!strcmp(path, "/metrics")) {
		api_metrics(api, req);
	} else if (!strcmp(path, "/api/changes")) {
		api_changes(api, req);
	} else if (!strcmp(path, "/api/snapshot")) {
		api_snapshot(api, req);
	} else if (!strcmp(path, "/api/rows")) {
		api_rows(api, req, 0);
	} else if (!strcmp(path, "/api/row")) {
		api_rows(api, req, 1);
	} else if (!strcmp(path, "/api/hashes")) {
		api_hashes(api, req);
	} else if (!strncmp(path, "/api/files/", 11)) {
		api_files(api, req, path + 11);
	} else if (!strncmp(path, "/api/", 5) || !strcmp(path, "/api")) {
		/* Unknown API paths need credentials too: no probing without a key. */
		PGconn *c = api_conn(api, req);
		char key[AUTH_KEY_MAX];
		if (c && api_auth(api, req, c, key))
			api_error(req, 404, "not found");
		db_pool_put(api->pool, c);
	} else {
		api_error(req, 404, "not found");
	}
}
