/* scheduler: per-source worker threads and trigger coalescing. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/clock.h"
#include "common/crypto.h"
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "replica/backoff.h"
#include "replica/metrics.h"
#include "replica/notify.h"
#include "replica/retry.h"
#include "replica/scheduler.h"
#include "replica/settings.h"
#include "replica/source.h"

#define SCHED_BACKOFF_BASE_S 1
#define SCHED_BACKOFF_MAX_S 60

static const char Q_PULL_SESSION[] = "SET synchronous_commit = off";

/* A worker's state (docs/design.md, "Scheduler"): advanced only by sched_advance. */
enum worker_state {
	WORKER_IDLE,      /* waiting for the next scheduled (or retry) pull or a trigger */
	WORKER_PULLING,   /* a pull runs (a long-poll round too); the mutex is not held */
	WORKER_BACKOFF,   /* the last pull failed: waiting out the backoff or a trigger */
	WORKER_STOPPED    /* source removed or disabled, or shutdown: the thread ends */
};

enum worker_event {
	WORKER_EV_TRIGGER,     /* a trigger is pending (API, Webhook, Manual, more pages) */
	WORKER_EV_DUE,         /* next_due passed; in long-poll mode an idle worker is always due */
	WORKER_EV_PULL_OK,     /* the pull ended: Success or Partial */
	WORKER_EV_PULL_FAILED, /* the pull ended: Failed */
	WORKER_EV_STOP         /* removed, disabled, or the scheduler is stopping */
};

static const char *const worker_state_names[] = { "idle", "pulling", "backoff", "stopped" };

struct worker {
	struct sched *s;
	char *name;
	pthread_t thread;
	int started, removed;
	enum worker_state state;
	int pending;                 /* one more pull requested (a trigger) */
	char trigger[16];            /* the pending trigger's name */
	long req_seq, done_seq;      /* triggers requested / pulls finished covering them */
	int poll_interval, long_poll;
	char *push_sealed;           /* the push secret as stored; reopened only when it changes */
	char *push_secret;           /* opened at reload; NULL when none */
	int failures;                /* pulls failed in a row (the backoff's exponent) */
	struct timespec next_due;    /* CLOCK_MONOTONIC */
	struct timespec head_asked;  /* pull_run's pacing at the head of the log */
	char *cron, *tz;             /* cron schedule (NULL: every poll_interval s) */
	int planned;                 /* next_due follows the schedule (after the first pull) */
	int plan_interval;           /* the poll_interval the schedule text and plan are for */
	int retry_wake;              /* next_due is a Failed change's retry, before the schedule */
	time_t next_wall;            /* the scheduled pull, wall clock (0: not planned yet) */
	char schedule[192];          /* "every 60 s", "cron 30 4 * * 1-5 (America/New_York)" */
	char *last_result;           /* JSON text of the last pull */
	/* what the pull in progress was started with (set on entering WORKER_PULLING) */
	char pull_trigger[16];
	int pull_wait_s;
	long pull_taken;
	struct worker *next;
};


static struct log_limit sched_notify_log = LOG_LIMIT_INIT;

struct sched {
	char *conninfo;
	struct pull_env env;
	atomic_int stopping;         /* read without the mutex by pulls (pull_env.stop) */
	pthread_mutex_t mu;
	pthread_cond_t cv;           /* any worker state change */
	struct worker *workers;
};

struct sched *sched_new(const char *conninfo, const struct pull_env *env)
{
	struct sched *s = mem_alloc(sizeof *s, "scheduler");

	s->conninfo = mem_strdup(conninfo, "scheduler");
	s->env = *env;
	atomic_init(&s->stopping, 0);
	s->env.stop = &s->stopping;
	pthread_mutex_init(&s->mu, NULL);
	clock_cond_init(&s->cv);
	return s;
}

/* Call with s->mu held: next_due from the schedule (interval or cron, settings.h). */
static void sched_plan(struct worker *w)
{
	time_t now = time(NULL), next;

	settings_schedule(w->cron, w->tz, w->poll_interval, now, &next, w->schedule,
	                  sizeof w->schedule);
	if (next == (time_t)-1)
		next = now + 366L * 86400;   /* a cron that never fires again: look once a year */
	w->next_wall = next;
	w->retry_wake = 0;
	w->planned = 1;
	w->plan_interval = w->poll_interval;
	clock_after(&w->next_due, (long)(next - now) * 1000L);
}

