/* hashes: see hashes.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/cursor.h"
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "primary/hashes.h"

static const char Q_COLUMNS[] =
	"SELECT json_build_object('columns', cols, 'key', pk)::text FROM tdgl.verify_table($1,"
	" (SELECT array_agg(x) FROM json_array_elements_text($2::json) x))";
static const char Q_BUCKETS[] =
	"SELECT tdgl.verify_buckets($1, (SELECT array_agg(x) FROM json_array_elements_text($2::json) x),"
	" $3::jsonb, $4::int, $5::bigint[], $6::int)::text";
static const char Q_KEYS[] =
	"SELECT tdgl.verify_keys($1, (SELECT array_agg(x) FROM json_array_elements_text($2::json) x),"
	" $3::jsonb, $4::int, $5::bigint[])::text";
static const char Q_ROWS[] =
	"SELECT tdgl.verify_rows($1, (SELECT array_agg(x) FROM json_array_elements_text($2::json) x),"
	" $3::jsonb, $4::json, $5::bool, $6, $7, $8::bigint)::text";

/* Checks that text (may be NULL when optional) parses as JSON of the given cJSON type test. */
static int hashes_json(const char *what, const char *text, int (*is)(const cJSON *),
                       const char *expected, char *err, size_t errlen)
{
	char perr[128];
	cJSON *j;
	int ok;

	if (strlen(text) > HASHES_PARAM_MAX) {
		snprintf(err, errlen, "%s is too long", what);
		return -1;
	}
	j = json_parse_strict(text, strlen(text), perr, sizeof perr);
	ok = j && is(j);
	if (!ok)
		snprintf(err, errlen, "%s: expected %s%s%s", what, expected, j ? "" : ": ",
		         j ? "" : perr);
	cJSON_Delete(j);
	return ok ? 0 : -1;
}

static int hashes_is_names(const cJSON *j)
{
	const cJSON *x;

	if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) == 0)
		return 0;
	cJSON_ArrayForEach(x, j)
		if (!cJSON_IsString(x) || !*x->valuestring)
			return 0;
	return 1;
}

static int hashes_is_object(const cJSON *j)
{
	return cJSON_IsObject(j);
}

static int hashes_is_keys(const cJSON *j)
{
	const cJSON *x;

	if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) > HASHES_MAX_KEYS)
		return 0;
	cJSON_ArrayForEach(x, j)
		if (!cJSON_IsObject(x))
			return 0;
	return 1;
}

/* "b1,b2,..." (non-negative integers) -> "{b1,b2,...}" in out. 0, or -1 with err. */
static int hashes_prefixes(const char *csv, long bits, struct buf *out, char *err, size_t errlen)
{
	long max = bits >= 40 ? (1L << 40) - 1 : (1L << bits) - 1, v;
	char *copy = NULL, *save = NULL, *tok;
	int n = 0, rc = -1;

	if (strlen(csv) > HASHES_PARAM_MAX) {
		snprintf(err, errlen, "prefixes is too long");
		goto out;
	}
	copy = strdup(csv);
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	buf_puts(out, "{");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (args_int(tok, 0, max, &v) < 0 || ++n > HASHES_MAX_PREFIXES) {
			snprintf(err, errlen, "prefixes: expected at most %d integers from 0 to %ld",
			         HASHES_MAX_PREFIXES, max);
			goto out;
		}
		buf_printf(out, "%s%ld", n > 1 ? "," : "", v);
	}
	buf_puts(out, "}");
	rc = 0;
out:
	free(copy);
	return rc;
}

/* A failed query: data errors (unknown table or column, bad values) are the client's. */
static unsigned hashes_db_status(char *err, size_t errlen)
{
	const char *st = db_last_sqlstate();

	if (!strncmp(st, "22", 2) || !strcmp(st, "42P01") || !strcmp(st, "42703") ||
	    !strcmp(st, "42804")) {
		snprintf(err, errlen, "bad request: %.300s", db_last_error());
		return 400;
	}
	snprintf(err, errlen, "database error");
	return 500;
}

