/* report: see report.h. */
#include <libpq-fe.h>
#include "common/db.h"
#include "replica/report.h"

/* ---- JSON (the admin API) ----
 * The log is read one entry per change (tdgl_replica.sync_entries): the changes one apply
 * statement synced share a log row, hence its id (seq orders them). */
static const char Q_LOG_JSON[] =
	"SELECT coalesce(json_agg(json_build_object('id', id, 'source', source, "
	"'change_id', change_id, 'table', tbl, 'pk', pk, 'op', op, 'status', status, "
	"'reason', reason, 'error', error, 'sqlstate', sqlstate, 'attempts', attempts, "
	"'next_retry_at', next_retry_at, 'run_id', run_id, 'created_at', created_at) "
	"ORDER BY id, seq), '[]')::text FROM (SELECT * FROM tdgl_replica.sync_entries "
	"WHERE ($1::text IS NULL OR lower(status) = lower($1)) "
	"AND ($2::text IS NULL OR source = $2) AND ($3::bigint IS NULL OR run_id = $3::bigint) "
	"ORDER BY id DESC, seq DESC LIMIT $4::int) l";
static const char Q_RUNS_JSON[] =
	"SELECT coalesce(json_agg(json_build_object('id', id, 'source', source, "
	"'trigger', trigger, 'started_at', started_at, 'ended_at', ended_at, "
	"'duration_ms', round(extract(epoch FROM ended_at - started_at) * 1000), "
	"'status', status, 'fetched', fetched, 'synced', synced, 'failed', failed, "
	"'skipped', skipped, 'conflicts', conflicts, 'resolved', resolved, 'pages', pages, "
	"'dry_run', dry_run, "
	"'error', error) ORDER BY id DESC), '[]')::text FROM (SELECT * FROM tdgl_replica.runs "
	"WHERE ($1::text IS NULL OR source = $1) ORDER BY id DESC LIMIT $2::int) r";
static const char Q_COUNTS_JSON[] =
	"SELECT json_build_object("
	"'open_conflicts', (SELECT count(*) FROM tdgl_replica.conflicts WHERE status = 'Open'), "
	"'failed_changes', (SELECT count(*) FROM tdgl_replica.sync_log WHERE status = 'Failed'), "
	"'local_edits', (SELECT count(*) FROM tdgl_replica.local_edits))::text";

/* ---- rows (the CLI's tab-separated tables) ---- */
static const char Q_LOG_ROWS[] =
	"SELECT id, coalesce(run_id::text, '-'), source, coalesce(change_id::text, '-'), tbl, "
	"op, status, coalesce(reason, error, ''), pk::text FROM tdgl_replica.sync_entries "
	"WHERE ($1::text IS NULL OR lower(status) = lower($1)) AND ($2::text IS NULL OR source = $2) "
	"ORDER BY id DESC, seq DESC LIMIT 200";
static const char Q_RUNS_ROWS[] =
	"SELECT id, source, trigger, status, fetched, synced, failed, skipped, conflicts, resolved, "
	"to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'), "
	"coalesce(round(extract(epoch FROM ended_at - started_at) * 1000)::text, '-'), "
	"coalesce(error, '') FROM tdgl_replica.runs WHERE ($1::text IS NULL OR source = $1) "
	"ORDER BY id DESC LIMIT 50";
/* lag: now - the primary's capture time of the newest change applied; cursor age: since the
 * cursor last moved ("-" until the first change arrives) */
static const char Q_SOURCES_ROWS[] =
	"SELECT s.name, s.enabled, s.cursor IS NOT NULL, "
	"coalesce(round(extract(epoch FROM now() - s.last_change_at))::text, '-'), "
	"coalesce(round(extract(epoch FROM now() - s.cursor_moved_at))::text, '-'), "
	"coalesce(s.last_status, '-'), "
	"coalesce(to_char(s.last_run_at, 'YYYY-MM-DD HH24:MI:SS'), '-'), "
	"(SELECT count(*) FROM tdgl_replica.conflicts c WHERE c.source = s.name AND c.status = 'Open'), "
	"(SELECT count(*) FROM tdgl_replica.sync_log l WHERE l.source = s.name AND l.status = 'Failed') "
	"FROM tdgl_replica.sources s ORDER BY s.name";

static const char Q_SITE[] = "SELECT tdgl_replica.site()::text";

void report_site(PGconn *c, char *out, size_t outlen)
{
	PGresult *res = db_exec(c, "site identity", Q_SITE, 0, NULL);

	snprintf(out, outlen, "%s", res && PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
}

PGresult *report_log_json(PGconn *c, const char *status, const char *source,
                          const char *run_id, const char *limit)
{
	const char *p[4] = { status, source, run_id, limit };

	return db_exec(c, "sync log", Q_LOG_JSON, 4, p);
}

PGresult *report_runs_json(PGconn *c, const char *source, const char *limit)
{
	const char *p[2] = { source, limit };

	return db_exec(c, "runs", Q_RUNS_JSON, 2, p);
}

PGresult *report_counts_json(PGconn *c)
{
	return db_exec(c, "status", Q_COUNTS_JSON, 0, NULL);
}

PGresult *report_log_rows(PGconn *c, const char *status, const char *source)
{
	const char *p[2] = { status, source };

	return db_exec(c, "log", Q_LOG_ROWS, 2, p);
}

PGresult *report_runs_rows(PGconn *c, const char *source)
{
	const char *p[1] = { source };

	return db_exec(c, "runs", Q_RUNS_ROWS, 1, p);
}

PGresult *report_sources_rows(PGconn *c)
{
	return db_exec(c, "status", Q_SOURCES_ROWS, 0, NULL);
}
