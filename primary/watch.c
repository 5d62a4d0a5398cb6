/* watch: the change log's head, polled instead of pg_notify (a NOTIFY in the capture path
 * serializes every committing writer; a cheap poll while someone listens costs nothing when
 * nobody does).
 *
 * New changes became visible between two polls P and Q exactly when the log holds a change
 * visible in Q whose transaction was not finished at P: such a transaction is either in P's
 * xip list or has an xid >= xmax(P) (xmax is latestCompletedXid + 1; anything below it and
 * not listed had finished). The transaction that committed after P has an xid < xmax(Q).
 * Both are txid-index lookups, run only when the snapshot text changed. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/log.h"
#include "primary/watch.h"

/* Each poll reads only the snapshot (a prepared statement: no parse or plan per poll), so a
 * short interval stays cheap; the log is looked at only when the snapshot changed. */
static const char Q_SNAP[] = "SELECT pg_current_snapshot()::text";
static const char Q_MAXID[] = "SELECT coalesce((SELECT max(id) FROM tdgl.change_log), 0)";
/* $1 xip(P), $2 xmax(P), $3 xmax(Q), $4 Q; also the head (max id) for the listener. */
/* Listed transactions are checked for visibility before the log is looked at: one still
 * running may have written a million rows, which must not be walked every poll. */
static const char Q_NEWLY_VISIBLE[] =
	"SELECT EXISTS (SELECT 1 FROM unnest($1::xid8[]) AS x(t)"
	"               WHERE pg_visible_in_snapshot(x.t, $4::pg_snapshot)"
	"                 AND EXISTS (SELECT 1 FROM tdgl.change_log WHERE txid = x.t))"
	"    OR EXISTS (SELECT 1 FROM tdgl.change_log"
	"               WHERE txid >= $2::xid8 AND txid < $3::xid8"
	"                 AND pg_visible_in_snapshot(txid, $4::pg_snapshot)),"
	"  coalesce((SELECT max(id) FROM tdgl.change_log), 0)";

struct watch {
	pthread_t       thread;
	pthread_mutex_t lock;
	pthread_cond_t  changed;    /* generation moved or stopping */
	pthread_cond_t  wake;       /* a waiter arrived (the poller may be idle) */
	char           *conninfo;
	int             poll_ms;
	uint64_t        generation;
	int             waiters;
	int             always;
	int             stopping;
	watch_listener  listener;
	void           *listener_ctx;
	/* poller state (thread only) */
	PGconn         *conn;
	char           *snap;
	int64_t         maxid;
};

