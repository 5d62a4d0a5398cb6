/* retention: the purge loop and its thread; see retention.h. The batch functions decide what
 * goes; this file only walks them in primary-key order, one short transaction per batch. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/clock.h"
#include "common/db.h"
#include "common/log.h"
#include "replica/metrics.h"
#include "replica/retention.h"

/* The cutoff is fixed once per purge, so every batch judges by the same instant. */
static const char Q_CUTOFF[] = "SELECT (now() - make_interval(secs => $1::bigint))::text";
static const char Q_LOG_BATCH[] =
	"SELECT deleted, coalesce(last_id, $2::bigint), done "
	"FROM tdgl_replica.purge_log_batch($1::timestamptz, $2::bigint, $3::int)";
static const char Q_RUNS_BATCH[] =
	"SELECT deleted, coalesce(last_id, $2::bigint), done "
	"FROM tdgl_replica.purge_runs_batch($1::timestamptz, $2::bigint, $3::int)";

struct retention {
	char *conninfo;
	long retention_s, interval_s;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_int stop;
};

static int retention_stopping(const atomic_int *stop)
{
	return stop && atomic_load(stop);
}

/* Walks one table's batches from its lowest id until done. Adds to *deleted. 0 or -1. */
static int retention_walk(PGconn *c, const char *what, const char *sql, const char *before,
                          const atomic_int *stop, long long *deleted)
{
	char after[24] = "0", limit[16];
	const char *p[3] = { before, after, limit };
	int done = 0, rc = 0;

	snprintf(limit, sizeof limit, "%d", RETENTION_BATCH);
	while (!done && !retention_stopping(stop)) {
		PGresult *res = db_exec(c, what, sql, 3, p);

		if (!res) {
			rc = -1;
			break;
		}
		*deleted += strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		snprintf(after, sizeof after, "%s", PQgetvalue(res, 0, 1));
		done = !strcmp(PQgetvalue(res, 0, 2), "t");
		PQclear(res);
	}
	return rc;
}

int retention_purge(PGconn *c, long retention_s, const atomic_int *stop,
                    struct retention_counts *out)
{
	char secs[24];
	const char *p[1] = { secs };
	long long t0 = clock_ms();
	PGresult *res = NULL;
	int rc = -1;

	memset(out, 0, sizeof *out);
	snprintf(secs, sizeof secs, "%ld", retention_s);
	res = db_exec(c, "purge: cutoff", Q_CUTOFF, 1, p);
	if (!res)
		goto out;
	snprintf(out->before, sizeof out->before, "%s", PQgetvalue(res, 0, 0));
	/* entries first: a run goes only once no entry refers to it */
	if (retention_walk(c, "purge: sync_log batch", Q_LOG_BATCH, out->before, stop,
	                   &out->log_entries) < 0 ||
	    retention_walk(c, "purge: runs batch", Q_RUNS_BATCH, out->before, stop,
	                   &out->runs) < 0)
		goto out;
	rc = 0;
out:
	PQclear(res);
	out->seconds = (double)(clock_ms() - t0) / 1000.0;
	metrics_add(M_PURGED_LOG_ENTRIES, (long)out->log_entries);
	metrics_add(M_PURGED_RUNS, (long)out->runs);
	if (rc == 0)
		log_info("purge: deleted %lld log entries and %lld runs older than %lds in %.3f s%s",
		         out->log_entries, out->runs, retention_s, out->seconds,
		         retention_stopping(stop) ? " (stopped early)" : "");
	else
		log_error("purge: failed after deleting %lld log entries and %lld runs in %.3f s",
		          out->log_entries, out->runs, out->seconds);
	return rc;
}

/* Sleeps until *deadline or stop; returns nonzero when stopping. */
static int retention_wait(struct retention *r, const struct timespec *deadline)
{
	int stopping;

	pthread_mutex_lock(&r->mu);
	while (!atomic_load(&r->stop) &&
	       clock_wait(&r->cv, &r->mu, deadline) != ETIMEDOUT)
		;
	stopping = atomic_load(&r->stop);
	pthread_mutex_unlock(&r->mu);
	return stopping;
}

static void *retention_thread(void *arg)
{
	struct retention *r = arg;
	struct retention_counts n;
	struct timespec next;
	char err[512];
	PGconn *c = NULL;

	clock_now(&next);
	for (;;) {
		clock_add_ms(&next, r->interval_s * 1000L);
		if (retention_wait(r, &next))
			break;
		if (c && PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			c = NULL;
		}
		if (!c && !(c = db_connect(r->conninfo, err, sizeof err))) {
			log_error("purge: cannot connect to the database: %s", err);
			continue;
		}
		retention_purge(c, r->retention_s, &r->stop, &n);
		clock_now(&next);   /* the interval counts from the end */
	}
	if (c)
		PQfinish(c);
	return NULL;
}

struct retention *retention_start(const char *conninfo, long retention_s, long interval_s)
{
	struct retention *r = NULL;
	int err;

	if (interval_s <= 0)
		goto out;
	r = calloc(1, sizeof *r);
	if (!r || !(r->conninfo = strdup(conninfo))) {
		log_error("purge: cannot start the purge thread: out of memory");
		goto fail;
	}
	r->retention_s = retention_s;
	r->interval_s = interval_s;
	pthread_mutex_init(&r->mu, NULL);
	clock_cond_init(&r->cv);
	err = pthread_create(&r->thread, NULL, retention_thread, r);
	if (err) {
		log_error("purge: cannot start the purge thread: %s", strerror(err));
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		goto fail;
	}
	log_info("purge: log entries and runs older than %lds, every %lds", retention_s,
	         interval_s);
	goto out;
fail:
	if (r)
		free(r->conninfo);
	free(r);
	r = NULL;
out:
	return r;
}

void retention_stop(struct retention *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	atomic_store(&r->stop, 1);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r->conninfo);
	free(r);
}
