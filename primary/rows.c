/* rows: /api/rows and /api/row. The table must be tracked; its name and key columns come
 * from tdgl.tracked_tables and are quoted with PQescapeIdentifier. Keys and filters are
 * JSON objects converted to the table's column types by PostgreSQL (json_populate_record),
 * so they are always bound values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "primary/rows.h"

#define ROWS_MAX_PK 32
#define ROWS_MAX_FILTER 32
#define ROWS_MAX_COLUMNS 1600       /* PostgreSQL's own limit per table */

static const char Q_TABLE[] =
	"SELECT format('%I.%I', n.nspname, c.relname), k.col"
	" FROM tdgl.tracked_tables t JOIN pg_class c ON c.oid = t.relid"
	" JOIN pg_namespace n ON n.oid = c.relnamespace"
	" CROSS JOIN LATERAL unnest(t.pk_columns) WITH ORDINALITY AS k(col, ord)"
	" WHERE t.name = $1 AND t.enabled ORDER BY k.ord";

/* A copy page's columns: all of the table's, or those asked for that it has (others are
 * left out: the two sites' tables may differ), in attnum or request order. */
static const char Q_COLUMNS_ALL[] =
	"SELECT a.attname FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0"
	" AND NOT a.attisdropped ORDER BY a.attnum";
static const char Q_COLUMNS_OF[] =
	"SELECT a.attname FROM json_array_elements_text($2::json) WITH ORDINALITY AS x(name, ord)"
	" JOIN pg_attribute a ON a.attrelid = $1::regclass AND a.attname = x.name"
	" AND a.attnum > 0 AND NOT a.attisdropped ORDER BY x.ord";

struct rows_table {
	char *qname;                  /* "schema"."table", quoted */
	int   npk;
	char *pk[ROWS_MAX_PK];        /* column names as stored */
	char *qpk[ROWS_MAX_PK];       /* quoted with PQescapeIdentifier */
	char *lpk[ROWS_MAX_PK];       /* as SQL string literals (JSON keys) */
};

static void rows_table_free(struct rows_table *t)
{
	free(t->qname);
	for (int i = 0; i < t->npk; i++) {
		free(t->pk[i]);
		PQfreemem(t->qpk[i]);
		PQfreemem(t->lpk[i]);
	}
	memset(t, 0, sizeof(*t));
}

/* RESULT_OK when found, RESULT_INVALID unknown table, RESULT_INTERNAL error. */
static enum result rows_table_load(PGconn *c, const char *name, struct rows_table *t,
                                   char *err, size_t errlen)
{
	const char *params[1] = { name };
	PGresult *res = NULL;
	enum result status = RESULT_INTERNAL;

	memset(t, 0, sizeof(*t));
	if (!name || !*name) {
		snprintf(err, errlen, "table: required");
		status = RESULT_INVALID;
		goto out;
	}
	if (strlen(name) > 200) {
		snprintf(err, errlen, "table: name too long");
		status = RESULT_INVALID;
		goto out;
	}
	res = db_exec(c, "rows: find table", Q_TABLE, 1, params);
	if (!res) {
		snprintf(err, errlen, "database error");
		goto out;
	}
	if (PQntuples(res) == 0 || PQntuples(res) > ROWS_MAX_PK) {
		snprintf(err, errlen, "unknown or untracked table: %.200s", name);
		status = RESULT_INVALID;
		goto out;
	}
	t->qname = strdup(PQgetvalue(res, 0, 0));
	for (int i = 0; i < PQntuples(res); i++) {
		const char *col = PQgetvalue(res, i, 1);
		t->pk[i] = strdup(col);
		t->qpk[i] = PQescapeIdentifier(c, col, strlen(col));
		t->lpk[i] = PQescapeLiteral(c, col, strlen(col));
		t->npk = i + 1;
		if (!t->pk[i] || !t->qpk[i] || !t->lpk[i]) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	if (!t->qname)
		goto out;
	status = RESULT_OK;
out:
	if (status != RESULT_OK)
		rows_table_free(t);
	PQclear(res);
	return status;
}

/* Checks that text is a JSON object holding every key column (non-null). 0 or -1. */
static int rows_check_pk(const struct rows_table *t, const char *what, const char *text,
                         char *err, size_t errlen)
{
	char perr[128];
	cJSON *j = json_parse_strict(text, strlen(text), perr, sizeof perr);
	int rc = -1;

	if (!j) {
		snprintf(err, errlen, "%s: invalid JSON: %s", what, perr);
		goto out;
	}
	if (!cJSON_IsObject(j)) {
		snprintf(err, errlen, "%s: expected a JSON object with the primary key", what);
		goto out;
	}
	for (int i = 0; i < t->npk; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, t->pk[i]);
		if (!v || cJSON_IsNull(v) || cJSON_IsObject(v) || cJSON_IsArray(v)) {
			snprintf(err, errlen, "%s: missing or invalid key column \"%.100s\"", what,
			         t->pk[i]);
			goto out;
		}
	}
	rc = 0;
out:
	cJSON_Delete(j);
	return rc;
}

