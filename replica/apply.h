/* apply: hands pages fetched from the primary to the SQL apply functions
 * (sql/replica/30-apply.sql: tdgl_replica.apply_page, tdgl_replica.apply_rows; sql/replica/40-copy.sql:
 * tdgl_replica.finish_resync and the COPY path of an initial sync, tdgl_replica.copy_plan, tdgl_replica.copy_start,
 * tdgl_replica.copy_apply). All of them apply through one statement generator
 * (tdgl_replica.apply_statement) and answer a tdgl_replica.apply_result row, which apply_summary_read
 * decodes into a struct apply_summary. Row snapshots are passed verbatim as `json` values
 * so they keep their exact text. A page of changes is applied in ONE transaction together
 * with the cursor move. */
#ifndef TDGL_REPLICA_APPLY_H
#define TDGL_REPLICA_APPLY_H
#include <stddef.h>
#include <libpq-fe.h>

/* What one apply did (a page, a copy page, a rows page): tdgl_replica.apply_result. */
struct apply_summary {
	long fetched, synced, failed, skipped, ignored;
	long conflicts;              /* left open for an admin (policy manual) */
	long resolved;               /* decided by a two-way table's conflict policy */
	int replica_role;            /* 1 in effect, 0 the fallback, -1 not said */
	char **files;                /* attachment paths to fetch (malloc'd, owned) */
	int nfiles;
};
/* Frees s's files and zeroes it. */
void apply_summary_free(struct apply_summary *s);
/* Adds b's counts and files (copied) to a. */
void apply_summary_add(struct apply_summary *a, const struct apply_summary *b);

/* Applies a page of changes (page.h) and moves the cursor prev -> the page's, in two halves
 * so the caller can fetch the next page meanwhile: apply_page_send queues it on c (0, or -1
 * with err); apply_page_wait returns 0 with *summary (the caller frees it with
 * apply_summary_free) once committed, or -1 with err after it rolled back
 * (sqlstate "40001" in err's prefix when another pull moved the cursor). send copies what
 * it needs (the page and its body may go once it returned). Nothing else may use c in
 * between. */
struct page;
int apply_page_send(PGconn *c, const char *source, const struct page *pg,
                    const char *prev_cursor, long run_id, char *err, size_t errlen);
int apply_page_wait(PGconn *c, struct apply_summary *summary, char *err, size_t errlen);
/* Applies a GET /api/rows body for table tbl in a transaction of its own, or (nested) under
 * a savepoint of the caller's. *next gets the raw JSON text of the body's "next" (malloc'd;
 * NULL when null/absent). Returns 0 with *summary (caller frees), or -1 with err. */
int apply_rows(PGconn *c, const char *source, const char *tbl, const char *body, long run_id,
               int resync, int nested, struct apply_summary *summary, char **next, char *err,
               size_t errlen);
/* After a re-sync copy of tbl: removes local rows the copy did not see. Returns the count
 * or -1. */
long apply_finish_resync(PGconn *c, const char *source, const char *tbl);

/* How an initial copy of tbl goes in (tdgl_replica.copy_plan): malloc'd JSON text
 * {"mode":"direct"|"stage","columns":[local columns]}, or NULL when the table cannot take
 * the COPY path (missing here, no key, database error: the JSON path reports it). */
char *apply_copy_plan(PGconn *c, const char *source, const char *tbl, int resync);

/* One page of GET /api/rows?format=copy. */
struct apply_copy_page {
	const char *source, *tbl;
	const char *columns;         /* JSON array of the columns in data, as the primary sent */
	const char *data;            /* COPY text lines */
	size_t len;
	long rows;                   /* lines in data */
	int direct;                  /* COPY into the table itself (plan "direct") */
	int resync;
	int nested;                  /* under a savepoint of the caller's transaction */
	long run_id;
};
/* Puts c's session in the replica role for good when its database role may
 * (tdgl_replica.replica_role): the replica's foreign keys and ordinary triggers do not fire for what
 * it applies. Returns 1, 0 when it may not (warned once per process: apply_fallback_warn),
 * or -1 on a database error. tdgl_replica.apply_page does the same by itself. */
int apply_replica_role(PGconn *c);
/* Logs, once per process, that the fallback is in use and how to grant the privilege. */
void apply_fallback_warn(PGconn *c);

/* COPYs a page and applies it (tdgl_replica.copy_start, tdgl_replica.copy_apply) in ONE transaction (or,
 * nested, under a savepoint of the caller's).
 * Returns 0 with *summary (as apply_rows), or -1 with err ("SQLSTATE: message"), everything
 * rolled back. */
int apply_copy(PGconn *c, const struct apply_copy_page *pg, struct apply_summary *summary,
               char *err, size_t errlen);

#endif
