/* pull: one pull of one source: initial sync when the source has no cursor yet (starting
 * cursor from /api/snapshot taken before the rows are copied page by page), then pages of
 * /api/changes until more=false, each applied in one transaction with its cursor move
 * (apply.c). A 410 from the primary re-runs the initial sync ("cursor expired, re-syncing").
 * Every pull is recorded in tdgl_replica.runs and summarised in the log. */
#ifndef TDGL_REPLICA_PULL_H
#define TDGL_REPLICA_PULL_H
#include <stdatomic.h>
#include <time.h>
#include <libpq-fe.h>
#include <cjson/cJSON.h>

struct pull_env {
	const char *key_material;    /* TDGL_SECRET_KEY */
	const char *files_dir;       /* TDGL_FILES_DIR */
	const atomic_int *stop;    /* set on shutdown: the pull ends after its current page */
};

struct pull_result {
	long run_id;                 /* 0 when no run was recorded */
	int  failed;                 /* the pull itself failed (retry with backoff) */
	int  more;                   /* stopped at its time limit with changes left: pull again */
	long fetched, synced, failed_changes, skipped, conflicts, resolved, pages;
	char status[16];             /* Success, Partial, Failed */
	char error[512];
};

/* Runs one pull of source `name`. trigger: Scheduler, Webhook, Manual, API, Retry.
 * wait_s > 0 long-polls the first request. head_asked (may be NULL; zero at first) paces
 * pages at the head of a busy log across pulls: when the last short page was asked for; a
 * long-poll starts no sooner than PULL_HEAD_GAP_MS (20 ms) after it. Returns 0 (Success or
 * Partial) or -1 (Failed, error set; also for an unknown source, with run_id 0). */
int pull_run(PGconn *c, const char *name, const char *trigger, int wait_s,
             const struct pull_env *env, struct timespec *head_asked,
             struct pull_result *out);
/* A pull's result as JSON ({"source","run_id","status","fetched",...,"more"[,"error"]}):
 * what `tdgl-replica pull`, the API's ?wait=1 and /api/status show. Caller deletes; NULL
 * when out of memory. */
cJSON *pull_result_json(const struct pull_result *r, const char *name);

#endif