/* The backoff after `failures` failed pulls in a row (backoff.h: 1 s doubling, at most
 * 60 s); 0 when the last pull did not fail. */
static int sched_backoff_s(const struct worker *w)
{
	return w->failures ? (int)backoff_delay(SCHED_BACKOFF_BASE_S, SCHED_BACKOFF_MAX_S,
	                                        w->failures - 1) : 0;
}

/* The outcome of a pull, for sched_advance. */
struct sched_outcome {
	int more;                    /* the primary had more: continue at once */
	time_t retry_at;             /* a Failed change comes due then (0: none) */
};

/* The one place a worker's state changes. Call with s->mu held. */
static void sched_advance(struct worker *w, enum worker_event ev, const struct sched_outcome *o)
{
	struct sched *s = w->s;
	enum worker_state from = w->state;

	if (ev == WORKER_EV_STOP) {
		w->state = WORKER_STOPPED;
		goto out;
	}
	switch (w->state) {
	case WORKER_IDLE:
	case WORKER_BACKOFF:
		if (ev != WORKER_EV_TRIGGER && ev != WORKER_EV_DUE)
			break;
		if (ev == WORKER_EV_TRIGGER) {
			snprintf(w->pull_trigger, sizeof w->pull_trigger, "%s", w->trigger);
			w->pull_wait_s = 0;
		} else {
			snprintf(w->pull_trigger, sizeof w->pull_trigger, "%s",
			         w->retry_wake ? "Retry" : "Scheduler");
			w->pull_wait_s = w->long_poll ? SCHED_LONG_POLL_S : 0;
		}
		w->retry_wake = 0;
		w->pending = 0;
		w->pull_taken = w->req_seq;
		w->state = WORKER_PULLING;
		break;
	case WORKER_PULLING:
		if (ev == WORKER_EV_PULL_FAILED) {
			w->failures++;
			clock_after(&w->next_due, sched_backoff_s(w) * 1000L);
			log_info("pull %s: next attempt in %d s", w->name, sched_backoff_s(w));
			w->state = WORKER_BACKOFF;
		} else if (ev == WORKER_EV_PULL_OK) {
			w->failures = 0;
			sched_plan(w);
			if (o->retry_at > 0 && o->retry_at < w->next_wall && !w->long_poll) {
				/* a Failed change comes due before the next scheduled pull */
				time_t now = time(NULL);

				clock_after(&w->next_due,
				            o->retry_at > now ? (long)(o->retry_at - now) * 1000L : 0);
				w->next_wall = o->retry_at;
				w->retry_wake = 1;
			}
			if (o->more && !w->pending) {
				w->pending = 1;
				snprintf(w->trigger, sizeof w->trigger, "%s", w->pull_trigger);
			}
			w->state = WORKER_IDLE;
		}
		break;
	case WORKER_STOPPED:
		break;
	}
out:
	if (w->state != from)
		log_debug("source %s: %s -> %s", w->name, worker_state_names[from],
		          worker_state_names[w->state]);
	pthread_cond_broadcast(&s->cv);
}

/* Waits (s->mu held) for the worker's next event in an idle or backoff state. */
static enum worker_event sched_wait_event(struct worker *w)
{
	struct sched *s = w->s;

	for (;;) {
		if (w->removed || atomic_load(&s->stopping))
			return WORKER_EV_STOP;
		if (w->pending)
			return WORKER_EV_TRIGGER;
		/* in long-poll mode the request itself is the wait, except while backing off */
		if (clock_due(&w->next_due) || (w->long_poll && w->state == WORKER_IDLE))
			return WORKER_EV_DUE;
		clock_wait(&s->cv, &s->mu, &w->next_due);
	}
}

