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
#include "common/limits.h"
#include "common/log.h"
#include "primary/admin.h"
#include "primary/admission.h"
#include "primary/api.h"
#include "primary/capture.h"
#include "primary/changes.h"
#include "primary/files.h"
#include "primary/flight.h"
#include "primary/heads.h"
#include "primary/hashes.h"
#include "primary/metrics.h"
#include "primary/rows.h"

#define API_POOL_WAIT_MS 5000
#define API_QUEUE_WAIT_MS 30000   /* longest wait in the page-query queue */
#define API_LIMIT_DEFAULT 100
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

/* One page of changes as a flight's value (flight.h): what the page query gave, shared
 * read-only by every request that asked for the same page at once. */
struct api_page {
	enum result   result;     /* RESULT_OK, or what went wrong (below) */
	int           gone;       /* the cursor expired (410; reason in err) */
	char          err[256];
	struct buf    body;       /* the 200 reply, byte for byte */
	struct cursor next;       /* where the page ends */
	int           count;
	uint64_t      horizon;
};

/* What a page query needs; the request thread's, read by the run on the same thread. */
struct api_page_req {
	struct api          *api;
	const struct cursor *cur;
	const char          *tables;
	const char          *peer;       /* a two-way peer's site identity, or NULL */
	int                  limit;
	uint64_t             gen;        /* the watch generation read before the query */
};

void api_page_free(void *v)
{
	struct api_page *p = v;

	if (!p)
		return;
	buf_free(&p->body);
	cursor_free(&p->next);
	free(p);
}

/* A flight's run: one page query, within the page-query cap (admission.h), on a
 * connection of its own. */
static void *api_page_run(void *ctx)
{
	const struct api_page_req *q = ctx;
	struct changes_page page = {0};
	struct api_page *p = calloc(1, sizeof *p);
	PGconn *c = NULL;
	char *tok = NULL;
	int rc, admitted = 0;

	if (!p)
		abort();
	p->result = admission_enter(q->api->admission, API_QUEUE_WAIT_MS);
	if (p->result != RESULT_OK) {
		snprintf(p->err, sizeof p->err, "too many page queries waiting");
		goto out;
	}
	admitted = 1;
	c = db_pool_get(q->api->pool, API_POOL_WAIT_MS);
	if (!c) {
		p->result = RESULT_UNAVAILABLE;
		snprintf(p->err, sizeof p->err, "database unavailable");
		goto out;
	}
	rc = changes_fetch(c, q->cur, q->tables, q->peer, q->limit, &page, p->err, sizeof p->err);
	metrics_page_query();
	if (rc == CHANGES_GONE) {
		p->result = RESULT_NOT_FOUND;
		p->gone = 1;
		goto out;
	}
	if (rc != CHANGES_OK) {
		p->result = RESULT_UNAVAILABLE;     /* logged by changes_fetch */
		snprintf(p->err, sizeof p->err, "database error");
		goto out;
	}
	tok = cursor_encode(&page.next);
	/* the page opened its batch (its snapshot was taken after gen was read) and finished
	 * it: a long-poll coming back with its cursor while gen holds need not ask (heads.h) */
	if (!q->cur->open && !page.next.open && !page.more)
		heads_note(q->api->heads, tok, q->gen);
	buf_puts(&p->body, "{\"changes\":[");
	if (page.items.len)
		buf_append(&p->body, page.items.data, page.items.len);
	buf_printf(&p->body, "],\"cursor\":\"%s\",\"more\":%s", tok, page.more ? "true" : "false");
	if (page.site[0])     /* a two-way peer learns whom it applies from (its changes' via) */
		buf_printf(&p->body, ",\"site\":\"%s\"", page.site);
	buf_puts(&p->body, "}");
	p->next = page.next;
	memset(&page.next, 0, sizeof page.next);
	p->count = page.count;
	p->horizon = page.horizon;
	p->result = RESULT_OK;
out:
	db_pool_put(q->api->pool, c);
	if (admitted)
		admission_leave(q->api->admission);
	changes_page_free(&page);
	free(tok);
	return p;
}

/* *dst = a copy of src (dst's own strings freed first). */
static void api_cursor_copy(struct cursor *dst, const struct cursor *src)
{
	cursor_free(dst);
	*dst = *src;
	dst->s1 = src->s1 ? strdup(src->s1) : NULL;
	dst->s2 = src->s2 ? strdup(src->s2) : NULL;
	if ((src->s1 && !dst->s1) || (src->s2 && !dst->s2))
		abort();
}

/* Everything that determines a page (the cursor in its canonical form, the table set, the
 * limit, the two-way peer asking): requests with equal keys get byte-identical pages, so
 * they share one query. What a key may read does not depend on the API key (every key sees
 * every tracked table), so the API key is not part of it. cursor_token: cursor_encode() of
 * the cursor. Caller frees. */
static char *api_page_key(const char *cursor_token, const char *tables, const char *peer,
                          long limit)
{
	struct buf b = {0};

	buf_printf(&b, "%s|%ld|%s|%s%s", cursor_token, limit, peer ? peer : "",
	           tables ? "=" : "*", tables ? tables : "");
	return buf_steal(&b);
}

/* Answers a page that did not come: 410 (expired), or 503 with Retry-After (busy, the
 * database unavailable or failing). */
static void api_page_error(struct http_req *req, const struct api_page *p)
{
	if (p->gone) {
		api_error(req, 410, p->err);
	} else {
		http_add_header(req, "Retry-After", "1");
		api_error(req, result_http_status(p->result), p->err);
	}
}