/* Maps a failed query to a result and a message of our own: data errors are the client's
 * (bad key values, unknown filter columns), the rest are ours. The database's text stays in
 * our log: it names internals (aliases, types) and can echo the query. */
static enum result rows_db_status(const char *st, const char *msg, char *err, size_t errlen)
{
	enum result status = RESULT_INVALID;

	if (!strcmp(st, "42703"))
		snprintf(err, errlen, "filter: bad column name");
	else if (!strcmp(st, "42883"))
		snprintf(err, errlen, "filter: a column of that type cannot be compared");
	else if (!strncmp(st, "22", 2))
		snprintf(err, errlen, "bad value: a key or filter value does not fit its column");
	else
		status = RESULT_INTERNAL;
	if (status == RESULT_INTERNAL)
		snprintf(err, errlen, "database error");
	(void)msg;   /* the query's own log line (db_exec) has it */
	return status;
}

/* "(t.a, t.b)" */
static void rows_key_tuple(struct buf *q, const struct rows_table *t, const char *alias)
{
	buf_puts(q, "(");
	for (int i = 0; i < t->npk; i++)
		buf_printf(q, "%s%s.%s", i ? ", " : "", alias, t->qpk[i]);
	buf_puts(q, ")");
}

/* Checks the filter parameter (a JSON object of at most ROWS_MAX_FILTER columns) into *fj.
 * 0, or -1 with err (RESULT_INVALID). */
static int rows_check_filter(const char *filter, cJSON **fj, char *err, size_t errlen)
{
	char perr[128];
	int nkeys = 0;

	*fj = NULL;
	if (!filter)
		return 0;
	*fj = json_parse_strict(filter, strlen(filter), perr, sizeof perr);
	if (!*fj || !cJSON_IsObject(*fj)) {
		snprintf(err, errlen, "filter: expected a JSON object%s%s", *fj ? "" : ": ",
		         *fj ? "" : perr);
		return -1;
	}
	for (cJSON *it = (*fj)->child; it; it = it->next)
		nkeys++;
	if (nkeys > ROWS_MAX_FILTER) {
		snprintf(err, errlen, "filter: too many columns");
		return -1;
	}
	return 0;
}

/* Appends " FROM t ... WHERE ... ORDER BY <key> LIMIT $n" of a page (after, filter, limit + 1
 * rows) to q and its parameters to params/np (room for 3). 0, or -1 with err (RESULT_INVALID). */
