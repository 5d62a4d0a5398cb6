/* verify: see verify.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/db.h"
#include "common/httpc.h"
#include "common/json.h"
#include "common/log.h"
#include "replica/upstream.h"
#include "replica/run.h"
#include "replica/source.h"
#include "replica/verify.h"

#define VERIFY_BUCKET_ROWS 256    /* rows per bucket aimed at on the first level */
#define VERIFY_LEAF_ROWS 512      /* a differing bucket this small is listed row by row */
#define VERIFY_STEP_BITS 6        /* a larger one is split into 64 */
#define VERIFY_MAX_BITS 40
#define VERIFY_PREFIX_BATCH 5000  /* buckets per request (answer <= ~40 MB) */
#define VERIFY_PREFIX_BYTES 48000 /* and at most this much text (the primary takes 64 KiB) */
#define VERIFY_KEY_BATCH 200      /* keys per rows request */
#define VERIFY_KEY_BYTES 32768    /* and at most this much key text */
#define VERIFY_TIMEOUT_MS 600000

static const char Q_LOCAL_COLUMNS[] =
	"SELECT coalesce(json_agg(c), '[]')::text FROM unnest((tdgl_replica.verify_local_table($1, NULL)).cols) c";
static const char Q_SHARED[] =
	"SELECT ($1::json -> 'columns')::text, "
	"($1::json -> 'key')::jsonb = to_jsonb((tdgl_replica.verify_local_table($2, NULL)).pk)";
static const char Q_BITS[] = "SELECT tdgl_replica.verify_bits($1, $2::int)";
static const char Q_LOCAL_BUCKETS[] =
	"SELECT tdgl_replica.verify_local_buckets($1, ARRAY(SELECT json_array_elements_text($2::json)),"
	" $3::int, $4::bigint[], $5::int)::text";
static const char Q_DIFF_BUCKETS[] =
	"SELECT tdgl_replica.verify_diff_buckets($1::json -> 'buckets', $2::json)::text";
static const char Q_LOCAL_KEYS[] =
	"SELECT tdgl_replica.verify_local_keys($1, ARRAY(SELECT json_array_elements_text($2::json)),"
	" $3::int, $4::bigint[])::text";
static const char Q_DIFF_KEYS[] =
	"SELECT tdgl_replica.verify_diff_keys($1::json -> 'rows', $2::json)::text";
/* rows and cursor in one statement: one snapshot (apply commits both together) */
static const char Q_LOCAL_ROWS[] =
	"SELECT (SELECT cursor FROM tdgl_replica.sources WHERE name = $1), "
	"tdgl_replica.verify_local_rows($2, ARRAY(SELECT json_array_elements_text($3::json)), $4::json)::text";
static const char Q_CLASSIFY[] =
	"SELECT tdgl_replica.verify_classify($1, ARRAY(SELECT json_array_elements_text($2::json)), $3::json,"
	" $4::json -> 'rows')::text";
static const char Q_REPAIR[] = "SELECT tdgl_replica.verify_repair($1, $2::bigint, $3, $4::json)::text";
static const char Q_SAVE[] =
	"INSERT INTO tdgl_replica.verifications (source, tbl, status, missing, extra, different, kept_local,"
	" in_flight, repaired, repair_run, bytes, requests, report, error, started_at)"
	" VALUES ($1, $2, $3, $4::int, $5::int, $6::int, $7::int, $8::int, $9::int, $10::bigint,"
	" $11::bigint, $12::int, $13::json, $14, to_timestamp($15::float8))";
static const char Q_LAST[] =
	"SELECT coalesce(json_agg(json_build_object('id', v.id, 'source', v.source, 'table', v.tbl,"
	" 'status', v.status, 'missing', v.missing, 'extra', v.extra, 'different', v.different,"
	" 'kept_local', v.kept_local, 'in_flight', v.in_flight, 'repaired', v.repaired,"
	" 'repair_run', v.repair_run, 'bytes', v.bytes, 'requests', v.requests, 'error', v.error,"
	" 'started_at', v.started_at, 'finished_at', v.finished_at, 'report', v.report)"
	" ORDER BY v.source, v.tbl), '[]')::text"
	" FROM (SELECT DISTINCT ON (source, tbl) * FROM tdgl_replica.verifications"
	"       WHERE $1::text IS NULL OR source = $1 ORDER BY source, tbl, id DESC) v";
