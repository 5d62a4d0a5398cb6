/* page: spans of a changes page, and their binary array encoding (see page.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/json.h"
#include "replica/page.h"

/* PostgreSQL's deepest json nesting is bounded by its stack depth; cJSON's limit was ours. */
#define PAGE_MAX_DEPTH 1000

/* Type oids of the array elements (pg_type.dat): stable across releases. */
#define PAGE_INT4OID 23
#define PAGE_INT8OID 20
#define PAGE_TEXTOID 25
#define PAGE_JSONOID 114

/* 1 when the string literal s (quotes included) decodes to name. */
static int page_key_is(const char *s, size_t n, const char *name)
{
	struct buf b = { 0 };
	int eq;

	if (!memchr(s, '\\', n))
		return n == strlen(name) + 2 && !memcmp(s + 1, name, n - 2);
	eq = json_string_decode(s, n, &b) == 0 && !strcmp(b.data, name);
	buf_free(&b);
	return eq;
}

/* Calls fn(key, klen, value, vlen, ctx) for each member of the object at p (already
 * scanned: valid JSON). Returns -1 when p is not an object or fn fails. */
static int page_members(const char *p, const char *end,
                        int (*fn)(const char *, size_t, const char *, size_t, void *), void *ctx)
{
	p = json_skip_ws(p, end);
	if (p >= end || *p != '{')
		return -1;
	p = json_skip_ws(p + 1, end);
	while (p < end && *p == '"') {
		const char *k = p, *v, *ve;

		p = json_scan_value(p, end, 1);
		v = json_skip_ws(json_skip_ws(p, end) + 1, end);        /* past ':' */
		ve = json_scan_value(v, end, PAGE_MAX_DEPTH);
		if (fn(k, (size_t)(p - k), v, (size_t)(ve - v), ctx) < 0)
			return -1;
		p = json_skip_ws(ve, end);
		if (*p == ',')
			p = json_skip_ws(p + 1, end);
	}
	return 0;
}

static void page_keep(struct page_span *s, const char *v, size_t n, int objects_only)
{
	int keep = objects_only ? *v == '{' : !(n == 4 && !memcmp(v, "null", 4));

	s->p = keep ? v : NULL;
	s->n = keep ? n : 0;
}

static int page_change_member(const char *k, size_t kn, const char *v, size_t vn, void *ctx)
{
	struct page_change *c = ctx;

	if (page_key_is(k, kn, "id"))
		page_keep(&c->id, v, vn, 0);
	else if (page_key_is(k, kn, "table"))
		page_keep(&c->table, v, vn, 0);
	else if (page_key_is(k, kn, "op"))
		page_keep(&c->op, v, vn, 0);
	else if (page_key_is(k, kn, "pk"))
		page_keep(&c->pk, v, vn, 1);
	else if (page_key_is(k, kn, "old_pk"))
		page_keep(&c->old_pk, v, vn, 1);
	else if (page_key_is(k, kn, "row"))
		page_keep(&c->row, v, vn, 1);
	else if (page_key_is(k, kn, "changed_at"))
		page_keep(&c->changed_at, v, vn, 0);
	else if (page_key_is(k, kn, "version"))
		page_keep(&c->version, v, vn, 1);
	return 0;
}

struct page_top {
	struct page_span changes, cursor, more, site;
	int seen;                 /* bit per key: the top level must be unambiguous */
};

static int page_top_member(const char *k, size_t kn, const char *v, size_t vn, void *ctx)
{
	struct page_top *t = ctx;
	static const char *const names[] = { "changes", "cursor", "more", "site" };
	struct page_span *spans[] = { &t->changes, &t->cursor, &t->more, &t->site };

	for (int i = 0; i < 4; i++) {
		if (!page_key_is(k, kn, names[i]))
			continue;
		if (t->seen & (1 << i))
			return -1;
		t->seen |= 1 << i;
		spans[i]->p = v;
		spans[i]->n = vn;
	}
	return 0;
}

