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
#include "replica/metrics.h"
#include "replica/notify.h"
#include "replica/retry.h"
#include "replica/scheduler.h"
#include "replica/settings.h"
#include "replica/source.h"

#define SCHED_BACKOFF_MAX_S 60

static const char Q_PULL_SESSION[] = "SET synchronous_commit = off";

struct worker {
	struct sched *s;
	char *name;
	pthread_t thread;
	int started, stop, removed;
	int pending;                 /* one more pull requested */
	char trigger[16];
	long req_seq, done_seq;      /* triggers requested / pulls finished covering them */
	int running;
	int poll_interval, long_poll;
	char *push_secret;           /* opened at reload; NULL when none */
	int backoff_s;
	struct timespec next_due;    /* CLOCK_MONOTONIC */
	struct timespec head_asked;  /* pull_run's pacing at the head of the log */
	char *cron, *tz;             /* cron schedule (NULL: every poll_interval s) */
	int planned;                 /* next_due follows the schedule (after the first pull) */
	int plan_interval;           /* the poll_interval the schedule text and plan are for */
	int retry_wake;              /* next_due is a Failed change's retry, before the schedule */
	time_t next_wall;            /* the scheduled pull, wall clock (0: not planned yet) */
	char schedule[192];          /* "every 60 s", "cron 30 4 * * 1-5 (America/New_York)" */
	char *last_result;           /* JSON text of the last pull */
	struct worker *next;
};


static struct log_limit sched_notify_log = LOG_LIMIT_INIT;

struct sched {
	char *conninfo;
	struct pull_env env;
	volatile int stopping;
	pthread_mutex_t mu;
	pthread_cond_t cv;           /* any worker state change */
	struct worker *workers;
};

struct sched *sched_new(const char *conninfo, const struct pull_env *env)
{
	struct sched *s = calloc(1, sizeof *s);

	s->conninfo = strdup(conninfo);
	s->env = *env;
	s->env.stop = &s->stopping;
	pthread_mutex_init(&s->mu, NULL);
	clock_cond_init(&s->cv);
	return s;
}

static cJSON *sched_result_json(const struct pull_result *r, const char *name)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "source", name);
	cJSON_AddNumberToObject(o, "run_id", (double)r->run_id);
	cJSON_AddStringToObject(o, "status", r->status);
	cJSON_AddNumberToObject(o, "fetched", (double)r->fetched);
	cJSON_AddNumberToObject(o, "synced", (double)r->synced);
	cJSON_AddNumberToObject(o, "failed", (double)r->failed_changes);
	cJSON_AddNumberToObject(o, "skipped", (double)r->skipped);
	cJSON_AddNumberToObject(o, "conflicts", (double)r->conflicts);
	cJSON_AddNumberToObject(o, "pages", (double)r->pages);
	cJSON_AddBoolToObject(o, "more", r->more);
	if (r->failed)
		cJSON_AddStringToObject(o, "error", r->error);
	return o;
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

