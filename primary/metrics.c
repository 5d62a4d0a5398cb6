/* metrics: counters kept with atomics (no lock on the request path) and a Prometheus text
 * rendering; database figures are cheap estimates (no count(*) over the log). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/db.h"
#include "common/http.h"
#include "primary/admission.h"
#include "primary/flight.h"
#include "primary/metrics.h"

static const unsigned metrics_codes[] = {
	200, 202, 204, 304, 400, 401, 403, 404, 405, 410, 413, 414, 429, 500, 503, 0
};
#define METRICS_NCODES (sizeof metrics_codes / sizeof *metrics_codes)

static atomic_llong metrics_served_total;
static atomic_llong metrics_page_queries;
static atomic_llong metrics_pages_shared;
static atomic_llong metrics_pages_skipped;
static struct admission *_Atomic metrics_admission;
static struct flight *_Atomic metrics_flight;
static char metrics_instance[300] = "unknown";   /* set once before serving */
static atomic_llong metrics_requests[METRICS_NCODES];   /* last slot: other codes */
static atomic_int   metrics_waiters;
static atomic_llong metrics_push_sent;
static atomic_llong metrics_push_failed;

static const char Q_LOG_STATS[] =
	/* reltuples is -1 until the log's first (auto)analyze: the id span (two index probes)
	 * stands in, an upper bound (rolled-back ids leave gaps) */
	"SELECT (SELECT CASE WHEN reltuples >= 0 THEN reltuples::bigint ELSE"
	"          coalesce((SELECT max(id) - min(id) + 1 FROM tdgl.change_log), 0) END"
	"        FROM pg_class WHERE oid = 'tdgl.change_log'::regclass),"
	" coalesce((SELECT extract(epoch FROM now() - changed_at)::float8 FROM tdgl.change_log"
	"           ORDER BY id LIMIT 1), 0),"
	" coalesce(pg_sequence_last_value('tdgl.change_log_id_seq'::regclass), 0)";

void metrics_served(long n)
{
	atomic_fetch_add(&metrics_served_total, n);
}

void metrics_set_instance(const char *instance)
{
	snprintf(metrics_instance, sizeof metrics_instance, "%s", instance);
}

void metrics_page_query(void)
{
	atomic_fetch_add(&metrics_page_queries, 1);
}

void metrics_page_shared(void)
{
	atomic_fetch_add(&metrics_pages_shared, 1);
}

void metrics_page_skipped(void)
{
	atomic_fetch_add(&metrics_pages_skipped, 1);
}

void metrics_set_page_queries(struct admission *a, struct flight *f)
{
	atomic_store(&metrics_admission, a);
	atomic_store(&metrics_flight, f);
}

/* The page-query cap's state and the shared queries (admission.h, flight.h). */
static void metrics_render_page_queries(struct buf *b)
{
	struct admission *a = atomic_load(&metrics_admission);
	struct flight *f = atomic_load(&metrics_flight);
	int running = 0, queued = 0, joined = 0;
	long long rejected = 0;

	if (a)
		admission_counts(a, &running, &queued, &rejected);
	if (f)
		joined = flight_joined(f);
	buf_printf(b, "# HELP tdgl_page_queries_shared_total Requests answered with the page of "
	           "another request's query (same cursor, tables and limit at the same time).\n"
	           "# TYPE tdgl_page_queries_shared_total counter\n"
	           "tdgl_page_queries_shared_total %lld\n", atomic_load(&metrics_pages_shared));
	buf_printf(b, "# HELP tdgl_page_queries_skipped_total Long-polls back at the cursor a page "
	           "just ended at, with nothing visible since: they waited without a query.\n"
	           "# TYPE tdgl_page_queries_skipped_total counter\n"
	           "tdgl_page_queries_skipped_total %lld\n", atomic_load(&metrics_pages_skipped));
	buf_printf(b, "# HELP tdgl_page_queries_running Change-page queries running now "
	           "(at most --max-page-queries).\n# TYPE tdgl_page_queries_running gauge\n"
	           "tdgl_page_queries_running %d\n", running);
	buf_printf(b, "# HELP tdgl_page_queries_queued Change-page queries waiting for a slot "
	           "(at most --page-queue).\n# TYPE tdgl_page_queries_queued gauge\n"
	           "tdgl_page_queries_queued %d\n", queued);
	buf_printf(b, "# HELP tdgl_page_queries_rejected_total Change-page queries turned away "
	           "(503): the queue was full or the wait too long.\n"
	           "# TYPE tdgl_page_queries_rejected_total counter\n"
	           "tdgl_page_queries_rejected_total %lld\n", rejected);
	buf_printf(b, "# HELP tdgl_page_queries_joined Requests waiting now for another "
	           "request's page query.\n# TYPE tdgl_page_queries_joined gauge\n"
	           "tdgl_page_queries_joined %d\n", joined);
}