static int rows_page_tail(PGconn *c, const struct rows_table *t, const char *after,
                          const char *filter, const cJSON *fj, const char *lim,
                          struct buf *q, const char **params, int *np, char *err, size_t errlen)
{
	buf_printf(q, " FROM %s t", t->qname);
	if (fj && fj->child) {
		params[(*np)++] = filter;
		buf_printf(q, " CROSS JOIN json_populate_record(NULL::%s, $%d::json) f", t->qname, *np);
	}
	buf_puts(q, " WHERE true");
	if (after) {
		params[(*np)++] = after;
		buf_puts(q, " AND ");
		rows_key_tuple(q, t, "t");
		buf_puts(q, " > (SELECT ");
		for (int i = 0; i < t->npk; i++)
			buf_printf(q, "%sr.%s", i ? ", " : "", t->qpk[i]);
		buf_printf(q, " FROM json_populate_record(NULL::%s, $%d::json) r)", t->qname, *np);
	}
	for (const cJSON *it = fj ? fj->child : NULL; it; it = it->next) {
		char *qc = PQescapeIdentifier(c, it->string, strlen(it->string));
		if (!qc) {
			snprintf(err, errlen, "filter: bad column name");
			return -1;
		}
		buf_printf(q, " AND t.%s IS NOT DISTINCT FROM f.%s", qc, qc);
		PQfreemem(qc);
	}
	buf_puts(q, " ORDER BY ");
	for (int i = 0; i < t->npk; i++)
		buf_printf(q, "%st.%s", i ? ", " : "", t->qpk[i]);
	params[(*np)++] = lim;
	buf_printf(q, " LIMIT $%d::int", *np);
	return 0;
}

/* The key of row i as a JSON object (the page's next). */
static void rows_key_select(struct buf *q, const struct rows_table *t)
{
	buf_puts(q, "json_build_object(");
	for (int i = 0; i < t->npk; i++)
		buf_printf(q, "%s%s, t.%s", i ? ", " : "", t->lpk[i], t->qpk[i]);
	buf_puts(q, ")::text");
}

/* Loads a page request's table and checks its after key and filter: RESULT_OK with *t
 * loaded and *fj the parsed filter (NULL when none), both the caller's to free; else another
 * result with err and nothing held. */
static enum result rows_page_open(PGconn *c, const char *table, const char *after,
                                  const char *filter, struct rows_table *t, cJSON **fj,
                                  char *err, size_t errlen)
{
	enum result status = rows_table_load(c, table, t, err, errlen);

	*fj = NULL;
	if (status != RESULT_OK)
		return status;
	if ((after && rows_check_pk(t, "after", after, err, errlen) < 0) ||
	    rows_check_filter(filter, fj, err, errlen) < 0) {
		cJSON_Delete(*fj);
		*fj = NULL;
		rows_table_free(t);
		return RESULT_INVALID;
	}
	return RESULT_OK;
}

/* The indexes that find a row's versions (a site serving versions is two-way: it has or
 * will have them anyway; without, every row would scan the change log). */
static const char Q_ROW_VERSIONS_ON[] = "SELECT tdgl.enable_row_versions()";
static const char Q_SITE[] = "SELECT id::text FROM tdgl.site_identity";

/* Appends the row version column of a versions page: the key as the capture writes it
 * (json_build_object of the key columns, as rows_key_select) looked up in the change log
 * of table parameter $param; a change made here has origin $(param + 1), this site. */
static void rows_version_select(struct buf *q, const struct rows_table *t, int param)
{
	buf_printf(q, ", (SELECT json_build_object('origin', coalesce(v.origin, $%d::uuid), "
	           "'id', v.id, 'at', v.at) FROM tdgl.row_version($%d::text, ", param + 1, param);
	rows_key_select(q, t);
	buf_puts(q, ", NULL) v)::text");
}

