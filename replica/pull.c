/* pull: fetch pages from the primary and hand them to apply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/buf.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/result.h"
#include "common/httpc.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/mem.h"
#include "replica/apply.h"
#include "replica/copy.h"
#include "replica/upstream.h"
#include "replica/files.h"
#include "replica/metrics.h"
#include "replica/page.h"
#include "replica/pull.h"
#include "replica/retry.h"
#include "replica/run.h"
#include "replica/source.h"

#define PULL_MAX_MS 10000   /* a run streams at most this long (then more = 1) */
/* At the head of a log that is being written, pages come at most this often: every page
 * has a fixed cost on both sites, and fetching the next one as soon as the last is applied
 * would keep a CPU busy for a few changes a page. */
#define PULL_HEAD_GAP_MS 20

static const char Q_CURSOR[] = "SELECT cursor FROM tdgl_replica.sources WHERE name = $1";
/* This site's identity when the source syncs a table both ways (docs/design.md "Two-way
 * sync"): the pull then asks as a peer. */
static const char Q_PEER[] =
	"SELECT CASE WHEN tdgl_replica.source_two_way($1) THEN tdgl_replica.site()::text END";
/* times a pull continues after another pull of its source applied the page it fetched */
#define PULL_OVERTAKEN_MAX 5
static const char Q_EXPIRE_CURSOR[] =
	"UPDATE tdgl_replica.sources SET cursor = NULL, needs_resync = true "
	"WHERE name = $1 AND cursor = $2";

struct pull_ctx {
	PGconn *c;
	struct source s;
	const struct pull_env *env;
	struct pull_result *r;
	struct timespec t0;
	struct timespec *head_asked; /* pull_run's; NULL: not paced across pulls */
	struct upstream f;           /* every request to the primary (upstream.h) */
};

static int pull_stopping(const struct pull_ctx *p)
{
	return p->env->stop && *p->env->stop;
}

/* Sleeps until ms after since, in short steps so a stop is not held up. */
static void pull_pause(const struct pull_ctx *p, const struct timespec *since, long ms)
{
	long left;

	while (!pull_stopping(p) && (left = ms - clock_ms_since(since)) > 0) {
		struct timespec d = { 0, (left > 5 ? 5 : left) * 1000000L };
		nanosleep(&d, NULL);
	}
}

/* Records a non-200 answer as the pull's error. */
static void pull_http_error(struct pull_ctx *p, const char *what, const struct httpc_resp *resp)
{
	char jerr[64];
	cJSON *j = resp->body ? json_parse_strict(resp->body, resp->len, jerr, sizeof jerr) : NULL;
	const char *msg = j ? json_get_string(j, "error") : NULL;

	snprintf(p->r->error, sizeof p->r->error, "%s: primary answered %ld%s%.200s", what,
	         resp->status, msg ? ": " : "", msg ? msg : "");
	cJSON_Delete(j);
}

static void pull_count(struct pull_ctx *p, const struct apply_summary *sum)
{
	p->r->fetched += sum->fetched;
	p->r->synced += sum->synced;
	p->r->failed_changes += sum->failed;
	p->r->skipped += sum->skipped;
	p->r->conflicts += sum->conflicts;
	p->r->resolved += sum->resolved;
	metrics_add(M_CHANGES_FETCHED, sum->fetched);
	metrics_add(M_CHANGES_SYNCED, sum->synced);
	metrics_add(M_CHANGES_FAILED, sum->failed);
	metrics_add(M_CHANGES_SKIPPED, sum->skipped);
	metrics_add(M_CONFLICTS, sum->conflicts);
	metrics_add(M_CONFLICTS_RESOLVED, sum->resolved);
	p->r->pages++;
	metrics_add(M_PAGES, 1);
}

/* Fetches the attachment files a committed page referenced. Failures are logged only: the
 * rows are applied either way. */
static void pull_files(struct pull_ctx *p, const struct apply_summary *sum)
{
	for (int i = 0; i < sum->nfiles; i++) {
		if (pull_stopping(p))
			break;
		/* attachment requests count against the source's rate limit too (upstream.h) */
		if (files_fetch(p->c, &p->f, p->env->files_dir, sum->files[i]) == RESULT_OK)
			metrics_add(M_FILES_FETCHED, 1);
		else
			metrics_add(M_FILES_FAILED, 1);
	}
}

