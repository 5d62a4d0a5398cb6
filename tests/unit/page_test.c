/* Unit tests for common/json.c's scanner and replica/page.c: splitting a changes page. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "replica/page.h"
#include "tests/unit/unit.h"

static int scans(const char *s)
{
	const char *e = json_scan_value(s, s + strlen(s), 64);

	return e && json_skip_ws(e, s + strlen(s)) == s + strlen(s);
}

UNIT_TEST(json_scan_value_accepts_exactly_json)
{
	static const char *const good[] = { "0", "-0", "1.5e-3", "-12.0E+2", "\"\"", "\"a\\u00e9\\n\"",
		"true", "null", "[]", "{}", " { \"a\" : [1, {\"b\": null}], \"c\": \"\\\"\" } ",
		"[[[[]]]]" };
	static const char *const bad[] = { "", "01", "1.", ".5", "-", "1e", "+1", "\"abc",
		"\"\\x\"", "\"\\u12g4\"", "\"a\tb\"", "tru", "nul", "[1,]", "{\"a\"}", "{\"a\":1,}",
		"{a:1}", "[1 2]", "[", "{\"a\":1", "[1]]", "'x'" };

	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		if (!scans(good[i]))
			fprintf(stderr, "  good %s\n", good[i]);
		CHECK(scans(good[i]));
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		if (scans(bad[i]))
			fprintf(stderr, "  bad %s\n", bad[i]);
		CHECK(!scans(bad[i]));
	}
}

UNIT_TEST(json_scan_value_bounds_nesting)
{
	char deep[200];

	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	CHECK(json_scan_value(deep, deep + 200, 100) == deep + 200);
	CHECK(json_scan_value(deep, deep + 200, 99) == NULL);
}

static int decodes_to(const char *lit, const char *want)
{
	struct buf b = { 0 };
	int ok = json_string_decode(lit, strlen(lit), &b) == 0 &&
	         (want ? !strcmp(b.data, want) : 0);

	buf_free(&b);
	return ok;
}

UNIT_TEST(json_string_decode_table)
{
	CHECK(decodes_to("\"\"", ""));
	CHECK(decodes_to("\"plain\"", "plain"));
	CHECK(decodes_to("\"a\\\"b\\\\c\\/d\\n\"", "a\"b\\c/d\n"));
	CHECK(decodes_to("\"\\u00e9\\u20ac\"", "\xc3\xa9\xe2\x82\xac"));
	CHECK(decodes_to("\"\\ud83d\\ude42\"", "\xf0\x9f\x99\x82"));
	CHECK(!decodes_to("\"\\u0000\"", ""));
	CHECK(!decodes_to("\"\\ud83d\"", ""));
	CHECK(!decodes_to("\"\\ude42\"", ""));
	CHECK(!decodes_to("\"abc", ""));
	CHECK(!decodes_to("\"a\"b\"", ""));
}

static const char PAGE[] =
	"{\"changes\":[{\"id\":7,\"table\":\"t\\u00e9\",\"op\":\"Update\",\"pk\":{\"id\" : 7},"
	"\"old_pk\":null,\"row\":{\"id\":7,\"x\":-0,\"j\":{\"a\":1,\"a\":2}},"
	"\"changed_at\":\"2026-11-25T10:00:00+00:00\"}, 42, {\"id\":8,\"table\":\"t\",\"op\":\"Delete\","
	"\"pk\":[1],\"row\":null}],\"cursor\":\"v1.abc\",\"more\":true}";

UNIT_TEST(page_parse_keeps_snapshots_verbatim)
{
	struct page pg;
	char err[128];

	CHECK(page_parse(PAGE, strlen(PAGE), &pg, err, sizeof err) == 0);
	CHECK_STR(pg.cursor, "v1.abc");
	CHECK(pg.more == 1);
	CHECK(pg.count == 3);
	if (pg.count == 3) {
		const char *row = "{\"id\":7,\"x\":-0,\"j\":{\"a\":1,\"a\":2}}";

		CHECK(pg.ch[0].row.n == strlen(row) && !memcmp(pg.ch[0].row.p, row, strlen(row)));
		CHECK(pg.ch[0].old_pk.p == NULL);
		CHECK(pg.ch[1].id.p == NULL && pg.ch[1].row.p == NULL);     /* not an object */
		CHECK(pg.ch[2].pk.p == NULL);                                /* not an object */
		CHECK(pg.ch[2].row.p == NULL && pg.ch[2].changed_at.p == NULL);
	}
	page_free(&pg);
}