int page_parse(const char *body, size_t len, struct page *pg, char *err, size_t errlen)
{
	const char *end = body + len, *p, *e;
	struct page_top top = { 0 };
	struct buf cur = { 0 };
	int cap = 0;

	memset(pg, 0, sizeof *pg);
	e = body ? json_scan_value(body, end, PAGE_MAX_DEPTH) : NULL;
	if (!e || json_skip_ws(e, end) != end || !json_utf8_valid(body, len)) {
		snprintf(err, errlen, "not one valid JSON document");
		goto fail;
	}
	if (page_members(body, end, page_top_member, &top) < 0) {
		snprintf(err, errlen, "not an object with one each of changes, cursor, more");
		goto fail;
	}
	if (!top.changes.p || *top.changes.p != '[' || !top.cursor.p || *top.cursor.p != '"' ||
	    json_string_decode(top.cursor.p, top.cursor.n, &cur) < 0 || !cur.len) {
		snprintf(err, errlen, "no changes array or no cursor");
		goto fail;
	}
	pg->cursor = buf_steal(&cur);
	pg->more = top.more.p && top.more.n == 4 && !memcmp(top.more.p, "true", 4);
	/* a UUID's text: 36 characters between the quotes, nothing to unescape */
	if (top.site.p && top.site.n == 38 && top.site.p[0] == '"' && top.site.p[37] == '"' &&
	    !memchr(top.site.p + 1, '\\', 36)) {
		memcpy(pg->site, top.site.p + 1, 36);
		pg->site[36] = '\0';
	}
	p = json_skip_ws(top.changes.p + 1, end);
	while (*p != ']') {
		const char *ve = json_scan_value(p, end, PAGE_MAX_DEPTH);

		if (pg->count == cap) {
			cap = cap ? cap * 2 : 64;
			pg->ch = realloc(pg->ch, (size_t)cap * sizeof *pg->ch);
			if (!pg->ch)
				abort();
		}
		memset(&pg->ch[pg->count], 0, sizeof *pg->ch);
		/* an element that is not an object stays all NULL: apply ignores it */
		if (*p == '{')
			page_members(p, ve, page_change_member, &pg->ch[pg->count]);
		pg->count++;
		p = json_skip_ws(ve, end);
		if (*p == ',')
			p = json_skip_ws(p + 1, end);
	}
	return 0;
fail:
	buf_free(&cur);
	page_free(pg);
	return -1;
}

void page_free(struct page *pg)
{
	free(pg->cursor);
	free(pg->ch);
	memset(pg, 0, sizeof *pg);
}

static void page_put32(struct buf *b, uint32_t v)
{
	v = htonl(v);
	buf_append(b, &v, 4);
}

/* Array header of n elements (binary array format: ndim, has-nulls flag, element type, then
 * size and lower bound per dimension; an empty array has no dimension). */
static void page_array_begin(struct buf *b, uint32_t elemtype, int n)
{
	page_put32(b, n ? 1 : 0);
	page_put32(b, 1);
	page_put32(b, elemtype);
	if (n) {
		page_put32(b, (uint32_t)n);
		page_put32(b, 1);
	}
}

static void page_array_elem(struct buf *b, const char *p, size_t n)
{
	page_put32(b, p ? (uint32_t)n : UINT32_MAX);      /* -1: NULL */
	if (p)
		buf_append(b, p, n);
}

/* A JSON string as a text element; any other JSON value as NULL. */
static int page_text_elem(struct buf *b, const struct page_span *s, struct buf *tmp)
{
	if (!s->p || *s->p != '"') {
		page_array_elem(b, NULL, 0);
		return 0;
	}
	buf_reset(tmp);
	if (json_string_decode(s->p, s->n, tmp) < 0)
		return -1;
	page_array_elem(b, tmp->data, tmp->len);
	return 0;
}

static int page_id_elem(struct buf *b, const struct page_span *s)
{
	char num[32], *e;
	long long v;
	uint32_t half[2];

	if (!s->p) {
		page_array_elem(b, NULL, 0);
		return 0;
	}
	if (s->n >= sizeof num)
		return -1;
	memcpy(num, s->p, s->n);
	num[s->n] = '\0';
	errno = 0;
	v = strtoll(num, &e, 10);
	if (errno || *e || e == num)
		return -1;
	half[0] = htonl((uint32_t)((unsigned long long)v >> 32));
	half[1] = htonl((uint32_t)((unsigned long long)v & 0xffffffffu));
	page_array_elem(b, (const char *)half, 8);
	return 0;
}

char page_op_class(const struct page_span *op)
{
	if (op->p && op->n == 8 && !memcmp(op->p, "\"Delete\"", 8))
		return 'D';
	if (op->p && op->n == 8 && !memcmp(op->p, "\"Rename\"", 8))
		return 'R';
	return 'U';
}

static int page_span_eq(const struct page_span *a, const struct page_span *b)
{
	return a->n == b->n && (a->n == 0 || !memcmp(a->p, b->p, a->n));
}