/* The worker's own connection: kept across pulls, opened again when lost. NULL with err. */
static PGconn *sched_connect(struct sched *s, PGconn *c, char *err, size_t errlen)
{
	if (c && PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		c = NULL;
	}
	if (!c) {
		c = db_connect(s->conninfo, err, errlen);
		/* Pull transactions need not wait for the WAL flush: the cursor moves in the
		 * same transaction as the applies it covers, so a lost commit after a crash is
		 * simply pulled again (what native subscriptions do by default). Saves one
		 * fsync per page and three per pull (commit -> visible latency, apply rate). */
		if (c && db_run(c, "pull session", Q_PULL_SESSION, 0, NULL) < 0) {
			PQfinish(c);
			c = NULL;
			snprintf(err, errlen, "%s", db_last_error());
		}
	}
	return c;
}

static void *sched_worker(void *arg)
{
	struct worker *w = arg;
	struct sched *s = w->s;
	PGconn *c = NULL;

	pthread_mutex_lock(&s->mu);
	while (w->state != WORKER_STOPPED) {
		struct sched_outcome o = { 0 };
		struct pull_result r;
		char trigger[16], err[256];
		int wait_s, rc;
		cJSON *rj;
		char *txt;

		sched_advance(w, sched_wait_event(w), NULL);
		if (w->state != WORKER_PULLING)
			continue;
		snprintf(trigger, sizeof trigger, "%s", w->pull_trigger);
		wait_s = w->pull_wait_s;
		pthread_mutex_unlock(&s->mu);

		c = sched_connect(s, c, err, sizeof err);
		if (!c) {
			memset(&r, 0, sizeof r);
			r.failed = 1;
			snprintf(r.status, sizeof r.status, "Failed");
			snprintf(r.error, sizeof r.error, "database unreachable: %s", err);
			log_warn("pull %s: %s", w->name, r.error);
			rc = -1;
		} else {
			rc = pull_run(c, w->name, trigger, wait_s, &s->env, &w->head_asked, &r);
			if (rc == 0)
				o.retry_at = retry_next_due(c, w->name);
		}
		o.more = r.more;
		rj = pull_result_json(&r, w->name);
		txt = rj ? cJSON_PrintUnformatted(rj) : NULL;
		cJSON_Delete(rj);

		pthread_mutex_lock(&s->mu);
		free(w->last_result);
		w->last_result = txt;
		w->done_seq = w->pull_taken;
		/* a pull failed by the shutdown is not backed off: the worker stops */
		sched_advance(w, atomic_load(&s->stopping) ? WORKER_EV_STOP
		                 : rc < 0 ? WORKER_EV_PULL_FAILED : WORKER_EV_PULL_OK, &o);
	}
	pthread_mutex_unlock(&s->mu);
	if (c)
		PQfinish(c);
	return NULL;
}

static struct worker *sched_find(struct sched *s, const char *name)
{
	for (struct worker *w = s->workers; w; w = w->next)
		if (!w->removed && !strcmp(w->name, name))
			return w;
	return NULL;
}

/* Call with s->mu held: takes the settings of a loaded source into its worker. The push
 * secret is opened only when its sealed text changed (not every reload). */
static void sched_configure(struct sched *s, struct worker *w, const struct source *src)
{
	w->poll_interval = src->poll_interval > 0 ? src->poll_interval : 60;
	w->long_poll = src->long_poll;
	if (strcmp(src->push_sealed ? src->push_sealed : "", w->push_sealed ? w->push_sealed : "")) {
		char *plain = NULL;

		if (src->push_sealed && s->env.key_material && *s->env.key_material)
			plain = crypto_open(s->env.key_material, src->push_sealed);
		if (src->push_sealed && !plain)
			log_warn("scheduler: source %s: cannot open its push secret", w->name);
		if (w->push_secret)
			explicit_bzero(w->push_secret, strlen(w->push_secret));
		free(w->push_secret);
		w->push_secret = plain;
		free(w->push_sealed);
		w->push_sealed = mem_strdup(src->push_sealed, "worker settings");
	}
	if (!w->schedule[0] || strcmp(src->cron ? src->cron : "", w->cron ? w->cron : "") ||
	    strcmp(src->tz ? src->tz : "", w->tz ? w->tz : "") ||
	    w->poll_interval != w->plan_interval) {
		free(w->cron);
		free(w->tz);
		w->cron = mem_strdup(src->cron, "worker settings");
		w->tz = mem_strdup(src->tz, "worker settings");
		if (w->planned && w->state == WORKER_IDLE) {
			sched_plan(w);   /* a new schedule applies from now */
			pthread_cond_broadcast(&s->cv);
		} else {
			time_t next;   /* only the text until the first pull (or a success) plans */

			w->plan_interval = w->poll_interval;
			settings_schedule(w->cron, w->tz, w->poll_interval, time(NULL), &next,
			                  w->schedule, sizeof w->schedule);
		}
	}
}

