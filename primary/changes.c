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
#include "primary/changes.h"

#define CHANGES_WINDOWS 16     /* empty windows skipped within one request */

static int64_t changes_window = CHANGES_WINDOW_DEFAULT;   /* ids examined per query */

static const char Q_SEQ[] =
	"SELECT coalesce(pg_sequence_last_value('tdgl.change_log_id_seq'::regclass), 0)";
static const char Q_SNAPSHOT[] = "SELECT pg_current_snapshot()::text";
/* Assigns (and, in autocommit, commits) an xid: see the l bound above. */
static const char Q_XID[] = "SELECT pg_current_xact_id()";

/* Session settings of the serving connections. Page queries must stay ordered index scans
 * of a few hundred rows. Right after a large transaction, before autovacuum has analyzed
 * tdgl.change_log, the planner has no correlation and a default selectivity for the id range
 * and prefers a bitmap heap scan of the whole window plus a sort, on every page (8 ms instead
 * of 1.5 ms per page of 500 over a 200k-row transaction). Without bitmap scans the only
 * alternative left, a sequential scan, is costed on the table's real size, so the ordered
 * index scan wins whatever the statistics say. Every other query on these connections is a
 * key lookup or a keyset page (ORDER BY key LIMIT n), which wants the same plan. JIT off:
 * these are short queries, and a misestimated one would pay tens of ms of compilation. */
static const char Q_SESSION[] =
	"SELECT set_config('enable_bitmapscan', 'off', false), set_config('jit', 'off', false)";

/* One statement, so the purge horizon it reads (m.pb) and the rows it reads come from the
 * same snapshot: a concurrent purge is seen either not at all or completely.
 * $1 xip of s1 (xid8[]), $2 last, $3 l1, $4 upper id bound (u2 or the window's end),
 * $5 s2, $6 s1, $7 tables (text[] or NULL),
 * $8 limit + 1. Both arms are index scans with their own ORDER BY/LIMIT: the first walks
 * (txid, id) per listed transaction that became visible (so a huge transaction pages in
 * O(limit) per page), the second walks the primary key from max(last, l1) up to u2. */
static const char Q_PAGE[] =
	"WITH m AS (SELECT purged_below_txid AS pb,"
	"   pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax,"
	"   coalesce(pg_sequence_last_value('tdgl.change_log_id_seq'::regclass), 0) AS seq,"
	"   (SELECT min(id) FROM tdgl.change_log WHERE id > $4::bigint) AS nxt"
	"   FROM tdgl.meta WHERE id = 1) "
	"SELECT m.pb, m.xmax, m.seq, m.nxt, p.id, p.body FROM m LEFT JOIN LATERAL ("
	" SELECT c.id, '{\"id\":' || c.id || ',\"table\":' || to_json(c.tbl) ||"
	"   ',\"op\":' || to_json(c.op) || ',\"pk\":' || c.pk::text ||"
	"   ',\"old_pk\":' || coalesce(c.old_pk::text, 'null') ||"
	"   ',\"row\":' || coalesce(c.row::text, 'null') ||"
	"   ',\"changed_at\":' || to_json(c.changed_at) || '}' AS body"
	" FROM ((SELECT l.* FROM unnest($1::xid8[]) AS x(t)"
	"        CROSS JOIN LATERAL (SELECT * FROM tdgl.change_log l"
	"          WHERE l.txid = x.t AND l.id > $2::bigint AND l.id <= $4::bigint"
	"            AND ($7::text[] IS NULL OR l.tbl = ANY ($7::text[]))"
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
	"        ORDER BY l.id LIMIT $8::int)) c"
	" ORDER BY c.id LIMIT $8::int) p ON true "
	"ORDER BY p.id";

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

static int changes_read_snapshot(PGconn *c, char **out)
{
	PGresult *res = db_exec(c, "take snapshot", Q_SNAPSHOT, 0, NULL);
	int rc = -1;

	if (!res || PQntuples(res) != 1)
		goto out;
	*out = changes_strdup(PQgetvalue(res, 0, 0));
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* Four separate statements in autocommit (each its own transaction), in this order: the
 * sequence (l), a committed xid of our own, the snapshot, the sequence again (u). See the
 * bounds above for why each step must complete before the next starts. */
static int changes_take(PGconn *c, char **snap, int64_t *l, int64_t *u)
{
	*snap = NULL;
	if (changes_read_i64(c, "read change sequence", Q_SEQ, l) < 0 ||
	    db_run(c, "assign xid", Q_XID, 0, NULL) < 0 ||
	    changes_read_snapshot(c, snap) < 0 ||
	    changes_read_i64(c, "read change sequence", Q_SEQ, u) < 0) {
		free(*snap);
		*snap = NULL;
		return -1;
	}
	return 0;
}

int changes_session(PGconn *c)
{
	return db_run(c, "serving session settings", Q_SESSION, 0, NULL);
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

static void changes_copy_cursor(struct cursor *dst, const struct cursor *src)
{
	*dst = *src;
	dst->s1 = src->s1 ? changes_strdup(src->s1) : NULL;
	dst->s2 = src->s2 ? changes_strdup(src->s2) : NULL;
}

int changes_fetch(PGconn *c, const struct cursor *cur, const char *tables, int limit,
                  struct changes_page *page, char *err, size_t errlen)
{
	struct cursor b = {0};       /* the batch being read */
	PGresult *res = NULL;
	char *xip = NULL;
	char p_last[24], p_l1[24], p_hi[24], p_lim[16];
	int rc = CHANGES_ERROR, n = 0, rows = 0, windowed = 0;
	int64_t pb, xmax, seq = 0, hi = 0;

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
			const char *params[8] = { xip, p_last, p_l1, p_hi, b.s2, b.s1, tables, p_lim };
			res = db_exec(c, "read changes", Q_PAGE, 8, params);
		}
		if (!res)
			goto out;
		if (PQntuples(res) < 1) {
			log_error("read changes: tdgl.meta is empty (run tdgl-primary migrate)");
			goto out;
		}
		pb = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		xmax = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		seq = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
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
		rows = PQgetisnull(res, 0, 4) ? 0 : PQntuples(res);
		if (rows > 0 || !windowed || w + 1 >= CHANGES_WINDOWS)
			break;
		/* Nothing up to hi: move on, over any gap in the ids (rolled-back transactions).
		 * Every change of this batch committed before s2, so the next id this statement
		 * sees bounds the next change of the batch. */
		b.last = hi;
		if (PQgetisnull(res, 0, 3))
			b.last = b.u2;
		else if (strtoll(PQgetvalue(res, 0, 3), NULL, 10) - 1 > hi)
			b.last = strtoll(PQgetvalue(res, 0, 3), NULL, 10) - 1;
		if (b.last > b.u2)
			b.last = b.u2;
	}
	n = rows > limit ? limit : rows;
	for (int i = 0; i < n; i++) {
		if (i)
			buf_append(&page->items, ",", 1);
		buf_append(&page->items, PQgetvalue(res, i, 5), (size_t)PQgetlength(res, i, 5));
	}
	page->count = n;
	changes_copy_cursor(&page->next, &b);
	if (rows > limit) {
		/* More in this batch: stay inside it, after the last id served. */
		page->next.last = strtoll(PQgetvalue(res, n - 1, 4), NULL, 10);
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