/* Orders changes i and j by the text of spans a and b (theirs), then by position. */
static int page_cmp_spans(int i, int j, const struct page_span *a, const struct page_span *b)
{
	size_t n = a->n < b->n ? a->n : b->n;
	int c = n ? memcmp(a->p, b->p, n) : 0;

	if (c == 0 && a->n != b->n)
		c = a->n < b->n ? -1 : 1;
	return c ? c : (i > j) - (i < j);
}

/* Orders change indexes by key text, then by position (ctx: the changes). */
static int page_cmp_key(const void *x, const void *y, void *ctx)
{
	const struct page_change *ch = ctx;
	int i = *(const int *)x, j = *(const int *)y;

	return page_cmp_spans(i, j, &ch[i].pk, &ch[j].pk);
}

/* Cuts the changes sel[0..n) (page indexes, in page order) into runs numbered from next;
 * returns the next free run number. idx: scratch of n entries. */
static int page_cut(const struct page *pg, const int *sel, int n, int *run, int next, int *idx)
{
	for (int a = 0, b; a < n; a = b) {
		const struct page_change *first = &pg->ch[sel[a]];
		char cls = page_op_class(&first->op);
		int most = 1;

		/* a segment: consecutive changes (of sel) of one table and one class */
		for (b = a + 1; b < n && page_op_class(&pg->ch[sel[b]].op) == cls &&
		     page_span_eq(&pg->ch[sel[b]].table, &first->table); b++)
			;
		if (cls == 'R') {                   /* renames go one by one */
			for (int i = a; i < b; i++)
				run[sel[i]] = next + (i - a);
			next += b - a;
			continue;
		}
		/* the n-th change of a key goes to the segment's n-th run (keys compared as the
		 * primary's text: a key spelled two ways only costs a failed run statement, which is
		 * then re-applied change by change, in order) */
		for (int i = a; i < b; i++)
			idx[i - a] = sel[i];
		qsort_r(idx, (size_t)(b - a), sizeof *idx, page_cmp_key, pg->ch);
		for (int k = 0, occ = 0; k < b - a; k++) {
			occ = k > 0 && page_span_eq(&pg->ch[idx[k]].pk, &pg->ch[idx[k - 1]].pk) ? occ + 1 : 1;
			run[idx[k]] = next + occ - 1;
			if (occ > most)
				most = occ;
		}
		next += most;
	}
	return next;
}

/* page_cut for one table's changes sel[0..n) when rows of the page are independent but for
 * their keys (by_table: no foreign key or trigger links them). Between renames (a run
 * each: they touch two keys) a change's layer is its key's occurrence there (a key's n-th
 * change is in layer n), and each layer is two runs, its deletes then its upserts: a key's
 * changes keep their order, and a table's mix of inserts, updates and deletes is a few runs
 * per page, not one per switch of operation (a delete freeing a unique value an insert of
 * the same layer takes again stays before it). Keys compared as the primary's text, as
 * page_cut does. Returns the next free run number; idx: scratch of n entries. */
static int page_cut_layers(const struct page *pg, const int *sel, int n, int *run, int next,
                           int *idx)
{
	int *map = malloc((size_t)(2 * n + 2) * sizeof *map);

	if (!map)
		abort();
	for (int a = 0, b; a < n; a = b) {
		int most = 1, used = 0;

		if (page_op_class(&pg->ch[sel[a]].op) == 'R') {
			run[sel[a]] = next++;
			b = a + 1;
			continue;
		}
		for (b = a + 1; b < n && page_op_class(&pg->ch[sel[b]].op) != 'R'; b++)
			;
		for (int i = a; i < b; i++)
			idx[i - a] = sel[i];
		qsort_r(idx, (size_t)(b - a), sizeof *idx, page_cmp_key, pg->ch);
		for (int k = 0, occ = 0; k < b - a; k++) {     /* run[] holds the layer for now */
			occ = k > 0 && page_span_eq(&pg->ch[idx[k]].pk, &pg->ch[idx[k - 1]].pk) ? occ + 1 : 1;
			run[idx[k]] = occ;
			if (occ > most)
				most = occ;
		}
		/* slot 2 (layer - 1) holds the layer's deletes, the next its upserts; the slots
		 * used are numbered from next in order */
		memset(map, 0, (size_t)(2 * most) * sizeof *map);
		for (int i = a; i < b; i++)
			map[2 * (run[sel[i]] - 1) + (page_op_class(&pg->ch[sel[i]].op) != 'D')] = 1;
		for (int s = 0; s < 2 * most; s++)
			map[s] = map[s] ? next + used++ : 0;
		for (int i = a; i < b; i++)
			run[sel[i]] = map[2 * (run[sel[i]] - 1) + (page_op_class(&pg->ch[sel[i]].op) != 'D')];
		next += used;
	}
	free(map);
	return next;
}

