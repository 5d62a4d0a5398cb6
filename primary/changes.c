/* changes: serving tdgl.change_log by transaction visibility.
 *
 * Why not "id > last id": ids are taken when a row changes, not when its transaction commits,
 * so a smaller id can become visible after a reader has moved past it (a long transaction
 * makes this certain). A batch is instead "changes whose transaction is visible in snapshot
 * s2 and not in snapshot s1" (as PgQ does). Every committed transaction becomes visible
 * between exactly one pair of consecutive snapshots, so it lands in exactly one batch.
 *
 * Bounds that keep a page an index range scan:
 *  - a transaction not visible in s1 and not in s1's xip list has an xid >= xmax(s1). Mind
 *    that xmax is latestCompletedXid + 1, not the next xid: a transaction may already be
 *    running at s1 with an xid >= xmax(s1) and not be listed in xip. So before taking a
 *    snapshot we assign and commit an xid X of our own (after reading l): X completed, so
 *    xmax(s1) > X, and every transaction with xid >= xmax(s1) got its xid after X, i.e.
 *    after l1 was read; its changes took their ids later still, so id > l1;
 *  - a transaction visible in s2 committed before s2 was taken: id <= u2 (read after s2);
 *  - transactions running at s1 (s1's xip list) may hold any id, so they are fetched by
 *    txid (index on (txid, id)).
 * Inside a batch pages are keyset by id (id > last), so a page cursor replays the same page.
 *
 * Per-row order: two transactions changing one row serialize on its row lock, and the
 * trigger (an AFTER trigger, fired at the end of the statement) takes the change id while
 * holding the lock, so within a batch id order is commit order;
 * across batches, batch order is visibility order. Changes of one row therefore reach a
 * reader in commit order. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/db.h"
#include "common/limits.h"
#include "primary/changes.h"

#define CHANGES_WINDOWS 16     /* empty windows skipped within one request */

static int64_t changes_window = CHANGES_WINDOW_DEFAULT;   /* ids examined per query */

static const char Q_SEQ[] =
	"SELECT coalesce(pg_sequence_last_value('tdgl.change_log_id_seq'::regclass), 0)";
/* l, then a committed xid of our own (see the bounds above), in one autocommit statement:
 * the subquery (kept apart by OFFSET 0) produces l before the outer projection assigns the
 * xid, and the xid commits when the statement ends. */
static const char Q_L_XID[] =
	"SELECT s.l, pg_current_xact_id() FROM (SELECT"
	" coalesce(pg_sequence_last_value('tdgl.change_log_id_seq'::regclass), 0) AS l OFFSET 0) s";
/* The snapshot, then u: pg_current_snapshot() is the statement's snapshot, taken before the
 * statement runs, and the sequence is read while it runs, i.e. after. */
static const char Q_SNAP_U[] =
	"SELECT pg_current_snapshot()::text,"
	" coalesce(pg_sequence_last_value('tdgl.change_log_id_seq'::regclass), 0)";

/* Planner settings of the page query, local to its transaction (changes_page_query): it
 * must stay an ordered index scan of a few hundred rows. Right after a large transaction,
 * before autovacuum has analyzed tdgl.change_log, the planner has no correlation and a
 * default selectivity for the id range and prefers a bitmap heap scan of the whole window
 * plus a sort, on every page (8 ms instead of 1.5 ms per page of 500 over a 200k-row
 * transaction). Without bitmap scans the only alternative left, a sequential scan, is costed
 * on the table's real size, so the ordered index scan wins whatever the statistics say.
 * JIT off: a misestimated query would pay tens of ms of compilation. The query is prepared
 * once per connection (changes_session: no parse and analysis per page) and planned for
 * each execution's values (force_custom_plan), as an unprepared one is. The settings stay
 * inside the transaction: other queries on the serving connections keep the defaults. */
static const char Q_PAGE_SETTINGS[] =
	"SELECT set_config('enable_bitmapscan', 'off', true), set_config('jit', 'off', true),"
	" set_config('plan_cache_mode', 'force_custom_plan', true)";