UNIT_TEST(page_parse_refuses_what_is_not_a_page)
{
	static const char *const bad[] = { "", "[]", "{\"changes\":[]}", "{\"cursor\":\"c\"}",
		"{\"changes\":{},\"cursor\":\"c\"}", "{\"changes\":[],\"cursor\":\"\"}",
		"{\"changes\":[],\"cursor\":1}", "{\"changes\":[],\"cursor\":\"c\",\"cursor\":\"d\"}",
		"{\"changes\":[],\"cursor\":\"c\"} x", "{\"changes\":[1,],\"cursor\":\"c\"}",
		"{\"changes\":[],\"cursor\":\"c\\u0000\"}", "{\"changes\":[\"\xff\"],\"cursor\":\"c\"}" };
	struct page pg;
	char err[128];

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int rc = page_parse(bad[i], strlen(bad[i]), &pg, err, sizeof err);

		if (rc == 0)
			fprintf(stderr, "  accepted %s\n", bad[i]);
		CHECK(rc < 0);
		CHECK(pg.ch == NULL && pg.cursor == NULL);
	}
}

static uint32_t get32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

UNIT_TEST(page_arrays_encode_binary_arrays)
{
	struct page pg;
	struct page_arrays a;
	char err[128];
	const char *p;

	CHECK(page_parse(PAGE, strlen(PAGE), &pg, err, sizeof err) == 0);
	CHECK(page_arrays(&pg, &a, err, sizeof err) == 0);
	/* ids: ndim 1, nulls flag, int8, 3 elements from 1, then 7, NULL, 8 */
	p = a.data[0];
	CHECK(get32(p) == 1 && get32(p + 8) == 20 && get32(p + 12) == 3 && get32(p + 16) == 1);
	CHECK(get32(p + 20) == 8 && get32(p + 24) == 0 && get32(p + 28) == 7);
	CHECK(get32(p + 32) == UINT32_MAX);
	CHECK(get32(p + 36) == 8 && get32(p + 44) == 8);
	CHECK(a.len[0] == 48);
	/* tables: decoded text */
	p = a.data[1];
	CHECK(get32(p + 8) == 25 && get32(p + 20) == 3 && !memcmp(p + 24, "t\xc3\xa9", 3));
	page_arrays_free(&a);
	page_free(&pg);
}

UNIT_TEST(page_arrays_refuse_an_id_that_is_not_a_bigint)
{
	static const char *const bad[] = {
		"{\"changes\":[{\"id\":1.5}],\"cursor\":\"c\"}",
		"{\"changes\":[{\"id\":99999999999999999999}],\"cursor\":\"c\"}",
		"{\"changes\":[{\"id\":\"7\"}],\"cursor\":\"c\"}" };
	struct page pg;
	struct page_arrays a;
	char err[128];

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		CHECK(page_parse(bad[i], strlen(bad[i]), &pg, err, sizeof err) == 0);
		CHECK(page_arrays(&pg, &a, err, sizeof err) < 0);
		page_free(&pg);
	}
}

/* One change of table t, op o, key k, as a page element. */
#define CH(t, o, k) "{\"table\":\"" t "\",\"op\":\"" o "\",\"pk\":{\"id\":" k "},\"row\":{}}"

/* Whether page_runs(pg, by_table) numbers the page's n changes as want (each difference
 * printed). */
static int page_runs_are(const struct page *pg, int by_table, const int *want, int n)
{
	int run[16], same = pg->count == n && n <= 16;

	if (!same)
		return 0;
	page_runs(pg, run, by_table);
	for (int i = 0; i < n; i++) {
		if (run[i] != want[i]) {
			fprintf(stderr, "  change %d: run %d, want %d\n", i + 1, run[i], want[i]);
			same = 0;
		}
	}
	return same;
}

UNIT_TEST(page_runs_keep_each_keys_changes_in_order)
{
	static const char body[] = "{\"cursor\":\"c\",\"changes\":["
		CH("t", "Create", "1") "," CH("t", "Update", "2") "," CH("t", "Update", "1") ","
		CH("t", "Delete", "1") "," CH("t", "Delete", "3") ","
		CH("t", "Rename", "4") "," CH("t", "Rename", "5") ","
		CH("s", "Update", "1") "," CH("t", "Submit", "1") "," CH("t", "Update", "1") "]}";
	static const int want[] = { 1, 1, 2, 3, 3, 4, 5, 6, 7, 8 };
	struct page pg;
	char err[128];

	CHECK(page_parse(body, strlen(body), &pg, err, sizeof err) == 0);
	CHECK(page_runs_are(&pg, 0, want, 10));
	page_free(&pg);
}

/* Transactions touching tables h, l and b in turn: by table, each table's changes are cut on
 * their own (a few runs per table); without, every table switch starts a run. */
