/* retry: re-applying Failed changes; see retry.h. Each retry is one transaction:
 * lock the log row, check for a superseding change, then apply under a savepoint so that a
 * failure can still be recorded on the row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/db.h"
#include "common/log.h"
#include "replica/retry.h"
#include "replica/run.h"

enum retry_outcome { RETRY_SYNCED, RETRY_SKIPPED, RETRY_FAILED, RETRY_NOT_DUE, RETRY_DBERR };

static const char Q_LOCK[] =
	"SELECT s.source, s.tbl, coalesce(s.pk, (SELECT jsonb_object_agg(k, "
	"(s.change -> 'row')::jsonb -> k) FROM unnest(tdgl_replica.pk_columns(tdgl_replica.local_table(s.tbl))) k)"
	")::text, s.change IS NOT NULL, "
	"s.next_retry_at IS NOT NULL AND s.next_retry_at <= now() "
	"AND s.attempts - 1 < src.max_retries "
	"FROM tdgl_replica.sync_log s JOIN tdgl_replica.sources src ON src.name = s.source "
	"WHERE s.id = $1 AND s.status = 'Failed' FOR UPDATE OF s";
/* A later change of the same row was applied since this one failed (a row copied by an
 * initial sync has no key in its log entry: the key comes from its snapshot). A Synced row
 * holds the keys of every change its statement synced (pks), an older one its own (pk). */
static const char Q_SUPERSEDED[] =
	"SELECT EXISTS (SELECT 1 FROM tdgl_replica.sync_log l WHERE l.source = $1 AND l.tbl = $2 "
	"AND l.status = 'Synced' AND l.id > $4 AND $3::jsonb = ANY (coalesce(l.pks, ARRAY[l.pk])))";
static const char Q_MARK_SUPERSEDED[] =
	"UPDATE tdgl_replica.sync_log SET status = 'Skipped', reason = 'superseded by a later change', "
	"next_retry_at = NULL, run_id = $2 WHERE id = $1";
static const char Q_LOG_HEAD[] = "SELECT coalesce(max(id), 0) FROM tdgl_replica.sync_log";
/* tdgl.applying, the replica role when permitted, else constraints checked at once (a
 * deferred key would otherwise fail the COMMIT, past the savepoint that records it) */
static const char Q_APPLYING[] = "SELECT tdgl_replica.apply_mode()";
/* through the apply core, as the pull would have (its outcome is logged as a new row) */
static const char Q_APPLY[] =
	"SELECT (tdgl_replica.apply_run(s.source, $2::bigint, s.tbl, tdgl_replica.op_class(s.change->>'op'), "
	"ARRAY[ROW(1, (s.change->>'id')::bigint, s.change->>'op', "
	"CASE WHEN json_typeof(s.change->'pk') = 'object' THEN s.change->'pk' END, "
	"CASE WHEN json_typeof(s.change->'old_pk') = 'object' THEN s.change->'old_pk' END, "
	"CASE WHEN json_typeof(s.change->'row') = 'object' THEN s.change->'row' END, "
	"CASE WHEN json_typeof(s.change->'version') = 'object' THEN s.change->'version' END)"
	"::tdgl_replica.change])).fetched FROM tdgl_replica.sync_log s WHERE s.id = $1";
/* apply_run logged the outcome as a new row of this run: fold it into the retried row. */
static const char Q_TAKE_OUTCOME[] =
	"DELETE FROM tdgl_replica.sync_log WHERE run_id = $1 AND id > $2 RETURNING status, reason";
static const char Q_MARK_DONE[] =
	"UPDATE tdgl_replica.sync_log SET status = $2, reason = $3, error = NULL, sqlstate = NULL, "
	"attempts = attempts + 1, next_retry_at = NULL, run_id = $4 WHERE id = $1";
static const char Q_MARK_FAILED[] =
	"UPDATE tdgl_replica.sync_log l SET attempts = l.attempts + 1, error = $2, sqlstate = $3, "
	"run_id = $4, next_retry_at = CASE WHEN l.attempts < src.max_retries "
	"THEN tdgl_replica.retry_due_at(src.retry_base_s, l.attempts) END "
	"FROM tdgl_replica.sources src WHERE l.id = $1 AND src.name = l.source";
static const char Q_DUE[] =
	"SELECT s.id FROM tdgl_replica.sync_log s JOIN tdgl_replica.sources src ON src.name = s.source "
	"WHERE s.source = $1 AND s.status = 'Failed' AND s.next_retry_at <= now() "
	"AND s.attempts - 1 < src.max_retries AND s.run_id IS DISTINCT FROM $2::bigint "
	"ORDER BY s.id LIMIT 1000";
