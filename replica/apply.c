/* apply: one transaction per page; the SQL functions do the set-based work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/db.h"
#include "common/log.h"
#include "replica/apply.h"
#include "replica/page.h"

/* Every apply function answers one tdgl_replica.apply_result; it is read as one row per attachment
 * file (at least one row) with the counts repeated, so no JSON travels back. */
#define APPLY_SUMMARY_AND(call, more) \
	"SELECT r.fetched, r.synced, r.failed, r.skipped, r.conflicts, r.ignored, r.resolved, " \
	"r.replica_role, f.file" more " FROM " call " r " \
	"LEFT JOIN LATERAL unnest(r.files) f(file) ON true"
#define APPLY_SUMMARY_OF(call) APPLY_SUMMARY_AND(call, "")
#define APPLY_SUMMARY_COLS 9

static const char Q_APPLY_PAGE[] = APPLY_SUMMARY_OF(
	"tdgl_replica.apply_page($1, $2::bigint[], $3::text[], $4::text[], $5::json[], $6::json[], "
	"$7::json[], $8::text[], $9::int[], $10::int[], $11::text[], $12, $13, $14::bigint, "
	"$15::json[], $16::uuid)");
static const char Q_REPLICA_ROLE[] = "SELECT tdgl_replica.replica_role(true)";
/* column APPLY_SUMMARY_COLS: the body's "next" */
static const char Q_APPLY_ROWS[] = APPLY_SUMMARY_AND(
	"tdgl_replica.apply_rows($1, $2, ($3::json) -> 'rows', $4::bigint, $5::bool, "
	"($3::json) -> 'versions', (($3::json) ->> 'site')::uuid)",
	", CASE WHEN json_typeof(($3::json) -> 'next') IN ('object', 'array', 'string', 'number') "
	"THEN (($3::json) -> 'next')::text END");
static const char Q_FINISH_RESYNC[] = "SELECT tdgl_replica.finish_resync($1, $2)";
/* A copy page need not wait for its WAL flush: the initial sync stores its cursor in a
 * later, synchronous commit, whose flush covers every page; a crash before that leaves the
 * source without a cursor, and the copy runs again. */
static const char Q_COPY_ASYNC[] = "SET LOCAL synchronous_commit = off";
static const char Q_COPY_PLAN[] = "SELECT tdgl_replica.copy_plan($1, $2, $3::bool)::text";
static const char Q_COPY_START[] =
	"SELECT tdgl_replica.copy_start($1, ARRAY(SELECT json_array_elements_text($2::json)), $3::bool)";
static const char Q_COPY_APPLY[] = APPLY_SUMMARY_OF(
	"tdgl_replica.copy_apply($1, $2::bigint, $3, ARRAY(SELECT json_array_elements_text($4::json)),"
	" $5::bool, $6::bool, $7::bigint)");
/* Local to the transaction: a pooled connection never stays in apply mode (tdgl_replica.apply_mode:
 * tdgl.applying, the replica role when permitted, else constraints checked at once). */
static const char Q_APPLYING[] = "SELECT tdgl_replica.apply_mode()";

void apply_summary_free(struct apply_summary *s)
{
	for (int i = 0; i < s->nfiles; i++)
		free(s->files[i]);
	free(s->files);
	memset(s, 0, sizeof *s);
}

static void apply_summary_file(struct apply_summary *s, const char *path)
{
	char **f = realloc(s->files, (size_t)(s->nfiles + 1) * sizeof *f);

	if (!f || !(f[s->nfiles] = strdup(path)))
		abort();
	s->files = f;
	s->nfiles++;
}

void apply_summary_add(struct apply_summary *a, const struct apply_summary *b)
{
	a->fetched += b->fetched;
	a->synced += b->synced;
	a->failed += b->failed;
	a->skipped += b->skipped;
	a->conflicts += b->conflicts;
	a->resolved += b->resolved;
	a->ignored += b->ignored;
	if (b->replica_role >= 0)
		a->replica_role = b->replica_role;
	for (int i = 0; i < b->nfiles; i++)
		apply_summary_file(a, b->files[i]);
}