static void pull_page_done(void *ctx, const struct apply_summary *sum)
{
	struct pull_ctx *p = ctx;

	pull_count(p, sum);
	pull_files(p, sum);
}

/* Initial sync (copy.h); its pages are counted and their files fetched like any page. */
static int pull_initial(struct pull_ctx *p)
{
	struct retry_counts fixed = { 0 };
	struct copy_env e = { .c = p->c, .s = &p->s, .f = &p->f, .run_id = p->r->run_id,
	                      .stop = p->env->stop, .page_done = pull_page_done, .ctx = p,
	                      .error = p->r->error, .errlen = sizeof p->r->error,
	                      .retried = &fixed };
	int rc = copy_initial(&e);

	/* rows first refused by a key and applied once their parents were in did not fail */
	p->r->failed_changes -= fixed.tried;
	p->r->synced += fixed.synced;
	p->r->skipped += fixed.skipped;
	return rc;
}

/* A fetched page of changes: the response and its changes (spans into the body). */
struct pull_page {
	struct httpc_resp resp;
	struct page pg;
	struct timespec asked;      /* when it was requested */
};

static void pull_page_free(struct pull_page *pp)
{
	page_free(&pp->pg);
	httpc_resp_free(&pp->resp);
}

/* What pull_fetch_page brought. */
enum pull_fetched {
	PULL_PAGE_OK,
	PULL_PAGE_GONE,     /* 410: the cursor expired (purged on the primary) */
	PULL_PAGE_FAILED,   /* the pull's error is set */
	PULL_PAGE_NONE      /* not asked for: stopping, or the run's time is up */
};

/* Fetches the page after cursor into pp (freed first). */
static enum pull_fetched pull_fetch_page(struct pull_ctx *p, const char *cursor, int w,
                           struct pull_page *pp)
{
	char perr[128];
	long st;
	enum pull_fetched rc = PULL_PAGE_FAILED;

	pull_page_free(pp);
	clock_now(&pp->asked);
	st = upstream_changes(&p->f, cursor, p->s.tables, p->s.batch_size, w, &pp->resp);
	if (st < 0) {
		snprintf(p->r->error, sizeof p->r->error, "%s", p->f.error);
		goto out;
	}
	if (st == 410) {
		rc = PULL_PAGE_GONE;
		goto out;
	}
	if (st != 200) {
		pull_http_error(p, "changes", &pp->resp);
		goto out;
	}
	if (page_parse(pp->resp.body, pp->resp.len, &pp->pg, perr, sizeof perr) < 0) {
		snprintf(p->r->error, sizeof p->r->error, "changes: bad answer from primary: %s", perr);
		goto out;
	}
	rc = PULL_PAGE_OK;
out:
	return rc;
}

/* Sets the pull's upstream to ask as a two-way peer when the source is one. 0, or -1 with
 * the run's error set. */