static const char Q_NEXT_DUE[] =
	"SELECT coalesce(floor(extract(epoch FROM min(s.next_retry_at)))::bigint, 0) "
	"FROM tdgl_replica.sync_log s JOIN tdgl_replica.sources src ON src.name = s.source "
	"WHERE s.source = $1 AND s.status = 'Failed' AND s.next_retry_at IS NOT NULL "
	"AND s.attempts - 1 < src.max_retries";
static const char Q_FAILED_IDS[] =
	"SELECT id FROM tdgl_replica.sync_log WHERE status = 'Failed' AND source = $1 ORDER BY id "
	"LIMIT 10000";
static const char Q_FAILED_SOURCES[] =
	"SELECT DISTINCT source FROM tdgl_replica.sync_log WHERE status = 'Failed' "
	"AND ($1::text IS NULL OR source = $1) ORDER BY source";
static const char Q_ENTRY[] =
	"SELECT json_build_object('id', id, 'source', source, 'change_id', change_id, "
	"'table', tbl, 'pk', pk, 'op', op, 'status', status, 'reason', reason, 'error', error, "
	"'sqlstate', sqlstate, 'attempts', attempts, 'next_retry_at', next_retry_at, "
	"'run_id', run_id, 'created_at', created_at)::text FROM tdgl_replica.sync_log WHERE id = $1";
static const char Q_ENTRY_SOURCE[] = "SELECT source, status FROM tdgl_replica.sync_log WHERE id = $1";

static int retry_tx(PGconn *c, const char *sql)
{
	return db_run(c, sql, sql, 0, NULL);
}

#define RETRY_FORCE 1     /* whatever next_retry_at and attempts say */
#define RETRY_KEEP  2     /* a change that fails again is left as it was (nothing counted),
                           * and nothing is logged: the caller sums up */

static const char Q_RUN_KEY_FAILED[] =
	"SELECT id FROM tdgl_replica.sync_log WHERE run_id = $1 AND status = 'Failed' "
	"AND sqlstate = '23503' ORDER BY id";

/* One retry (flags: RETRY_*). */
static enum retry_outcome retry_one(PGconn *c, long log_id, long run_id, int flags)
{
	char lid[32], rid[32], head[32], msg[1024], state[8];
	const char *p[4];
	PGresult *res = NULL, *ap = NULL;
	enum retry_outcome rc = RETRY_DBERR;
	int force = flags & RETRY_FORCE;

	snprintf(lid, sizeof lid, "%ld", log_id);
	snprintf(rid, sizeof rid, "%ld", run_id);
	if (retry_tx(c, "BEGIN") < 0)
		return RETRY_DBERR;
	p[0] = lid;
	if (!(res = db_exec(c, "retry: lock", Q_LOCK, 1, p)))
		goto rollback;
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 3), "t") ||
	    (!force && strcmp(PQgetvalue(res, 0, 4), "t"))) {
		rc = RETRY_NOT_DUE;
		goto commit;
	}
	if (!PQgetisnull(res, 0, 2)) {
		PGresult *sr;
		const char *sp[4] = { PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
		                      PQgetvalue(res, 0, 2), lid };

		if (!(sr = db_exec(c, "retry: superseded", Q_SUPERSEDED, 4, sp)))
			goto rollback;
		if (!strcmp(PQgetvalue(sr, 0, 0), "t")) {
			const char *mp[2] = { lid, rid };

			PQclear(sr);
			if (db_run(c, "retry: superseded", Q_MARK_SUPERSEDED, 2, mp) < 0)
				goto rollback;
			if (!(flags & RETRY_KEEP))
				log_info("retry of log %ld: superseded by a later change, skipped", log_id);
			rc = RETRY_SKIPPED;
			goto commit;
		}
		PQclear(sr);
	}
	{
		PGresult *hr = db_exec(c, "retry: log head", Q_LOG_HEAD, 0, NULL);

		if (!hr)
			goto rollback;
		snprintf(head, sizeof head, "%s", PQgetvalue(hr, 0, 0));
		PQclear(hr);
	}
	if (!(ap = db_exec(c, "retry: applying", Q_APPLYING, 0, NULL)) ||
	    retry_tx(c, "SAVEPOINT tdgl_retry") < 0)
		goto rollback;
	PQclear(ap);
	p[1] = rid;
	if ((ap = db_exec(c, "retry: apply", Q_APPLY, 2, p))) {
		PGresult *or;
		const char *op[2] = { rid, head };

		PQclear(ap);
		ap = NULL;
		if (retry_tx(c, "RELEASE SAVEPOINT tdgl_retry") < 0 ||
		    !(or = db_exec(c, "retry: outcome", Q_TAKE_OUTCOME, 2, op)))
			goto rollback;
		{
			const char *st = PQntuples(or) ? PQgetvalue(or, 0, 0) : "Synced";
			const char *reason = PQntuples(or) && !PQgetisnull(or, 0, 1)
			                     ? PQgetvalue(or, 0, 1) : NULL;
			const char *dp[4] = { lid, st, reason, rid };

			rc = !strcmp(st, "Synced") ? RETRY_SYNCED : RETRY_SKIPPED;
			if (db_run(c, "retry: done", Q_MARK_DONE, 4, dp) < 0) {
				PQclear(or);
				goto rollback;
			}
			if (!(flags & RETRY_KEEP))
				log_info("retry of log %ld: %s%s%s", log_id, st, reason ? ": " : "",
				         reason ? reason : "");
		}
		PQclear(or);
	} else if (flags & RETRY_KEEP) {
		PQclear(res);
		retry_tx(c, "ROLLBACK");
		return RETRY_FAILED;
	} else {
		const char *fp[4] = { lid, msg, state, rid };

		snprintf(msg, sizeof msg, "%s", db_last_error());
		snprintf(state, sizeof state, "%s", db_last_sqlstate());
		if (retry_tx(c, "ROLLBACK TO SAVEPOINT tdgl_retry") < 0 ||
		    db_run(c, "retry: failed", Q_MARK_FAILED, 4, fp) < 0)
			goto rollback;
		log_warn("retry of log %ld failed again: %s", log_id, msg);
		rc = RETRY_FAILED;
	}