static enum result rows_page_of(PGconn *c, const char *table, const char *after,
                                const char *filter, int limit, int versions, struct buf *out,
                                char *err, size_t errlen)
{
	struct rows_table t;
	struct buf q = {0};
	cJSON *fj = NULL;
	PGresult *res = NULL, *site = NULL;
	const char *params[5];
	char lim[16];
	int np = 0, n;
	enum result status = rows_page_open(c, table, after, filter, &t, &fj, err, errlen);

	if (status != RESULT_OK)
		return status;
	if (versions && (db_run(c, "rows: row versions", Q_ROW_VERSIONS_ON, 0, NULL) < 0 ||
	                 !(site = db_exec(c, "rows: site", Q_SITE, 0, NULL)) ||
	                 PQntuples(site) != 1)) {
		snprintf(err, errlen, "database error");
		status = RESULT_INTERNAL;
		goto out;
	}
	status = RESULT_INVALID;
	buf_puts(&q, "SELECT row_to_json(t.*)::text, ");
	rows_key_select(&q, &t);
	if (versions) {
		params[np++] = table;
		params[np++] = PQgetvalue(site, 0, 0);
		rows_version_select(&q, &t, np - 1);
	}
	snprintf(lim, sizeof lim, "%d", limit + 1);
	if (rows_page_tail(c, &t, after, filter, fj, lim, &q, params, &np, err, errlen) < 0)
		goto out;
	res = db_exec(c, "rows: read page", q.data, np, params);
	if (!res) {
		status = rows_db_status(db_last_sqlstate(), db_last_error(), err, errlen);
		goto out;
	}
	n = PQntuples(res) > limit ? limit : PQntuples(res);
	buf_puts(out, "{\"rows\":[");
	for (int i = 0; i < n; i++) {
		if (i)
			buf_puts(out, ",");
		buf_append(out, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
	}
	if (versions) {
		/* the site identity is a uuid: a JSON string without escapes */
		buf_printf(out, "],\"site\":\"%s\",\"versions\":[", PQgetvalue(site, 0, 0));
		for (int i = 0; i < n; i++) {
			if (i)
				buf_puts(out, ",");
			if (PQgetisnull(res, i, 2))
				buf_puts(out, "null");
			else
				buf_append(out, PQgetvalue(res, i, 2), (size_t)PQgetlength(res, i, 2));
		}
	}
	buf_puts(out, "],\"next\":");
	if (PQntuples(res) > limit)
		buf_append(out, PQgetvalue(res, n - 1, 1), (size_t)PQgetlength(res, n - 1, 1));
	else
		buf_puts(out, "null");
	buf_puts(out, "}");
	status = RESULT_OK;
out:
	PQclear(res);
	PQclear(site);
	cJSON_Delete(fj);
	buf_free(&q);
	rows_table_free(&t);
	return status;
}

enum result rows_page(PGconn *c, const char *table, const char *after, const char *filter,
                      int limit, struct buf *out, char *err, size_t errlen)
{
	return rows_page_of(c, table, after, filter, limit, 0, out, err, errlen);
}

enum result rows_page_versions(PGconn *c, const char *table, const char *after,
                               const char *filter, int limit, struct buf *out, char *err,
                               size_t errlen)
{
	return rows_page_of(c, table, after, filter, limit, 1, out, err, errlen);
}

/* Checks the columns parameter: a JSON array of 1..ROWS_MAX_COLUMNS distinct, non-empty
 * names of at most 63 bytes. 0, or -1 with err (RESULT_INVALID). */
static int rows_check_columns(const char *columns, char *err, size_t errlen)
{
	char perr[128];
	cJSON *j = json_parse_strict(columns, strlen(columns), perr, sizeof perr);
	int n = 0, rc = -1;

	if (!j) {
		snprintf(err, errlen, "columns: invalid JSON: %s", perr);
		goto out;
	}
	if (!cJSON_IsArray(j) || !j->child) {
		snprintf(err, errlen, "columns: expected a JSON array of column names");
		goto out;
	}
	for (const cJSON *it = j->child; it; it = it->next) {
		if (!cJSON_IsString(it) || !*it->valuestring || strlen(it->valuestring) > 63) {
			snprintf(err, errlen, "columns: each must be a column name (1 to 63 bytes)");
			goto out;
		}
		for (const cJSON *p = j->child; p != it; p = p->next) {
			if (!strcmp(p->valuestring, it->valuestring)) {
				snprintf(err, errlen, "columns: \"%.63s\" named twice", it->valuestring);
				goto out;
			}
		}
		if (++n > ROWS_MAX_COLUMNS) {
			snprintf(err, errlen, "columns: too many");
			goto out;
		}
	}
	rc = 0;
out:
	cJSON_Delete(j);
	return rc;
}

/* The columns a copy page serves: those requested that the table has (all when columns is
 * NULL), in request order. Returns the query result (name per row) or NULL (RESULT_INTERNAL). */
static PGresult *rows_copy_columns(PGconn *c, const struct rows_table *t, const char *columns)
{
	const char *params[2] = { t->qname, columns };

	if (!columns)
		return db_exec(c, "rows: columns", Q_COLUMNS_ALL, 1, params);
	return db_exec(c, "rows: columns", Q_COLUMNS_OF, 2, params);
}

/* Appends v in COPY text format: \N for NULL; backslash, newline, carriage return and tab
 * escaped. Everything else is the type's output text, byte for byte. */
static void rows_copy_value(struct buf *out, const PGresult *res, int row, int col)
{
	const char *v = PQgetvalue(res, row, col), *run = v;
	size_t len = (size_t)PQgetlength(res, row, col);

	if (PQgetisnull(res, row, col))
		buf_puts(out, "\\N");       /* and v is "" */
	for (const char *p = v; p < v + len; p++) {
		const char *esc;
		switch (*p) {
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default: continue;
		}
		buf_append(out, run, (size_t)(p - run));
		buf_puts(out, esc);
		run = p + 1;
	}
	buf_append(out, run, (size_t)(v + len - run));
}

/* The reply: a header line {"columns":[...],"rows":n,"next":"<key as JSON text>"|null}
 * (next is a string so that its numbers reach the client digit for digit), then the data. */
static void rows_copy_reply(struct buf *out, const PGresult *cols, long n, const char *next,
                            const struct buf *data)
{
	cJSON *h = cJSON_CreateObject(), *names = cJSON_AddArrayToObject(h, "columns");
	char *text;

	for (int i = 0; i < PQntuples(cols); i++)
		cJSON_AddItemToArray(names, cJSON_CreateString(PQgetvalue(cols, i, 0)));
	cJSON_AddNumberToObject(h, "rows", (double)n);
	if (next)
		cJSON_AddStringToObject(h, "next", next);
	else
		cJSON_AddNullToObject(h, "next");
	text = cJSON_PrintUnformatted(h);
	if (!text)
		abort();    /* out of memory: as buf does */
	buf_puts(out, text);
	buf_puts(out, "\n");
	if (data->len)
		buf_append(out, data->data, data->len);
	free(text);
	cJSON_Delete(h);
}

enum result rows_copy_page(PGconn *c, const char *table, const char *after,
                           const char *filter, const char *columns, int limit,
                           struct buf *out, char *err, size_t errlen)
{
	struct rows_table t;
	struct buf q = {0}, data = {0};
	cJSON *fj = NULL;
	PGresult *cols = NULL, *res = NULL, *last = NULL;
	const char *params[3];
	char lim[16], state[6] = "", msg[512] = "";
	int np = 0, ncol, sent = 0, failed = 0;
	long n = 0, more = 0;
	enum result status = rows_page_open(c, table, after, filter, &t, &fj, err, errlen);

	if (status != RESULT_OK)
		return status;
	status = RESULT_INVALID;
	if (columns && rows_check_columns(columns, err, errlen) < 0)
		goto out;
	status = RESULT_INTERNAL;
	cols = rows_copy_columns(c, &t, columns);
	if (!cols) {
		snprintf(err, errlen, "database error");
		goto out;
	}
	ncol = PQntuples(cols);
	buf_puts(&q, "SELECT ");
	for (int i = 0; i < ncol; i++) {
		const char *name = PQgetvalue(cols, i, 0);
		char *qc = PQescapeIdentifier(c, name, strlen(name));
		if (!qc) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		buf_printf(&q, "t.%s, ", qc);
		PQfreemem(qc);
	}
	rows_key_select(&q, &t);
	snprintf(lim, sizeof lim, "%d", limit + 1);
	if (rows_page_tail(c, &t, after, filter, fj, lim, &q, params, &np, err, errlen) < 0) {
		status = RESULT_INVALID;
		goto out;
	}
	/* one row at a time, so a page of wide rows stops at ROWS_COPY_MAX_BYTES without
	 * holding all of them */
	sent = PQsendQueryParams(c, q.data, np, NULL, params, NULL, NULL, 0);
	if (!sent || !PQsetSingleRowMode(c)) {
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
		failed = 1;
	}
	while (sent && (res = PQgetResult(c))) {
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_SINGLE_TUPLE && !more && !failed) {
			if (n == limit || data.len >= ROWS_COPY_MAX_BYTES) {
				more = 1;          /* the rest is drained below, not sent */
				PQclear(res);
				continue;
			}
			for (int i = 0; i < ncol; i++) {
				if (i)
					buf_puts(&data, "\t");
				rows_copy_value(&data, res, 0, i);
			}
			buf_puts(&data, "\n");
			n++;
			PQclear(last);
			last = res;
			continue;
		}
		if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && !failed) {
			const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			snprintf(state, sizeof state, "%s", s ? s : "");
			snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
			failed = 1;
		}
		PQclear(res);
	}
	if (failed) {
		log_error("rows: copy page of %s: %s", t.qname, msg);
		status = rows_db_status(state, msg, err, errlen);
		goto out;
	}
	rows_copy_reply(out, cols, n, more ? PQgetvalue(last, 0, ncol) : NULL, &data);
	status = RESULT_OK;
