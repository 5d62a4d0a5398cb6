/* api: routes of the replica's admin API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "common/version.h"
#include "common/console.h"
#include "replica/api.h"
#include "replica/browse.h"
#include "replica/conflict.h"
#include "replica/events.h"
#include "replica/source_api.h"
#include "replica/report.h"
#include "replica/retry.h"
#include "replica/source.h"
#include "replica/source_api.h"
#include "replica/verify_api.h"
#include "replica/metrics.h"

#define API_DB_WAIT_MS 5000

enum report_kind { REPORT_LOG, REPORT_RUNS };


static int api_authorized(const struct api *a, const struct http_req *req)
{
	const char *h = http_header(req, "Authorization");
	char want[512];

	if (!a->admin_token || !*a->admin_token || !h)
		return 0;
	snprintf(want, sizeof want, "Bearer %s", a->admin_token);
	return crypto_str_equal(want, h);
}

static int api_limit(const struct http_req *req, long dflt)
{
	const char *s = http_query(req, "limit");
	long v = dflt;

	if (s) {
		char *end;
		v = strtol(s, &end, 10);
		if (*end || v < 1 || v > 10000)
			return -1;
	}
	return (int)v;
}

PGconn *api_db(struct api *a, struct http_req *req)
{
	PGconn *c = db_pool_get(a->pool, API_DB_WAIT_MS);

	if (!c)
		http_reply_error(req, 503, "database unavailable");
	return c;
}

/* Replies with JSON text built by the database; on failure 500/503. */
static void api_reply_text(struct http_req *req, const char *text)
{
	http_reply_data(req, 200, "application/json", text, strlen(text));
}

/* Replies with a report (report.h) read on a pooled connection: its JSON text, or 500. */
static void api_report(struct api *a, struct http_req *req, const char *what,
                       enum report_kind kind, const char *const *params)
{
	PGconn *c = api_db(a, req);
	PGresult *res = NULL;

	if (!c)
		goto out;
	res = kind == REPORT_LOG ? report_log_json(c, params[0], params[1], params[2], params[3])
	                         : report_runs_json(c, params[0], params[1]);
	if (!res)
		http_reply_error(req, 500, "%s failed", what);
	else
		api_reply_text(req, PQgetvalue(res, 0, 0));
out:
	PQclear(res);
	if (c)
		db_pool_put(a->pool, c);
}

static void api_status(struct api *a, struct http_req *req)
{
	PGconn *c = api_db(a, req);
	PGresult *res = NULL;
	cJSON *o = NULL, *src;

	if (!c)
		goto out;
	res = report_counts_json(c);
	src = source_list_json(c);
	if (!res || !src) {
		cJSON_Delete(src);
		http_reply_error(req, 500, "status failed");
		goto out;
	}
	o = cJSON_Parse(PQgetvalue(res, 0, 0));
	if (!o)
		o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "version", TDGL_VERSION);
	{
		char site[40];

		report_site(c, site, sizeof site);
		cJSON_AddStringToObject(o, "site", site);
	}
	cJSON_AddItemToObject(o, "sources", src);
	cJSON_AddItemToObject(o, "workers", sched_status(a->sched));
	http_reply_json(req, 200, o);
out:
	PQclear(res);
	if (c)
		db_pool_put(a->pool, c);
}

static void api_conflicts(struct api *a, struct http_req *req)
{
	const char *status = http_query(req, "status");
	int limit = api_limit(req, 1000);
	PGconn *c;
	cJSON *list;

	if (status && strcasecmp(status, "open") && strcasecmp(status, "resolved")) {
		http_reply_error(req, 400, "status must be open or resolved");
		return;
	}
	if (limit < 0) {
		http_reply_error(req, 400, "bad limit");
		return;
	}
	if (!(c = api_db(a, req)))
		return;
	list = conflict_list(c, status, limit);
	db_pool_put(a->pool, c);
	if (!list)
		http_reply_error(req, 500, "listing conflicts failed");
	else
		http_reply_json(req, 200, list);
}

static void api_resolve(struct api *a, struct http_req *req, const char *idtext)
{
	size_t len = 0;
	const char *body = http_body(req, &len);
	char err[512], *end;
	cJSON *j = NULL, *out = NULL;
	const char *res;
	long id = strtol(idtext, &end, 10);
	PGconn *c = NULL;
	enum result r;

	if (*end || end == idtext || id <= 0) {
		http_reply_error(req, 400, "bad conflict id");
		goto out;
	}
	j = json_parse_strict(body ? body : "", len, err, sizeof err);
	if (!j) {
		http_reply_error(req, 400, "bad JSON: %s", err);
		goto out;
	}
	res = json_get_string(j, "resolution");
	if (!conflict_resolution(res)) {
		http_reply_error(req, 400, "resolution must be \"Accept Primary\" or \"Keep Local\"");
		goto out;
	}
	if (!(c = api_db(a, req)))
		goto out;
	r = conflict_resolve(c, id, res, &out, err, sizeof err);
	if (r == RESULT_OK) {
		log_info("conflict %ld resolved: %s", id, conflict_resolution(res));
		events_publish("conflict.resolved", cJSON_Duplicate(out, 1));
		http_reply_json(req, 200, out);
		out = NULL;
	} else {
		http_reply_error(req, result_http_status(r), "%s", err);
	}
out:
	cJSON_Delete(j);
	cJSON_Delete(out);
	if (c)
		db_pool_put(a->pool, c);
}

