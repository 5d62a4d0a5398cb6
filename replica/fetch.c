/* fetch: rate-limited, retried GETs to a primary; see fetch.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libpq-fe.h>
#include "common/buf.h"
#include "common/db.h"
#include "common/log.h"
#include "replica/backoff.h"
#include "replica/fetch.h"
#include "replica/ratelimit.h"

#define FETCH_HEALTH_TIMEOUT_MS 5000

static const char Q_RATE[] =
	"SELECT coalesce(rate_limit, 0) FROM tdgl.sources WHERE name = $1";

double fetch_rate_of(PGconn *c, const char *source)
{
	const char *p[1] = { source };
	PGresult *res = db_exec(c, "rate limit", Q_RATE, 1, p);
	double r = 0;

	if (res && PQntuples(res) == 1)
		r = atof(PQgetvalue(res, 0, 0));
	PQclear(res);
	return r;
}

static int fetch_stopping(const struct fetch *f)
{
	return f->stop && *f->stop;
}

/* Sleeps seconds, in slices, returning early on stop. */
static void fetch_sleep(const struct fetch *f, double seconds)
{
	while (seconds > 0 && !fetch_stopping(f)) {
		double s = seconds > 0.1 ? 0.1 : seconds;
		struct timespec ts = { 0, (long)(s * 1e9) };

		nanosleep(&ts, NULL);
		seconds -= s;
	}
}

/* One request: status, or -1 on transport failure. */
static long fetch_once(struct fetch *f, const char *url, long timeout_ms,
                       struct httpc_resp *resp)
{
	struct httpc_opts opts = { .timeout_ms = timeout_ms, .max_body = (size_t)256 << 20,
	                           .cancel = f->stop };
	struct ratelimit *rl = ratelimit_for(f->source, f->rate);

	httpc_resp_free(resp);
	memset(resp, 0, sizeof *resp);
	if (rl && ratelimit_wait_stop(rl, f->stop) < 0) {
		snprintf(f->error, sizeof f->error, "stopping");
		return -1;
	}
	if (httpc_request("GET", url, f->headers, NULL, 0, &opts, resp) < 0) {
		snprintf(f->error, sizeof f->error, "primary unreachable: %.400s", resp->err);
		return -1;
	}
	return resp->status;
}

/* A transport failure before any response: worth another attempt (see fetch.h). */
static int fetch_retryable(const char *err)
{
	static const char *const marks[] = { "Failed to connect", "Couldn't connect",
		"Connection refused", "Could not resolve", "Empty reply from server",
		"Connection timed out", " 0 bytes received" };

	for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
		if (strstr(err, marks[i]))
			return 1;
	return 0;
}

static void fetch_url(const struct fetch *f, const char *path, struct buf *url)
{
	buf_puts(url, f->base_url);
	while (url->len && url->data[url->len - 1] == '/')
		url->data[--url->len] = '\0';
	buf_puts(url, path);
}

long fetch_get(struct fetch *f, const char *path, long timeout_ms, struct httpc_resp *resp)
{
	int attempts = f->attempts > 0 ? f->attempts : FETCH_ATTEMPTS;
	struct buf url = { 0 };
	long st = -1;

	fetch_url(f, path, &url);
	for (int i = 0; i < attempts; i++) {
		double d;
		int busy;

		st = fetch_once(f, url.data, timeout_ms, resp);
		/* 429/503 with Retry-After: the primary is busy, not broken; asked again after the
		 * delay it gives, even by a long-poll (which is otherwise tried once) */
		busy = (st == 429 || st == 503) && resp->retry_after > 0;
		if (busy && attempts < FETCH_ATTEMPTS)
			attempts = FETCH_ATTEMPTS;
		if (!busy && ((st >= 0 && st < 500) || (st < 0 && !fetch_retryable(resp->err))))
			break;
		if (st >= 400)
			snprintf(f->error, sizeof f->error, "primary answered %ld", st);
		if (i + 1 == attempts || fetch_stopping(f))
			break;
		/* jitter in [3/4, 1] of the delay: spread out, still growing every attempt */
		d = backoff_delay(FETCH_BACKOFF_BASE_S, FETCH_BACKOFF_CAP_S, i);
		d = d / 2 + backoff_jitter(d / 2);
		/* busy: what Retry-After asks, plus the backoff (a crowd turned away together
		 * does not come back at the same instant) */
		if (busy)
			d += resp->retry_after < FETCH_RETRY_AFTER_MAX_S ? (double)resp->retry_after
			                                                 : FETCH_RETRY_AFTER_MAX_S;
		log_warn("source %s: %s; attempt %d of %d in %.1f s", f->source, f->error, i + 2,
		         attempts, d);
		fetch_sleep(f, d);
	}
	buf_free(&url);
	return st;
}

int fetch_health(struct fetch *f)
{
	struct httpc_resp resp = { 0 };
	struct buf url = { 0 };
	long st;

	fetch_url(f, "/health", &url);
	st = fetch_once(f, url.data, FETCH_HEALTH_TIMEOUT_MS, &resp);
	if (st >= 0 && st != 200)
		snprintf(f->error, sizeof f->error, "primary unreachable: /health answered %ld", st);
	httpc_resp_free(&resp);
	buf_free(&url);
	return st == 200 ? 0 : -1;
}
