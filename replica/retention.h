/* retention: purges the replica's own logs (tdgl_replica.sync_log, tdgl_replica.runs) older than a retention
 * period, in batches of RETENTION_BATCH rows, each its own short transaction (the rules of
 * what stays live in SQL: tdgl_replica.purge_log_batch / tdgl_replica.purge_runs_batch in sql/replica.sql).
 * Failed entries, what a pending retry or an open conflict still needs, and unfinished runs
 * stay. Serve runs a purge thread with its own connection; errors are logged and the next
 * purge tries again. Nothing returned needs freeing except the handle of retention_start. */
#ifndef TDGL_REPLICA_RETENTION_H
#define TDGL_REPLICA_RETENTION_H
#include <stdatomic.h>
#include <libpq-fe.h>

#define RETENTION_DEFAULT "14d"
#define RETENTION_INTERVAL_DEFAULT "5m"
#define RETENTION_BATCH 10000

struct retention_counts {
	long long log_entries;   /* tdgl_replica.sync_log rows deleted */
	long long runs;          /* tdgl_replica.runs rows deleted */
	double seconds;          /* wall time of the purge */
	char before[64];         /* the cutoff, as the database printed it */
};

/* One purge through c (autocommit). *stop (may be NULL) is checked between batches.
 * Fills *out with what was deleted, also when it fails part-way. Logs one line with the
 * counts and duration. Returns 0, or -1 on a database error (logged). */
int retention_purge(PGconn *c, long retention_s, const atomic_int *stop,
                    struct retention_counts *out);

struct retention;
/* Starts the purge thread: a purge every interval_s seconds (the first one interval_s after
 * start), on its own connection to conninfo (copied). interval_s <= 0: no thread, NULL. */
struct retention *retention_start(const char *conninfo, long retention_s, long interval_s);
/* Stops the thread (a purge in progress stops after its current batch) and frees r.
 * NULL is a no-op. */
void retention_stop(struct retention *r);

#endif
