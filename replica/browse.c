/* browse: see browse.h. Every query is a named constant with bound parameters; JSON is built
 * by the database and sent as is (row values keep their exact text). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/buf.h"
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "replica/browse.h"
#include "replica/retry.h"

#define BROWSE_DB_WAIT_MS 5000
#define BROWSE_PARAM_MAX 1024

#define BROWSE_LOG_ENTRY \
	"json_build_object('id', id, 'source', source, 'change_id', change_id, 'table', tbl, " \
	"'pk', pk, 'op', op, 'status', status, 'reason', reason, 'error', error, " \
	"'sqlstate', sqlstate, 'attempts', attempts, 'next_retry_at', next_retry_at, " \
	"'run_id', run_id, 'created_at', created_at)"

/* One past the newest log id (the top of the first page). */
static const char Q_LOG_TOP[] = "SELECT coalesce(max(id), 0) + 1 FROM tdgl_replica.sync_log";
/* One probe of the binary search that turns a time into an id: whether the first entry at
 * or after id $1 was created after ($3: strictly after) time $2; no row: past the end. */
static const char Q_LOG_PROBE[] =
	"SELECT CASE WHEN $3::bool THEN created_at > $2::timestamptz "
	"ELSE created_at >= $2::timestamptz END "
	"FROM tdgl_replica.sync_log WHERE id >= $1::bigint ORDER BY id LIMIT 1";
static const char Q_TIME_CHECK[] = "SELECT $1::timestamptz";
/* The filters of a log page: entries (tdgl_replica.sync_entries) with ids in [$6, $7). */
#define BROWSE_LOG_WHERE \
	"id >= $6::bigint AND id < $7::bigint " \
	"AND ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR source = $2) " \
	"AND ($3::text IS NULL OR tbl = $3) AND ($4::jsonb IS NULL OR pk = $4::jsonb) " \
	"AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM jsonb_each_text(pk) k WHERE k.value = $5)) " \
	"AND ($8::timestamptz IS NULL OR created_at >= $8::timestamptz) " \
	"AND ($9::timestamptz IS NULL OR created_at <= $9::timestamptz) "
/* A page, newest first: the newest $10 matching entries (m), and the rest of the log row the
 * last of them belongs to (the entries of one apply statement's Synced row share its id, and
 * the cursor is an id); a primary-key range scan. */
static const char Q_LOG_PAGE[] =
	"WITH m AS (SELECT id FROM tdgl_replica.sync_entries WHERE " BROWSE_LOG_WHERE
	"ORDER BY id DESC, seq DESC LIMIT $10::int), b AS (SELECT count(*) AS n, min(id) AS lo FROM m) "
	"SELECT coalesce((SELECT json_agg(" BROWSE_LOG_ENTRY " ORDER BY id DESC, seq DESC) "
	"FROM b, tdgl_replica.sync_entries WHERE b.lo IS NOT NULL AND id >= b.lo AND "
	BROWSE_LOG_WHERE "), '[]')::text, n, lo FROM b";
/* Where the window of a page below $1 ends (not below $2): the log rows in it hold at most
 * $3 entries. */
static const char Q_LOG_WINDOW[] = "SELECT tdgl_replica.log_window($1, $2, $3)";
static const char Q_LOCAL_EDITS[] =
	"SELECT coalesce(json_agg(json_build_object('table', e.tbl, 'pk', e.pk, 'op', e.op, "
	"'edited_at', e.edited_at, 'conflict_id', (SELECT c.id FROM tdgl_replica.conflicts c "
	"WHERE c.tbl = e.tbl AND c.pk = e.pk AND c.status = 'Open')) "
	"ORDER BY e.edited_at DESC, e.tbl, e.pk::text), '[]')::text "
	"FROM (SELECT * FROM tdgl_replica.local_edits WHERE ($1::text IS NULL OR tbl = $1) "
	"ORDER BY edited_at DESC LIMIT $2::int) e";