static const char Q_NOW[] = "SELECT extract(epoch FROM now())::text";

/* One table's verification. */
struct verify_table {
	struct verify_run *v;
	const char *tbl, *filter;   /* the source's, not owned */
	char *cols;                 /* JSON array of the shared columns */
	cJSON *candidates;          /* keys whose rows differ somewhere (array) */
	cJSON *lists[5];            /* keys per kind (VERIFY_KINDS order) */
	long counts[5];
	long requests, bytes;
	long repair_run, repaired, repair_failed;
	int repairing;
	char error[512];
};

struct verify_run {
	PGconn *c;
	struct source s;
	struct upstream f;
	const struct verify_opts *o;
};

static const char *const verify_kinds[5] = {
	"missing", "extra", "different", "kept_local", "in_flight"
};

/* How many bucket numbers of `bits` bits go into one request. */
static int verify_batch(int bits)
{
	int digits = 1;

	for (long long v = bits >= 63 ? 0 : (1LL << bits); v >= 10; v /= 10)
		digits++;
	return VERIFY_PREFIX_BYTES / (digits + 1) < VERIFY_PREFIX_BATCH ?
	       VERIFY_PREFIX_BYTES / (digits + 1) : VERIFY_PREFIX_BATCH;
}

/* GET path from the primary into resp; counts it. 0, or -1 with t->error. */
static int verify_get(struct verify_table *t, const char *path, struct httpc_resp *resp)
{
	long st = upstream_get(&t->v->f, path, VERIFY_TIMEOUT_MS, resp);
	const char *msg;
	cJSON *j;

	t->requests++;
	t->bytes += (long)strlen(path) + (st >= 0 && resp->body ? (long)resp->len : 0);
	if (st == 200)
		return 0;
	if (st < 0) {
		snprintf(t->error, sizeof t->error, "%s", t->v->f.error);
		return -1;
	}
	j = resp->body ? cJSON_Parse(resp->body) : NULL;
	msg = j ? json_get_string(j, "error") : NULL;
	if (st == 404 && !msg)
		msg = "the primary has no /api/hashes (upgrade tdgl-primary)";
	snprintf(t->error, sizeof t->error, "primary answered %ld: %.400s", st, msg ? msg : "");
	cJSON_Delete(j);
	return -1;
}

/* "/api/hashes?table=..&columns=..&filter=..&mode=<mode>" into path. */
static void verify_path(struct verify_table *t, struct buf *path, const char *mode,
                        const char *cols)
{
	char *et = httpc_escape(t->tbl), *ec = httpc_escape(cols);

	buf_reset(path);
	buf_printf(path, "/api/hashes?mode=%s&table=%s&columns=%s", mode, et, ec);
	if (t->filter) {
		char *ef = httpc_escape(t->filter);

		buf_printf(path, "&filter=%s", ef);
		free(ef);
	}
	free(et);
	free(ec);
}

/* Runs a query whose single text value the caller wants (malloc'd) or NULL (t->error). */
static char *verify_value(struct verify_table *t, const char *what, const char *sql, int n,
                          const char *const *params)
{
	PGresult *res = db_exec(t->v->c, what, sql, n, params);
	char *v = NULL;

	if (!res || PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		snprintf(t->error, sizeof t->error, "%s: %.400s", what,
		         res ? "no result" : db_last_error());
		goto out;
	}
	v = strdup(PQgetvalue(res, 0, 0));
out:
	PQclear(res);
	return v;
}

/* The local query of a level runs while the primary computes its answer: sends sql, GETs
 * path, then collects the local value (malloc'd) into *local. 0 or -1 (t->error). */
static int verify_both(struct verify_table *t, const char *what, const char *sql, int n,
                       const char *const *params, const char *path, struct httpc_resp *resp,
                       char **local)
{
	PGresult *res;
	int sent, got;

	*local = NULL;
	sent = db_send(t->v->c, what, sql, n, params, NULL, NULL) == 0;
	if (!sent)
		snprintf(t->error, sizeof t->error, "%s: %.400s", what, db_last_error());
	got = sent && verify_get(t, path, resp) == 0;
	if (sent) {
		res = db_wait(t->v->c, what);   /* always collected: the connection stays usable */
		if (res && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
			if (got)
				*local = strdup(PQgetvalue(res, 0, 0));
		} else if (got) {
			snprintf(t->error, sizeof t->error, "%s: %.400s", what, db_last_error());
		}
		PQclear(res);
	}
	return *local ? 0 : -1;
}

