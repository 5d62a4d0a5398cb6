/* admin: see admin.h. JSON is built by the database where rows are involved (snapshots keep
 * their exact text); every query is a named constant with bound parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/console.h"
#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "common/version.h"
#include "primary/admin.h"
#include "primary/capture.h"
#include "primary/metrics.h"
#include "primary/push.h"

#define ADMIN_DB_WAIT_MS 5000
#define ADMIN_STR(x) ADMIN_STR2(x)
#define ADMIN_STR2(x) #x

/* Size (planner estimate, null before the first analyze; and bytes), id range, changes captured in the last minute (of at
 * most the newest ADMIN_BEHIND_MAX: an id range scan), and the purge horizon. */
static const char Q_OVERVIEW[] =
	"SELECT json_build_object("
	"'rows_estimate', (SELECT CASE WHEN reltuples >= 0 THEN reltuples::bigint END "
	"  FROM pg_class WHERE oid = 'tdgl.change_log'::regclass), "
	"'bytes', pg_total_relation_size('tdgl.change_log'), "
	"'oldest_id', (SELECT min(id) FROM tdgl.change_log), "
	"'newest_id', (SELECT max(id) FROM tdgl.change_log), "
	"'oldest_at', (SELECT changed_at FROM tdgl.change_log ORDER BY id LIMIT 1), "
	"'newest_at', (SELECT changed_at FROM tdgl.change_log ORDER BY id DESC LIMIT 1), "
	"'last_minute', (SELECT count(*) FROM (SELECT changed_at FROM tdgl.change_log "
	"  ORDER BY id DESC LIMIT " ADMIN_STR(ADMIN_BEHIND_MAX) ") x "
	"  WHERE changed_at > now() - interval '1 minute'), "
	"'purged_below_txid', m.purged_below_txid, 'last_purge_at', m.last_purge_at, "
	"'current_txid', pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
	")::text FROM tdgl.meta m";
static const char Q_TOP[] = "SELECT coalesce(max(id), 0) + 1 FROM tdgl.change_log";
/* Ids in [$1, $2), newest first, optionally one table: a primary-key range scan. */
static const char Q_LOG[] =
	"SELECT coalesce(json_agg(json_build_object('id', id, 'txid', txid::text::bigint, "
	"'table', tbl, 'op', op, 'pk', pk, 'old_pk', old_pk, 'row', row, "
	"'changed_at', changed_at) ORDER BY id DESC), '[]')::text, count(*), min(id) "
	"FROM (SELECT * FROM tdgl.change_log WHERE id >= $1::bigint AND id < $2::bigint "
	"AND ($3::text IS NULL OR tbl = $3) ORDER BY id DESC LIMIT $4::int) l";
/* A key's cursor horizon (cursor_xmin): every transaction below it was served. The changes
 * of transactions at or above it were possibly not: counted (at most ADMIN_BEHIND_MAX, by
 * the (txid, id) index) with the oldest one's time. */
static const char Q_KEYS[] =
	"SELECT coalesce(json_agg(json_build_object('key', k.key, 'label', k.label, "
	"'created_at', k.created_at, 'revoked_at', k.revoked_at, 'last_seen', k.last_seen, "
	"'cursor_xmin', k.cursor_xmin, 'behind', b.n, "
	"'behind_capped', b.n > " ADMIN_STR(ADMIN_BEHIND_MAX) ", 'behind_since', b.oldest) "
	"ORDER BY k.created_at, k.key), '[]')::text FROM tdgl.api_keys k "
	"LEFT JOIN LATERAL (SELECT least(count(*), " ADMIN_STR(ADMIN_BEHIND_MAX) ") AS n, "
	"min(changed_at) AS oldest FROM (SELECT l.changed_at FROM tdgl.change_log l "
	"WHERE l.txid >= k.cursor_xmin::text::xid8 LIMIT " ADMIN_STR(ADMIN_BEHIND_MAX) " + 1) x) b "
	"ON k.cursor_xmin IS NOT NULL";
static const char Q_PUSH[] =
	"SELECT coalesce(json_agg(json_build_object('id', id, 'url', url, 'enabled', enabled, "
	"'created_at', created_at) ORDER BY id), '[]')::text FROM tdgl.push_targets";

static void admin_error(struct http_req *req, unsigned status, const char *msg)
{
	metrics_request(status);
	http_reply_error(req, status, "%s", msg);
}

static void admin_json_text(struct http_req *req, const char *text)
{
	metrics_request(200);
	http_reply_data(req, 200, "application/json", text, strlen(text));
}

static int admin_authorized(const struct api *api, const struct http_req *req)
{
	const char *h = http_header(req, "Authorization");
	struct buf want = { 0 };
	int ok;

	if (!h)
		return 0;
	buf_printf(&want, "Bearer %s", api->admin_token);
	ok = crypto_str_equal(want.data, h);
	explicit_bzero(want.data, want.len);
	buf_free(&want);
	return ok;
}

static PGconn *admin_db(struct api *api, struct http_req *req)
{
	PGconn *c = db_pool_get(api->pool, ADMIN_DB_WAIT_MS);

	if (!c) {
		http_add_header(req, "Retry-After", "1");
		admin_error(req, 503, "database unavailable");
	}
	return c;
}

