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

static const char Q_TABLE[] =
	"SELECT format('%I.%I', n.nspname, c.relname), k.col"
	" FROM tdgl.tracked_tables t JOIN pg_class c ON c.oid = t.relid"
	" JOIN pg_namespace n ON n.oid = c.relnamespace"
	" CROSS JOIN LATERAL unnest(t.pk_columns) WITH ORDINALITY AS k(col, ord)"
	" WHERE t.name = $1 AND t.enabled ORDER BY k.ord";

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

/* 200 when found, 400 unknown table, 500 error. */
static unsigned rows_table_load(PGconn *c, const char *name, struct rows_table *t,
                                char *err, size_t errlen)
{
	const char *params[1] = { name };
	PGresult *res = NULL;
	unsigned status = 500;

	memset(t, 0, sizeof(*t));
	if (!name || !*name) {
		snprintf(err, errlen, "table: required");
		status = 400;
		goto out;
	}
	if (strlen(name) > 200) {
		snprintf(err, errlen, "table: name too long");
		status = 400;
		goto out;
	}
	res = db_exec(c, "rows: find table", Q_TABLE, 1, params);
	if (!res) {
		snprintf(err, errlen, "database error");
		goto out;
	}
	if (PQntuples(res) == 0 || PQntuples(res) > ROWS_MAX_PK) {
		snprintf(err, errlen, "unknown or untracked table: %.200s", name);
		status = 400;
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
	status = 200;
out:
	if (status != 200)
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

/* Maps a failed query to a status: data errors are the client's (bad key values, unknown
 * filter columns), the rest are ours. */
static unsigned rows_db_status(char *err, size_t errlen)
{
	const char *st = db_last_sqlstate();

	if (!strncmp(st, "22", 2) || !strcmp(st, "42703") || !strcmp(st, "42883")) {
		snprintf(err, errlen, "bad value: %.300s", db_last_error());
		return 400;
	}
	snprintf(err, errlen, "database error");
	return 500;
}

/* "(t.a, t.b)" */
static void rows_key_tuple(struct buf *q, const struct rows_table *t, const char *alias)
{
	buf_puts(q, "(");
	for (int i = 0; i < t->npk; i++)
		buf_printf(q, "%s%s.%s", i ? ", " : "", alias, t->qpk[i]);
	buf_puts(q, ")");
}

unsigned rows_page(PGconn *c, const char *table, const char *after, const char *filter,
                   int limit, struct buf *out, char *err, size_t errlen)
{
	struct rows_table t;
	struct buf q = {0};
	cJSON *fj = NULL;
	PGresult *res = NULL;
	const char *params[3];
	char lim[16];
	int np = 0, n;
	unsigned status = rows_table_load(c, table, &t, err, errlen);

	if (status != 200)
		return status;
	status = 400;
	if (after && rows_check_pk(&t, "after", after, err, errlen) < 0)
		goto out;
	if (filter) {
		char perr[128];
		int nkeys = 0;
		fj = json_parse_strict(filter, strlen(filter), perr, sizeof perr);
		if (!fj || !cJSON_IsObject(fj)) {
			snprintf(err, errlen, "filter: expected a JSON object%s%s", fj ? "" : ": ",
			         fj ? "" : perr);
			goto out;
		}
		for (cJSON *it = fj->child; it; it = it->next)
			nkeys++;
		if (nkeys > ROWS_MAX_FILTER) {
			snprintf(err, errlen, "filter: too many columns");
			goto out;
		}
	}
	buf_puts(&q, "SELECT row_to_json(t.*)::text, json_build_object(");
	for (int i = 0; i < t.npk; i++)
		buf_printf(&q, "%s%s, t.%s", i ? ", " : "", t.lpk[i], t.qpk[i]);
	buf_printf(&q, ")::text FROM %s t", t.qname);
	if (fj && fj->child) {
		params[np++] = filter;
		buf_printf(&q, " CROSS JOIN json_populate_record(NULL::%s, $%d::json) f", t.qname, np);
	}
	buf_puts(&q, " WHERE true");
	if (after) {
		params[np++] = after;
		buf_puts(&q, " AND ");
		rows_key_tuple(&q, &t, "t");
		buf_puts(&q, " > (SELECT ");
		for (int i = 0; i < t.npk; i++)
			buf_printf(&q, "%sr.%s", i ? ", " : "", t.qpk[i]);
		buf_printf(&q, " FROM json_populate_record(NULL::%s, $%d::json) r)", t.qname, np);
	}
	for (cJSON *it = fj ? fj->child : NULL; it; it = it->next) {
		char *qc = PQescapeIdentifier(c, it->string, strlen(it->string));
		if (!qc) {
			snprintf(err, errlen, "filter: bad column name");
			goto out;
		}
		buf_printf(&q, " AND t.%s IS NOT DISTINCT FROM f.%s", qc, qc);
		PQfreemem(qc);
	}
	buf_puts(&q, " ORDER BY ");
	for (int i = 0; i < t.npk; i++)
		buf_printf(&q, "%st.%s", i ? ", " : "", t.qpk[i]);
	snprintf(lim, sizeof lim, "%d", limit + 1);
	params[np++] = lim;
	buf_printf(&q, " LIMIT $%d::int", np);

	res = db_exec(c, "rows: read page", q.data, np, params);
	if (!res) {
		status = rows_db_status(err, errlen);
		goto out;
	}
	n = PQntuples(res) > limit ? limit : PQntuples(res);
	buf_puts(out, "{\"rows\":[");
	for (int i = 0; i < n; i++) {
		if (i)
			buf_puts(out, ",");
		buf_append(out, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
	}
	buf_puts(out, "],\"next\":");
	if (PQntuples(res) > limit)
		buf_append(out, PQgetvalue(res, n - 1, 1), (size_t)PQgetlength(res, n - 1, 1));
	else
		buf_puts(out, "null");
	buf_puts(out, "}");
	status = 200;
out:
	PQclear(res);
	cJSON_Delete(fj);
	buf_free(&q);
	rows_table_free(&t);
	return status;
}

unsigned rows_get(PGconn *c, const char *table, const char *pk, struct buf *out,
                  char *err, size_t errlen)
{
	struct rows_table t;
	struct buf q = {0};
	PGresult *res = NULL;
	unsigned status = rows_table_load(c, table, &t, err, errlen);

	if (status != 200)
		return status;
	status = 400;
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
		status = rows_db_status(err, errlen);
		goto out;
	}
	if (PQntuples(res) == 0) {
		snprintf(err, errlen, "no such row");
		status = 404;
		goto out;
	}
	buf_puts(out, "{\"row\":");
	buf_append(out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
	buf_puts(out, "}");
	status = 200;
out:
	PQclear(res);
	buf_free(&q);
	rows_table_free(&t);
	return status;
}