/* Appends the keys of a JSON array text to t->candidates. */
static void verify_add_candidates(struct verify_table *t, const char *text)
{
	cJSON *arr = cJSON_Parse(text), *k;

	while (arr && (k = cJSON_DetachItemFromArray(arr, 0)))
		cJSON_AddItemToArray(t->candidates, k);
	cJSON_Delete(arr);
}

/* Bucket numbers v[0..n) twice: as a SQL array literal "{a,b}" in arr (reset first) for the
 * local query, and appended to path as the primary's "a%2Cb" parameter value. */
static void verify_prefix_list(struct buf *arr, struct buf *path, const long *v, int n)
{
	buf_reset(arr);
	buf_puts(arr, "{");
	for (int j = 0; j < n; j++) {
		buf_printf(arr, "%s%ld", j ? "," : "", v[j]);
		buf_printf(path, "%s%ld", j ? "%2C" : "", v[j]);
	}
	buf_puts(arr, "}");
}

/* Lists the rows of buckets (at bits) and collects the keys that differ. 0 or -1. */
static int verify_leaves(struct verify_table *t, const long *b, int nb, int bits)
{
	struct httpc_resp resp = { 0 };
	struct buf path = { 0 }, arr = { 0 };
	char bits_s[16], *local = NULL, *diff = NULL;
	int rc = -1;

	snprintf(bits_s, sizeof bits_s, "%d", bits);
	for (int i = 0, batch = verify_batch(bits); i < nb; i += batch) {
		int m = nb - i < batch ? nb - i : batch;
		const char *lp[4] = { t->tbl, t->cols, bits_s, NULL };
		const char *dp[2] = { NULL, NULL };

		verify_path(t, &path, "keys", t->cols);
		buf_printf(&path, "&prefix_bits=%d&prefixes=", bits);
		verify_prefix_list(&arr, &path, b + i, m);
		lp[3] = arr.data;
		if (verify_both(t, "verify: local keys", Q_LOCAL_KEYS, 4, lp, path.data, &resp,
		                &local) < 0)
			goto out;
		dp[0] = resp.body;
		dp[1] = local;
		if (!(diff = verify_value(t, "verify: compare keys", Q_DIFF_KEYS, 2, dp)))
			goto out;
		verify_add_candidates(t, diff);
		free(local);
		free(diff);
		local = diff = NULL;
	}
	rc = 0;
out:
	free(local);
	free(diff);
	httpc_resp_free(&resp);
	buf_free(&path);
	buf_free(&arr);
	return rc;
}

/* Compares buckets level by level: at `bits`, within buckets `pre` at pbits (all when pbits
 * is 0). Differing buckets are listed (small) or split further. 0 or -1. */