static void api_changes(struct api *api, struct http_req *req)
{
	struct cursor cur = {0};
	struct flight_call *call = NULL;
	const struct api_page *page = NULL;
	PGconn *c = NULL;
	char key[AUTH_KEY_MAX], err[256];
	const char *token = http_query(req, "cursor"), *tables_csv = http_query(req, "tables");
	const char *peer = http_query(req, "peer");
	char *tables = NULL, *fkey = NULL;
	long limit, wait;
	int64_t deadline;
	int bad, led, took[QUOTA_KINDS] = { 0 };
	/* a shared page query must have started after this request arrived (flight.h) */
	uint64_t arrived = flight_mark(api->flight);

	c = api_conn(api, req);
	if (!c || !api_auth(api, req, c, key) || api_quota(api, req, key, QUOTA_REQUEST) < 0)
		goto out;
	took[QUOTA_REQUEST] = 1;
	if (api_int_param(req, "limit", 1, CHANGES_LIMIT_MAX, API_LIMIT_DEFAULT, &limit) < 0 ||
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
	/* the page query takes a connection of its own when it runs (a request sharing
	 * another's query needs none) */
	db_pool_put(api->pool, c);
	c = NULL;
	deadline = clock_ms() + wait * 1000;
	for (;;) {
		uint64_t gen = watch_generation(api->watch);
		struct api_page_req q = { api, &cur, tables, peer, (int)limit, gen };
		int64_t left = deadline - clock_ms();
		char *tok = cursor_encode(&cur);
		int known;

		free(fkey);
		fkey = api_page_key(tok, tables, peer, limit);
		/* a long-poll back at a head nothing moved since: straight to waiting (heads.h) */
		known = left > 0 && !cur.open && !*api->stopping && !http_client_gone(req) &&
		        heads_current(api->heads, tok, gen);
		free(tok);
		if (known) {
			metrics_page_skipped();
		} else {
			call = flight_do(api->flight, fkey, gen, arrived, api_page_run, &q, &led);
			page = flight_value(call);
			if (!led)
				metrics_page_shared();
			if (page->result != RESULT_OK) {
				api_page_error(req, page);
				goto out;
			}
			left = deadline - clock_ms();
			if (page->count > 0 || left <= 0 || *api->stopping || http_client_gone(req))
				break;
			/* the generation the page was read at: a change visible since bumps it */
			gen = flight_generation(call);
			/* An empty page from a closed cursor, with no change id taken since it:
			 * the cursor and the page's give the same pages (nothing of ours became
			 * visible in between, no id to skip), so the request waits on with its
			 * own. Requests at one position then keep one key, and a wake costs them
			 * one shared query. */
			if (cur.open || page->next.open || page->next.l2 != cur.l2)
				api_cursor_copy(&cur, &page->next);
			flight_release(api->flight, call);
			call = NULL;
			page = NULL;
			if (cur.open)
				continue;     /* an empty window inside a batch: read on at once */
		}
		/* Nothing new: continue from the page's cursor after the head moves, holding no
		 * database connection while waiting. */
		if (!took[QUOTA_WAIT]) {
			if (api_quota(api, req, key, QUOTA_WAIT) < 0)
				goto out;
			took[QUOTA_WAIT] = 1;
		}
		metrics_longpoll(1);
		/* the page is asked again only when new changes became visible (the watch's
		 * generation moved) or at the deadline: an idle long-poll costs its database one
		 * query per round, not one a second; the 1 s slices notice a client gone */
		while (watch_generation(api->watch) == gen && (left = deadline - clock_ms()) > 0 &&
		       !*api->stopping && !http_client_gone(req))
			watch_wait(api->watch, gen, left > 1000 ? 1000 : (int)left);
		metrics_longpoll(-1);
	}
	auth_note_cursor(api->auth, api->pool, key, page->horizon);
	metrics_served(page->count);
	api_json_buf(req, 200, &page->body);
out:
	for (int k = 0; k < QUOTA_KINDS; k++)
		if (took[k])
			quota_give(api->quota, key, (enum quota_kind)k);
	db_pool_put(api->pool, c);
	flight_release(api->flight, call);
	cursor_free(&cur);
	free(tables);
	free(fkey);
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
	db_pool_put(api->pool, c);     /* auth_note_cursor takes one only when it writes */
	c = NULL;
	auth_note_cursor(api->auth, api->pool, key, cursor_snapshot_xmin(cur.s2));
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
	const char *table, *after, *filter, *pk, *format, *columns, *peer;
	long limit;
	enum result status;
	int copy, took = 0;

	c = api_conn(api, req);
	if (!c || !api_auth(api, req, c, key) || api_quota(api, req, key, QUOTA_REQUEST) < 0)
		goto out;
	took = 1;
	if (api_str_param(req, "table", &table) < 0 || api_str_param(req, "after", &after) < 0 ||
	    api_str_param(req, "filter", &filter) < 0 || api_str_param(req, "pk", &pk) < 0 ||
	    api_str_param(req, "format", &format) < 0 || api_str_param(req, "columns", &columns) < 0 ||
	    api_str_param(req, "peer", &peer) < 0)
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
	if (peer && (one || copy || !api_is_uuid(peer))) {
		api_error(req, 400, one || copy ? "peer: only with pages of format=json"
		          : "peer must be a site identity (a UUID, as `tdgl-replica status` shows)");
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
		status = (peer ? rows_page_versions : rows_page)(c, table, after && *after ? after : NULL,
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
