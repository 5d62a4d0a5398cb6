/* watch: the change log's head, polled instead of pg_notify (a NOTIFY in the capture path
 * serializes every committing writer; a cheap poll while someone listens costs nothing when
 * nobody does).
 *
 * "New changes became visible" between two polls P and Q (each one statement: snapshot and
 * max visible id, consistent with each other) when either
 *  - max(id) grew: a transaction that started after P took ids above every id P could see; or
 *  - a transaction in P's xip list has finished and wrote changes (checked by txid, index).
 * Transactions below P's xmax and not in its xip list had already finished at P. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/db.h"
#include "common/log.h"
#include "primary/watch.h"

#define WATCH_POLL_MS 10

static const char Q_HEAD[] =
	"SELECT pg_current_snapshot()::text, coalesce((SELECT max(id) FROM tdgl.change_log), 0)";
static const char Q_FINISHED_WROTE[] =
	"SELECT EXISTS (SELECT 1 FROM tdgl.change_log WHERE txid = ANY ($1::xid8[]))";

struct watch {
	pthread_t       thread;
	pthread_mutex_t lock;
	pthread_cond_t  changed;    /* generation moved or stopping */
	pthread_cond_t  wake;       /* a waiter arrived (the poller may be idle) */
	char           *conninfo;
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

static void watch_deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* xids in old's xip list that are not in new's xip list (they finished), as "{a,b}";
 * NULL when there are none. */
static char *watch_finished(const char *old_snap, const char *new_snap)
{
	const char *op = strchr(old_snap, ':'), *np = strchr(new_snap, ':');
	struct buf b = {0};
	int any = 0;

	op = op ? strchr(op + 1, ':') : NULL;
	np = np ? strchr(np + 1, ':') : NULL;
	if (!op || !np)
		return NULL;
	op++;
	np++;
	while (*op) {
		size_t n = strcspn(op, ",");
		int still = 0;
		for (const char *q = np; *q;) {
			size_t m = strcspn(q, ",");
			if (m == n && !strncmp(q, op, n)) {
				still = 1;
				break;
			}
			q += m;
			if (*q == ',')
				q++;
		}
		if (!still) {
			buf_puts(&b, any ? "," : "{");
			buf_append(&b, op, n);
			any = 1;
		}
		op += n;
		if (*op == ',')
			op++;
	}
	if (!any)
		return NULL;
	buf_puts(&b, "}");
	return buf_steal(&b);
}

/* One poll. Returns 1 when new changes became visible, 0 when not, -1 on error. */
static int watch_poll(struct watch *w, int64_t *head)
{
	PGresult *res = NULL, *r2 = NULL;
	char err[256], *fin = NULL, *snap = NULL;
	int64_t maxid;
	int rc = -1, first;

	if (!w->conn || PQstatus(w->conn) != CONNECTION_OK) {
		if (w->conn)
			PQfinish(w->conn);
		w->conn = db_connect(w->conninfo, err, sizeof err);
		if (!w->conn) {
			log_warn("watch: database connection: %s", err);
			goto out;
		}
	}
	res = db_exec(w->conn, "watch: read head", Q_HEAD, 0, NULL);
	if (!res || PQntuples(res) != 1)
		goto out;
	snap = strdup(PQgetvalue(res, 0, 0));
	if (!snap)
		abort();
	maxid = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	first = w->snap == NULL;
	rc = 0;
	if (first) {
		rc = 1;   /* no earlier state: wake everyone once, they re-check */
	} else if (maxid != w->maxid) {
		rc = 1;
	} else if ((fin = watch_finished(w->snap, snap))) {
		const char *params[1] = { fin };
		r2 = db_exec(w->conn, "watch: finished transactions", Q_FINISHED_WROTE, 1, params);
		if (!r2) {
			rc = -1;
			goto out;
		}
		rc = PQgetvalue(r2, 0, 0)[0] == 't';
	}
	free(w->snap);
	w->snap = snap;
	snap = NULL;
	w->maxid = maxid;
	*head = maxid;
out:
	free(snap);
	free(fin);
	PQclear(res);
	PQclear(r2);
	return rc;
}

static void *watch_main(void *arg)
{
	struct watch *w = arg;
	int backoff_ms = WATCH_POLL_MS;

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
		/* On errors back off (the database may be restarting); else poll every 10 ms. */
		backoff_ms = r < 0 ? (backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2) : WATCH_POLL_MS;
		watch_deadline(&ts, backoff_ms);
		while (!w->stopping &&
		       pthread_cond_timedwait(&w->wake, &w->lock, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct watch *watch_start(const char *conninfo)
{
	struct watch *w = calloc(1, sizeof(*w));
	pthread_condattr_t ca;

	if (!w)
		abort();
	w->conninfo = strdup(conninfo ? conninfo : "");
	if (!w->conninfo)
		abort();
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->changed, &ca);
	pthread_cond_init(&w->wake, &ca);
	pthread_condattr_destroy(&ca);
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

	watch_deadline(&ts, timeout_ms);
	pthread_mutex_lock(&w->lock);
	w->waiters++;
	pthread_cond_signal(&w->wake);
	while (w->generation == gen && !w->stopping &&
	       pthread_cond_timedwait(&w->changed, &w->lock, &ts) != ETIMEDOUT)
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