static int verify_level(struct verify_table *t, int pbits, const long *pre, int npre, int bits)
{
	struct httpc_resp resp = { 0 };
	struct buf path = { 0 }, arr = { 0 };
	char pbits_s[16], bits_s[16], *local = NULL, *diff = NULL;
	long *leaf = NULL, *split = NULL;
	int nleaf = 0, nsplit = 0, cap = 0, rc = -1;
	cJSON *d = NULL, *x;

	snprintf(pbits_s, sizeof pbits_s, "%d", pbits);
	snprintf(bits_s, sizeof bits_s, "%d", bits);
	for (int i = 0, batch = verify_batch(pbits); i < (pbits ? npre : 1); i += batch) {
		int m = pbits ? (npre - i < batch ? npre - i : batch) : 0;
		const char *lp[5] = { t->tbl, t->cols, pbits_s, NULL, bits_s };
		const char *dp[2];

		verify_path(t, &path, "buckets", t->cols);
		buf_printf(&path, "&bits=%d&prefix_bits=%d", bits, pbits);
		if (pbits)
			buf_puts(&path, "&prefixes=");
		verify_prefix_list(&arr, &path, pre + i, m);
		lp[3] = arr.data;
		if (verify_both(t, "verify: local buckets", Q_LOCAL_BUCKETS, 5, lp, path.data, &resp,
		                &local) < 0)
			goto out;
		dp[0] = resp.body;
		dp[1] = local;
		if (!(diff = verify_value(t, "verify: compare buckets", Q_DIFF_BUCKETS, 2, dp)))
			goto out;
		cJSON_Delete(d);
		d = cJSON_Parse(diff);
		cJSON_ArrayForEach(x, d) {
			long b = (long)cJSON_GetArrayItem(x, 0)->valuedouble;
			long n = (long)cJSON_GetArrayItem(x, 1)->valuedouble;
			int small = n <= VERIFY_LEAF_ROWS || bits + VERIFY_STEP_BITS > VERIFY_MAX_BITS;

			if (nleaf + nsplit >= cap) {
				cap = cap ? cap * 2 : 64;
				leaf = realloc(leaf, (size_t)cap * sizeof *leaf);
				split = realloc(split, (size_t)cap * sizeof *split);
				if (!leaf || !split) {
					snprintf(t->error, sizeof t->error, "out of memory");
					goto out;
				}
			}
			if (small)
				leaf[nleaf++] = b;
			else
				split[nsplit++] = b;
		}
		free(local);
		free(diff);
		local = diff = NULL;
	}
	if (nleaf && verify_leaves(t, leaf, nleaf, bits) < 0)
		goto out;
	if (nsplit && verify_level(t, bits, split, nsplit, bits + VERIFY_STEP_BITS) < 0)
		goto out;
	rc = 0;
out:
	cJSON_Delete(d);
	free(leaf);
	free(split);
	free(local);
	free(diff);
	httpc_resp_free(&resp);
	buf_free(&path);
	buf_free(&arr);
	return rc;
}

/* Records one classified row; repairable ones go to *repair (array). */
static void verify_record(struct verify_table *t, cJSON *item, cJSON *repair)
{
	const char *kind = json_get_string(item, "kind");

	for (int k = 0; kind && k < 5; k++) {
		if (strcmp(kind, verify_kinds[k]))
			continue;
		t->counts[k]++;
		if (cJSON_GetArraySize(t->lists[k]) < VERIFY_LIST_MAX) {
			cJSON *e = k == 2 ? cJSON_CreateObject() : NULL;

			if (e) {
				cJSON_AddItemToObject(e, "key", cJSON_Duplicate(
					cJSON_GetObjectItemCaseSensitive(item, "key"), 1));
				cJSON_AddItemToObject(e, "columns", cJSON_Duplicate(
					cJSON_GetObjectItemCaseSensitive(item, "columns"), 1));
			} else {
				e = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(item, "key"), 1);
			}
			cJSON_AddItemToArray(t->lists[k], e);
		}
		if (repair && k < 3)
			cJSON_AddItemToArray(repair, cJSON_Duplicate(item, 1));
	}
}

/* Applies the repairable rows of one batch through the apply path. 0 or -1. */
static int verify_repair_batch(struct verify_table *t, cJSON *repair)
{
	char rid[32], *items = NULL, *out = NULL;
	const char *p[4];
	cJSON *j = NULL;
	int rc = -1;

	if (cJSON_GetArraySize(repair) == 0)
		return 0;
	if (!t->repair_run &&
	    !(t->repair_run = run_start(t->v->c, t->v->s.name, "Repair", 0))) {
		snprintf(t->error, sizeof t->error, "repair: cannot record a run: %.400s",
		         db_last_error());
		goto out;
	}
	snprintf(rid, sizeof rid, "%ld", t->repair_run);
	items = cJSON_PrintUnformatted(repair);
	p[0] = t->v->s.name;
	p[1] = rid;
	p[2] = t->tbl;
	p[3] = items;
	if (!(out = verify_value(t, "verify: repair", Q_REPAIR, 4, p)))
		goto out;
	j = cJSON_Parse(out);
	t->repaired += json_get_int(j, "synced", 0);
	t->repair_failed += json_get_int(j, "failed", 0);
	rc = 0;
out:
	cJSON_Delete(j);
	free(items);
	free(out);
	return rc;
}

/* Reads the candidate rows on both sites and sorts them; in-flight rows are read again
 * after a catch-up. 0 or -1. */