/* Orders change indexes by table text, then by position (ctx: the changes). */
static int page_cmp_table(const void *x, const void *y, void *ctx)
{
	const struct page_change *ch = ctx;
	int i = *(const int *)x, j = *(const int *)y;

	return page_cmp_spans(i, j, &ch[i].table, &ch[j].table);
}

void page_runs(const struct page *pg, int *run, int by_table)
{
	size_t n = (size_t)(pg->count ? pg->count : 1);
	int *sel = malloc(n * sizeof *sel), *idx = malloc(n * sizeof *idx), next = 1;

	if (!sel || !idx)
		abort();
	for (int i = 0; i < pg->count; i++) {
		sel[i] = i;
		/* a table name spelled with an escape could name one table two ways: keep order */
		if (pg->ch[i].table.p && memchr(pg->ch[i].table.p, '\\', pg->ch[i].table.n))
			by_table = 0;
	}
	if (!by_table) {
		page_cut(pg, sel, pg->count, run, 1, idx);
	} else {
		/* each table's changes, in page order, cut on their own: a stable sort by table
		 * (ties by position) lays them out table after table */
		qsort_r(sel, (size_t)pg->count, sizeof *sel, page_cmp_table, pg->ch);
		for (int a = 0, b; a < pg->count; a = b) {
			for (b = a + 1; b < pg->count &&
			     page_span_eq(&pg->ch[sel[b]].table, &pg->ch[sel[a]].table); b++)
				;
			next = page_cut_layers(pg, sel + a, b - a, run, next, idx);
		}
	}
	free(sel);
	free(idx);
}

int page_arrays(const struct page *pg, struct page_arrays *out, char *err, size_t errlen)
{
	static const uint32_t types[PAGE_NARRAYS] = { PAGE_INT8OID, PAGE_TEXTOID, PAGE_TEXTOID,
		PAGE_JSONOID, PAGE_JSONOID, PAGE_JSONOID, PAGE_TEXTOID, PAGE_INT4OID, PAGE_INT4OID,
		PAGE_TEXTOID, PAGE_JSONOID };
	struct buf b[PAGE_NARRAYS] = { { 0 } }, tmp = { 0 };
	size_t n = (size_t)(pg->count ? pg->count : 1);
	int *run = malloc(n * sizeof *run), *trun = malloc(n * sizeof *trun), rc = -1;

	if (!run || !trun)
		abort();
	memset(out, 0, sizeof *out);
	page_runs(pg, run, 0);
	page_runs(pg, trun, 1);
	for (int a = 0; a < PAGE_NARRAYS; a++)
		page_array_begin(&b[a], types[a], pg->count);
	for (int i = 0; i < pg->count; i++) {
		const struct page_change *c = &pg->ch[i];

		if (page_id_elem(&b[0], &c->id) < 0) {
			snprintf(err, errlen, "change %d: id is not a bigint", i + 1);
			goto out;
		}
		if (page_text_elem(&b[1], &c->table, &tmp) < 0 ||
		    page_text_elem(&b[2], &c->op, &tmp) < 0 ||
		    page_text_elem(&b[6], &c->changed_at, &tmp) < 0) {
			snprintf(err, errlen, "change %d: a string that is not text", i + 1);
			goto out;
		}
		page_array_elem(&b[3], c->pk.p, c->pk.n);
		page_array_elem(&b[4], c->old_pk.p, c->old_pk.n);
		page_array_elem(&b[5], c->row.p, c->row.n);
		page_array_elem(&b[PAGE_VERSIONS], c->version.p, c->version.n);
		{
			uint32_t r = htonl((uint32_t)run[i]), t = htonl((uint32_t)trun[i]);

			char cls = page_op_class(&c->op);

			page_array_elem(&b[7], (const char *)&r, 4);
			page_array_elem(&b[8], (const char *)&t, 4);
			page_array_elem(&b[9], &cls, 1);
		}
	}
	for (int a = 0; a < PAGE_NARRAYS; a++) {
		out->len[a] = (int)b[a].len;
		out->data[a] = buf_steal(&b[a]);
	}
	rc = 0;
out:
	free(run);
	free(trun);
	buf_free(&tmp);
	for (int a = 0; a < PAGE_NARRAYS; a++)
		buf_free(&b[a]);
	return rc;
}

void page_arrays_free(struct page_arrays *a)
{
	for (int i = 0; i < PAGE_NARRAYS; i++)
		free(a->data[i]);
	memset(a, 0, sizeof *a);
}
