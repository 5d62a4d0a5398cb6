/* retry: retries of Failed changes (tdgl_replica.sync_log rows with status Failed, which keep the
 * change itself). A retry re-applies the stored change in its own transaction, under a
 * savepoint, as the apply session; the log row is updated in place: Synced/Skipped, or
 * Failed again with attempts + 1 and the next retry due after base * 2^(retries made),
 * until max_retries retries were made (per source: retry_base_s, max_retries; the first
 * failure is due after base). The due time is SQL's tdgl_replica.retry_due_at, the one backoff in
 * SQL (backoff_delay's formula without cap or jitter). A change whose row has since had a later change applied is
 * not applied over it: it is marked Skipped "superseded by a later change".
 * Returned cJSON is owned by the caller. */
#ifndef TDGL_REPLICA_RETRY_H
#define TDGL_REPLICA_RETRY_H
#include <stddef.h>
#include <time.h>
#include <libpq-fe.h>
#include <cjson/cJSON.h>
#include "common/result.h"

struct retry_counts {
	long tried, synced, failed, skipped;
};

/* Retries the due Failed changes of `source` inside run run_id (adding to its counts).
 * Returns the number tried, or -1 on a database error. */
long retry_due(PGconn *c, const char *source, long run_id, struct retry_counts *n);
/* Retries at once the changes run run_id logged Failed on a foreign key (SQLSTATE 23503),
 * round after round while a round applies any: after an initial sync whose keys were
 * checked (no replica role), rows that point to rows copied after them. One that still
 * fails is left as it was. Moves those it resolved from the run's failed count to its
 * synced or skipped count (and into *n) and returns how many, or -1 on a database error. */
long retry_run_keys(PGconn *c, long run_id, struct retry_counts *n);
/* When the next automatic retry of a Failed change of `source` is due (unix time), or 0
 * when none is pending. Lets a scheduler wake for it between scheduled pulls. */
time_t retry_next_due(PGconn *c, const char *source);
/* Forces a retry of log entry log_id now (whatever its attempts), as a run with trigger
 * Retry. Returns RESULT_OK with *out = {"entry": <log row>, "run": <run row>},
 * RESULT_NOT_FOUND (unknown id), RESULT_CONFLICT (not Failed) or RESULT_INTERNAL; err holds
 * the message when not RESULT_OK. */
enum result retry_entry(PGconn *c, long log_id, cJSON **out, char *err, size_t errlen);
/* Forces a retry of every Failed change (of `source`, or of all sources when NULL), one
 * Retry run per source. Returns RESULT_OK with *out = array of run rows, or RESULT_INTERNAL
 * with err (*out, when not NULL, holds the runs made so far; the caller deletes it). */
enum result retry_all_failed(PGconn *c, const char *source, cJSON **out, char *err,
                             size_t errlen);
/* The log row as JSON (caller deletes) or NULL. */
cJSON *retry_log_entry(PGconn *c, long log_id);

#endif