static void api_retry(struct api *a, struct http_req *req, const char *idtext)
{
	char err[512], *end;
	long id = strtol(idtext, &end, 10);
	cJSON *out = NULL;
	PGconn *c;
	enum result r;

	if (*end || end == idtext || id <= 0) {
		http_reply_error(req, 400, "bad log entry id");
		return;
	}
	if (!(c = api_db(a, req)))
		return;
	r = retry_entry(c, id, &out, err, sizeof err);
	db_pool_put(a->pool, c);
	if (r == RESULT_OK)
		http_reply_json(req, 200, out);
	else
		http_reply_error(req, result_http_status(r), "%s", err);
}


static void api_log(struct api *a, struct http_req *req)
{
	const char *status = http_query(req, "status"), *source = http_query(req, "source");
	const char *run = http_query(req, "run_id");
	int limit = api_limit(req, 1000);
	char lim[32];
	const char *p[4] = { status, source, run, lim };

	if (status && strcasecmp(status, "Synced") && strcasecmp(status, "Failed") &&
	    strcasecmp(status, "Skipped")) {
		http_reply_error(req, 400, "status must be Synced, Failed or Skipped");
		return;
	}
	if (run && (strspn(run, "0123456789") != strlen(run) || !*run || strlen(run) > 18)) {
		http_reply_error(req, 400, "bad run_id");
		return;
	}
	if (limit < 0) {
		http_reply_error(req, 400, "bad limit");
		return;
	}
	snprintf(lim, sizeof lim, "%d", limit);
	api_report(a, req, "sync log", REPORT_LOG, p);
}

static void api_runs(struct api *a, struct http_req *req)
{
	int limit = api_limit(req, 100);
	char lim[32];
	const char *p[2] = { http_query(req, "source"), lim };

	if (limit < 0) {
		http_reply_error(req, 400, "bad limit");
		return;
	}
	snprintf(lim, sizeof lim, "%d", limit);
	api_report(a, req, "runs", REPORT_RUNS, p);
}

static void api_metrics(struct api *a, struct http_req *req)
{
	struct buf b = { 0 };
	PGconn *c = db_pool_get(a->pool, API_DB_WAIT_MS);

	metrics_render(&b);
	metrics_render_db(c, &b);   /* without a connection: tdgl_replica_database_up 0 */
	if (c)
		db_pool_put(a->pool, c);
	http_reply_data(req, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
	buf_free(&b);
}

static void api_notify(struct api *a, struct http_req *req)
{
	size_t len = 0;
	const char *body = http_body(req, &len);
	char err[256];
	enum result st = sched_notify(a->sched, http_header(req, "X-TDGL-Timestamp"),
	                              http_header(req, "X-TDGL-Signature"), body, len, err,
	                              sizeof err);

	if (st == RESULT_OK) {       /* the pulls are queued: accepted, not done */
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "status", "accepted");
		http_reply_json(req, 202, o);
	} else {
		http_reply_error(req, result_http_status(st), "%s", err);
	}
}

void api_handle(struct http_req *req, void *ctx)
{
	struct api *a = ctx;
	const char *m = http_method(req), *path = http_path(req);
	int get = !strcmp(m, "GET"), post = !strcmp(m, "POST");
	char name[256];

	metrics_add(M_HTTP_REQUESTS, 1);
	if (!strcmp(path, "/health")) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "status", "ok");
		http_reply_json(req, 200, o);
		return;
	}
	if (!strcmp(path, "/api/notify")) {
		if (!post)
			http_reply_error(req, 405, "method not allowed");
		else
			api_notify(a, req);
		return;
	}
	if (console_handle(req, CONSOLE_REPLICA))   /* the web console's files (console.h) */
		return;
	if (!api_authorized(a, req)) {
		http_reply_error(req, 401, "unauthorized");
		return;
	}
	if (source_api_handle(a, req))   /* /api/sources... (source_api.h) */
		return;
	if (verify_api_handle(a, req))   /* verify and repair (verify_api.h) */
		return;
	if (browse_handle(a, req))     /* overview, log pages, local edits, one conflict */
		return;
	if (!strcmp(path, "/api/status") && get)
		api_status(a, req);
	else if (!strcmp(path, "/api/events"))
		get ? events_serve(req) : http_reply_error(req, 405, "method not allowed");
	else if (!strcmp(path, "/api/conflicts") && get)
		api_conflicts(a, req);
	else if (http_path_param(path, "/api/conflicts/", "/resolve", name, sizeof name) && post)
		api_resolve(a, req, name);
	else if (!strcmp(path, "/api/log") && get)
		api_log(a, req);
	else if (http_path_param(path, "/api/log/", "/retry", name, sizeof name))
		post ? api_retry(a, req, name) : http_reply_error(req, 405, "method not allowed");
	else if (!strcmp(path, "/api/runs") && get)
		api_runs(a, req);
	else if (!strcmp(path, "/metrics") && get)
		api_metrics(a, req);
	else if (!strncmp(path, "/api/", 5) || !strcmp(path, "/metrics"))
		http_reply_error(req, get || post ? 404 : 405, "%s", get || post ? "not found" :
		                 "method not allowed");
	else
		http_reply_error(req, 404, "not found");
}