/* The conflict as /api/conflicts shows it, and its columns side by side: the union of both
 * rows' columns in the primary row's order (then the local-only ones), each value as the
 * text its row's JSON holds (numbers keep their scale, JSON null is null, objects and arrays
 * as JSON text), `differs` compared as jsonb (1.50 = 1.5). */
static const char Q_CONFLICT[] =
	"SELECT tdgl_replica.conflict_json(c)::text, (SELECT coalesce(json_agg(json_build_object("
	"'column', coalesce(p.key, l.key), 'primary', p.value #>> '{}', 'local', l.value #>> '{}', "
	"'in_primary', p.key IS NOT NULL, 'in_local', l.key IS NOT NULL, "
	"'differs', p.value::jsonb IS DISTINCT FROM l.value::jsonb OR (p.key IS NULL) <> (l.key IS NULL)) "
	"ORDER BY coalesce(p.ord, 1000000 + l.ord)), '[]')::text "
	"FROM (SELECT key, value, ordinality AS ord FROM json_each(c.primary_row) WITH ORDINALITY) p "
	"FULL JOIN (SELECT key, value, ordinality AS ord FROM json_each(c.local_row) WITH ORDINALITY) l "
	"ON p.key = l.key) FROM tdgl_replica.conflicts c WHERE c.id = $1::bigint";
/* Sources with what the overview shows; the scheduler adds its worker's state. */
static const char Q_OVERVIEW[] =
	"SELECT json_build_object("
	"'open_conflicts', (SELECT count(*) FROM tdgl_replica.conflicts WHERE status = 'Open'), "
	"'failed_changes', (SELECT count(*) FROM tdgl_replica.sync_log WHERE status = 'Failed'), "
	"'local_edits', (SELECT count(*) FROM tdgl_replica.local_edits), "
	"'sources', (SELECT coalesce(json_agg(json_build_object('name', s.name, 'url', s.url, "
	"'enabled', s.enabled, 'initial_sync_done', s.cursor IS NOT NULL, "
	"'poll_interval', s.poll_interval, 'cron', s.cron, 'tz', s.tz, 'long_poll', s.long_poll, "
	"'lag_s', round(extract(epoch FROM now() - s.last_change_at)), "
	"'last_change_at', s.last_change_at, "
	"'cursor_age_s', round(extract(epoch FROM now() - s.cursor_moved_at)), "
	"'last_run_at', s.last_run_at, 'last_status', s.last_status, 'last_error', s.last_error, "
	"'open_conflicts', (SELECT count(*) FROM tdgl_replica.conflicts c "
	"  WHERE c.source = s.name AND c.status = 'Open'), "
	"'failed_changes', (SELECT count(*) FROM tdgl_replica.sync_log f "
	"  WHERE f.source = s.name AND f.status = 'Failed'), "
	"'last_run', (SELECT json_build_object('id', r.id, 'trigger', r.trigger, "
	"  'status', r.status, 'started_at', r.started_at, 'ended_at', r.ended_at, "
	"  'duration_ms', round(extract(epoch FROM r.ended_at - r.started_at) * 1000), "
	"  'fetched', r.fetched, 'synced', r.synced, 'failed', r.failed, 'skipped', r.skipped, "
	"  'conflicts', r.conflicts, 'resolved', r.resolved, 'error', r.error) FROM tdgl_replica.runs r "
	"  WHERE r.source = s.name AND NOT r.dry_run ORDER BY r.id DESC LIMIT 1)) "
	"ORDER BY s.name), '[]') FROM tdgl_replica.sources s))::text";

static PGconn *browse_db(struct api *a, struct http_req *req)
{
	PGconn *c = db_pool_get(a->pool, BROWSE_DB_WAIT_MS);

	if (!c)
		http_reply_error(req, 503, "database unavailable");
	return c;
}

/* A query parameter no longer than BROWSE_PARAM_MAX, empty as absent; -1 after a 400. */
static int browse_param(struct http_req *req, const char *name, const char **out)
{
	*out = http_query(req, name);
	if (*out && strlen(*out) > BROWSE_PARAM_MAX) {
		http_reply_error(req, 400, "%s is too long", name);
		return -1;
	}
	if (*out && !**out)
		*out = NULL;
	return 0;
}