static int verify_settle(struct verify_table *t)
{
	struct httpc_resp resp = { 0 };
	struct buf path = { 0 };
	cJSON *pending = t->candidates, *next = NULL, *chunk = NULL, *items = NULL,
	      *repair = NULL, *x;
	char *keys = NULL, *local = NULL, *cls = NULL;
	PGresult *res = NULL;
	int rc = -1;

	t->candidates = cJSON_CreateArray();
	for (int round = 0; cJSON_GetArraySize(pending) > 0; round++) {
		int last = round + 1 >= VERIFY_SETTLE_ROUNDS;

		next = cJSON_CreateArray();
		while (cJSON_GetArraySize(pending) > 0) {
			size_t bytes = 0;
			const char *lp[4], *cp[4];

			chunk = cJSON_CreateArray();
			while (cJSON_GetArraySize(chunk) < VERIFY_KEY_BATCH && bytes < VERIFY_KEY_BYTES &&
			       (x = cJSON_DetachItemFromArray(pending, 0))) {
				char *kt = cJSON_PrintUnformatted(x);

				bytes += kt ? strlen(kt) : 0;
				free(kt);
				cJSON_AddItemToArray(chunk, x);
			}
			keys = cJSON_PrintUnformatted(chunk);
			lp[0] = t->v->s.name;
			lp[1] = t->tbl;
			lp[2] = t->cols;
			lp[3] = keys;
			if (!(res = db_exec(t->v->c, "verify: local rows", Q_LOCAL_ROWS, 4, lp)) ||
			    PQntuples(res) != 1) {
				snprintf(t->error, sizeof t->error, "verify: local rows: %.400s",
				         db_last_error());
				goto out;
			}
			local = strdup(PQgetvalue(res, 0, 1));
			verify_path(t, &path, "rows", t->cols);
			{
				char *ek = httpc_escape(keys);

				buf_printf(&path, "&keys=%s", ek);
				free(ek);
			}
			if (!PQgetisnull(res, 0, 0)) {
				char *ecur = httpc_escape(PQgetvalue(res, 0, 0));

				buf_printf(&path, "&cursor=%s", ecur);
				free(ecur);
			}
			PQclear(res);
			res = NULL;
			if (verify_get(t, path.data, &resp) < 0)
				goto out;
			cp[0] = t->tbl;
			cp[1] = t->cols;
			cp[2] = local;
			cp[3] = resp.body;
			if (!(cls = verify_value(t, "verify: sort rows", Q_CLASSIFY, 4, cp)))
				goto out;
			items = cJSON_Parse(cls);
			repair = t->repairing ? cJSON_CreateArray() : NULL;
			cJSON_ArrayForEach(x, items) {
				const char *kind = json_get_string(x, "kind");

				if (kind && !strcmp(kind, "in_flight") && !last)
					cJSON_AddItemToArray(next, cJSON_Duplicate(
						cJSON_GetObjectItemCaseSensitive(x, "key"), 1));
				else
					verify_record(t, x, repair);
			}
			if (repair && verify_repair_batch(t, repair) < 0)
				goto out;
			cJSON_Delete(repair);
			cJSON_Delete(items);
			cJSON_Delete(chunk);
			repair = items = chunk = NULL;
			free(keys);
			free(local);
			free(cls);
			keys = local = cls = NULL;
		}
		cJSON_Delete(pending);
		pending = next;
		next = NULL;
		if (cJSON_GetArraySize(pending) > 0 && t->v->o->catch_up &&
		    t->v->o->catch_up(t->v->o->catch_up_ctx, t->v->c, t->v->s.name) < 0)
			log_warn("verify %s: catching up before reading %d rows in flight again failed",
			         t->v->s.name, cJSON_GetArraySize(pending));
	}
	rc = 0;
out:
	PQclear(res);
	cJSON_Delete(pending);
	cJSON_Delete(next);
	cJSON_Delete(chunk);
	cJSON_Delete(items);
	cJSON_Delete(repair);
	free(keys);
	free(local);
	free(cls);
	httpc_resp_free(&resp);
	buf_free(&path);
	return rc;
}