commit:
	PQclear(res);
	if (retry_tx(c, "COMMIT") < 0)
		return RETRY_DBERR;
	return rc;
rollback:
	PQclear(res);
	PQclear(ap);
	retry_tx(c, "ROLLBACK");
	return RETRY_DBERR;
}

static void retry_count(struct retry_counts *n, enum retry_outcome o)
{
	if (o == RETRY_NOT_DUE || o == RETRY_DBERR)
		return;
	n->tried++;
	if (o == RETRY_SYNCED)
		n->synced++;
	else if (o == RETRY_SKIPPED)
		n->skipped++;
	else
		n->failed++;
}

/* Retries the ids of res (column 0) inside run_id. -1 on a database error. */
static int retry_ids(PGconn *c, PGresult *res, long run_id, int force, struct retry_counts *n)
{
	for (int i = 0; i < PQntuples(res); i++) {
		enum retry_outcome o = retry_one(c, atol(PQgetvalue(res, i, 0)), run_id,
		                                 force ? RETRY_FORCE : 0);

		if (o == RETRY_DBERR)
			return -1;
		retry_count(n, o);
	}
	return 0;
}

long retry_due(PGconn *c, const char *source, long run_id, struct retry_counts *n)
{
	char rid[32];
	const char *p[2] = { source, rid };
	PGresult *res;
	struct retry_counts mine = { 0 };
	int rc;

	snprintf(rid, sizeof rid, "%ld", run_id);   /* not what failed in this very run */
	if (!(res = db_exec(c, "retry: due", Q_DUE, 2, p)))
		return -1;
	rc = retry_ids(c, res, run_id, 0, &mine);
	PQclear(res);
	if (mine.tried)
		run_add(c, run_id, 0, mine.synced, mine.failed, mine.skipped, 0);
	if (n) {
		n->tried += mine.tried;
		n->synced += mine.synced;
		n->failed += mine.failed;
		n->skipped += mine.skipped;
	}
	return rc < 0 ? -1 : mine.tried;
}

long retry_run_keys(PGconn *c, long run_id, struct retry_counts *n)
{
	char rid[32];
	const char *p[1] = { rid };
	struct retry_counts mine = { 0 };
	long round;

	snprintf(rid, sizeof rid, "%ld", run_id);
	do {
		PGresult *res = db_exec(c, "retry: key failures", Q_RUN_KEY_FAILED, 1, p);

		if (!res)
			return -1;
		round = 0;
		for (int i = 0; i < PQntuples(res); i++) {
			enum retry_outcome o = retry_one(c, atol(PQgetvalue(res, i, 0)), run_id,
			                                 RETRY_FORCE | RETRY_KEEP);

			if (o == RETRY_DBERR) {
				PQclear(res);
				return -1;
			}
			if (o == RETRY_SYNCED || o == RETRY_SKIPPED) {
				retry_count(&mine, o);
				round++;
			}
		}
		PQclear(res);
	} while (round > 0);
	if (mine.tried)
		run_add(c, run_id, 0, mine.synced, -mine.tried, mine.skipped, 0);
	if (n)
		*n = mine;
	return mine.tried;
}

