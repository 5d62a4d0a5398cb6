/* metrics: process-wide counters of the replica (atomic), printed in the Prometheus text
 * format for GET /metrics. */
#ifndef TDGL_REPLICA_METRICS_H
#define TDGL_REPLICA_METRICS_H
#include "common/buf.h"

enum metric {
	M_PULLS, M_PULL_FAILURES, M_PAGES, M_CHANGES_FETCHED, M_CHANGES_SYNCED,
	M_CHANGES_FAILED, M_CHANGES_SKIPPED, M_CONFLICTS, M_NOTIFY_ACCEPTED, M_NOTIFY_REFUSED,
	M_FILES_FETCHED, M_FILES_FAILED, M_HTTP_REQUESTS, M_COUNT
};

void metrics_add(enum metric m, long n);
/* Appends the exposition text to out. */
void metrics_render(struct buf *out);

#endif