static void verify_table_reset(struct verify_table *t)
{
	cJSON_Delete(t->candidates);
	t->candidates = cJSON_CreateArray();
	for (int k = 0; k < 5; k++) {
		cJSON_Delete(t->lists[k]);
		t->lists[k] = cJSON_CreateArray();
		t->counts[k] = 0;
	}
}

/* One pass over a table: columns, buckets, rows. 0 or -1 (t->error). */
static int verify_pass(struct verify_table *t)
{
	struct httpc_resp resp = { 0 };
	struct buf path = { 0 };
	char *mine = NULL, *bits_s = NULL, per[16];
	const char *p[2];
	PGresult *res = NULL;
	int rc = -1;

	verify_table_reset(t);
	p[0] = t->tbl;
	if (!(mine = verify_value(t, "verify: local columns", Q_LOCAL_COLUMNS, 1, p)))
		goto out;
	verify_path(t, &path, "columns", mine);
	if (verify_get(t, path.data, &resp) < 0)
		goto out;
	p[0] = resp.body;
	p[1] = t->tbl;
	res = db_exec(t->v->c, "verify: shared columns", Q_SHARED, 2, p);
	if (!res || PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		snprintf(t->error, sizeof t->error, "verify: bad columns answer from the primary");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t")) {
		snprintf(t->error, sizeof t->error, "the primary key columns differ between the sites");
		goto out;
	}
	free(t->cols);
	t->cols = strdup(PQgetvalue(res, 0, 0));
	snprintf(per, sizeof per, "%d", VERIFY_BUCKET_ROWS);
	p[0] = t->tbl;
	p[1] = per;
	if (!(bits_s = verify_value(t, "verify: bucket bits", Q_BITS, 2, p)))
		goto out;
	if (verify_level(t, 0, NULL, 0, atoi(bits_s)) < 0 || verify_settle(t) < 0)
		goto out;
	rc = 0;
out:
	PQclear(res);
	free(mine);
	free(bits_s);
	httpc_resp_free(&resp);
	buf_free(&path);
	return rc;
}

static long verify_differences(const struct verify_table *t)
{
	return t->counts[0] + t->counts[1] + t->counts[2];
}

/* The table's report, and its row in tdgl_replica.verifications. */
static cJSON *verify_table_report(struct verify_table *t, int failed, const char *started)
{
	const char *status = failed ? "failed" : verify_differences(t) ? "different" : "identical";
	cJSON *o = cJSON_CreateObject(), *counts = cJSON_CreateObject(), *saved;
	char n[5][24], rep[24], run[24], bytes[24], reqs[24], *text;
	const char *p[15];

	cJSON_AddStringToObject(o, "table", t->tbl);
	cJSON_AddStringToObject(o, "status", status);
	for (int k = 0; k < 5; k++) {
		cJSON_AddItemToObject(o, verify_kinds[k], t->lists[k]);
		t->lists[k] = NULL;
		cJSON_AddNumberToObject(counts, verify_kinds[k], (double)t->counts[k]);
		snprintf(n[k], sizeof n[k], "%ld", t->counts[k]);
	}
	cJSON_AddItemToObject(o, "counts", counts);
	if (t->repairing) {
		cJSON *r = cJSON_AddObjectToObject(o, "repair");

		cJSON_AddNumberToObject(r, "run_id", (double)t->repair_run);
		cJSON_AddNumberToObject(r, "applied", (double)t->repaired);
		cJSON_AddNumberToObject(r, "failed", (double)t->repair_failed);
	}
	cJSON_AddNumberToObject(o, "requests", (double)t->requests);
	cJSON_AddNumberToObject(o, "bytes", (double)t->bytes);
	if (failed)
		cJSON_AddStringToObject(o, "error", t->error);
	snprintf(rep, sizeof rep, "%ld", t->repaired);
	snprintf(run, sizeof run, "%ld", t->repair_run);
	snprintf(bytes, sizeof bytes, "%ld", t->bytes);
	snprintf(reqs, sizeof reqs, "%ld", t->requests);
	saved = cJSON_Duplicate(o, 1);
	text = cJSON_PrintUnformatted(saved);
	p[0] = t->v->s.name;
	p[1] = t->tbl;
	p[2] = status;
	for (int k = 0; k < 5; k++)
		p[3 + k] = n[k];
	p[8] = t->repairing ? rep : NULL;
	p[9] = t->repair_run ? run : NULL;
	p[10] = bytes;
	p[11] = reqs;
	p[12] = text;
	p[13] = failed ? t->error : NULL;
	p[14] = started;
	db_run(t->v->c, "verify: save result", Q_SAVE, 15, p);
	free(text);
	cJSON_Delete(saved);
	return o;
}

