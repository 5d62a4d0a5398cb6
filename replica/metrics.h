/* metrics: process-wide counters of the replica (atomic), printed in the Prometheus text
 * format for GET /metrics. */
#ifndef TDGL_REPLICA_METRICS_H
#define TDGL_REPLICA_METRICS_H
#include <libpq-fe.h>
#include "common/buf.h"

enum metric {
	M_PULLS, M_PULL_FAILURES, M_PAGES, M_CHANGES_FETCHED, M_CHANGES_SYNCED,
	M_CHANGES_FAILED, M_CHANGES_SKIPPED, M_CONFLICTS, M_CONFLICTS_RESOLVED,
	M_NOTIFY_ACCEPTED, M_NOTIFY_REFUSED,
	M_FILES_FETCHED, M_FILES_FAILED, M_HTTP_REQUESTS, M_PURGED_LOG_ENTRIES, M_PURGED_RUNS,
	M_RUNS_INTERRUPTED, M_COUNT
};

void metrics_add(enum metric m, long n);
/* Appends the exposition text to out. */
void metrics_render(struct buf *out);
/* Appends the gauges read from the database through c (open conflicts, failed changes, and
 * per source: lag, cursor age, last run status). Returns 0, or -1 when the query failed
 * (tdgl_replica_database_up 0 is appended then). */
int metrics_render_db(PGconn *c, struct buf *out);

#endif
