/* copy: the initial sync of a source (and the re-sync after a 410). Takes the starting cursor
 * (GET /api/snapshot) first, then copies every configured table in primary-key order, then
 * stores the starting cursor, so changes committed during the copy are replayed from it.
 *
 * Pages come as COPY text (GET /api/rows?format=copy) and go in with COPY, one transaction
 * per page (apply_copy): straight into an empty table, else through a staging table and one
 * statement with the usual conflict/filter/flag semantics. A thread fetches the next page
 * while the current one is applied. A page the COPY path cannot take (an old primary, a
 * value the local type refuses, a local constraint) makes the rest of that table go
 * through the JSON path (GET /api/rows, tdgl_replica.apply_rows), which logs failing rows one by one.
 * A re-sync then removes the rows the copy did not see (tdgl_replica.finish_resync).
 *
 * Foreign keys of the replica: the copy's session takes the replica role when its database
 * role may (tdgl_replica.replica_role), and no key is checked. Without it (the fallback) tables are
 * copied parents first (fkorder.h); tables referencing each other with DEFERRABLE keys in one
 * transaction, checked at its end; rows still refused for a row copied after them are
 * applied again once every table is in (retry_run_keys). */
#ifndef TDGL_REPLICA_COPY_H
#define TDGL_REPLICA_COPY_H
#include <stdatomic.h>
#include <libpq-fe.h>
#include "replica/apply.h"
#include "replica/upstream.h"
#include "replica/retry.h"
#include "replica/source.h"

struct copy_env {
	PGconn *c;
	struct source *s;            /* on success s->cursor is the starting cursor (owned by s)
	                              * and s->needs_resync is 0 */
	const struct upstream *f;    /* the pull's client of the primary; copied, not changed */
	long run_id;
	const atomic_int *stop;    /* set on shutdown: the copy ends after its current page */
	/* called after each committed page with its summary (counts, files); may be NULL */
	void (*page_done)(void *ctx, const struct apply_summary *summary);
	void *ctx;
	char *error;                 /* why the copy failed */
	size_t errlen;
	/* may be NULL: gets what was logged Failed on a foreign key during the copy and then
	 * applied after it (retry_run_keys; only without the replica role) */
	struct retry_counts *retried;
};

/* Runs the initial sync (a re-sync when s->needs_resync). Returns 0, or -1 with error set;
 * a failed copy leaves the source without a cursor, so the next pull starts it again. */
int copy_initial(const struct copy_env *e);

#endif
