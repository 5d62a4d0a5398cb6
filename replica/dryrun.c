/* dryrun: see dryrun.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/db.h"
#include "common/httpc.h"
#include "common/json.h"
#include "common/log.h"
#include "replica/dryrun.h"
#include "replica/upstream.h"
#include "replica/run.h"
#include "replica/source.h"

static const char Q_DRY_CHANGES[] =
	"SELECT tdgl_replica.dry_run_page($1, $2::json -> 'changes', $3::bigint)::text";
static const char Q_DRY_ROWS[] =
	"SELECT tdgl_replica.dry_run_page($1, $2::json -> 'rows', $3::bigint, $4)::text, "
	"($2::json -> 'next')::text, json_array_length($2::json -> 'rows')";

struct dryrun {
	PGconn *c;
	struct source s;
	struct upstream f;
	long run_id, fetched;
	cJSON *rows, *summary;
	int truncated;
	char error[512];
};

/* Adds the described changes (JSON text of an array) to the report. */
static void dryrun_collect(struct dryrun *d, const char *text)
{
	cJSON *arr = cJSON_Parse(text), *x;

	cJSON_ArrayForEach(x, arr) {
		const char *act = json_get_string(x, "action");
		cJSON *n;

		d->fetched++;
		if (act) {
			n = cJSON_GetObjectItemCaseSensitive(d->summary, act);
			if (n)
				cJSON_SetNumberValue(n, n->valuedouble + 1);
			else
				cJSON_AddNumberToObject(d->summary, act, 1);
		}
		if (cJSON_GetArraySize(d->rows) < DRYRUN_ROWS_MAX)
			cJSON_AddItemToArray(d->rows, cJSON_Duplicate(x, 1));
		else
			d->truncated = 1;
	}
	cJSON_Delete(arr);
}

static int dryrun_answer(struct dryrun *d, const char *what, long st,
                         const struct httpc_resp *resp)
{
	if (st == 200)
		return 0;
	if (st < 0)
		snprintf(d->error, sizeof d->error, "%s", d->f.error);
	else if (st == 410)
		snprintf(d->error, sizeof d->error, "%s: cursor expired (a real pull re-syncs)", what);
	else
		snprintf(d->error, sizeof d->error, "%s: primary answered %ld", what, st);
	(void)resp;
	return -1;
}

/* The initial sync's rows, described as inserts (or skips); *cursor gets the start. */
static int dryrun_initial(struct dryrun *d, char **cursor)
{
	struct httpc_resp resp = { 0 };
	char jerr[128], rid[32];
	cJSON *j = NULL;
	int rc = -1;
	long st;

	snprintf(rid, sizeof rid, "%ld", d->run_id);
	st = upstream_snapshot(&d->f, &resp);
	if (dryrun_answer(d, "snapshot", st, &resp) < 0)
		goto out;
	j = json_parse_strict(resp.body, resp.len, jerr, sizeof jerr);
	if (!j || !json_get_string(j, "cursor")) {
		snprintf(d->error, sizeof d->error, "snapshot: bad answer from primary");
		goto out;
	}
	*cursor = strdup(json_get_string(j, "cursor"));
	for (int t = 0; t < d->s.ntables; t++) {
		char *after = NULL;
		int more = 1;

		while (more) {
			const char *p[4] = { d->s.name, NULL, rid, d->s.table[t] };
			PGresult *res;

			st = upstream_rows(&d->f, d->s.table[t], d->s.filter[t], after, 500, NULL, 120000,
			                   &resp);
			if (dryrun_answer(d, d->s.table[t], st, &resp) < 0 ||
			    !json_utf8_valid(resp.body ? resp.body : "", resp.len)) {
				if (!d->error[0])
					snprintf(d->error, sizeof d->error, "rows: bad answer from primary");
				free(after);
				goto out;
			}
			p[1] = resp.body;
			if (!(res = db_exec(d->c, "dry run rows", Q_DRY_ROWS, 4, p))) {
				snprintf(d->error, sizeof d->error, "dry run: %.480s", db_last_error());
				free(after);
				goto out;
			}
			dryrun_collect(d, PQgetvalue(res, 0, 0));
			free(after);
			after = NULL;
			more = !PQgetisnull(res, 0, 1) && strcmp(PQgetvalue(res, 0, 1), "null") &&
			       atol(PQgetvalue(res, 0, 2)) > 0;
			if (more)
				after = strdup(PQgetvalue(res, 0, 1));
			PQclear(res);
		}
		free(after);
	}
	rc = 0;
out:
	cJSON_Delete(j);
	httpc_resp_free(&resp);
	return rc;
}