void metrics_request(unsigned status)
{
	size_t i;

	for (i = 0; i + 1 < METRICS_NCODES; i++)
		if (metrics_codes[i] == status)
			break;
	atomic_fetch_add(&metrics_requests[i], 1);
}

void metrics_longpoll(int delta)
{
	atomic_fetch_add(&metrics_waiters, delta);
}

void metrics_push(int ok)
{
	atomic_fetch_add(ok ? &metrics_push_sent : &metrics_push_failed, 1);
}

char *metrics_render(PGconn *c)
{
	struct buf b = {0};
	PGresult *res = c ? db_exec(c, "metrics", Q_LOG_STATS, 0, NULL) : NULL;

	buf_printf(&b, "# HELP tdgl_process_info This process (one of the primaries serving the "
	           "database): instance = host:port, pid.\n# TYPE tdgl_process_info gauge\n"
	           "tdgl_process_info{instance=\"%s\",pid=\"%ld\"} 1\n", metrics_instance,
	           (long)getpid());
	buf_puts(&b, "# HELP tdgl_changes_served_total Changes served by /api/changes.\n"
	             "# TYPE tdgl_changes_served_total counter\n");
	buf_printf(&b, "tdgl_changes_served_total %lld\n", atomic_load(&metrics_served_total));
	buf_printf(&b, "# HELP tdgl_page_queries_total Change-page queries run (a waiting long-poll "
	           "runs one only when new changes may be on its page).\n"
	           "# TYPE tdgl_page_queries_total counter\ntdgl_page_queries_total %lld\n",
	           atomic_load(&metrics_page_queries));
	metrics_render_page_queries(&b);
	buf_puts(&b, "# HELP tdgl_http_requests_total HTTP requests answered, by status code.\n"
	             "# TYPE tdgl_http_requests_total counter\n");
	for (size_t i = 0; i < METRICS_NCODES; i++) {
		long long v = atomic_load(&metrics_requests[i]);
		if (metrics_codes[i])
			buf_printf(&b, "tdgl_http_requests_total{code=\"%u\"} %lld\n", metrics_codes[i], v);
		else
			buf_printf(&b, "tdgl_http_requests_total{code=\"other\"} %lld\n", v);
	}
	buf_printf(&b, "# HELP tdgl_http_protocol_errors_total Requests refused or cut before a "
	           "handler ran (malformed, aborted, over a connection limit, too slow).\n"
	           "# TYPE tdgl_http_protocol_errors_total counter\n"
	           "tdgl_http_protocol_errors_total %lu\n", http_protocol_errors());
	buf_puts(&b, "# HELP tdgl_longpoll_waiters Long-poll requests waiting for changes.\n"
	             "# TYPE tdgl_longpoll_waiters gauge\n");
	buf_printf(&b, "tdgl_longpoll_waiters %d\n", atomic_load(&metrics_waiters));
	buf_puts(&b, "# HELP tdgl_push_sent_total Push notifications delivered.\n"
	             "# TYPE tdgl_push_sent_total counter\n");
	buf_printf(&b, "tdgl_push_sent_total %lld\n", atomic_load(&metrics_push_sent));
	buf_puts(&b, "# HELP tdgl_push_failed_total Push notifications that failed.\n"
	             "# TYPE tdgl_push_failed_total counter\n");
	buf_printf(&b, "tdgl_push_failed_total %lld\n", atomic_load(&metrics_push_failed));
	if (res && PQntuples(res) == 1) {
		buf_puts(&b, "# HELP tdgl_change_log_rows Rows in the change log (estimate).\n"
		             "# TYPE tdgl_change_log_rows gauge\n");
		buf_printf(&b, "tdgl_change_log_rows %s\n", PQgetvalue(res, 0, 0));
		buf_puts(&b, "# HELP tdgl_change_log_oldest_age_seconds Age of the oldest change kept.\n"
		             "# TYPE tdgl_change_log_oldest_age_seconds gauge\n");
		buf_printf(&b, "tdgl_change_log_oldest_age_seconds %s\n", PQgetvalue(res, 0, 1));
		buf_puts(&b, "# HELP tdgl_changes_captured_total Changes captured (last change id).\n"
		             "# TYPE tdgl_changes_captured_total counter\n");
		buf_printf(&b, "tdgl_changes_captured_total %s\n", PQgetvalue(res, 0, 2));
	}
	PQclear(res);
	return buf_steal(&b);
}