unsigned hashes_answer(PGconn *c, const struct hashes_req *r, struct buf *out, char *err,
                       size_t errlen)
{
	struct cursor cur = { 0 };
	struct buf prefixes = { 0 };
	PGresult *res = NULL;
	unsigned status = 400;
	long bits = 0, pbits = 0;
	char bits_s[16], pbits_s[16], last_s[24];
	int decoded = 0;

	if (!r->table || !*r->table || strlen(r->table) > 200) {
		snprintf(err, errlen, "table: required (at most 200 characters)");
		goto out;
	}
	if (!r->columns || hashes_json("columns", r->columns, hashes_is_names,
	                               "a JSON array of column names", err, errlen) < 0) {
		if (!r->columns)
			snprintf(err, errlen, "columns: required");
		goto out;
	}
	if (r->filter && *r->filter &&
	    hashes_json("filter", r->filter, hashes_is_object, "a JSON object", err, errlen) < 0)
		goto out;
	if (!r->mode || (strcmp(r->mode, "columns") && strcmp(r->mode, "buckets") &&
	                 strcmp(r->mode, "keys") && strcmp(r->mode, "rows"))) {
		snprintf(err, errlen, "mode must be columns, buckets, keys or rows");
		goto out;
	}
	if ((r->bits && args_int(r->bits, 0, 40, &bits) < 0) ||
	    (r->prefix_bits && args_int(r->prefix_bits, 0, 40, &pbits) < 0)) {
		snprintf(err, errlen, "bits and prefix_bits must be integers from 0 to 40");
		goto out;
	}
	if (!strcmp(r->mode, "buckets") && pbits > bits) {
		snprintf(err, errlen, "prefix_bits must be at most bits");
		goto out;
	}
	if ((!strcmp(r->mode, "buckets") || !strcmp(r->mode, "keys")) && pbits > 0 &&
	    (!r->prefixes || hashes_prefixes(r->prefixes, pbits, &prefixes, err, errlen) < 0)) {
		if (!r->prefixes)
			snprintf(err, errlen, "prefixes: required with prefix_bits");
		goto out;
	}
	snprintf(bits_s, sizeof bits_s, "%ld", bits);
	snprintf(pbits_s, sizeof pbits_s, "%ld", pbits);
	if (!strcmp(r->mode, "columns")) {
		const char *p[2] = { r->table, r->columns };
		res = db_exec(c, "hashes: columns", Q_COLUMNS, 2, p);
	} else if (!strcmp(r->mode, "rows")) {
		const char *p[8] = { r->table, r->columns, r->filter && *r->filter ? r->filter : NULL,
		                     r->keys, NULL, NULL, NULL, NULL };

		if (!r->keys || hashes_json("keys", r->keys, hashes_is_keys,
		                            "a JSON array of at most 1000 key objects", err,
		                            errlen) < 0) {
			if (!r->keys)
				snprintf(err, errlen, "keys: required");
			goto out;
		}
		if (r->cursor && *r->cursor) {
			if (cursor_decode(r->cursor, &cur, err, errlen) < 0)
				goto out;
			decoded = 1;
			snprintf(last_s, sizeof last_s, "%lld", (long long)cur.last);
			p[4] = cur.open ? "true" : "false";
			p[5] = cur.s1;
			p[6] = cur.s2;
			p[7] = last_s;
		}
		res = db_exec(c, "hashes: rows", Q_ROWS, 8, p);
	} else if (!strcmp(r->mode, "keys")) {
		const char *p[5] = { r->table, r->columns, r->filter && *r->filter ? r->filter : NULL,
		                     pbits_s, pbits ? prefixes.data : NULL };
		res = db_exec(c, "hashes: keys", Q_KEYS, 5, p);
	} else {
		const char *p[6] = { r->table, r->columns, r->filter && *r->filter ? r->filter : NULL,
		                     pbits_s, pbits ? prefixes.data : NULL, bits_s };
		res = db_exec(c, "hashes: buckets", Q_BUCKETS, 6, p);
	}
	if (!res) {
		status = hashes_db_status(err, errlen);
		goto out;
	}
	buf_append(out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
	status = 200;
out:
	PQclear(res);
	buf_free(&prefixes);
	if (decoded)
		cursor_free(&cur);
	return status;
}