/* Call with s->mu held: a new worker for source `name`, its first pull due now (initial
 * sync or catch-up). Listed (removed) even when its thread could not start. */
static struct worker *sched_start(struct sched *s, const char *name, int long_poll)
{
	struct worker *w = mem_alloc(sizeof *w, "worker");

	w->name = mem_strdup(name, "worker");
	w->s = s;
	w->state = WORKER_IDLE;
	w->poll_interval = 60;
	clock_now(&w->next_due);
	w->next = s->workers;
	s->workers = w;
	if (pthread_create(&w->thread, NULL, sched_worker, w) == 0) {
		w->started = 1;
		log_info("source %s: worker started (%s)", w->name, long_poll ? "long-poll"
		                                                              : "interval");
	} else {
		w->removed = 1;
		log_error("source %s: cannot start a worker thread", w->name);
	}
	return w;
}

int sched_reload(struct sched *s)
{
	char err[512], **names = NULL;
	PGconn *c = db_connect(s->conninfo, err, sizeof err);
	int n = -1;

	if (!c) {
		log_warn("scheduler reload: %s", err);
		goto out;
	}
	n = source_enabled_names(c, &names);
	if (n < 0)
		goto out;
	/* workers whose source is gone or disabled stop */
	pthread_mutex_lock(&s->mu);
	for (struct worker *w = s->workers; w; w = w->next) {
		int keep = 0;
		for (int i = 0; i < n; i++)
			if (!strcmp(names[i], w->name))
				keep = 1;
		if (!keep && !w->removed) {
			w->removed = 1;
			log_info("source %s: worker stopped (source removed or disabled)", w->name);
		}
	}
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < n; i++) {
		struct source src;
		struct worker *w;
		/* one load of the source's settings, no secret opened (source.h). A source that
		 * cannot be loaded still gets a worker: its pulls fail visibly (runs, status, log)
		 * with backoff instead of silently never running */
		int loaded = source_load_settings(c, names[i], &src, err, sizeof err) == 0;

		pthread_mutex_lock(&s->mu);
		w = sched_find(s, names[i]);
		if (!w && !loaded)
			log_warn("scheduler: %s", err);
		if (!w && !atomic_load(&s->stopping))
			w = sched_start(s, names[i], loaded && src.long_poll);
		if (w && loaded)
			sched_configure(s, w, &src);
		pthread_mutex_unlock(&s->mu);
		if (loaded)
			source_free(&src);
	}
out:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (c)
		PQfinish(c);
	return n < 0 ? -1 : 0;
}

/* Call with s->mu held. */
static long sched_request(struct sched *s, struct worker *w, const char *trigger)
{
	w->pending = 1;
	snprintf(w->trigger, sizeof w->trigger, "%s", trigger);
	pthread_cond_broadcast(&s->cv);
	return ++w->req_seq;
}