static int pull_peer(struct pull_ctx *p)
{
	const char *params[1] = { p->s.name };
	PGresult *res = db_exec(p->c, "pull: two-way", Q_PEER, 1, params);
	int rc = -1;

	if (!res) {
		snprintf(p->r->error, sizeof p->r->error, "database: %s", db_last_error());
		goto out;
	}
	if (!PQgetisnull(res, 0, 0))
		snprintf(p->f.peer, sizeof p->f.peer, "%s", PQgetvalue(res, 0, 0));
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* Reads the source's stored cursor again (another pull moved it). 0, or -1 (error set). */
static int pull_reload_cursor(struct pull_ctx *p)
{
	const char *params[1] = { p->s.name };
	PGresult *res = db_exec(p->c, "pull: cursor", Q_CURSOR, 1, params);
	int rc = -1;

	if (!res || PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		snprintf(p->r->error, sizeof p->r->error, "the source's cursor is gone");
		goto out;
	}
	free(p->s.cursor);
	p->s.cursor = mem_strdup(PQgetvalue(res, 0, 0), "cursor");
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* Streams pages of changes until more=false. While the database applies one page, the next
 * is fetched (its cursor is the one the apply stores): primary and replica work overlap. A
 * page fetched ahead of a failed apply is dropped, so nothing is applied out of turn. */
static int pull_stream(struct pull_ctx *p, int wait_s)
{
	struct pull_page cur = { 0 }, ahead = { 0 }, tmp;
	struct apply_summary sum = { 0 };
	char err[512];
	enum pull_fetched st, st_ahead;
	int rc = -1, resynced = 0, overtaken = 0, next, full;

	/* a long-poll answered at once would bring a page of a change or two: paced too */
	if (wait_s > 0 && p->head_asked && p->head_asked->tv_sec)
		pull_pause(p, p->head_asked, PULL_HEAD_GAP_MS);
	st = pull_stopping(p) ? PULL_PAGE_NONE : pull_fetch_page(p, p->s.cursor, wait_s, &cur);
	for (;;) {
		const char *params[2] = { p->s.name, p->s.cursor };

		if (st == PULL_PAGE_NONE) {   /* stopping */
			rc = 0;
			goto out;
		}
		if (st == PULL_PAGE_FAILED)
			goto out;
		if (st == PULL_PAGE_GONE) {
			if (resynced) {
				snprintf(p->r->error, sizeof p->r->error,
				         "changes: the cursor expired again right after a re-sync");
				goto out;
			}
			log_warn("source %s: cursor expired, re-syncing", p->s.name);
			if (db_run(p->c, "expire cursor", Q_EXPIRE_CURSOR, 2, params) < 0)
				goto dberr;
			p->s.needs_resync = 1;
			resynced = 1;
			if (pull_initial(p) < 0)
				goto out;
			st = pull_fetch_page(p, p->s.cursor, 0, &cur);
			continue;
		}
		if (cur.pg.count == 0 && !strcmp(cur.pg.cursor, p->s.cursor)) {
			rc = 0;
			goto out;
		}
		if (apply_page_send(p->c, p->s.name, &cur.pg, p->s.cursor, p->r->run_id, err,
		                    sizeof err) < 0) {
			snprintf(p->r->error, sizeof p->r->error, "applying page: %.480s", err);
			goto out;
		}
		/* a primary written faster than this pull drains it would keep one run open
		 * forever: past PULL_MAX_MS the run ends, the scheduler continues at once */
		st_ahead = PULL_PAGE_NONE;
		next = cur.pg.more && !pull_stopping(p) && clock_ms_since(&p->t0) <= PULL_MAX_MS;
		/* a full page is followed at once, while it applies (catching up); a short one
		 * means the head is near: the next is asked for after this one is applied,
		 * PULL_HEAD_GAP_MS after this one was asked for. A page the primary ended at its
		 * byte budget (big rows) is full too. */
		full = cur.pg.count >= p->s.batch_size || cur.resp.len >= CHANGES_PAGE_BYTES;
		if (next && full)
			st_ahead = pull_fetch_page(p, cur.pg.cursor, 0, &ahead);
		apply_summary_free(&sum);
		if (apply_page_wait(p->c, &sum, err, sizeof err) < 0) {
			/* 40001: another pull of this source (`tdgl-replica pull` beside serve, a second
			 * serve) applied this page first; nothing was applied twice. 55P03: a two-way
			 * table's local writers held it past the apply's lock wait (two_way_lock); the
			 * page rolled back whole. Either way go on from the cursor stored, dropping the
			 * page fetched ahead of ours. */
			int lock = !strncmp(err, "55P03", 5);

			if ((lock || !strncmp(err, "40001", 5)) && overtaken++ < PULL_OVERTAKEN_MAX &&
			    pull_reload_cursor(p) == 0) {
				log_info("pull %s: %s; going on from the stored cursor", p->s.name,
				         lock ? "local writers held a two-way table, the page is applied "
				                "again" : "another pull applied that page first");
				pull_page_free(&ahead);
				st = pull_stopping(p) ? PULL_PAGE_NONE
				     : pull_fetch_page(p, p->s.cursor, 0, &cur);
				continue;
			}
			snprintf(p->r->error, sizeof p->r->error, "applying page: %.480s", err);
			goto out;
		}
		if (next && !full) {
			pull_pause(p, &cur.asked, PULL_HEAD_GAP_MS);
			if (!pull_stopping(p))
				st_ahead = pull_fetch_page(p, cur.pg.cursor, 0, &ahead);
		}
		pull_count(p, &sum);
		pull_files(p, &sum);
		if (p->head_asked)
			*p->head_asked = full ? (struct timespec){ 0 } : cur.asked;
		free(p->s.cursor);
		p->s.cursor = mem_strdup(cur.pg.cursor, "cursor");
		if (!cur.pg.more) {
			rc = 0;
			goto out;
		}
		if (st_ahead == PULL_PAGE_NONE && !pull_stopping(p))
			p->r->more = 1;
		tmp = cur;
		cur = ahead;
		ahead = tmp;
		st = st_ahead;
	}
dberr:
	snprintf(p->r->error, sizeof p->r->error, "database: %s", db_last_error());
out:
	pull_page_free(&cur);
	pull_page_free(&ahead);
	apply_summary_free(&sum);
	return rc;
}

int pull_run(PGconn *c, const char *name, const char *trigger, int wait_s,
             const struct pull_env *env, struct timespec *head_asked,
             struct pull_result *out)
{
	struct pull_ctx p = { .c = c, .env = env, .r = out, .head_asked = head_asked };
	struct retry_counts retried = { 0 };
	char lerr[512];
	int rc = -1, loaded = 0;
	cJSON *row = NULL;

	memset(out, 0, sizeof *out);
	clock_now(&p.t0);
	metrics_add(M_PULLS, 1);
	/* a long-poll round is announced only if it brings something (run_finish) */
	out->run_id = run_start(c, name, trigger, wait_s > 0 ? RUN_QUIET : 0);
	if (!out->run_id) {
		snprintf(out->error, sizeof out->error, "database: %s", db_last_error());
		goto finish;
	}
	switch (source_load(c, name, env->key_material, &p.s, lerr, sizeof lerr)) {
	case 0:
		loaded = 1;
		break;
	default:
		snprintf(out->error, sizeof out->error, "%.500s", lerr);
		goto finish;
	}
	upstream_open(&p.f, &p.s, env->stop);
	if (pull_peer(&p) < 0)
		goto finish;
	/* a primary that is down fails the run at once: nothing fetched, nothing touched. A
	 * webhook pull skips the probe (one round trip): the primary has just called us. */
	if (strcmp(trigger, "Webhook") != 0 && upstream_health(&p.f) < 0) {
		snprintf(out->error, sizeof out->error, "%s", p.f.error);
		goto finish;
	}
	if (!p.s.cursor) {
		/* the run is recorded as what it mostly is: the initial copy */
		run_set_trigger(c, out->run_id, "Initial");
		if (pull_initial(&p) < 0)
			goto finish;
	}
	if (pull_stream(&p, wait_s) < 0)
		goto finish;
	/* Failed changes whose retry is due go along with a run that found the primary up */
	if (retry_due(c, name, out->run_id, &retried) > 0) {
		out->synced += retried.synced;
		out->skipped += retried.skipped;
		out->failed_changes += retried.failed;
	}
	rc = 0;
finish:
	out->failed = rc < 0;
	snprintf(out->status, sizeof out->status, "%s",
	         rc < 0 ? "Failed" : out->failed_changes > 0 ? "Partial" : "Success");
	if (rc < 0)
		metrics_add(M_PULL_FAILURES, 1);
	if (out->run_id && rc == 0 && wait_s > 0 && out->pages == 0 && !retried.tried) {
		run_drop(c, out->run_id);   /* an idle long-poll round is not a run worth recording */
	} else if (out->run_id) {
		if (out->conflicts > 0)
			run_publish_conflicts(c, out->run_id);
		/* the run summary line and run.completed / run.failed (run.h) */
		row = run_finish(c, out->run_id, out->status, rc < 0 ? out->error : NULL);
	} else {
		log_warn("pull %s: %s", name, out->error);
	}
	cJSON_Delete(row);
	if (loaded) {
		upstream_close(&p.f);
		source_free(&p.s);
	}
	return rc;
}

cJSON *pull_result_json(const struct pull_result *r, const char *name)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		goto out;
	cJSON_AddStringToObject(o, "source", name);
	cJSON_AddNumberToObject(o, "run_id", (double)r->run_id);
	cJSON_AddStringToObject(o, "status", r->status);
	cJSON_AddNumberToObject(o, "fetched", (double)r->fetched);
	cJSON_AddNumberToObject(o, "synced", (double)r->synced);
	cJSON_AddNumberToObject(o, "failed", (double)r->failed_changes);
	cJSON_AddNumberToObject(o, "skipped", (double)r->skipped);
	cJSON_AddNumberToObject(o, "conflicts", (double)r->conflicts);
	cJSON_AddNumberToObject(o, "resolved", (double)r->resolved);
	cJSON_AddNumberToObject(o, "pages", (double)r->pages);
	cJSON_AddBoolToObject(o, "more", r->more);
	if (r->failed)
		cJSON_AddStringToObject(o, "error", r->error);
out:
	return o;
}