UNIT_TEST(page_runs_by_table_group_each_tables_changes_in_order)
{
	static const char body[] = "{\"cursor\":\"c\",\"changes\":["
		CH("h", "Create", "1") "," CH("l", "Create", "1") "," CH("l", "Create", "2") ","
		CH("b", "Update", "1") "," CH("h", "Create", "2") "," CH("l", "Create", "3") ","
		CH("b", "Update", "1") "," CH("l", "Delete", "1") "," CH("h", "Update", "1") ","
		CH("l", "Create", "1") "]}";
	static const int by_table[] = { 3, 5, 5, 1, 3, 5, 2, 6, 4, 7 };
	static const int in_page[] = { 1, 2, 2, 3, 4, 5, 6, 7, 8, 9 };
	/* one table spelled two ways ("a" and "\u0061"): the page's order is kept */
	static const char escaped[] = "{\"cursor\":\"c\",\"changes\":["
		CH("a", "Update", "1") "," CH("\\u0061", "Update", "1") "," CH("a", "Update", "1") "]}";
	static const int kept[] = { 1, 2, 3 };
	struct page pg;
	char err[128];

	CHECK(page_parse(body, strlen(body), &pg, err, sizeof err) == 0);
	CHECK(page_runs_are(&pg, 1, by_table, 10));
	CHECK(page_runs_are(&pg, 0, in_page, 10));
	page_free(&pg);
	CHECK(page_parse(escaped, strlen(escaped), &pg, err, sizeof err) == 0);
	CHECK(page_runs_are(&pg, 1, kept, 3));
	page_free(&pg);
}

/* A rename of table t from key o to key k. */
#define RN(t, k, o) "{\"table\":\"" t "\",\"op\":\"Rename\",\"pk\":{\"id\":" k "}," \
	"\"old_pk\":{\"id\":" o "},\"row\":{}}"

/* Inserts, updates and deletes of one table: by table, a key's n-th change is in layer n,
 * each layer two runs (its deletes, then its upserts) whatever the mix; a rename is a run
 * of its own between the layers before and after it. */
UNIT_TEST(page_runs_by_table_apply_a_tables_mix_of_operations_in_layers)
{
	static const char body[] = "{\"cursor\":\"c\",\"changes\":["
		CH("t", "Create", "1") "," CH("t", "Delete", "2") "," CH("t", "Update", "3") ","
		CH("t", "Create", "4") "," CH("t", "Delete", "5") "," CH("t", "Update", "1") ","
		RN("t", "8", "9") "," CH("t", "Delete", "9") "," CH("t", "Update", "6") "]}";
	static const int by_table[] = { 2, 1, 2, 2, 1, 3, 4, 5, 6 };
	static const int in_page[] = { 1, 2, 3, 3, 4, 5, 6, 7, 8 };
	struct page pg;
	char err[128];

	CHECK(page_parse(body, strlen(body), &pg, err, sizeof err) == 0);
	CHECK(page_runs_are(&pg, 1, by_table, 9));
	CHECK(page_runs_are(&pg, 0, in_page, 9));
	page_free(&pg);
}

extern const char sql_replica[];

/* Streamed changes are classed in C (page_op_class), stored ones in SQL (tdgl_replica.op_class): the
 * same three-line table, checked here against the embedded script. */
UNIT_TEST(page_op_class_is_sqls_op_class)
{
	static const struct { const char *op; char cls; } table[] = {
		{ "\"Create\"", 'U' }, { "\"Update\"", 'U' }, { "\"Submit\"", 'U' },
		{ "\"Cancel\"", 'U' }, { "\"Update After Submit\"", 'U' }, { "\"Repair\"", 'U' },
		{ "\"Delete\"", 'D' }, { "\"Rename\"", 'R' }, { "\"delete\"", 'U' } };
	const char *def = strstr(sql_replica, "FUNCTION tdgl_replica.op_class(");

	for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
		struct page_span s = { table[i].op, strlen(table[i].op) };

		CHECK(page_op_class(&s) == table[i].cls);
	}
	CHECK(def != NULL);
	if (def) {
		const char *body = strstr(def,
			"CASE p_op WHEN 'Delete' THEN 'D' WHEN 'Rename' THEN 'R' ELSE 'U' END");

		CHECK(body != NULL && body - def < 200);
	}
}

UNIT_TEST(page_arrays_carry_each_changes_class)
{
	static const char body[] = "{\"cursor\":\"c\",\"changes\":["
		CH("t", "Create", "1") "," CH("t", "Delete", "1") "," CH("t", "Rename", "2") "]}";
	struct page pg;
	struct page_arrays a;
	char err[128];
	const char *p;

	CHECK(page_parse(body, strlen(body), &pg, err, sizeof err) == 0);
	CHECK(page_arrays(&pg, &a, err, sizeof err) == 0);
	/* classes: text[] of 3 one-byte elements after the 20-byte header */
	p = a.data[9];
	CHECK(get32(p + 8) == 25 && get32(p + 12) == 3);
	CHECK(get32(p + 20) == 1 && p[24] == 'U');
	CHECK(get32(p + 25) == 1 && p[29] == 'D');
	CHECK(get32(p + 30) == 1 && p[34] == 'R');
	page_arrays_free(&a);
	page_free(&pg);
}