out:
	PQclear(last);
	PQclear(cols);
	cJSON_Delete(fj);
	buf_free(&data);
	buf_free(&q);
	rows_table_free(&t);
	return status;
}

enum result rows_get(PGconn *c, const char *table, const char *pk, struct buf *out,
                     char *err, size_t errlen)
{
	struct rows_table t;
	struct buf q = {0};
	PGresult *res = NULL;
	enum result status = rows_table_load(c, table, &t, err, errlen);

	if (status != RESULT_OK)
		return status;
	status = RESULT_INVALID;
	if (!pk) {
		snprintf(err, errlen, "pk: required");
		goto out;
	}
	if (rows_check_pk(&t, "pk", pk, err, errlen) < 0)
		goto out;
	buf_printf(&q, "SELECT row_to_json(t.*)::text FROM %s t WHERE ", t.qname);
	rows_key_tuple(&q, &t, "t");
	buf_puts(&q, " = (SELECT ");
	for (int i = 0; i < t.npk; i++)
		buf_printf(&q, "%sr.%s", i ? ", " : "", t.qpk[i]);
	buf_printf(&q, " FROM json_populate_record(NULL::%s, $1::json) r)", t.qname);
	{
		const char *params[1] = { pk };
		res = db_exec(c, "rows: read row", q.data, 1, params);
	}
	if (!res) {
		status = rows_db_status(db_last_sqlstate(), db_last_error(), err, errlen);
		goto out;
	}
	if (PQntuples(res) == 0) {
		snprintf(err, errlen, "no such row");
		status = RESULT_NOT_FOUND;
		goto out;
	}
	buf_puts(out, "{\"row\":");
	buf_append(out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
	buf_puts(out, "}");
	status = RESULT_OK;
out:
	PQclear(res);
	buf_free(&q);
	rows_table_free(&t);
	return status;
}
