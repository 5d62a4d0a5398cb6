/* metrics: counters as relaxed atomics; values only ever grow. */
#include <stdatomic.h>
#include "replica/metrics.h"

static atomic_long metrics_values[M_COUNT];

static const struct { const char *name, *help; } metrics_info[M_COUNT] = {
	[M_PULLS] = { "tdgl_replica_pulls_total", "Pulls run" },
	[M_PULL_FAILURES] = { "tdgl_replica_pull_failures_total", "Pulls that failed" },
	[M_PAGES] = { "tdgl_replica_pages_total", "Pages applied" },
	[M_CHANGES_FETCHED] = { "tdgl_replica_changes_fetched_total", "Changes and rows fetched" },
	[M_CHANGES_SYNCED] = { "tdgl_replica_changes_synced_total", "Changes applied" },
	[M_CHANGES_FAILED] = { "tdgl_replica_changes_failed_total", "Changes that failed" },
	[M_CHANGES_SKIPPED] = { "tdgl_replica_changes_skipped_total", "Changes skipped" },
	[M_CONFLICTS] = { "tdgl_replica_conflicts_total", "Changes that met a local edit" },
	[M_NOTIFY_ACCEPTED] = { "tdgl_replica_notify_accepted_total", "Push notifications accepted" },
	[M_NOTIFY_REFUSED] = { "tdgl_replica_notify_refused_total", "Push notifications refused" },
	[M_FILES_FETCHED] = { "tdgl_replica_files_fetched_total", "Attachment files fetched" },
	[M_FILES_FAILED] = { "tdgl_replica_files_failed_total", "Attachment fetches that failed" },
	[M_HTTP_REQUESTS] = { "tdgl_replica_http_requests_total", "Admin API requests" },
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
}
