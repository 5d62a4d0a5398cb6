/* scheduler: one worker thread per enabled source, each with its own database connection.
 * Triggers: the poll interval, /api/notify (Webhook), an admin (API), and long-poll mode
 * (the worker keeps a /api/changes?wait= request open). One pull per source at a time; any
 * number of triggers during a pull cause exactly one more pull. A failed pull is retried
 * with exponential backoff (1 s doubling, at most 60 s: backoff.h). A source's failures
 * never touch another worker. sched_reload() picks up sources added or removed by the CLI.
 * Each worker is a state machine (idle, pulling, backoff, stopped; docs/design.md, "Scheduler
 * states"), its state changed in one place. */
#ifndef TDGL_REPLICA_SCHEDULER_H
#define TDGL_REPLICA_SCHEDULER_H
#include <stddef.h>
#include <cjson/cJSON.h>
#include "common/result.h"
#include "replica/pull.h"

#define SCHED_LONG_POLL_S 25

struct sched;

/* env is copied; its strings must outlive the scheduler. */
struct sched *sched_new(const char *conninfo, const struct pull_env *env);
/* Starts workers for enabled sources not running yet, stops workers of sources removed or
 * disabled, refreshes intervals and push secrets. 0, or -1 when the database is unreachable. */
int sched_reload(struct sched *s);
/* Queues a pull of `name`. With wait_ms > 0, waits for a pull that started after this call
 * to finish and returns its result in *result (malloc'd JSON, caller frees).
 * RESULT_OK, RESULT_NOT_FOUND (no worker: unknown or disabled source) or RESULT_BUSY (the
 * pull did not finish within wait_ms; it goes on). */
enum result sched_trigger(struct sched *s, const char *name, const char *trigger,
                          int wait_ms, cJSON **result);
/* Verifies a push notification against every source's push secret; a match (not replayed,
 * timestamp in window) triggers that source. Returns RESULT_OK (the pulls are queued),
 * RESULT_UNAUTHORIZED (bad or stale signature) or RESULT_CONFLICT (a replay), with a message
 * in err. */
enum result sched_notify(struct sched *s, const char *ts_hdr, const char *sig_hdr,
                      const char *body, size_t len, char *err, size_t errlen);
/* Per-worker state for /api/status (caller deletes). */
cJSON *sched_status(struct sched *s);
/* Starts the shutdown: workers stop after their current pull, waiting triggers return.
 * Call before stopping the HTTP server so no handler keeps waiting on a pull. */
void sched_quiesce(struct sched *s);
/* Stops all workers, joins them and frees s. A worker in a request to its primary (a
 * long-poll too) abandons it within about a second; one applying a page finishes that
 * page's transaction first. No worker thread outlives this call. */
void sched_stop(struct sched *s);

#endif