/* An integer parameter within [min, max] (def when absent); -1 after a 400. */
static int browse_int(struct http_req *req, const char *name, long long min, long long max,
                      long long def, long long *out)
{
	const char *s = http_query(req, name);
	char *end;

	*out = def;
	if (!s || !*s)
		return 0;
	*out = strtoll(s, &end, 10);
	if (*end || *out < min || *out > max || strspn(s, "-0123456789") != strlen(s)) {
		http_reply_error(req, 400, "%s must be an integer from %lld to %lld", name, min, max);
		return -1;
	}
	return 0;
}

static void browse_reply_text(struct http_req *req, unsigned status, const char *text)
{
	http_reply_data(req, status, "application/json", text, strlen(text));
}

/* Checks that a since/until value is a time PostgreSQL reads: 1 yes, 0 no (400 queued),
 * -1 database error (500 queued). */
static int browse_time_ok(PGconn *c, struct http_req *req, const char *name, const char *v)
{
	const char *p[1] = { v };
	PGresult *res;

	if (!v)
		return 1;
	res = db_try(c, Q_TIME_CHECK, 1, p);
	if (res) {
		PQclear(res);
		return 1;
	}
	if (!strncmp(db_last_sqlstate(), "22", 2)) {
		http_reply_error(req, 400, "%s: not a time (ISO 8601, e.g. 2026-11-25T05:29:08Z)",
		                 name);
		return 0;
	}
	log_error("log page: checking %s: %s", name, db_last_error());
	http_reply_error(req, 500, "sync log failed");
	return -1;
}

/* The first id whose entry was created at or after t (strict: after t), by binary search
 * over the primary key (ids follow created_at); top when there is none. -1 on error. */
static long long browse_id_at(PGconn *c, const char *t, int strict, long long top)
{
	long long lo = 1, hi = top;
	char mid[32];
	const char *p[3] = { mid, t, strict ? "true" : "false" };

	while (lo < hi) {
		long long m = lo + (hi - lo) / 2;
		PGresult *res;
		int after;

		snprintf(mid, sizeof mid, "%lld", m);
		if (!(res = db_exec(c, "log page: find time", Q_LOG_PROBE, 3, p)))
			return -1;
		after = PQntuples(res) == 0 || PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
		if (after)
			hi = m;
		else
			lo = m + 1;
	}
	return lo;
}

/* The lowest id a page below hi examines (not below floor_id): as many log rows as hold
 * BROWSE_LOG_WINDOW entries (a Synced row holds every change its statement synced, and
 * each is tested against the filters); -1 on error. */
static long long browse_window(PGconn *c, long long hi, long long floor_id)
{
	char his[32], fls[32], wins[32];
	const char *p[3] = { his, fls, wins };
	PGresult *res;
	long long lo;

	snprintf(his, sizeof his, "%lld", hi);
	snprintf(fls, sizeof fls, "%lld", floor_id);
	snprintf(wins, sizeof wins, "%d", BROWSE_LOG_WINDOW);
	if (!(res = db_exec(c, "log page: window", Q_LOG_WINDOW, 3, p)))
		return -1;
	lo = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return lo;
}

