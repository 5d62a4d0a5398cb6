/* metrics: counters as relaxed atomics; values only ever grow. Gauges (lag, conflicts,
 * failed changes, last run) are read from the database at scrape time, so they also count
 * what CLI pulls did. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "common/db.h"
#include "common/http.h"
#include "replica/metrics.h"

/* Per source: lag (now - the primary's capture time of the newest change applied), cursor
 * age (since the cursor last moved), last run, open conflicts, failed changes. */
static const char Q_SOURCES[] =
	"SELECT s.name, extract(epoch FROM now() - s.last_change_at)::float8, "
	"extract(epoch FROM now() - s.cursor_moved_at)::float8, coalesce(s.last_status, ''), "
	"extract(epoch FROM s.last_run_at)::float8, "
	"(SELECT count(*) FROM tdgl_replica.conflicts c WHERE c.source = s.name AND c.status = 'Open'), "
	"(SELECT count(*) FROM tdgl_replica.sync_log l WHERE l.source = s.name AND l.status = 'Failed') "
	"FROM tdgl_replica.sources s ORDER BY s.name";

/* Per table: the last verification (replica/verify.c): rows that differed, and when. */
static const char Q_VERIFY[] =
	"SELECT DISTINCT ON (source, tbl) source, tbl, "
	"CASE WHEN status = 'failed' THEN NULL ELSE missing + extra + different END, "
	"extract(epoch FROM finished_at)::float8 "
	"FROM tdgl_replica.verifications ORDER BY source, tbl, id DESC";

static const char *const metrics_run_statuses[] = { "Success", "Partial", "Failed", "Skipped",
                                                    "Interrupted" };

static atomic_long metrics_values[M_COUNT];

static const struct { const char *name, *help; } metrics_info[M_COUNT] = {
	[M_PULLS] = { "tdgl_replica_pulls_total", "Pulls run" },
	[M_PULL_FAILURES] = { "tdgl_replica_pull_failures_total", "Pulls that failed" },
	[M_PAGES] = { "tdgl_replica_pages_total", "Pages applied" },
	[M_CHANGES_FETCHED] = { "tdgl_replica_changes_fetched_total", "Changes and rows fetched" },
	[M_CHANGES_SYNCED] = { "tdgl_replica_changes_synced_total", "Changes applied" },
	[M_CHANGES_FAILED] = { "tdgl_replica_changes_failed_total", "Changes that failed" },
	[M_CHANGES_SKIPPED] = { "tdgl_replica_changes_skipped_total", "Changes skipped" },
	[M_CONFLICTS] = { "tdgl_replica_conflicts_total",
	                  "Conflicts opened for an admin (a change met a local edit)" },
	[M_CONFLICTS_RESOLVED] = { "tdgl_replica_conflicts_resolved_total",
	                           "Conflicts of two-way tables decided by their conflict policy" },
	[M_NOTIFY_ACCEPTED] = { "tdgl_replica_notify_accepted_total", "Push notifications accepted" },
	[M_NOTIFY_REFUSED] = { "tdgl_replica_notify_refused_total", "Push notifications refused" },
	[M_FILES_FETCHED] = { "tdgl_replica_files_fetched_total", "Attachment files fetched" },
	[M_FILES_FAILED] = { "tdgl_replica_files_failed_total", "Attachment fetches that failed" },
	[M_HTTP_REQUESTS] = { "tdgl_replica_http_requests_total", "Admin API requests" },
	[M_PURGED_LOG_ENTRIES] = { "tdgl_replica_purged_log_entries_total",
	                           "Sync log entries deleted by the retention purge" },
	[M_PURGED_RUNS] = { "tdgl_replica_purged_runs_total", "Runs deleted by the retention purge" },
	[M_RUNS_INTERRUPTED] = { "tdgl_replica_runs_interrupted_total",
	                         "Runs found left Running by a killed or crashed process and closed" },
};

void metrics_add(enum metric m, long n)
{
	if (m >= 0 && m < M_COUNT)
		atomic_fetch_add_explicit(&metrics_values[m], n, memory_order_relaxed);
}

void metrics_render(struct buf *out)
{
	for (int i = 0; i < M_COUNT; i++)
		buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %ld\n", metrics_info[i].name,
		           metrics_info[i].help, metrics_info[i].name, metrics_info[i].name,
		           atomic_load_explicit(&metrics_values[i], memory_order_relaxed));
	buf_printf(out, "# HELP tdgl_replica_http_protocol_errors_total Requests refused or cut "
	           "before a handler ran (malformed, aborted, over a connection limit, too slow)\n"
	           "# TYPE tdgl_replica_http_protocol_errors_total counter\n"
	           "tdgl_replica_http_protocol_errors_total %lu\n", http_protocol_errors());
}

/* A label value with \\, " and newline escaped as the text format requires. */
static void metrics_label(struct buf *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			buf_printf(out, "\\%c", *v);
		else if (*v == '\n')
			buf_puts(out, "\\n");
		else
			buf_printf(out, "%c", *v);
	}
}