enum result sched_trigger(struct sched *s, const char *name, const char *trigger,
                          int wait_ms, cJSON **result)
{
	struct worker *w;
	struct timespec until;
	long seq;
	enum result rc = RESULT_NOT_FOUND;

	if (result)
		*result = NULL;
	pthread_mutex_lock(&s->mu);
	w = sched_find(s, name);
	if (!w)
		goto out;
	seq = sched_request(s, w, trigger);
	rc = RESULT_OK;
	if (wait_ms <= 0)
		goto out;
	clock_after(&until, wait_ms);
	while (w->done_seq < seq && !atomic_load(&s->stopping)) {
		if (clock_wait(&s->cv, &s->mu, &until) == ETIMEDOUT) {
			rc = RESULT_BUSY;
			goto out;
		}
	}
	if (result && w->last_result)
		*result = cJSON_Parse(w->last_result);
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

enum result sched_notify(struct sched *s, const char *ts_hdr, const char *sig_hdr,
                         const char *body, size_t len, char *err, size_t errlen)
{
	long now = (long)time(NULL);
	enum result status = RESULT_UNAUTHORIZED;
	struct worker *match = NULL;

	if (notify_check_time(ts_hdr, now, err, errlen) < 0)
		goto out;
	if (!sig_hdr) {
		snprintf(err, errlen, "missing X-TDGL-Signature");
		goto out;
	}
	pthread_mutex_lock(&s->mu);
	for (struct worker *w = s->workers; w && !match; w = w->next)
		if (!w->removed && w->push_secret &&
		    notify_signature_ok(w->push_secret, ts_hdr, sig_hdr, body, len))
			match = w;
	if (!match) {
		snprintf(err, errlen, "bad signature");
	} else if (!notify_remember(sig_hdr, now)) {
		status = RESULT_CONFLICT;
		snprintf(err, errlen, "replayed notification refused");
	} else {
		/* every source of that primary (same push secret) pulls; a flood only sets the
		 * same pending flag again, so it collapses into one pending pull per source */
		for (struct worker *w = match; w; w = w->next)
			if (!w->removed && w->push_secret &&
			    (w == match || crypto_str_equal(w->push_secret, match->push_secret))) {
				sched_request(s, w, "Webhook");
				log_debug("notify: pull of %s queued", w->name);
			}
		status = RESULT_OK;
	}
	pthread_mutex_unlock(&s->mu);
out:
	metrics_add(status == RESULT_OK ? M_NOTIFY_ACCEPTED : M_NOTIFY_REFUSED, 1);
	if (status != RESULT_OK)   /* anyone can send these: counted, logged at most once a minute */
		log_limited(&sched_notify_log, LOG_WARN, "notify refused: %s", err);
	return status;
}

cJSON *sched_status(struct sched *s)
{
	cJSON *arr = cJSON_CreateArray();

	pthread_mutex_lock(&s->mu);
	for (struct worker *w = s->workers; w; w = w->next) {
		cJSON *o;
		if (w->removed)
			continue;
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "source", w->name);
		cJSON_AddStringToObject(o, "state", worker_state_names[w->state]);
		cJSON_AddBoolToObject(o, "running", w->state == WORKER_PULLING);
		cJSON_AddBoolToObject(o, "pending", w->pending);
		cJSON_AddBoolToObject(o, "long_poll", w->long_poll);
		cJSON_AddNumberToObject(o, "backoff_s", sched_backoff_s(w));
		cJSON_AddStringToObject(o, "schedule", w->schedule);
		if (w->planned && w->next_wall && !w->failures && !w->long_poll) {
			char iso[32];

			clock_iso_utc(w->next_wall, iso, sizeof iso);
			cJSON_AddStringToObject(o, "next_run_at", iso);
		}
		if (w->last_result)
			cJSON_AddItemToObject(o, "last_pull", cJSON_Parse(w->last_result));
		cJSON_AddItemToArray(arr, o);
	}
	pthread_mutex_unlock(&s->mu);
	return arr;
}

void sched_quiesce(struct sched *s)
{
	pthread_mutex_lock(&s->mu);
	atomic_store(&s->stopping, 1);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

void sched_stop(struct sched *s)
{
	pthread_mutex_lock(&s->mu);
	atomic_store(&s->stopping, 1);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* Every wait of a worker ends on the stop flag: condition waits at once, requests to the
	 * primary (a long-poll too) within about a second (httpc's cancel), database statements
	 * when they finish. So the join is bounded and no worker outlives the scheduler. */
	for (struct worker *w = s->workers; w; w = w->next)
		if (w->started) {
			pthread_join(w->thread, NULL);
			w->started = 0;
		}
	while (s->workers) {
		struct worker *w = s->workers;
		s->workers = w->next;
		free(w->name);
		if (w->push_secret)
			explicit_bzero(w->push_secret, strlen(w->push_secret));
		free(w->push_secret);
		free(w->push_sealed);
		free(w->cron);
		free(w->tz);
		free(w->last_result);
		free(w);
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->conninfo);
	free(s);
}
