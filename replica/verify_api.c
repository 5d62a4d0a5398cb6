/* verify_api: see verify_api.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/db.h"
#include "common/json.h"
#include "replica/source.h"
#include "replica/verify.h"
#include "replica/verify_api.h"

#define VERIFY_API_PULL_WAIT_MS 30000

/* In-flight rows are read again after a pull run by the source's worker. */
static int verify_api_catch_up(void *ctx, PGconn *c, const char *source)
{
	cJSON *result = NULL;
	enum result rc = sched_trigger(ctx, source, "API", VERIFY_API_PULL_WAIT_MS, &result);

	(void)c;
	cJSON_Delete(result);
	return rc == RESULT_OK ? 0 : -1;
}

/* The request body into opts (tables point into j). 0, or -1 with err. */
static int verify_api_body(const cJSON *j, struct verify_opts *o, const char **tables,
                           char *err, size_t errlen)
{
	const cJSON *ts, *rep, *x;

	if (!cJSON_IsObject(j)) {
		snprintf(err, errlen, "expected a JSON object");
		return -1;
	}
	for (x = j->child; x; x = x->next)
		if (strcmp(x->string, "tables") && strcmp(x->string, "repair")) {
			snprintf(err, errlen, "unknown field \"%.100s\"", x->string);
			return -1;
		}
	rep = cJSON_GetObjectItemCaseSensitive(j, "repair");
	if (rep && !cJSON_IsBool(rep)) {
		snprintf(err, errlen, "repair: expected true or false");
		return -1;
	}
	o->repair = cJSON_IsTrue(rep);
	ts = cJSON_GetObjectItemCaseSensitive(j, "tables");
	if (!ts)
		return 0;
	if (!cJSON_IsArray(ts) || cJSON_GetArraySize(ts) > SOURCE_MAX_TABLES) {
		snprintf(err, errlen, "tables: expected an array of at most %d names",
		         SOURCE_MAX_TABLES);
		return -1;
	}
	cJSON_ArrayForEach(x, ts) {
		if (!cJSON_IsString(x) || !*x->valuestring) {
			snprintf(err, errlen, "tables: expected an array of names");
			return -1;
		}
		tables[o->ntables++] = x->valuestring;
	}
	return 0;
}

static void verify_api_post(struct api *a, struct http_req *req, const char *name)
{
	size_t len = 0;
	const char *body = http_body(req, &len), *tables[SOURCE_MAX_TABLES];
	struct verify_opts o = { .tables = tables, .key_material = a->key_material,
	                         .catch_up = verify_api_catch_up, .catch_up_ctx = a->sched };
	char err[512];
	cJSON *j = NULL, *report = NULL;
	PGconn *c = NULL;
	enum result st;

	if (body && len > 0) {
		j = json_parse_strict(body, len, err, sizeof err);
		if (!j) {
			http_reply_error(req, 400, "bad JSON: %s", err);
			goto out;
		}
		if (verify_api_body(j, &o, tables, err, sizeof err) < 0) {
			http_reply_error(req, 400, "%s", err);
			goto out;
		}
	}
	if (!(c = api_db(a, req)))
		goto out;
	st = verify_run(c, name, &o, &report, err, sizeof err);
	if (st == RESULT_OK) {
		http_reply_json(req, 200, report);
		report = NULL;
	} else {
		http_reply_error(req, result_http_status(st), "%s", err);
	}
out:
	if (c)
		db_pool_put(a->pool, c);
	cJSON_Delete(report);
	cJSON_Delete(j);
}

static void verify_api_last(struct api *a, struct http_req *req)
{
	const char *source = http_query(req, "source");
	PGconn *c = api_db(a, req);
	cJSON *list;

	if (!c)
		return;
	list = verify_last(c, source);
	db_pool_put(a->pool, c);
	if (list)
		http_reply_json(req, 200, list);
	else
		http_reply_error(req, 500, "database error");
}

int verify_api_handle(struct api *a, struct http_req *req)
{
	const char *path = http_path(req), *m = http_method(req);
	char name[256];

	if (!strcmp(path, "/api/verifications")) {
		if (strcmp(m, "GET"))
			http_reply_error(req, 405, "method not allowed");
		else
			verify_api_last(a, req);
		return 1;
	}
	if (!http_path_param(path, "/api/sources/", "/verify", name, sizeof name))
		return 0;
	if (strcmp(m, "POST"))
		http_reply_error(req, 405, "method not allowed");
	else
		verify_api_post(a, req, name);
	return 1;
}
