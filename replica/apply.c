/* apply: one transaction per page; the SQL functions do the set-based work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/db.h"
#include "common/log.h"
#include "replica/apply.h"

static const char Q_APPLY_PAGE[] =
	"SELECT tdgl.apply_page($1, $2::json, $3, $4, $5::bigint)::text";
static const char Q_APPLY_ROWS[] =
	"SELECT tdgl.apply_rows($1, $2, ($3::json) -> 'rows', $4::bigint, $5::bool)::text, "
	"CASE WHEN json_typeof(($3::json) -> 'next') IN ('object', 'array', 'string', 'number') "
	"THEN (($3::json) -> 'next')::text END";
static const char Q_FINISH_RESYNC[] = "SELECT tdgl.finish_resync($1, $2)";
/* Local to the transaction: a pooled connection never stays in apply mode. */
static const char Q_APPLYING[] = "SET LOCAL tdgl.applying = on";

/* Runs one apply statement in its own transaction as the apply session. Returns its result
 * (caller PQclear()s) once committed, or NULL after rolling back, with the cause in err. */
static PGresult *apply_in_tx(PGconn *c, const char *what, const char *sql, int nparams,
                             const char *const *params, char *err, size_t errlen)
{
	PGresult *res = NULL;
	int in_tx = 0;

	if (db_run(c, what, "BEGIN", 0, NULL) < 0)
		goto dberr;
	in_tx = 1;
	if (db_run(c, what, Q_APPLYING, 0, NULL) < 0)
		goto dberr;
	res = db_exec(c, what, sql, nparams, params);
	if (!res)
		goto dberr;
	if (db_run(c, what, "COMMIT", 0, NULL) < 0)
		goto dberr;
	return res;
dberr:
	snprintf(err, errlen, "%s: %s", db_last_sqlstate(), db_last_error());
	if (in_tx)
		db_run(c, what, "ROLLBACK", 0, NULL);
	PQclear(res);
	return NULL;
}

int apply_page_send(PGconn *c, const char *source, const char *body, const char *prev_cursor,
                    const char *next_cursor, long run_id, char *err, size_t errlen)
{
	char rid[32];
	const char *p[5] = { source, body, prev_cursor, next_cursor, rid };

	/* One statement is one transaction: tdgl.apply_page enters apply mode itself (locally)
	 * and moves the cursor, so applies and cursor commit or roll back together. */
	snprintf(rid, sizeof rid, "%ld", run_id);
	if (db_send(c, "apply page", Q_APPLY_PAGE, 5, p) == 0)
		return 0;
	snprintf(err, errlen, "%s: %s", db_last_sqlstate(), db_last_error());
	return -1;
}

int apply_page_wait(PGconn *c, cJSON **summary, char *err, size_t errlen)
{
	PGresult *res = db_wait(c, "apply page");
	int rc = -1;

	*summary = NULL;
	if (!res) {
		snprintf(err, errlen, "%s: %s", db_last_sqlstate(), db_last_error());
		goto out;
	}
	*summary = cJSON_Parse(PQgetvalue(res, 0, 0));
	rc = *summary ? 0 : -1;
	if (rc < 0)
		snprintf(err, errlen, "apply page: unreadable summary");
out:
	PQclear(res);
	return rc;
}

int apply_rows(PGconn *c, const char *source, const char *tbl, const char *body, long run_id,
               int resync, cJSON **summary, char **next, char *err, size_t errlen)
{
	char rid[32];
	const char *p[5] = { source, tbl, body, rid, resync ? "true" : "false" };
	PGresult *res;
	int rc = -1;

	*summary = NULL;
	*next = NULL;
	snprintf(rid, sizeof rid, "%ld", run_id);
	res = apply_in_tx(c, "apply rows", Q_APPLY_ROWS, 5, p, err, errlen);
	if (!res)
		goto out;
	*summary = cJSON_Parse(PQgetvalue(res, 0, 0));
	if (!PQgetisnull(res, 0, 1))
		*next = strdup(PQgetvalue(res, 0, 1));
	rc = *summary ? 0 : -1;
	if (rc < 0)
		snprintf(err, errlen, "apply rows: unreadable summary");
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