static void browse_log_page(struct api *a, struct http_req *req)
{
	const char *status, *source, *table, *key, *since, *until;
	const char *key_json = NULL, *key_value = NULL, *st = NULL;
	char los[32], his[32], lims[32], err[256];
	long long before, limit, top, lo, hi, floor_id = 1, n;
	cJSON *kj = NULL;
	PGconn *c = NULL;
	PGresult *res = NULL;
	struct buf out = { 0 };

	if (browse_param(req, "status", &status) < 0 || browse_param(req, "source", &source) < 0 ||
	    browse_param(req, "table", &table) < 0 || browse_param(req, "key", &key) < 0 ||
	    browse_param(req, "since", &since) < 0 || browse_param(req, "until", &until) < 0 ||
	    browse_int(req, "before", 1, INT64_MAX, 0, &before) < 0 ||
	    browse_int(req, "limit", 1, 1000, 100, &limit) < 0)
		goto out;
	if (status) {
		static const char *const known[] = { "Synced", "Failed", "Skipped" };
		for (size_t i = 0; i < 3; i++)
			if (!strcasecmp(status, known[i]))
				st = known[i];
		if (!st) {
			http_reply_error(req, 400, "status must be Synced, Failed or Skipped");
			goto out;
		}
	}
	if (key && key[0] == '{') {
		/* a whole key: {"id": 7} */
		if (!(kj = json_parse_strict(key, strlen(key), err, sizeof err)) || !cJSON_IsObject(kj)) {
			http_reply_error(req, 400, "key: a JSON object or one key value: %s",
			                 kj ? "not an object" : err);
			goto out;
		}
		key_json = key;
	} else {
		key_value = key;   /* one value of the key: 7, or ORD-7 */
	}
	if (!(c = browse_db(a, req)))
		goto out;
	if (browse_time_ok(c, req, "since", since) <= 0 || browse_time_ok(c, req, "until", until) <= 0)
		goto out;
	if (!(res = db_exec(c, "log page: top", Q_LOG_TOP, 0, NULL)))
		goto dberr;
	top = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	res = NULL;
	hi = before && before < top ? before : top;
	if (until && (n = browse_id_at(c, until, 1, top)) < hi) {
		if (n < 0)
			goto dberr;
		hi = n;
	}
	if (since && (floor_id = browse_id_at(c, since, 0, top)) < 0)
		goto dberr;
	if ((lo = browse_window(c, hi, floor_id)) < 0)
		goto dberr;
	if (lo > hi)
		lo = hi;
	snprintf(los, sizeof los, "%lld", lo);
	snprintf(his, sizeof his, "%lld", hi);
	snprintf(lims, sizeof lims, "%lld", limit);
	{
		const char *p[10] = { st, source, table, key_json, key_value, los, his, since, until,
		                      lims };
		if (!(res = db_exec(c, "log page", Q_LOG_PAGE, 10, p)))
			goto dberr;
	}
	n = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	buf_puts(&out, "{\"entries\":");
	buf_puts(&out, PQgetvalue(res, 0, 0));
	if (n == limit)       /* a full page: older entries may follow below its last */
		buf_printf(&out, ",\"next_before\":%s", PQgetvalue(res, 0, 2));
	else if (lo > floor_id)   /* the window ended before the range did: search on below */
		buf_printf(&out, ",\"next_before\":%lld", lo);
	else
		buf_puts(&out, ",\"next_before\":null");
	buf_printf(&out, ",\"searched\":{\"from\":%lld,\"below\":%lld}}", lo, hi);
	browse_reply_text(req, 200, out.data);
	goto out;
dberr:
	http_reply_error(req, 500, "sync log failed");
out:
	PQclear(res);
	cJSON_Delete(kj);
	buf_free(&out);
	if (c)
		db_pool_put(a->pool, c);
}

static void browse_retry_failed(struct api *a, struct http_req *req)
{
	const char *source;
	char err[256];
	cJSON *runs = NULL, *o;
	PGconn *c;
	enum result r;

	if (browse_param(req, "source", &source) < 0 || !(c = browse_db(a, req)))
		return;
	if ((r = retry_all_failed(c, source, &runs, err, sizeof err)) != RESULT_OK) {
		http_reply_error(req, result_http_status(r), "%s", err);
		cJSON_Delete(runs);
	} else {
		log_info("retried every Failed change%s%s", source ? " of " : "", source ? source : "");
		o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "runs", runs);
		http_reply_json(req, 200, o);
	}
	db_pool_put(a->pool, c);
}

static void browse_local_edits(struct api *a, struct http_req *req)
{
	const char *table;
	long long limit;
	char lims[32];
	PGconn *c;
	PGresult *res;

	if (browse_param(req, "table", &table) < 0 ||
	    browse_int(req, "limit", 1, 10000, 1000, &limit) < 0 || !(c = browse_db(a, req)))
		return;
	snprintf(lims, sizeof lims, "%lld", limit);
	{
		const char *p[2] = { table, lims };
		res = db_exec(c, "local edits", Q_LOCAL_EDITS, 2, p);
	}
	if (res)
		browse_reply_text(req, 200, PQgetvalue(res, 0, 0));
	else
		http_reply_error(req, 500, "listing local edits failed");
	PQclear(res);
	db_pool_put(a->pool, c);
}

