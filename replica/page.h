/* page: a GET /api/changes body split into its changes without copying them, and encoded as
 * the array parameters of tdgl_replica.apply_page (binary format). The database then reads each
 * snapshot's text once (to check it is JSON) instead of re-parsing the whole page per step;
 * snapshots stay byte-for-byte what the primary sent. */
#ifndef TDGL_REPLICA_PAGE_H
#define TDGL_REPLICA_PAGE_H
#include <stddef.h>

struct page_span {
	const char *p;           /* into the body; NULL when absent or JSON null */
	size_t n;
};

/* One change; pk, old_pk, row and version (what a two-way peer is served: the change's
 * origin and base) are kept only when they are JSON objects. */
struct page_change {
	struct page_span id, table, op, pk, old_pk, row, changed_at, version;
};

struct page {
	char *cursor;                 /* the page's cursor, decoded (malloc'd) */
	char site[40];                /* the serving site's identity (a page for a two-way
	                                 peer; "" otherwise) */
	int more;
	int count;
	struct page_change *ch;       /* count entries (malloc'd); spans point into the body */
};

/* The arrays tdgl_replica.apply_page takes after the source: ids bigint[], tables text[],
 * ops text[], pks json[], old_pks json[], rows json[], changed_at text[], runs int[],
 * table_runs int[] (page_runs without and with by_table), classes text[] (page_op_class:
 * the database does not class streamed changes again); and, after the cursors and run,
 * versions json[] (PAGE_VERSIONS). */
#define PAGE_NARRAYS 11
#define PAGE_VERSIONS 10
struct page_arrays {
	char *data[PAGE_NARRAYS];     /* binary array values (malloc'd) */
	int len[PAGE_NARRAYS];
};

/* Splits body (the whole response, len bytes) into pg. The body must stay alive while pg is
 * used. Returns 0, or -1 with the reason in err (pg then holds nothing). */
int page_parse(const char *body, size_t len, struct page *pg, char *err, size_t errlen);
void page_free(struct page *pg);
/* Encodes pg's changes. Returns 0, or -1 with err (an id that is not a bigint, a string
 * field that is not text). */
int page_arrays(const struct page *pg, struct page_arrays *out, char *err, size_t errlen);
void page_arrays_free(struct page_arrays *a);
/* The op class of a change whose "op" is the JSON string op: 'D' ("Delete"), 'R'
 * ("Rename"), else 'U' (an upsert). Runs never mix classes. The same table as SQL's
 * tdgl_replica.op_class, which classes changes stored in the database (retries, conflicts). */
char page_op_class(const struct page_span *op);
/* Cuts the page into runs, the units applied by one statement: run[i] (1-based, ascending in
 * apply order) for each change. Inside a stretch of changes of one table and one operation
 * class the n-th change of each key goes to the stretch's n-th run, so a run never holds a
 * key twice and each key's changes stay in order; renames get a run each. run has count
 * entries.
 * by_table 0: stretches are consecutive in the page, so the page's order across tables is
 * kept (what foreign keys checked during apply need). by_table 1: each table's changes are
 * taken out of the page in their order and cut on their own, table after table: rows of
 * different tables are independent once no foreign key or trigger links them (the replica
 * role, tdgl_replica.replica_role), so a page of transactions that each touch several tables in
 * turn is a few runs per table instead of one per change; inside a table a change's layer is
 * its key's occurrence (between renames), each layer its deletes' run then its upserts', so
 * a mix of inserts, updates and deletes is a few runs too (page_cut_layers). */
void page_runs(const struct page *pg, int *run, int by_table);

#endif
