/* run: the life of one tdgl_replica.runs record (a pull, a dry run or a retry batch): start and
 * finish it, announce it on the event hub (run.started, run.completed, run.failed) and write
 * the one-line run summary to the log ("run summary: source=... status=... fetched=...").
 * Counts are accumulated in the row by whoever does the work (apply_page, retry); finishing
 * reads them back. No secret ever reaches the log or an event. */
#ifndef TDGL_REPLICA_RUN_H
#define TDGL_REPLICA_RUN_H
#include <libpq-fe.h>
#include <cjson/cJSON.h>

#define RUN_DRY_RUN 1   /* a dry run: recorded with dry_run true */
#define RUN_QUIET   2   /* no run.started event (a long-poll round, mostly idle) */

/* Inserts a run of `source` with `trigger` (Scheduler, Webhook, Manual, API, Initial,
 * Retry, LongPoll) and publishes run.started. flags: RUN_*. Returns its id, or 0 on a
 * database error. */
long run_start(PGconn *c, const char *source, const char *trigger, int flags);
/* Changes the recorded trigger (a scheduled first pull that turns out to be the initial
 * sync is recorded as Initial). */
void run_set_trigger(PGconn *c, long id, const char *trigger);
/* Adds counts to the run. */
void run_add(PGconn *c, long id, long fetched, long synced, long failed, long skipped,
             long conflicts);
/* Ends the run with status (Success, Partial, Failed, Skipped) and error (NULL when none),
 * publishes run.completed or run.failed (payload: the run row) and logs the summary.
 * Returns the run row as JSON (caller deletes) or NULL. */
cJSON *run_finish(PGconn *c, long id, const char *status, const char *error);
/* Publishes conflict.created for every conflict this run opened or refreshed. */
void run_publish_conflicts(PGconn *c, long id);
/* Closes the runs left Running by a process that was killed or crashed (their database
 * session is gone) as Interrupted, keeping their counts; logs each, publishes run.failed and
 * counts them in metrics. Returns how many, or -1 on a database error (logged). */
int run_close_interrupted(PGconn *c);
/* Deletes a run that turned out not to be worth recording (an idle long-poll round). */
void run_drop(PGconn *c, long id);
/* The run row as JSON (caller deletes) or NULL. */
cJSON *run_get(PGconn *c, long id);

#endif