/* Splits "xmin:xmax:xip,..." into "xmax" and "{xip,...}" (malloc'd). */
static void watch_split(const char *snap, char **xmax, char **xip)
{
	const char *c1 = strchr(snap, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	struct buf a = {0}, b = {0};

	if (c1 && c2)
		buf_append(&a, c1 + 1, (size_t)(c2 - c1 - 1));
	else
		buf_puts(&a, "0");
	buf_printf(&b, "{%s}", c2 ? c2 + 1 : "");
	*xmax = buf_steal(&a);
	*xip = buf_steal(&b);
}

/* (Re)connects the poller and prepares its statements. 0 or -1 (logged). */
static int watch_connect(struct watch *w)
{
	char err[256];

	if (w->conn && PQstatus(w->conn) == CONNECTION_OK)
		return 0;
	if (w->conn)
		PQfinish(w->conn);
	w->conn = db_connect(w->conninfo, err, sizeof err);
	if (!w->conn) {
		log_warn("watch: database connection: %s", err);
		return -1;
	}
	if (db_prepare(w->conn, "watch: prepare", "watch_snap", Q_SNAP, 0) < 0 ||
	    db_prepare(w->conn, "watch: prepare", "watch_new", Q_NEWLY_VISIBLE, 4) < 0) {
		PQfinish(w->conn);
		w->conn = NULL;
		return -1;
	}
	free(w->snap);     /* a new session: start over (the first poll wakes everyone) */
	w->snap = NULL;
	return 0;
}

/* One poll. Returns 1 when new changes became visible, 0 when not, -1 on error. */
static int watch_poll(struct watch *w, int64_t *head)
{
	PGresult *res = NULL, *r2 = NULL;
	char *snap = NULL;
	int64_t maxid = w->maxid;
	int rc = -1;

	if (watch_connect(w) < 0)
		goto out;
	res = db_exec_prepared(w->conn, "watch: read snapshot", "watch_snap", 0, NULL);
	if (!res || PQntuples(res) != 1)
		goto out;
	if (w->snap && !strcmp(PQgetvalue(res, 0, 0), w->snap)) {
		rc = 0;     /* no transaction finished since the last poll */
		goto out;
	}
	snap = strdup(PQgetvalue(res, 0, 0));
	if (!snap)
		abort();
	if (!w->snap) {
		r2 = db_exec(w->conn, "watch: read head", Q_MAXID, 0, NULL);
		if (!r2 || PQntuples(r2) != 1)
			goto out;
		maxid = strtoll(PQgetvalue(r2, 0, 0), NULL, 10);
		rc = 1;   /* no earlier state: wake everyone, they re-check */
	} else {
		char *pxmax, *pxip, *qxmax, *qxip;
		watch_split(w->snap, &pxmax, &pxip);
		watch_split(snap, &qxmax, &qxip);
		{
			const char *params[4] = { pxip, pxmax, qxmax, snap };
			r2 = db_exec_prepared(w->conn, "watch: newly visible", "watch_new", 4, params);
		}
		free(pxmax);
		free(pxip);
		free(qxmax);
		free(qxip);
		if (!r2 || PQntuples(r2) != 1)
			goto out;
		maxid = strtoll(PQgetvalue(r2, 0, 1), NULL, 10);
		/* the log went back (restored): wake everyone, they re-check */
		rc = PQgetvalue(r2, 0, 0)[0] == 't' || maxid < w->maxid;
	}
	free(w->snap);
	w->snap = snap;
	snap = NULL;
	w->maxid = maxid;
out:
	*head = w->maxid;
	free(snap);
	PQclear(res);
	PQclear(r2);
	return rc;
}

static void *watch_main(void *arg)
{
	struct watch *w = arg;
	int backoff_ms = w->poll_ms;

	pthread_mutex_lock(&w->lock);
	while (!w->stopping) {
		struct timespec ts;
		int64_t head = 0;
		int r;
		watch_listener fn;
		void *fctx;

		if (w->waiters == 0 && !w->always) {
			pthread_cond_wait(&w->wake, &w->lock);
			continue;
		}
		pthread_mutex_unlock(&w->lock);
		r = watch_poll(w, &head);
		pthread_mutex_lock(&w->lock);
		if (r > 0) {
			w->generation++;
			pthread_cond_broadcast(&w->changed);
			fn = w->listener;
			fctx = w->listener_ctx;
			if (fn) {
				pthread_mutex_unlock(&w->lock);
				fn(fctx, head);
				pthread_mutex_lock(&w->lock);
			}
		}
		/* On errors back off (the database may be restarting); else poll every poll_ms. */
		backoff_ms = r < 0 ? (backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2) : w->poll_ms;
		clock_after(&ts, backoff_ms);
		while (!w->stopping &&
		       clock_wait(&w->wake, &w->lock, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct watch *watch_start(const char *conninfo, int poll_ms)
{
	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		abort();
	w->poll_ms = poll_ms > 0 ? poll_ms : WATCH_POLL_MS_DEFAULT;
	w->conninfo = strdup(conninfo ? conninfo : "");
	if (!w->conninfo)
		abort();
	pthread_mutex_init(&w->lock, NULL);
	clock_cond_init(&w->changed);
	clock_cond_init(&w->wake);
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		log_error("watch: cannot start thread");
		abort();
	}
	return w;
}

void watch_stop(struct watch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_broadcast(&w->wake);
	pthread_cond_broadcast(&w->changed);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	if (w->conn)
		PQfinish(w->conn);
	pthread_cond_destroy(&w->changed);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w->snap);
	free(w->conninfo);
	free(w);
}

uint64_t watch_generation(struct watch *w)
{
	uint64_t g;

	pthread_mutex_lock(&w->lock);
	g = w->generation;
	pthread_mutex_unlock(&w->lock);
	return g;
}

uint64_t watch_wait(struct watch *w, uint64_t gen, int timeout_ms)
{
	struct timespec ts;
	uint64_t g;

	clock_after(&ts, timeout_ms);
	pthread_mutex_lock(&w->lock);
	w->waiters++;
	pthread_cond_signal(&w->wake);
	while (w->generation == gen && !w->stopping &&
	       clock_wait(&w->changed, &w->lock, &ts) != ETIMEDOUT)
		;
	w->waiters--;
	g = w->generation;
	pthread_mutex_unlock(&w->lock);
	return g;
}

void watch_set_listener(struct watch *w, watch_listener fn, void *ctx)
{
	pthread_mutex_lock(&w->lock);
	w->listener = fn;
	w->listener_ctx = ctx;
	pthread_mutex_unlock(&w->lock);
}

void watch_set_always(struct watch *w, int on)
{
	pthread_mutex_lock(&w->lock);
	w->always = on;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

int watch_waiters(struct watch *w)
{
	int n;

	pthread_mutex_lock(&w->lock);
	n = w->waiters;
	pthread_mutex_unlock(&w->lock);
	return n;
}