/* One statement, so the purge horizon it reads (m.pb) and the rows it reads come from the
 * same snapshot: a concurrent purge is seen either not at all or completely.
 * $1 xip of s1 (xid8[]), $2 last, $3 l1, $4 upper id bound (u2 or the window's end),
 * $5 s2, $6 s1, $7 tables (text[] or NULL),
 * $8 limit + 1, $9 the site asking as a two-way peer (uuid or NULL): its own changes and
 * those this site applied from it are left out, and each change comes with its version
 * (origin, origin_id, origin_at) and the version of its row it replaced here (base: the
 * row's previous change in this log, through the row-version indexes). With $9 NULL the
 * base lateral is planned away (custom plans: a constant-false filter). $10 the page's
 * budget of row bytes (CHANGES_PAGE_BYTES): the rows that start within it are kept, so one
 * at least and always a prefix; `total` says how many there were before the cut. Both arms are index scans with their own ORDER BY/LIMIT: the first walks
 * (txid, id) per listed transaction that became visible (so a huge transaction pages in
 * O(limit) per page), the second walks the primary key from max(last, l1) up to u2.
 * The change objects are assembled in C (changes_item) from the columns: cheaper than
 * concatenating text in SQL. The rows come in id order (the lateral's ORDER BY, one outer
 * row); there is no outer sort of the whole page, changes_fetch checks the order instead. */
static const char Q_PAGE[] =
	"WITH m AS (SELECT purged_below_txid AS pb,"
	"   pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax,"
	"   coalesce(pg_sequence_last_value('tdgl.change_log_id_seq'::regclass), 0) AS seq,"
	"   (SELECT min(id) FROM tdgl.change_log WHERE id > $4::bigint) AS nxt,"
	"   (SELECT s.id FROM tdgl.site_identity s) AS site"
	"   FROM tdgl.meta WHERE id = 1) "
	"SELECT m.pb, m.xmax, m.seq, m.nxt, p.id, p.tbl, p.op, p.pk, p.old_pk, p.row, p.at,"
	"  CASE WHEN $9::uuid IS NOT NULL THEN coalesce(p.origin, m.site) END, p.origin_id,"
	"  p.origin_at, CASE WHEN $9::uuid IS NOT NULL THEN coalesce(p.base_origin, m.site) END,"
	"  p.base_id, m.site, p.total"
	" FROM m LEFT JOIN LATERAL (SELECT * FROM ("
	" SELECT q.*, count(*) OVER () AS total,"
	"   sum(coalesce(octet_length(q.row), 0)) OVER (ORDER BY q.id ROWS UNBOUNDED PRECEDING)"
	"     - coalesce(octet_length(q.row), 0) AS before"
	" FROM ("
	" SELECT c.id, c.tbl, c.op, c.pk::text AS pk, c.old_pk::text AS old_pk,"
	"   c.row::text AS row, to_json(c.changed_at)::text AS at, c.origin,"
	"   CASE WHEN $9::uuid IS NOT NULL THEN coalesce(c.origin_id, c.id) END AS origin_id,"
	"   CASE WHEN $9::uuid IS NOT NULL"
	"     THEN to_json(coalesce(c.origin_at, c.changed_at))::text END AS origin_at,"
	"   b.origin AS base_origin, b.id AS base_id"
	" FROM ((SELECT l.* FROM unnest($1::xid8[]) AS x(t)"
	"        CROSS JOIN LATERAL (SELECT * FROM tdgl.change_log l"
	"          WHERE l.txid = x.t AND l.id > $2::bigint AND l.id <= $4::bigint"
	"            AND ($7::text[] IS NULL OR l.tbl = ANY ($7::text[]))"
	"            AND ($9::uuid IS NULL OR (l.origin IS DISTINCT FROM $9::uuid"
	"                                      AND l.via IS DISTINCT FROM $9::uuid))"
	"          ORDER BY l.id LIMIT $8::int) l"
	"        WHERE pg_visible_in_snapshot(x.t, $5::pg_snapshot)"
	"          AND NOT pg_visible_in_snapshot(x.t, $6::pg_snapshot)"
	"        ORDER BY l.id LIMIT $8::int)"
	"      UNION ALL"
	"       (SELECT * FROM tdgl.change_log l"
	"        WHERE l.id > GREATEST($2::bigint, $3::bigint) AND l.id <= $4::bigint"
	"          AND NOT (l.txid = ANY ($1::xid8[]))"
	"          AND pg_visible_in_snapshot(l.txid, $5::pg_snapshot)"
	"          AND NOT pg_visible_in_snapshot(l.txid, $6::pg_snapshot)"
	"          AND ($7::text[] IS NULL OR l.tbl = ANY ($7::text[]))"
	"          AND ($9::uuid IS NULL OR (l.origin IS DISTINCT FROM $9::uuid"
	"                                    AND l.via IS DISTINCT FROM $9::uuid))"
	"        ORDER BY l.id LIMIT $8::int)) c"
	"   LEFT JOIN LATERAL (SELECT v.origin, v.id FROM"
	"     tdgl.row_version(c.tbl, coalesce(c.old_pk, c.pk)::text, c.id) v"
	"     WHERE $9::uuid IS NOT NULL) b ON true"
	" ORDER BY c.id LIMIT $8::int) q) w"
	" WHERE w.before < $10::bigint ORDER BY w.id) p ON true";