static void browse_conflict(struct api *a, struct http_req *req, const char *idtext)
{
	char *end;
	long long id = strtoll(idtext, &end, 10);
	const char *p[1] = { idtext };
	struct buf out = { 0 };
	PGresult *res = NULL;
	PGconn *c = NULL;
	size_t len;

	if (*end || end == idtext || id <= 0 || strspn(idtext, "0123456789") != strlen(idtext)) {
		http_reply_error(req, 400, "bad conflict id");
		goto out;
	}
	if (!(c = browse_db(a, req)))
		goto out;
	if (!(res = db_exec(c, "conflict", Q_CONFLICT, 1, p))) {
		http_reply_error(req, 500, "reading the conflict failed");
		goto out;
	}
	if (PQntuples(res) == 0) {
		http_reply_error(req, 404, "conflict %lld not found", id);
		goto out;
	}
	/* the conflict object with "columns" added before its closing brace */
	len = strlen(PQgetvalue(res, 0, 0));
	buf_append(&out, PQgetvalue(res, 0, 0), len - 1);
	buf_printf(&out, ",\"columns\":%s}", PQgetvalue(res, 0, 1));
	browse_reply_text(req, 200, out.data);
out:
	PQclear(res);
	buf_free(&out);
	if (c)
		db_pool_put(a->pool, c);
}

static void browse_overview(struct api *a, struct http_req *req)
{
	PGconn *c = browse_db(a, req);
	PGresult *res = NULL;
	cJSON *o = NULL, *workers = NULL, *src;

	if (!c)
		return;
	if (!(res = db_exec(c, "overview", Q_OVERVIEW, 0, NULL)) ||
	    !(o = cJSON_Parse(PQgetvalue(res, 0, 0)))) {
		http_reply_error(req, 500, "overview failed");
		goto out;
	}
	/* each source gets its worker's live state: running, queued, backoff, next run */
	workers = sched_status(a->sched);
	cJSON_ArrayForEach(src, cJSON_GetObjectItem(o, "sources")) {
		const char *name = json_get_string(src, "name");
		cJSON *w;

		cJSON_ArrayForEach(w, workers)
			if (name && json_get_string(w, "source") &&
			    !strcmp(name, json_get_string(w, "source"))) {
				cJSON_AddItemToObject(src, "worker", cJSON_Duplicate(w, 1));
				break;
			}
		if (!cJSON_GetObjectItem(src, "worker"))
			cJSON_AddNullToObject(src, "worker");
	}
	http_reply_json(req, 200, o);
	o = NULL;
out:
	cJSON_Delete(o);
	cJSON_Delete(workers);
	PQclear(res);
	db_pool_put(a->pool, c);
}

int browse_handle(struct api *a, struct http_req *req)
{
	static const struct {
		const char *path, *method;
		void (*fn)(struct api *, struct http_req *);
	} routes[] = {
		{ "/api/overview", "GET", browse_overview },
		{ "/api/log/page", "GET", browse_log_page },
		{ "/api/local-edits", "GET", browse_local_edits },
		{ "/api/log/retry-failed", "POST", browse_retry_failed },
	};
	const char *m = http_method(req), *path = http_path(req);
	size_t pl = strlen("/api/conflicts/");

	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
		if (!strcmp(path, routes[i].path)) {
			if (strcmp(m, routes[i].method))
				http_reply_error(req, 405, "method not allowed");
			else
				routes[i].fn(a, req);
			return 1;
		}
	if (!strcmp(m, "GET") && !strncmp(path, "/api/conflicts/", pl) && path[pl] &&
	    !strchr(path + pl, '/')) {
		browse_conflict(a, req, path + pl);
		return 1;
	}
	return 0;
}