/* THE decoder of a tdgl_replica.apply_result (APPLY_SUMMARY_OF's columns) into *s. 0, or -1 when
 * res holds no row. */
static int apply_summary_read(const PGresult *res, struct apply_summary *s)
{
	long *n[] = { &s->fetched, &s->synced, &s->failed, &s->skipped, &s->conflicts,
	              &s->ignored, &s->resolved };

	memset(s, 0, sizeof *s);
	s->replica_role = -1;
	if (PQntuples(res) < 1 || PQnfields(res) < APPLY_SUMMARY_COLS)
		return -1;
	for (int i = 0; i < 7; i++)
		*n[i] = PQgetisnull(res, 0, i) ? 0 : atol(PQgetvalue(res, 0, i));
	if (!PQgetisnull(res, 0, 7))
		s->replica_role = !strcmp(PQgetvalue(res, 0, 7), "t");
	for (int r = 0; r < PQntuples(res); r++)
		if (!PQgetisnull(res, r, 8))
			apply_summary_file(s, PQgetvalue(res, r, 8));
	return 0;
}

/* The start and end of one apply transaction: its own, or a savepoint inside the caller's
 * (nested: a group of copy pages in one transaction, which set the apply mode itself). */
static int apply_begin(PGconn *c, const char *what, int nested)
{
	if (nested)
		return db_run(c, what, "SAVEPOINT tdgl_apply", 0, NULL);
	if (db_run(c, what, "BEGIN", 0, NULL) < 0)
		return -1;
	if (db_run(c, what, Q_APPLYING, 0, NULL) < 0) {
		db_run(c, what, "ROLLBACK", 0, NULL);
		return -1;
	}
	return 0;
}

static int apply_end(PGconn *c, const char *what, int nested, int commit)
{
	if (nested)
		return db_run(c, what, commit ? "RELEASE SAVEPOINT tdgl_apply" :
		              "ROLLBACK TO SAVEPOINT tdgl_apply", 0, NULL);
	return db_run(c, what, commit ? "COMMIT" : "ROLLBACK", 0, NULL);
}

/* Runs one apply statement in its own transaction (or savepoint) as the apply session.
 * Returns its result (caller PQclear()s) once committed, or NULL after rolling back, with
 * the cause in err. */
static PGresult *apply_in_tx(PGconn *c, const char *what, int nested, const char *sql,
                             int nparams, const char *const *params, char *err, size_t errlen)
{
	PGresult *res = NULL;
	int in_tx = 0;

	if (apply_begin(c, what, nested) < 0)
		goto dberr;
	in_tx = 1;
	res = db_exec(c, what, sql, nparams, params);
	if (!res)
		goto dberr;
	in_tx = 0;
	if (apply_end(c, what, nested, 1) < 0)
		goto dberr;
	return res;
dberr:
	snprintf(err, errlen, "%s: %s", db_last_sqlstate(), db_last_error());
	if (in_tx)
		apply_end(c, what, nested, 0);
	PQclear(res);
	return NULL;
}