enum { PAGE_PB, PAGE_XMAX, PAGE_SEQ, PAGE_NXT, PAGE_ID, PAGE_TBL, PAGE_OP, PAGE_PK,
       PAGE_OLD_PK, PAGE_ROW, PAGE_AT, PAGE_ORIGIN, PAGE_ORIGIN_ID, PAGE_ORIGIN_AT,
       PAGE_BASE_ORIGIN, PAGE_BASE_ID, PAGE_SITE, PAGE_TOTAL };

static char *changes_strdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		abort();
	return d;
}

/* Reads one bigint-valued single-row query. */
static int changes_read_i64(PGconn *c, const char *what, const char *sql, int64_t *out)
{
	PGresult *res = db_exec(c, what, sql, 0, NULL);
	int rc = -1;

	if (!res || PQntuples(res) != 1)
		goto out;
	*out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* Two autocommit statements (each its own transaction), in this order: the sequence (l)
 * and a committed xid of our own; then the snapshot and the sequence again (u). See the
 * bounds above for why each step must complete before the next starts: the xid must have
 * committed before the snapshot is taken, so they cannot share a statement. */
static int changes_take(PGconn *c, char **snap, int64_t *l, int64_t *u)
{
	PGresult *res = db_exec_prepared(c, "read change sequence, assign xid", "changes_lx", 0,
	                                 NULL);
	int rc = -1;

	*snap = NULL;
	if (!res || PQntuples(res) != 1)
		goto out;
	*l = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	res = db_exec_prepared(c, "take snapshot", "changes_su", 0, NULL);
	if (!res || PQntuples(res) != 1)
		goto out;
	*snap = changes_strdup(PQgetvalue(res, 0, 0));
	*u = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* Runs the page query with its planner settings, in one transaction and one round trip
 * (a pipeline: BEGIN, settings, page, COMMIT, sync). Returns the page's result or NULL
 * (logged; the connection is left outside any transaction, or broken). */
static PGresult *changes_page_query(PGconn *c, const char *const *params)
{
	PGresult *page = NULL, *r;
	int sent = 0, ok = 0, results = 0;

	if (!PQenterPipelineMode(c))
		goto out;
	sent = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
	       PQsendQueryPrepared(c, "changes_settings", 0, NULL, NULL, NULL, 0) &&
	       PQsendQueryPrepared(c, "changes_page", 10, params, NULL, NULL, 0) &&
	       PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
	/* the sync is sent even after a failed send: it ends whatever was queued */
	ok = PQpipelineSync(c) && sent;
	/* Per statement its result and a NULL; then the sync's result. */
	while ((r = PQgetResult(c)) != NULL) {
		ExecStatusType st = PQresultStatus(r);

		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			break;
		}
		if (st == PGRES_FATAL_ERROR && ok)
			log_error("read changes: %s", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
			          ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : "?");
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
			ok = 0;
		if (results++ == 2 && st == PGRES_TUPLES_OK) {
			page = r;
			r = NULL;
		}
		PQclear(r);
		PQclear(PQgetResult(c));      /* the NULL that ends this statement's results */
	}
	if (!PQexitPipelineMode(c))
		ok = 0;     /* the pool drops a connection left in pipeline mode */
out:
	if (!ok || results != 4 || !page) {
		if (!sent)
			log_error("read changes: %s", PQerrorMessage(c));
		PQclear(page);
		page = NULL;
		if (PQstatus(c) == CONNECTION_OK && PQpipelineStatus(c) == PQ_PIPELINE_OFF &&
		    PQtransactionStatus(c) != PQTRANS_IDLE)
			db_run(c, "read changes: roll back", "ROLLBACK", 0, NULL);
	}
	return page;
}

int changes_session(PGconn *c)
{
	if (db_prepare(c, "prepare page settings", "changes_settings", Q_PAGE_SETTINGS, 0) < 0 ||
	    db_prepare(c, "prepare page query", "changes_page", Q_PAGE, 10) < 0 ||
	    db_prepare(c, "prepare snapshot", "changes_lx", Q_L_XID, 0) < 0 ||
	    db_prepare(c, "prepare snapshot", "changes_su", Q_SNAP_U, 0) < 0)
		return -1;
	return 0;
}

int changes_snapshot(PGconn *c, struct cursor *out)
{
	memset(out, 0, sizeof(*out));
	return changes_take(c, &out->s2, &out->l2, &out->u2);
}

int64_t changes_head(PGconn *c)
{
	int64_t v;

	return changes_read_i64(c, "read change sequence", Q_SEQ, &v) < 0 ? -1 : v;
}

/* "{x1,x2}" from a snapshot's xip list (the text after the second ':'). */
static char *changes_xip_array(const char *snap)
{
	const char *p = strchr(snap, ':');
	struct buf b = {0};

	p = p ? strchr(p + 1, ':') : NULL;
	buf_puts(&b, "{");
	buf_puts(&b, p ? p + 1 : "");
	buf_puts(&b, "}");
	return buf_steal(&b);
}

/* s as a JSON string, escaped exactly as PostgreSQL's to_json(text) does (so the page text
 * is the same as when SQL built it). */
static void changes_json_string(struct buf *b, const char *s, size_t len)
{
	size_t run = 0;

	buf_append(b, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[8];
		const char *e = NULL;

		switch (ch) {
		case '\b': e = "\\b"; break;
		case '\f': e = "\\f"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		default:
			if (ch < ' ') {
				snprintf(esc, sizeof esc, "\\u%04x", ch);
				e = esc;
			}
		}
		if (!e)
			continue;
		buf_append(b, s + run, i - run);
		buf_puts(b, e);
		run = i + 1;
	}
	buf_append(b, s + run, len - run);
	buf_append(b, "\"", 1);
}

/* Appends `key` (its JSON punctuation included) and column k of row i as JSON text as it
 * is, or null. */
static void changes_raw(struct buf *b, const char *key, const PGresult *res, int i, int k)
{
	buf_puts(b, key);
	if (PQgetisnull(res, i, k))
		buf_puts(b, "null");
	else
		buf_append(b, PQgetvalue(res, i, k), (size_t)PQgetlength(res, i, k));
}

/* Appends row i of a page result as one change object (the API's change shape); for a
 * two-way peer with the change's version and the version it replaced (docs/api.md). */
static void changes_item(struct buf *b, const PGresult *res, int i, int peer)
{
	changes_raw(b, "{\"id\":", res, i, PAGE_ID);
	buf_puts(b, ",\"table\":");
	changes_json_string(b, PQgetvalue(res, i, PAGE_TBL), (size_t)PQgetlength(res, i, PAGE_TBL));
	buf_puts(b, ",\"op\":");
	changes_json_string(b, PQgetvalue(res, i, PAGE_OP), (size_t)PQgetlength(res, i, PAGE_OP));
	changes_raw(b, ",\"pk\":", res, i, PAGE_PK);
	changes_raw(b, ",\"old_pk\":", res, i, PAGE_OLD_PK);
	changes_raw(b, ",\"row\":", res, i, PAGE_ROW);
	changes_raw(b, ",\"changed_at\":", res, i, PAGE_AT);
	if (peer) {
		/* the site identities are uuids: JSON strings without escapes */
		changes_raw(b, ",\"version\":{\"origin\":\"", res, i, PAGE_ORIGIN);
		changes_raw(b, "\",\"id\":", res, i, PAGE_ORIGIN_ID);
		changes_raw(b, ",\"at\":", res, i, PAGE_ORIGIN_AT);
		if (PQgetisnull(res, i, PAGE_BASE_ID)) {
			buf_puts(b, ",\"base\":null");
		} else {
			changes_raw(b, ",\"base\":{\"origin\":\"", res, i, PAGE_BASE_ORIGIN);
			changes_raw(b, "\",\"id\":", res, i, PAGE_BASE_ID);
			buf_puts(b, "}");
		}
		buf_puts(b, "}");
	}
	buf_puts(b, "}");
}

struct changes_row {
	int64_t id;
	int     i;     /* row number in the result */
};

static int changes_row_cmp(const void *a, const void *b)
{
	const struct changes_row *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* The rows of a page result in id order: as they came (the query's order), or sorted if
 * they ever did not come so. Caller frees. */
static struct changes_row *changes_order(const PGresult *res, int rows)
{
	struct changes_row *o = calloc((size_t)(rows > 0 ? rows : 1), sizeof(*o));
	int sorted = 1;

	if (!o)
		abort();
	for (int i = 0; i < rows; i++) {
		o[i].id = strtoll(PQgetvalue(res, i, PAGE_ID), NULL, 10);
		o[i].i = i;
		if (i && o[i].id <= o[i - 1].id)
			sorted = 0;
	}
	if (!sorted)
		qsort(o, (size_t)rows, sizeof(*o), changes_row_cmp);
	return o;
}

static void changes_copy_cursor(struct cursor *dst, const struct cursor *src)
{
	*dst = *src;
	dst->s1 = src->s1 ? changes_strdup(src->s1) : NULL;
	dst->s2 = src->s2 ? changes_strdup(src->s2) : NULL;
}

int changes_fetch(PGconn *c, const struct cursor *cur, const char *tables, const char *peer,
                  int limit, struct changes_page *page, char *err, size_t errlen)
{
	struct cursor b = {0};       /* the batch being read */
	PGresult *res = NULL;
	struct changes_row *ord = NULL;
	char *xip = NULL;
	char p_last[24], p_l1[24], p_hi[24], p_lim[16], p_bytes[16];
	int rc = CHANGES_ERROR, n = 0, rows = 0, windowed = 0;
	int64_t pb, xmax, seq = 0, hi = 0, total;

	memset(page, 0, sizeof(*page));
	if (cur->open) {
		changes_copy_cursor(&b, cur);
	} else {
		/* Open the next batch: (old s2, now]. */
		b.open = 1;
		b.s1 = changes_strdup(cur->s2);
		b.l1 = cur->l2;
		if (changes_take(c, &b.s2, &b.l2, &b.u2) < 0)
			goto out;
		if (cursor_snapshot_xmax(b.s2) < cursor_snapshot_xmax(b.s1) || b.u2 < b.l1) {
			snprintf(err, errlen, "cursor expired: it is ahead of this database "
			         "(restored from an older backup?); re-sync");
			rc = CHANGES_GONE;
			goto out;
		}
		b.last = 0;
	}
	xip = changes_xip_array(b.s1);
	snprintf(p_l1, sizeof p_l1, "%" PRId64, b.l1);
	snprintf(p_lim, sizeof p_lim, "%d", limit + 1);
	snprintf(p_bytes, sizeof p_bytes, "%d", CHANGES_PAGE_BYTES);
	/* Each query looks at ids up to hi only (a window of changes_window ids past where the
	 * id arm starts), so a page costs O(window) even when the id range is full of rows it
	 * must skip (a huge transaction read by txid, or one still running). A window without
	 * rows is skipped here, up to CHANGES_WINDOWS times; then a short page is returned with
	 * more=true and `last` at the window's end (every id up to it was examined). */
	for (int w = 0;; w++) {
		int64_t lo = b.last > b.l1 ? b.last : b.l1;

		hi = b.u2 - lo > changes_window ? lo + changes_window : b.u2;
		windowed = hi < b.u2;
		snprintf(p_last, sizeof p_last, "%" PRId64, b.last);
		snprintf(p_hi, sizeof p_hi, "%" PRId64, hi);
		PQclear(res);
		{
			const char *params[10] = { xip, p_last, p_l1, p_hi, b.s2, b.s1, tables, p_lim,
			                           peer, p_bytes };
			res = changes_page_query(c, params);
		}
		if (!res)
			goto out;
		if (PQntuples(res) < 1) {
			log_error("read changes: tdgl.meta is empty (run tdgl-primary migrate)");
			goto out;
		}
		pb = strtoll(PQgetvalue(res, 0, PAGE_PB), NULL, 10);
		xmax = strtoll(PQgetvalue(res, 0, PAGE_XMAX), NULL, 10);
		seq = strtoll(PQgetvalue(res, 0, PAGE_SEQ), NULL, 10);
		if ((uint64_t)pb > cursor_snapshot_xmin(b.s1)) {
			snprintf(err, errlen, "cursor expired: the changes it needs were purged; re-sync");
			rc = CHANGES_GONE;
			goto out;
		}
		if (cursor_snapshot_xmax(b.s2) > (uint64_t)xmax || b.u2 > seq) {
			snprintf(err, errlen, "cursor expired: it is ahead of this database "
			         "(restored from an older backup?); re-sync");
			rc = CHANGES_GONE;
			goto out;
		}
		rows = PQgetisnull(res, 0, PAGE_ID) ? 0 : PQntuples(res);
		if (rows > 0 || !windowed || w + 1 >= CHANGES_WINDOWS)
			break;
		/* Nothing up to hi: move on, over any gap in the ids (rolled-back transactions).
		 * Every change of this batch committed before s2, so the next id this statement
		 * sees bounds the next change of the batch. */
		b.last = hi;
		if (PQgetisnull(res, 0, PAGE_NXT))
			b.last = b.u2;
		else if (strtoll(PQgetvalue(res, 0, PAGE_NXT), NULL, 10) - 1 > hi)
			b.last = strtoll(PQgetvalue(res, 0, PAGE_NXT), NULL, 10) - 1;
		if (b.last > b.u2)
			b.last = b.u2;
	}
	/* the rows the query found, before the page's byte budget cut them */
	total = rows > 0 ? strtoll(PQgetvalue(res, 0, PAGE_TOTAL), NULL, 10) : 0;
	n = rows > limit ? limit : rows;
	ord = changes_order(res, rows);
	for (int i = 0; i < n; i++) {
		if (i)
			buf_append(&page->items, ",", 1);
		changes_item(&page->items, res, ord[i].i, peer != NULL);
	}
	page->count = n;
	if (peer)
		snprintf(page->site, sizeof page->site, "%s", PQgetvalue(res, 0, PAGE_SITE));
	changes_copy_cursor(&page->next, &b);
	if (total > n) {
		/* More in this batch (past the limit or the byte budget): stay inside it, after
		 * the last id served. */
		page->next.last = ord[n - 1].id;
		page->more = 1;
		page->horizon = cursor_snapshot_xmin(b.s1);
	} else if (windowed) {
		/* Every id up to hi was examined: continue after the window. */
		page->next.last = hi;
		page->more = 1;
		page->horizon = cursor_snapshot_xmin(b.s1);
	} else {
		/* Batch done: a closed cursor at s2. More only if ids were taken since u2. */
		free(page->next.s1);
		page->next.s1 = NULL;
		page->next.open = 0;
		page->next.l1 = 0;
		page->next.last = 0;
		page->more = seq > b.u2;
		page->horizon = cursor_snapshot_xmin(b.s2);
	}
	rc = CHANGES_OK;
out:
	if (rc != CHANGES_OK)
		changes_page_free(page);
	PQclear(res);
	free(ord);
	free(xip);
	cursor_free(&b);
	return rc;
}

void changes_set_window(long ids)
{
	if (ids > 0)
		changes_window = ids;
}

void changes_page_free(struct changes_page *page)
{
	buf_free(&page->items);
	cursor_free(&page->next);
	memset(page, 0, sizeof(*page));
}
