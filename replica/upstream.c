/* upstream: the replica's client of a primary; see upstream.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"
#include "replica/backoff.h"
#include "replica/upstream.h"
#include "replica/ratelimit.h"

#define UPSTREAM_HEALTH_TIMEOUT_MS 5000
#define UPSTREAM_SNAPSHOT_TIMEOUT_MS 30000
#define UPSTREAM_FILE_TIMEOUT_MS 120000
/* a page of changes: the long-poll's wait plus this much */
#define UPSTREAM_CHANGES_SLACK_S 30


static int upstream_stopping(const struct upstream *f)
{
	return f->stop && *f->stop;
}

/* Sleeps seconds, in slices, returning early on stop. */
static void upstream_sleep(const struct upstream *f, double seconds)
{
	while (seconds > 0 && !upstream_stopping(f)) {
		double s = seconds > 0.1 ? 0.1 : seconds;
		struct timespec ts = { 0, (long)(s * 1e9) };

		nanosleep(&ts, NULL);
		seconds -= s;
	}
}

/* One request: status, or -1 on transport failure. */
static long upstream_once(struct upstream *f, const char *url, long timeout_ms,
                          struct httpc_resp *resp)
{
	const char *hdrs[2] = { f->auth, NULL };
	struct httpc_opts opts = { .timeout_ms = timeout_ms, .max_body = (size_t)256 << 20,
	                           .cancel = f->stop };
	struct ratelimit *rl = ratelimit_for(f->source, f->rate);

	httpc_resp_free(resp);
	memset(resp, 0, sizeof *resp);
	if (rl && ratelimit_wait_stop(rl, f->stop) < 0) {
		snprintf(f->error, sizeof f->error, "stopping");
		return -1;
	}
	if (httpc_request("GET", url, hdrs, NULL, 0, &opts, resp) < 0) {
		snprintf(f->error, sizeof f->error, "primary unreachable: %.400s", resp->err);
		return -1;
	}
	return resp->status;
}

/* A transport failure before any response: worth another attempt (see upstream.h). */
static int upstream_retryable(const char *err)
{
	static const char *const marks[] = { "Failed to connect", "Couldn't connect",
		"Connection refused", "Could not resolve", "Empty reply from server",
		"Connection timed out", " 0 bytes received" };

	for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
		if (strstr(err, marks[i]))
			return 1;
	return 0;
}

static void upstream_url(const struct upstream *f, const char *path, struct buf *url)
{
	buf_puts(url, f->base_url);
	while (url->len && url->data[url->len - 1] == '/')
		url->data[--url->len] = '\0';
	buf_puts(url, path);
}

/* GET base_url + path, up to `attempts` times (see upstream.h for what is retried). */
static long upstream_request(struct upstream *f, const char *path, long timeout_ms,
                             int attempts, struct httpc_resp *resp)
{
	struct buf url = { 0 };
	long st = -1;

	upstream_url(f, path, &url);
	for (int i = 0; i < attempts; i++) {
		double d;
		int busy;

		st = upstream_once(f, url.data, timeout_ms, resp);
		/* 429/503 with Retry-After: the primary is busy, not broken; asked again after the
		 * delay it gives, even by a long-poll (which is otherwise tried once) */
		busy = (st == 429 || st == 503) && resp->retry_after > 0;
		if (busy && attempts < UPSTREAM_ATTEMPTS)
			attempts = UPSTREAM_ATTEMPTS;
		if (!busy && ((st >= 0 && st < 500) || (st < 0 && !upstream_retryable(resp->err))))
			break;
		if (st >= 400)
			snprintf(f->error, sizeof f->error, "primary answered %ld", st);
		if (i + 1 == attempts || upstream_stopping(f))
			break;
		/* jitter in [3/4, 1] of the delay: spread out, still growing every attempt */
		d = backoff_delay(UPSTREAM_BACKOFF_BASE_S, UPSTREAM_BACKOFF_CAP_S, i);
		d = d / 2 + backoff_jitter(d / 2);
		/* busy: what Retry-After asks, plus the backoff (a crowd turned away together
		 * does not come back at the same instant) */
		if (busy)
			d += resp->retry_after < UPSTREAM_RETRY_AFTER_MAX_S ? (double)resp->retry_after
			                                                    : UPSTREAM_RETRY_AFTER_MAX_S;
		log_warn("source %s: %s; attempt %d of %d in %.1f s", f->source, f->error, i + 2,
		         attempts, d);
		upstream_sleep(f, d);
	}
	buf_free(&url);
	return st;
}