void apply_fallback_warn(PGconn *c)
{
	static int warned;

	if (__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
		return;
	log_warn("database role \"%s\" may not set session_replication_role: the replica's "
	         "foreign keys and triggers fire while changes are applied, so tables are copied "
	         "parents first and pages keep the primary's order across tables (slower), and a "
	         "change a local key refuses is logged Failed. As a superuser: GRANT SET ON "
	         "PARAMETER session_replication_role TO \"%s\" (PostgreSQL 15+; see "
	         "docs/operations.md)", PQuser(c), PQuser(c));
}

int apply_replica_role(PGconn *c)
{
	PGresult *res = db_exec(c, "replica role", Q_REPLICA_ROLE, 0, NULL);
	int rr = res ? !strcmp(PQgetvalue(res, 0, 0), "t") : -1;

	PQclear(res);
	if (rr == 0)
		apply_fallback_warn(c);
	return rr;
}

int apply_page_send(PGconn *c, const char *source, const struct page *pg,
                    const char *prev_cursor, long run_id, char *err, size_t errlen)
{
	struct page_arrays a;
	char rid[32];
	/* $1 source, $2..$11 the arrays before PAGE_VERSIONS, $12 prev cursor, $13 cursor,
	 * $14 run, $15 versions, $16 the serving site (two-way) */
	const char *p[PAGE_NARRAYS + 5] = { source };
	int len[PAGE_NARRAYS + 5] = { 0 }, fmt[PAGE_NARRAYS + 5] = { 0 }, rc = -1;

	if (page_arrays(pg, &a, err, errlen) < 0)
		return -1;
	for (int i = 0; i < PAGE_VERSIONS; i++) {
		p[1 + i] = a.data[i];
		len[1 + i] = a.len[i];
		fmt[1 + i] = 1;
	}
	snprintf(rid, sizeof rid, "%ld", run_id);
	p[PAGE_VERSIONS + 1] = prev_cursor;
	p[PAGE_VERSIONS + 2] = pg->cursor;
	p[PAGE_VERSIONS + 3] = rid;
	if (pg->site[0]) {        /* a page served to a two-way peer */
		p[PAGE_VERSIONS + 4] = a.data[PAGE_VERSIONS];
		len[PAGE_VERSIONS + 4] = a.len[PAGE_VERSIONS];
		fmt[PAGE_VERSIONS + 4] = 1;
		p[PAGE_VERSIONS + 5] = pg->site;
	}
	/* One statement is one transaction: tdgl_replica.apply_page enters apply mode itself (locally)
	 * and moves the cursor, so applies and cursor commit or roll back together. */
	if (db_send(c, "apply page", Q_APPLY_PAGE, PAGE_NARRAYS + 5, p, len, fmt) == 0)
		rc = 0;
	else
		snprintf(err, errlen, "%s: %s", db_last_sqlstate(), db_last_error());
	page_arrays_free(&a);
	return rc;
}

int apply_page_wait(PGconn *c, struct apply_summary *summary, char *err, size_t errlen)
{
	PGresult *res = db_wait(c, "apply page");
	int rc = -1;

	memset(summary, 0, sizeof *summary);
	if (!res) {
		snprintf(err, errlen, "%s: %s", db_last_sqlstate(), db_last_error());
		goto out;
	}
	rc = apply_summary_read(res, summary);
	if (rc < 0)
		snprintf(err, errlen, "apply page: no summary");
	else if (summary->replica_role == 0)
		apply_fallback_warn(c);
out:
	PQclear(res);
	return rc;
}

int apply_rows(PGconn *c, const char *source, const char *tbl, const char *body, long run_id,
               int resync, int nested, struct apply_summary *summary, char **next, char *err,
               size_t errlen)
{
	char rid[32];
	const char *p[5] = { source, tbl, body, rid, resync ? "true" : "false" };
	PGresult *res;
	int rc = -1;

	memset(summary, 0, sizeof *summary);
	*next = NULL;
	snprintf(rid, sizeof rid, "%ld", run_id);
	res = apply_in_tx(c, "apply rows", nested, Q_APPLY_ROWS, 5, p, err, errlen);
	if (!res)
		goto out;
	rc = apply_summary_read(res, summary);
	if (rc < 0)
		snprintf(err, errlen, "apply rows: no summary");
	else if (!PQgetisnull(res, 0, APPLY_SUMMARY_COLS))
		*next = strdup(PQgetvalue(res, 0, APPLY_SUMMARY_COLS));
out:
	PQclear(res);
	return rc;
}

long apply_finish_resync(PGconn *c, const char *source, const char *tbl)
{
	const char *p[2] = { source, tbl };
	PGresult *res = db_exec(c, "finish re-sync", Q_FINISH_RESYNC, 2, p);
	long n = -1;

	if (res)
		n = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	return n;
}

char *apply_copy_plan(PGconn *c, const char *source, const char *tbl, int resync)
{
	const char *p[3] = { source, tbl, resync ? "true" : "false" };
	PGresult *res = db_exec(c, "copy plan", Q_COPY_PLAN, 3, p);
	char *plan = NULL;

	if (res && !PQgetisnull(res, 0, 0))
		plan = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return plan;
}

#define APPLY_COPY_CHUNK 65536

/* Runs the COPY statement sql with data as its input, which must hold `rows` rows (a "\."
 * line would end the data early). 0, or -1 with err. */
static int apply_copy_in(PGconn *c, const char *sql, const char *data, size_t len, long rows,
                         char *err, size_t errlen)
{
	PGresult *res = PQexec(c, sql);
	int rc = -1, in = res && PQresultStatus(res) == PGRES_COPY_IN;

	if (in) {
		/* in pieces: libpq's output buffer grows to the largest piece and stays so */
		size_t off = 0;
		while (off < len) {
			int n = len - off > APPLY_COPY_CHUNK ? APPLY_COPY_CHUNK : (int)(len - off);
			if (PQputCopyData(c, data + off, n) != 1)
				break;
			off += (size_t)n;
		}
		PQputCopyEnd(c, off < len ? "client could not send the data" : NULL);
		PQclear(res);
		res = PQgetResult(c);
	}
	if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
		rc = atol(PQcmdTuples(res)) == rows ? 0 : -1;
		if (rc < 0)
			snprintf(err, errlen, "22P04: COPY took %s rows of %ld", PQcmdTuples(res), rows);
	} else {
		const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
		snprintf(err, errlen, "%s: %s", st ? st : "08000", msg ? msg : PQerrorMessage(c));
	}
	/* a COPY has exactly one result; drain anything else so the connection is usable */
	while (res) {
		PQclear(res);
		res = in ? PQgetResult(c) : NULL;
	}
	return rc;
}