/* One gauge family: HELP/TYPE, then one sample per source row whose column col is not NULL. */
static void metrics_family(struct buf *out, const PGresult *res, int col, const char *name,
                           const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (int i = 0; i < PQntuples(res); i++) {
		if (PQgetisnull(res, i, col))
			continue;
		buf_printf(out, "%s{source=\"", name);
		metrics_label(out, PQgetvalue(res, i, 0));
		buf_printf(out, "\"} %s\n", PQgetvalue(res, i, col));
	}
}

/* The last verification of each table: differing rows and its time. */
static void metrics_verify(PGconn *c, struct buf *out)
{
	static const char *const names[2][2] = {
		{ "tdgl_replica_verify_differences",
		  "Rows missing, extra or different in the table's last verification" },
		{ "tdgl_replica_verify_timestamp_seconds", "Unix time of the table's last verification" },
	};
	PGresult *res = db_exec(c, "metrics: verifications", Q_VERIFY, 0, NULL);

	for (int f = 0; res && f < 2; f++) {
		buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", names[f][0], names[f][1],
		           names[f][0]);
		for (int i = 0; i < PQntuples(res); i++) {
			if (PQgetisnull(res, i, 2 + f))
				continue;
			buf_printf(out, "%s{source=\"", names[f][0]);
			metrics_label(out, PQgetvalue(res, i, 0));
			buf_puts(out, "\",table=\"");
			metrics_label(out, PQgetvalue(res, i, 1));
			buf_printf(out, "\"} %s\n", PQgetvalue(res, i, 2 + f));
		}
	}
	PQclear(res);
}

int metrics_render_db(PGconn *c, struct buf *out)
{
	PGresult *res = c ? db_exec(c, "metrics", Q_SOURCES, 0, NULL) : NULL;
	long long conflicts = 0, failed = 0;
	int rc = -1;

	buf_puts(out, "# HELP tdgl_replica_applies_total Changes handled by this process, "
	              "by status\n# TYPE tdgl_replica_applies_total counter\n");
	buf_printf(out, "tdgl_replica_applies_total{status=\"Synced\"} %ld\n",
	           atomic_load_explicit(&metrics_values[M_CHANGES_SYNCED], memory_order_relaxed));
	buf_printf(out, "tdgl_replica_applies_total{status=\"Failed\"} %ld\n",
	           atomic_load_explicit(&metrics_values[M_CHANGES_FAILED], memory_order_relaxed));
	buf_printf(out, "tdgl_replica_applies_total{status=\"Skipped\"} %ld\n",
	           atomic_load_explicit(&metrics_values[M_CHANGES_SKIPPED], memory_order_relaxed));
	buf_puts(out, "# HELP tdgl_replica_database_up Whether the replica database answered "
	              "the metrics query\n# TYPE tdgl_replica_database_up gauge\n");
	if (!res) {
		buf_puts(out, "tdgl_replica_database_up 0\n");
		goto out;
	}
	buf_puts(out, "tdgl_replica_database_up 1\n");
	for (int i = 0; i < PQntuples(res); i++) {
		conflicts += atoll(PQgetvalue(res, i, 5));
		failed += atoll(PQgetvalue(res, i, 6));
	}
	buf_printf(out, "# HELP tdgl_replica_open_conflicts Open conflicts, all sources\n"
	           "# TYPE tdgl_replica_open_conflicts gauge\ntdgl_replica_open_conflicts %lld\n",
	           conflicts);
	buf_printf(out, "# HELP tdgl_replica_failed_changes Changes logged Failed, all sources\n"
	           "# TYPE tdgl_replica_failed_changes gauge\ntdgl_replica_failed_changes %lld\n",
	           failed);
	metrics_family(out, res, 1, "tdgl_replica_lag_seconds",
	               "Now minus the primary's capture time of the newest change applied");
	metrics_family(out, res, 2, "tdgl_replica_cursor_age_seconds",
	               "Seconds since the source's cursor last moved");
	metrics_family(out, res, 4, "tdgl_replica_last_run_timestamp_seconds",
	               "Unix time of the source's last pull");
	metrics_family(out, res, 5, "tdgl_replica_source_open_conflicts",
	               "Open conflicts of the source");
	metrics_family(out, res, 6, "tdgl_replica_source_failed_changes",
	               "Changes of the source logged Failed");
	buf_puts(out, "# HELP tdgl_replica_last_run_status Status of the source's last pull "
	              "(1 for the current status)\n# TYPE tdgl_replica_last_run_status gauge\n");
	for (int i = 0; i < PQntuples(res); i++) {
		const char *st = PQgetvalue(res, i, 3);
		int known = 0;

		for (size_t k = 0; k < sizeof metrics_run_statuses / sizeof *metrics_run_statuses; k++) {
			int cur = !strcmp(st, metrics_run_statuses[k]);
			known |= cur;
			buf_puts(out, "tdgl_replica_last_run_status{source=\"");
			metrics_label(out, PQgetvalue(res, i, 0));
			buf_printf(out, "\",status=\"%s\"} %d\n", metrics_run_statuses[k], cur);
		}
		if (!known && *st) {
			buf_puts(out, "tdgl_replica_last_run_status{source=\"");
			metrics_label(out, PQgetvalue(res, i, 0));
			buf_puts(out, "\",status=\"");
			metrics_label(out, st);
			buf_puts(out, "\"} 1\n");
		}
	}
	metrics_verify(c, out);
	rc = 0;
out:
	PQclear(res);
	return rc;
}