void upstream_open(struct upstream *u, const struct source *s, const atomic_int *stop)
{
	struct buf a = { 0 };

	memset(u, 0, sizeof *u);
	u->source = s->name;
	u->base_url = s->url;
	u->stop = stop;
	u->rate = s->rate_limit;
	buf_printf(&a, "Authorization: token %s:%s", s->api_key, s->api_secret);
	u->auth = buf_steal(&a);
	mem_check(u->auth, "upstream");
}

void upstream_close(struct upstream *u)
{
	if (u->auth) {
		explicit_bzero(u->auth, strlen(u->auth));
		free(u->auth);
		u->auth = NULL;
	}
}

long upstream_get(struct upstream *u, const char *path, long timeout_ms,
                  struct httpc_resp *resp)
{
	return upstream_request(u, path, timeout_ms, UPSTREAM_ATTEMPTS, resp);
}

int upstream_health(struct upstream *u)
{
	struct httpc_resp resp = { 0 };
	struct buf url = { 0 };
	long st;

	upstream_url(u, "/health", &url);
	st = upstream_once(u, url.data, UPSTREAM_HEALTH_TIMEOUT_MS, &resp);
	if (st >= 0 && st != 200)
		snprintf(u->error, sizeof u->error, "primary unreachable: /health answered %ld", st);
	httpc_resp_free(&resp);
	buf_free(&url);
	return st == 200 ? 0 : -1;
}

long upstream_snapshot(struct upstream *u, struct httpc_resp *resp)
{
	return upstream_request(u, "/api/snapshot", UPSTREAM_SNAPSHOT_TIMEOUT_MS,
	                        UPSTREAM_ATTEMPTS, resp);
}

/* Appends "&name=<escaped value>". */
static void upstream_param(struct buf *path, const char *name, const char *value)
{
	char *e = httpc_escape(value);

	buf_printf(path, "&%s=%s", name, e);
	free(e);
}

long upstream_changes(struct upstream *u, const char *cursor, const char *tables, int limit,
                      int wait_s, struct httpc_resp *resp)
{
	struct buf path = { 0 };
	long st;

	buf_printf(&path, "/api/changes?limit=%d&wait=%d", limit, wait_s);
	upstream_param(&path, "cursor", cursor);
	upstream_param(&path, "tables", tables);
	if (u->peer[0])
		upstream_param(&path, "peer", u->peer);
	/* a long-poll is not retried: the scheduler's next round is its retry */
	st = upstream_request(u, path.data, (wait_s + UPSTREAM_CHANGES_SLACK_S) * 1000L,
	                      wait_s > 0 ? 1 : UPSTREAM_ATTEMPTS, resp);
	buf_free(&path);
	return st;
}

long upstream_rows(struct upstream *u, const char *table, const char *filter,
                   const char *after, long limit, const char *columns, long timeout_ms,
                   struct httpc_resp *resp)
{
	struct buf path = { 0 };
	long st;

	buf_printf(&path, "/api/rows?limit=%ld", limit);
	upstream_param(&path, "table", table);
	if (columns) {
		buf_puts(&path, "&format=copy");
		upstream_param(&path, "columns", columns);
	} else if (u->peer[0]) {
		upstream_param(&path, "peer", u->peer);   /* rows with their versions */
	}
	if (after)
		upstream_param(&path, "after", after);
	if (filter)
		upstream_param(&path, "filter", filter);
	st = upstream_request(u, path.data, timeout_ms, UPSTREAM_ATTEMPTS, resp);
	buf_free(&path);
	return st;
}

long upstream_file(struct upstream *u, const char *rel, struct httpc_resp *resp)
{
	struct buf path = { 0 };
	long st;

	buf_puts(&path, "/api/files/");
	for (const char *q = rel; *q; q++) {
		/* keep '/' and unreserved characters; escape the rest */
		if ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
		    strchr("-._~/", *q))
			buf_append(&path, q, 1);
		else
			buf_printf(&path, "%%%02X", (unsigned char)*q);
	}
	st = upstream_request(u, path.data, UPSTREAM_FILE_TIMEOUT_MS, 1, resp);
	buf_free(&path);
	return st;
}