int apply_copy(PGconn *c, const struct apply_copy_page *pg, struct apply_summary *summary,
               char *err, size_t errlen)
{
	char rid[32], n[32];
	const char *ps[3] = { pg->tbl, pg->columns, pg->direct ? "true" : "false" };
	const char *pa[7] = { pg->source, rid, pg->tbl, pg->columns, ps[2],
	                      pg->resync ? "true" : "false", n };
	PGresult *start = NULL, *res = NULL;
	int rc = -1, in_tx = 0;

	memset(summary, 0, sizeof *summary);
	snprintf(rid, sizeof rid, "%ld", pg->run_id);
	snprintf(n, sizeof n, "%ld", pg->rows);
	if (apply_begin(c, "copy page", pg->nested) < 0)
		goto dberr;
	in_tx = 1;
	if (!pg->nested && db_run(c, "copy page", Q_COPY_ASYNC, 0, NULL) < 0)
		goto dberr;
	start = db_exec(c, "copy page: start", Q_COPY_START, 3, ps);
	if (!start)
		goto dberr;
	if (apply_copy_in(c, PQgetvalue(start, 0, 0), pg->data, pg->len, pg->rows, err,
	                  errlen) < 0)
		goto out;
	res = db_exec(c, "copy page: apply", Q_COPY_APPLY, 7, pa);
	if (!res)
		goto dberr;
	in_tx = 0;
	if (apply_end(c, "copy page", pg->nested, 1) < 0)
		goto dberr;
	rc = apply_summary_read(res, summary);
	if (rc < 0)
		snprintf(err, errlen, "copy page: no summary");
	goto out;
dberr:
	snprintf(err, errlen, "%s: %s", db_last_sqlstate(), db_last_error());
out:
	if (in_tx)
		apply_end(c, "copy page", pg->nested, 0);
	PQclear(res);
	PQclear(start);
	return rc;
}