/* Verifies (and repairs) one table; returns its report. A repair applies what the first
 * pass finds (rows read anew right before), then the table is verified again: the report is
 * that second pass, with what was found and repaired under "repair". */
static cJSON *verify_one(struct verify_run *v, int i)
{
	struct verify_table t = { .v = v, .tbl = v->s.table[i], .filter = v->s.filter[i] };
	PGresult *res = db_exec(v->c, "verify: now", Q_NOW, 0, NULL);
	char *started = strdup(res && PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "0");
	cJSON *o, *found = NULL, *r;
	int failed;

	PQclear(res);
	t.repairing = v->o->repair;
	failed = verify_pass(&t) < 0;
	if (t.repair_run)
		cJSON_Delete(run_finish(v->c, t.repair_run, failed ? "Failed" :
		                        t.repair_failed ? "Partial" : "Success",
		                        failed ? t.error : NULL));
	if (!failed && t.repairing && verify_differences(&t)) {
		found = cJSON_CreateObject();
		for (int k = 0; k < 5; k++) {
			cJSON_AddItemToObject(found, verify_kinds[k], t.lists[k]);
			t.lists[k] = NULL;
		}
		t.repairing = 0;
		failed = verify_pass(&t) < 0;
		t.repairing = 1;
	}
	if (failed)
		log_warn("verify %s: table %s: %s", v->s.name, t.tbl, t.error);
	o = verify_table_report(&t, failed, started);
	if (found && (r = cJSON_GetObjectItemCaseSensitive(o, "repair")))
		cJSON_AddItemToObject(r, "found", found);
	else
		cJSON_Delete(found);
	free(started);
	free(t.cols);
	cJSON_Delete(t.candidates);
	for (int k = 0; k < 5; k++)
		cJSON_Delete(t.lists[k]);
	return o;
}

enum result verify_run(PGconn *c, const char *name, const struct verify_opts *opts,
                       cJSON **report, char *err, size_t errlen)
{
	struct verify_run v = { .c = c, .o = opts };
	enum result st = RESULT_INTERNAL;
	int loaded = 0, identical = 1;
	cJSON *tables;

	*report = NULL;
	switch (source_load(c, name, opts->key_material, &v.s, err, errlen)) {
	case 0:
		loaded = 1;
		break;
	case 1:
		snprintf(err, errlen, "unknown source \"%s\"", name);
		st = RESULT_NOT_FOUND;
		goto out;
	default:
		goto out;
	}
	for (int i = 0; i < opts->ntables; i++) {
		int found = 0;

		for (int j = 0; j < v.s.ntables && !found; j++)
			found = !strcmp(opts->tables[i], v.s.table[j]);
		if (!found) {
			snprintf(err, errlen, "source \"%s\" does not sync table \"%.200s\"", name,
			         opts->tables[i]);
			st = RESULT_INVALID;
			goto out;
		}
	}
	upstream_open(&v.f, &v.s, NULL);
	*report = cJSON_CreateObject();
	cJSON_AddStringToObject(*report, "source", name);
	tables = cJSON_AddArrayToObject(*report, "tables");
	for (int i = 0; i < v.s.ntables; i++) {
		int wanted = opts->ntables == 0;
		cJSON *o;

		for (int j = 0; j < opts->ntables && !wanted; j++)
			wanted = !strcmp(opts->tables[j], v.s.table[i]);
		if (!wanted)
			continue;
		o = verify_one(&v, i);
		identical = identical && !strcmp(json_get_string(o, "status"), "identical");
		cJSON_AddItemToArray(tables, o);
	}
	cJSON_AddBoolToObject(*report, "identical", identical);
	st = RESULT_OK;
out:
	upstream_close(&v.f);
	if (loaded)
		source_free(&v.s);
	return st;
}

cJSON *verify_last(PGconn *c, const char *name)
{
	const char *p[1] = { name };

	return db_json(c, "verify: last results", Q_LAST, 1, p);
}
