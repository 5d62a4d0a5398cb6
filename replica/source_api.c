/* source_api: see source_api.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "replica/dryrun.h"
#include "replica/source_api.h"
#include "replica/settings.h"
#include "replica/source.h"

#define SOURCE_API_PULL_WAIT_MS 120000

static void source_api_get(struct api *a, struct http_req *req, const char *name)
{
	PGconn *c = api_db(a, req);
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

static void source_api_patch(struct api *a, struct http_req *req, const char *name)
{
	size_t len = 0;
	const char *body = http_body(req, &len);
	char err[512];
	cJSON *patch = json_parse_strict(body ? body : "", len, err, sizeof err), *out = NULL;
	PGconn *c = NULL;
	enum result st;

	if (!patch) {
		http_reply_error(req, 400, "bad JSON: %s", err);
		goto out;
	}
	if (!(c = api_db(a, req)))
		goto out;
	st = settings_apply(c, name, patch, &out, err, sizeof err);
	db_pool_put(a->pool, c);
	c = NULL;
	if (st != RESULT_OK) {
		http_reply_error(req, result_http_status(st), "%s", err);
		goto out;
	}
	sched_reload(a->sched);   /* the running worker takes the new schedule now */
	http_reply_json(req, 200, out);
out:
	cJSON_Delete(patch);
	if (c)
		db_pool_put(a->pool, c);
}

static void source_api_dry_run(struct api *a, struct http_req *req, const char *name)
{
	cJSON *report = NULL;
	char err[512];
	PGconn *c = api_db(a, req);
	enum result st;

	if (!c)
		return;
	st = dryrun_run(c, name, "API", a->key_material, &report, err, sizeof err);
	db_pool_put(a->pool, c);
	if (st == RESULT_OK)
		http_reply_json(req, 200, report);
	else
		http_reply_error(req, result_http_status(st), "%s",
		                 st == RESULT_NOT_FOUND ? "unknown source" : err);
}

static void source_api_list(struct api *a, struct http_req *req)
{
	PGconn *c = api_db(a, req);
	cJSON *list;

	if (!c)
		return;
	list = source_list_json(c);
	db_pool_put(a->pool, c);
	if (!list)
		http_reply_error(req, 500, "listing sources failed");
	else
		http_reply_json(req, 200, list);
}

static void source_api_add(struct api *a, struct http_req *req)
{
	size_t len = 0;
	const char *body = http_body(req, &len);
	char err[512];
	cJSON *j = json_parse_strict(body ? body : "", len, err, sizeof err), *out;
	struct source_spec spec;
	PGconn *c = NULL;
	enum result r;

	if (!j) {
		http_reply_error(req, 400, "bad JSON: %s", err);
		goto out;
	}
	if (source_spec_from_json(j, &spec, err, sizeof err) < 0) {
		http_reply_error(req, 400, "%s", err);
		goto out;
	}
	if (!(c = api_db(a, req)))
		goto out;
	if ((r = source_add(c, &spec, a->key_material, err, sizeof err)) != RESULT_OK) {
		http_reply_error(req, result_http_status(r), "%s", err);
		goto out;
	}
	db_pool_put(a->pool, c);
	c = NULL;
	sched_reload(a->sched);   /* starts its worker: the initial sync begins now */
	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "name", spec.name);
	cJSON_AddStringToObject(out, "status", "added");
	http_reply_json(req, 201, out);
out:
	cJSON_Delete(j);
	if (c)
		db_pool_put(a->pool, c);
}

static void source_api_remove(struct api *a, struct http_req *req, const char *name)
{
	PGconn *c = api_db(a, req);
	int r;

	if (!c)
		return;
	r = source_remove(c, name);
	db_pool_put(a->pool, c);
	if (r < 0)
		http_reply_error(req, 500, "removing the source failed");
	else if (r == 0)
		http_reply_error(req, 404, "unknown source");
	else {
		cJSON *o = cJSON_CreateObject();
		sched_reload(a->sched);
		cJSON_AddStringToObject(o, "status", "removed");
		http_reply_json(req, 200, o);
	}
}

static void source_api_pull(struct api *a, struct http_req *req, const char *name)
{
	const char *wait = http_query(req, "wait");
	int sync = wait && !strcmp(wait, "1");
	cJSON *result = NULL, *o;
	enum result rc;

	rc = sched_trigger(a->sched, name, "API", sync ? SOURCE_API_PULL_WAIT_MS : 0, &result);
	if (rc == RESULT_NOT_FOUND) {
		http_reply_error(req, 404, "unknown or disabled source");
		return;
	}
	if (rc == RESULT_BUSY) {   /* still running: a gateway timeout, not "try again" */
		http_reply_error(req, 504, "pull did not finish in time");
		return;
	}
	if (sync && result) {
		http_reply_json(req, 200, result);
		return;
	}
	cJSON_Delete(result);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "queued");
	http_reply_json(req, 202, o);
}

int source_api_handle(struct api *a, struct http_req *req)
{
	const char *m = http_method(req), *path = http_path(req), *dry;
	char x[256];
	int get = !strcmp(m, "GET"), post = !strcmp(m, "POST");

	if (!strcmp(path, "/api/sources")) {
		if (get)
			source_api_list(a, req);
		else if (post)
			source_api_add(a, req);
		else
			return 0;   /* api.c answers 405 */
		return 1;
	}
	if (http_path_param(path, "/api/sources/", "/pull", x, sizeof x)) {
		if (!post)
			return 0;
		dry = http_query(req, "dry_run");
		if (!dry || !strcmp(dry, "0") || !strcasecmp(dry, "false"))
			source_api_pull(a, req, x);
		else if (!strcmp(dry, "1") || !strcasecmp(dry, "true"))
			source_api_dry_run(a, req, x);
		else
			http_reply_error(req, 400, "dry_run must be 1 or 0");
		return 1;
	}
	if (http_path_param(path, "/api/sources/", "", x, sizeof x)) {
		if (get)
			source_api_get(a, req, x);
		else if (!strcmp(m, "PATCH"))
			source_api_patch(a, req, x);
		else if (!strcmp(m, "DELETE"))
			source_api_remove(a, req, x);
		else
			return 0;
		return 1;
	}
	return 0;
}