static void *sched_worker(void *arg)
{
	struct worker *w = arg;
	struct sched *s = w->s;
	PGconn *c = NULL;

	pthread_mutex_lock(&s->mu);
	while (!w->stop && !s->stopping) {
		struct pull_result r;
		char trigger[16], err[256];
		long taken;
		int wait_s, rc;
		time_t retry_at = 0;
		cJSON *rj;
		char *txt;

		while (!w->stop && !s->stopping && !w->pending && !w->long_poll &&
		       !clock_due(&w->next_due)) {
			if (clock_wait(&s->cv, &s->mu, &w->next_due) == ETIMEDOUT)
				break;
		}
		if (w->stop || s->stopping)
			break;
		if (!w->pending && w->long_poll && w->backoff_s && !clock_due(&w->next_due)) {
			clock_wait(&s->cv, &s->mu, &w->next_due);
			continue;
		}
		if (w->pending) {
			snprintf(trigger, sizeof trigger, "%s", w->trigger);
			wait_s = 0;
		} else {
			snprintf(trigger, sizeof trigger, "%s", w->retry_wake ? "Retry" : "Scheduler");
			wait_s = w->long_poll ? SCHED_LONG_POLL_S : 0;
		}
		w->retry_wake = 0;
		w->pending = 0;
		taken = w->req_seq;
		w->running = 1;
		pthread_mutex_unlock(&s->mu);

		if (c && PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			c = NULL;
		}
		if (!c) {
			c = db_connect(s->conninfo, err, sizeof err);
			/* Pull transactions need not wait for the WAL flush: the cursor moves in the
			 * same transaction as the applies it covers, so a lost commit after a crash is
			 * simply pulled again (what native subscriptions do by default). Saves one
			 * fsync per page and three per pull (commit -> visible latency, apply rate). */
			if (c && db_run(c, "pull session", Q_PULL_SESSION, 0, NULL) < 0) {
				PQfinish(c);
				c = NULL;
				snprintf(err, sizeof err, "%s", db_last_error());
			}
		}
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
				retry_at = retry_next_due(c, w->name);
		}
		rj = sched_result_json(&r, w->name);
		txt = cJSON_PrintUnformatted(rj);
		cJSON_Delete(rj);

		pthread_mutex_lock(&s->mu);
		w->running = 0;
		free(w->last_result);
		w->last_result = txt;
		w->done_seq = taken;
		if (rc < 0 && !s->stopping) {
			w->backoff_s = w->backoff_s ? w->backoff_s * 2 : 1;
			if (w->backoff_s > SCHED_BACKOFF_MAX_S)
				w->backoff_s = SCHED_BACKOFF_MAX_S;
			clock_after(&w->next_due, w->backoff_s * 1000L);
			log_info("pull %s: next attempt in %d s", w->name, w->backoff_s);
		} else {
			w->backoff_s = 0;
			sched_plan(w);
			if (retry_at > 0 && retry_at < w->next_wall && !w->long_poll) {
				/* a Failed change comes due before the next scheduled pull */
				time_t now = time(NULL);

				clock_after(&w->next_due, retry_at > now ? (long)(retry_at - now) * 1000L : 0);
				w->next_wall = retry_at;
				w->retry_wake = 1;
			}
			if (r.more && !w->pending) {
				w->pending = 1;   /* the primary had more: continue at once */
				snprintf(w->trigger, sizeof w->trigger, "%s", trigger);
			}
		}
		pthread_cond_broadcast(&s->cv);
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
			w->stop = 1;
			log_info("source %s: worker stopped (source removed or disabled)", w->name);
		}
	}
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < n; i++) {
		struct source src;
		struct worker *w;
		cJSON *set = settings_get(c, names[i]);
		const char *cron = set ? json_get_string(set, "cron") : NULL;
		const char *tz = set ? json_get_string(set, "tz") : NULL;

		/* a source whose secret cannot be opened still gets a worker: its pulls fail
		 * visibly (runs, status, log) with backoff instead of silently never running */
		int loaded = source_load(c, names[i], s->env.key_material, &src, err, sizeof err) == 0;

		pthread_mutex_lock(&s->mu);
		w = sched_find(s, names[i]);
		if (!w && !loaded)
			log_warn("scheduler: %s", err);
		if (!w && !s->stopping) {
			w = calloc(1, sizeof *w);
			w->s = s;
			w->name = strdup(names[i]);
			clock_now(&w->next_due);  /* first pull now: initial sync or catch-up */
			w->next = s->workers;
			s->workers = w;
			if (pthread_create(&w->thread, NULL, sched_worker, w) == 0) {
				w->started = 1;
				log_info("source %s: worker started (%s)", w->name,
				         loaded && src.long_poll ? "long-poll" : "interval");
			} else {
				w->removed = 1;
				log_error("source %s: cannot start a worker thread", w->name);
			}
		}
		if (w && loaded) {
			w->poll_interval = src.poll_interval > 0 ? src.poll_interval : 60;
			w->long_poll = src.long_poll;
			free(w->push_secret);
			w->push_secret = src.push_secret ? strdup(src.push_secret) : NULL;
		} else if (w && !w->poll_interval) {
			w->poll_interval = 60;
		}
		if (w && (!w->schedule[0] || strcmp(cron ? cron : "", w->cron ? w->cron : "") ||
		          strcmp(tz ? tz : "", w->tz ? w->tz : "") ||
		          w->poll_interval != w->plan_interval)) {
			free(w->cron);
			free(w->tz);
			w->cron = cron ? strdup(cron) : NULL;
			w->tz = tz ? strdup(tz) : NULL;
			if (w->planned && !w->backoff_s) {
				sched_plan(w);   /* a new schedule applies from now */
				pthread_cond_broadcast(&s->cv);
			} else {
				time_t next;   /* only the text until the first pull plans */

				w->plan_interval = w->poll_interval;
				settings_schedule(w->cron, w->tz, w->poll_interval, time(NULL), &next,
				                  w->schedule, sizeof w->schedule);
			}
		}
		pthread_mutex_unlock(&s->mu);
		cJSON_Delete(set);
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

int sched_trigger(struct sched *s, const char *name, const char *trigger, int wait_ms,
                  cJSON **result)
{
	struct worker *w;
	struct timespec until;
	long seq;
	int rc = -1;

	if (result)
		*result = NULL;
	pthread_mutex_lock(&s->mu);
	w = sched_find(s, name);
	if (!w)
		goto out;
	seq = sched_request(s, w, trigger);
	rc = 0;
	if (wait_ms <= 0)
		goto out;
	clock_after(&until, wait_ms);
	while (w->done_seq < seq && !s->stopping) {
		if (clock_wait(&s->cv, &s->mu, &until) == ETIMEDOUT) {
			rc = -2;
			goto out;
		}
	}
	if (result && w->last_result)
		*result = cJSON_Parse(w->last_result);
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

unsigned sched_notify(struct sched *s, const char *ts_hdr, const char *sig_hdr,
                      const char *body, size_t len, char *err, size_t errlen)
{
	long now = (long)time(NULL);
	unsigned status = 401;
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
		status = 409;
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
		status = 202;
	}
	pthread_mutex_unlock(&s->mu);
out:
	metrics_add(status == 202 ? M_NOTIFY_ACCEPTED : M_NOTIFY_REFUSED, 1);
	if (status != 202)   /* anyone can send these: counted, logged at most once a minute */
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
		cJSON_AddBoolToObject(o, "running", w->running);
		cJSON_AddBoolToObject(o, "pending", w->pending);
		cJSON_AddBoolToObject(o, "long_poll", w->long_poll);
		cJSON_AddNumberToObject(o, "backoff_s", w->backoff_s);
		cJSON_AddStringToObject(o, "schedule", w->schedule);
		if (w->planned && w->next_wall && !w->backoff_s && !w->long_poll) {
			char iso[32];

			settings_time_iso(w->next_wall, iso, sizeof iso);
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
	s->stopping = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

void sched_stop(struct sched *s)
{
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
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
		free(w->push_secret);
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
