/* page: a GET /api/changes body split into its changes without copying them, and encoded as
 * the array parameters of tdgl.apply_page (binary format). The database then reads each
 * snapshot's text once (to check it is JSON) instead of re-parsing the whole page per step;
 * snapshots stay byte-for-byte what the primary sent. */
#ifndef TDGL_REPLICA_PAGE_H
#define TDGL_REPLICA_PAGE_H
#include <stddef.h>

struct page_span {
	const char *p;           /* into the body; NULL when absent or JSON null */
	size_t n;
};

/* One change; pk, old_pk and row are kept only when they are JSON objects. */
struct page_change {
	struct page_span id, table, op, pk, old_pk, row, changed_at;
};

struct page {
	char *cursor;                 /* the page's cursor, decoded (malloc'd) */
	int more;
	int count;
	struct page_change *ch;       /* count entries (malloc'd); spans point into the body */
};

/* The seven arrays tdgl.apply_page takes after the source: ids bigint[], tables text[],
 * ops text[], pks json[], old_pks json[], rows json[], changed_at text[]. */
#define PAGE_NARRAYS 7
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

#endif