static void admin_overview(struct api *api, struct http_req *req, PGconn *c)
{
	PGresult *res = db_exec(c, "admin overview", Q_OVERVIEW, 0, NULL);
	cJSON *o = NULL, *tables = NULL;

	if (!res || !(tables = capture_list_json(c)) ||
	    !(o = cJSON_Parse(PQgetvalue(res, 0, 0)))) {
		cJSON_Delete(tables);
		admin_error(req, 500, "overview failed");
		goto out;
	}
	(void)api;
	cJSON_AddStringToObject(o, "version", TDGL_VERSION);
	cJSON_AddItemToObject(o, "tables", tables);
	metrics_request(200);
	http_reply_json(req, 200, o);
out:
	PQclear(res);
}

/* An optional integer parameter in [min, max]; -1 after a 400. */
static int admin_int(struct http_req *req, const char *name, long long min, long long max,
                     long long def, long long *out)
{
	const char *s = http_query(req, name);
	char *end, msg[128];

	*out = def;
	if (!s || !*s)
		return 0;
	*out = strtoll(s, &end, 10);
	if (*end || *out < min || *out > max || strspn(s, "0123456789") != strlen(s)) {
		snprintf(msg, sizeof msg, "%s must be an integer from %lld to %lld", name, min, max);
		admin_error(req, 400, msg);
		return -1;
	}
	return 0;
}

static void admin_log(struct api *api, struct http_req *req, PGconn *c)
{
	const char *table = http_query(req, "table");
	long long before, limit, top, lo, hi, n;
	char los[32], his[32], lims[32];
	PGresult *res = NULL;
	struct buf out = { 0 };

	(void)api;
	if (admin_int(req, "before", 1, INT64_MAX, 0, &before) < 0 ||
	    admin_int(req, "limit", 1, 500, 50, &limit) < 0)
		goto out;
	if (table && (!*table || strlen(table) > 200)) {
		admin_error(req, 400, "table: expected a table name");
		goto out;
	}
	if (!(res = db_exec(c, "admin log: top", Q_TOP, 0, NULL)))
		goto dberr;
	top = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	hi = before && before < top ? before : top;
	lo = hi > ADMIN_LOG_WINDOW ? hi - ADMIN_LOG_WINDOW : 1;
	snprintf(los, sizeof los, "%lld", lo);
	snprintf(his, sizeof his, "%lld", hi);
	snprintf(lims, sizeof lims, "%lld", limit);
	{
		const char *p[4] = { los, his, table, lims };
		if (!(res = db_exec(c, "admin log", Q_LOG, 4, p)))
			goto dberr;
	}
	n = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	buf_puts(&out, "{\"changes\":");
	buf_puts(&out, PQgetvalue(res, 0, 0));
	if (n == limit)
		buf_printf(&out, ",\"next_before\":%s}", PQgetvalue(res, 0, 2));
	else if (lo > 1)
		buf_printf(&out, ",\"next_before\":%lld}", lo);
	else
		buf_puts(&out, ",\"next_before\":null}");
	admin_json_text(req, out.data);
	goto out;
dberr:
	res = NULL;
	admin_error(req, 500, "reading the change log failed");
out:
	PQclear(res);
	buf_free(&out);
}

static void admin_keys(struct api *api, struct http_req *req, PGconn *c)
{
	PGresult *res = db_exec(c, "admin keys", Q_KEYS, 0, NULL);

	(void)api;
	if (res)
		admin_json_text(req, PQgetvalue(res, 0, 0));
	else
		admin_error(req, 500, "listing keys failed");
	PQclear(res);
}

static void admin_push(struct api *api, struct http_req *req, PGconn *c)
{
	PGresult *res = db_exec(c, "admin push targets", Q_PUSH, 0, NULL);
	cJSON *list = NULL, *status = NULL, *t;

	if (!res || !(list = cJSON_Parse(PQgetvalue(res, 0, 0)))) {
		admin_error(req, 500, "listing push targets failed");
		goto out;
	}
	/* each target gets what its notifier thread last saw (null: no attempt yet) */
	status = push_status(__atomic_load_n(&api->push, __ATOMIC_ACQUIRE));
	cJSON_ArrayForEach(t, list) {
		long long id = json_get_int(t, "id", -1);
		cJSON *s, *found = NULL;

		cJSON_ArrayForEach(s, status)
			if (json_get_int(s, "id", -2) == id)
				found = s;
		cJSON_AddItemToObject(t, "delivery", found ? cJSON_Duplicate(found, 1) :
		                      cJSON_CreateNull());
	}
	metrics_request(200);
	http_reply_json(req, 200, list);
	list = NULL;
out:
	cJSON_Delete(list);
	cJSON_Delete(status);
	PQclear(res);
}

int admin_handle(struct api *api, struct http_req *req)
{
	static const struct {
		const char *path;
		void (*fn)(struct api *, struct http_req *, PGconn *);
	} routes[] = {
		{ "/api/admin/overview", admin_overview },
		{ "/api/admin/log", admin_log },
		{ "/api/admin/keys", admin_keys },
		{ "/api/admin/push", admin_push },
	};
	const char *path = http_path(req);
	PGconn *c;

	if (strncmp(path, "/api/admin/", 11) && strcmp(path, "/api/admin")) {
		if (!api->admin_token || !console_handle(req, CONSOLE_PRIMARY))
			return 0;
		metrics_request(200);
		return 1;
	}
	if (!api->admin_token) {
		admin_error(req, 404, "not found");   /* the console is off */
		return 1;
	}
	if (!admin_authorized(api, req)) {
		admin_error(req, 401, "unauthorized");
		return 1;
	}
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
		if (!strcmp(path, routes[i].path)) {
			if ((c = admin_db(api, req))) {
				routes[i].fn(api, req, c);
				db_pool_put(api->pool, c);
			}
			return 1;
		}
	admin_error(req, 404, "not found");
	return 1;
}
