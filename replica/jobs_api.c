/* jobs_api: see jobs_api.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "replica/dryrun.h"
#include "replica/events.h"
#include "replica/jobs_api.h"
#include "replica/retry.h"
#include "replica/settings.h"

#define JOBS_API_DB_WAIT_MS 5000

static PGconn *jobs_api_db(struct api *a, struct http_req *req)
{
	PGconn *c = db_pool_get(a->pool, JOBS_API_DB_WAIT_MS);

	if (!c)
		http_reply_error(req, 503, "database unavailable");
	return c;
}

static void jobs_api_retry(struct api *a, struct http_req *req, const char *idtext)
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
	if (!(c = jobs_api_db(a, req)))
		return;
	r = retry_entry(c, id, &out, err, sizeof err);
	db_pool_put(a->pool, c);
	if (r == RESULT_OK)
		http_reply_json(req, 200, out);
	else
		http_reply_error(req, result_http_status(r), "%s", err);
}

static void jobs_api_source_get(struct api *a, struct http_req *req, const char *name)
{
	PGconn *c = jobs_api_db(a, req);
	cJSON *o;

	if (!c)
		return;
	o = settings_get(c, name);
	db_pool_put(a->pool, c);
	if (o)
		http_reply_json(req, 200, o);
	else
		http_reply_error(req, 404, "unknown source");
}

static void jobs_api_source_patch(struct api *a, struct http_req *req, const char *name)
{
	size_t len = 0;
	const char *body = http_body(req, &len);
	char err[512];
	cJSON *patch = json_parse_strict(body ? body : "", len, err, sizeof err), *out = NULL;
	PGconn *c = NULL;
	unsigned st;

	if (!patch) {
		http_reply_error(req, 400, "bad JSON: %s", err);
		goto out;
	}
	if (!(c = jobs_api_db(a, req)))
		goto out;
	st = settings_apply(c, name, patch, &out, err, sizeof err);
	db_pool_put(a->pool, c);
	c = NULL;
	if (st != 200) {
		http_reply_error(req, st, "%s", err);
		goto out;
	}
	sched_reload(a->sched);   /* the running worker takes the new schedule now */
	http_reply_json(req, 200, out);
out:
	cJSON_Delete(patch);
	if (c)
		db_pool_put(a->pool, c);
}

static void jobs_api_dry_run(struct api *a, struct http_req *req, const char *name)
{
	cJSON *report = NULL;
	char err[512];
	PGconn *c = jobs_api_db(a, req);
	unsigned st;

	if (!c)
		return;
	st = dryrun_run(c, name, "API", a->key_material, &report, err, sizeof err);
	db_pool_put(a->pool, c);
	if (st == 200)
		http_reply_json(req, 200, report);
	else
		http_reply_error(req, st, "%s", st == 404 ? "unknown source" : err);
}

int jobs_api_handle(struct api *a, struct http_req *req)
{
	const char *m = http_method(req), *path = http_path(req), *dry;
	char x[256];

	if (!strcmp(path, "/api/events")) {
		if (strcmp(m, "GET"))
			http_reply_error(req, 405, "method not allowed");
		else
			events_serve(req);
		return 1;
	}
	if (http_path_param(path, "/api/log/", "/retry", x, sizeof x)) {
		if (strcmp(m, "POST"))
			http_reply_error(req, 405, "method not allowed");
		else
			jobs_api_retry(a, req, x);
		return 1;
	}
	if (http_path_param(path, "/api/sources/", "/pull", x, sizeof x) && !strcmp(m, "POST") &&
	    (dry = http_query(req, "dry_run"))) {
		if (!strcmp(dry, "1") || !strcasecmp(dry, "true"))
			jobs_api_dry_run(a, req, x);
		else if (!strcmp(dry, "0") || !strcasecmp(dry, "false"))
			return 0;   /* an ordinary pull */
		else
			http_reply_error(req, 400, "dry_run must be 1 or 0");
		return 1;
	}
	if (http_path_param(path, "/api/sources/", "", x, sizeof x)) {
		if (!strcmp(m, "GET"))
			jobs_api_source_get(a, req, x);
		else if (!strcmp(m, "PATCH"))
			jobs_api_source_patch(a, req, x);
		else
			return 0;   /* DELETE and the rest: api.c */
		return 1;
	}
	return 0;
}