time_t retry_next_due(PGconn *c, const char *source)
{
	const char *p[1] = { source };
	PGresult *res = db_exec(c, "retry: next due", Q_NEXT_DUE, 1, p);
	time_t t = 0;

	if (res && PQntuples(res) == 1)
		t = (time_t)atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	return t;
}

cJSON *retry_log_entry(PGconn *c, long log_id)
{
	char lid[32];
	const char *p[1] = { lid };
	PGresult *res;
	cJSON *o = NULL;

	snprintf(lid, sizeof lid, "%ld", log_id);
	res = db_exec(c, "log entry", Q_ENTRY, 1, p);
	if (res && PQntuples(res) == 1)
		o = cJSON_Parse(PQgetvalue(res, 0, 0));
	PQclear(res);
	return o;
}

/* Finishes a Retry run from its counts. */
static cJSON *retry_finish_run(PGconn *c, long run_id, const struct retry_counts *n, int dberr)
{
	run_add(c, run_id, 0, n->synced, n->failed, n->skipped, 0);
	return run_finish(c, run_id, dberr ? "Failed" : n->failed ? "Partial" : "Success",
	                  dberr ? "database error during the retry" : NULL);
}

enum result retry_entry(PGconn *c, long log_id, cJSON **out, char *err, size_t errlen)
{
	char lid[32];
	const char *p[1] = { lid };
	struct retry_counts n = { 0 };
	PGresult *res = NULL;
	cJSON *runrow = NULL;
	enum result rc = RESULT_INTERNAL;
	enum retry_outcome o;
	long run_id;

	*out = NULL;
	snprintf(lid, sizeof lid, "%ld", log_id);
	if (!(res = db_exec(c, "log entry", Q_ENTRY_SOURCE, 1, p))) {
		snprintf(err, errlen, "database error");
		goto out;
	}
	if (PQntuples(res) != 1) {
		rc = RESULT_NOT_FOUND;
		snprintf(err, errlen, "log entry %ld not found", log_id);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "Failed")) {
		rc = RESULT_CONFLICT;
		snprintf(err, errlen, "log entry %ld is %s: only Failed changes are retried", log_id,
		         PQgetvalue(res, 0, 1));
		goto out;
	}
	if (!(run_id = run_start(c, PQgetvalue(res, 0, 0), "Retry", 0))) {
		snprintf(err, errlen, "database error");
		goto out;
	}
	o = retry_one(c, log_id, run_id, RETRY_FORCE);
	retry_count(&n, o);
	runrow = retry_finish_run(c, run_id, &n, o == RETRY_DBERR);
	if (o == RETRY_DBERR) {
		snprintf(err, errlen, "database error during the retry");
		goto out;
	}
	*out = cJSON_CreateObject();
	cJSON_AddItemToObject(*out, "entry", retry_log_entry(c, log_id));
	cJSON_AddItemToObject(*out, "run", runrow ? runrow : cJSON_CreateNull());
	runrow = NULL;
	rc = RESULT_OK;
out:
	cJSON_Delete(runrow);
	PQclear(res);
	return rc;
}

enum result retry_all_failed(PGconn *c, const char *source, cJSON **out, char *err,
                             size_t errlen)
{
	const char *p[1] = { source };
	PGresult *srcs = NULL;
	enum result rc = RESULT_INTERNAL;

	*out = NULL;
	if (!(srcs = db_exec(c, "failed sources", Q_FAILED_SOURCES, 1, p))) {
		snprintf(err, errlen, "database error");
		goto out;
	}
	*out = cJSON_CreateArray();
	for (int i = 0; i < PQntuples(srcs); i++) {
		const char *sp[1] = { PQgetvalue(srcs, i, 0) };
		struct retry_counts n = { 0 };
		PGresult *ids;
		cJSON *row;
		long run_id;
		int r;

		if (!(run_id = run_start(c, sp[0], "Retry", 0)))
			goto dberr;
		ids = db_exec(c, "failed changes", Q_FAILED_IDS, 1, sp);
		r = ids ? retry_ids(c, ids, run_id, 1, &n) : -1;
		PQclear(ids);
		row = retry_finish_run(c, run_id, &n, r < 0);
		if (row)
			cJSON_AddItemToArray(*out, row);
		if (r < 0)
			goto dberr;
	}
	rc = RESULT_OK;
	goto out;
dberr:
	snprintf(err, errlen, "database error during the retry");
out:
	PQclear(srcs);
	return rc;
}