/* Pages of changes from cursor until more=false. */
static int dryrun_changes(struct dryrun *d, const char *start)
{
	struct httpc_resp resp = { 0 };
	char *cursor = strdup(start), jerr[128], rid[32];
	cJSON *j = NULL;
	int rc = -1;

	snprintf(rid, sizeof rid, "%ld", d->run_id);
	for (;;) {
		const char *p[3] = { d->s.name, NULL, rid };
		const char *next;
		PGresult *res;
		long st;
		int n;

		st = upstream_changes(&d->f, cursor, d->s.tables, d->s.batch_size, 0, &resp);
		if (dryrun_answer(d, "changes", st, &resp) < 0)
			goto out;
		cJSON_Delete(j);
		j = json_parse_embedded(resp.body, resp.len, jerr, sizeof jerr);
		next = j ? json_get_string(j, "cursor") : NULL;
		if (!j || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "changes")) || !next) {
			snprintf(d->error, sizeof d->error, "changes: bad answer from primary");
			goto out;
		}
		n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "changes"));
		if (n > 0) {
			p[1] = resp.body;
			if (!(res = db_exec(d->c, "dry run page", Q_DRY_CHANGES, 3, p))) {
				snprintf(d->error, sizeof d->error, "dry run: %.480s", db_last_error());
				goto out;
			}
			dryrun_collect(d, PQgetvalue(res, 0, 0));
			PQclear(res);
		}
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "more")) ||
		    (n == 0 && !strcmp(next, cursor)))
			break;
		free(cursor);
		cursor = strdup(next);
	}
	rc = 0;
out:
	cJSON_Delete(j);
	httpc_resp_free(&resp);
	free(cursor);
	return rc;
}

enum result dryrun_run(PGconn *c, const char *name, const char *trigger,
                       const char *key_material, cJSON **report, char *err, size_t errlen)
{
	struct dryrun d = { .c = c };
	char *start = NULL;
	enum result st = RESULT_INTERNAL;
	int loaded = 0, in_tx = 0, ok = 0;
	cJSON *row = NULL;

	*report = NULL;
	switch (source_load(c, name, key_material, &d.s, err, errlen)) {
	case 0:
		loaded = 1;
		break;
	case 1:
		st = RESULT_NOT_FOUND;
		goto out;
	default:
		goto out;
	}
	if (!(d.run_id = run_start(c, name, trigger, RUN_DRY_RUN))) {
		snprintf(err, errlen, "database error");
		goto out;
	}
	d.rows = cJSON_CreateArray();
	d.summary = cJSON_CreateObject();
	upstream_open(&d.f, &d.s, NULL);
	if (upstream_health(&d.f) < 0) {
		snprintf(d.error, sizeof d.error, "%s", d.f.error);
		goto finish;
	}
	if (db_run(c, "dry run: begin", "BEGIN", 0, NULL) < 0) {
		snprintf(d.error, sizeof d.error, "database: %s", db_last_error());
		goto finish;
	}
	in_tx = 1;
	if (!d.s.cursor && dryrun_initial(&d, &start) < 0)
		goto finish;
	if (dryrun_changes(&d, d.s.cursor ? d.s.cursor : start) < 0)
		goto finish;
	ok = 1;
finish:
	if (in_tx)
		db_run(c, "dry run: roll back", "ROLLBACK", 0, NULL);   /* nothing is kept */
	run_add(c, d.run_id, d.fetched, 0, 0, 0, 0);
	row = run_finish(c, d.run_id, ok ? "Skipped" : "Failed", ok ? NULL : d.error);
	*report = cJSON_CreateObject();
	cJSON_AddStringToObject(*report, "source", name);
	cJSON_AddNumberToObject(*report, "run_id", (double)d.run_id);
	cJSON_AddBoolToObject(*report, "dry_run", 1);
	cJSON_AddStringToObject(*report, "status", ok ? "Skipped" : "Failed");
	cJSON_AddNumberToObject(*report, "fetched", (double)d.fetched);
	cJSON_AddNumberToObject(*report, "duration_ms",
	                        row ? (double)json_get_int(row, "duration_ms", 0) : 0);
	cJSON_AddItemToObject(*report, "summary", d.summary);
	cJSON_AddItemToObject(*report, "rows", d.rows);
	cJSON_AddBoolToObject(*report, "truncated", d.truncated);
	if (!ok)
		cJSON_AddStringToObject(*report, "error", d.error);
	d.summary = d.rows = NULL;
	st = RESULT_OK;
out:
	cJSON_Delete(row);
	cJSON_Delete(d.rows);
	cJSON_Delete(d.summary);
	upstream_close(&d.f);
	free(start);
	if (loaded)
		source_free(&d.s);
	return st;
}
