/* capture: track/untrack/tables for the CLI (tdgl.track() generates the triggers), and the
 * check of an API `tables` list against the tracked tables. */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/db.h"
#include "common/log.h"
#include "primary/capture.h"

#define CAPTURE_NAME_MAX 200

static const char Q_TRACK[] = "SELECT tdgl.track($1, $2, $3::text[])";
static const char Q_UNTRACK[] = "SELECT tdgl.untrack($1)";
static const char Q_LIST[] =
	"SELECT t.name, array_to_string(t.pk_columns, ','), coalesce(t.status_column, ''),"
	" array_to_string(t.attach_columns, ','), t.enabled,"
	" (SELECT count(*) = 3 FROM pg_trigger g WHERE g.tgrelid = t.relid AND g.tgname IN"
	"   ('tdgl_capture_insert', 'tdgl_capture_update', 'tdgl_capture_delete')),"
	/* the INSERT trigger is per statement exactly when capture_install would make it so */
	" (SELECT (g.tgtype & 1 = 0) = tdgl.capture_insert_per_statement(t.relid)"
	"  FROM pg_trigger g WHERE g.tgrelid = t.relid AND g.tgname = 'tdgl_capture_insert')"
	" FROM tdgl.tracked_tables t ORDER BY t.name";
static const char Q_UNKNOWN[] =
	"SELECT n FROM unnest($1::text[]) AS n"
	" WHERE n NOT IN (SELECT name FROM tdgl.tracked_tables WHERE enabled) LIMIT 1";

/* Errors a user can fix (no such table, no key, tdgl's own, not a table, no column). */
static int capture_refused(const char *state)
{
	static const char *const user[] = { "42P01", "55000", "42501", "42809", "42703", NULL };

	for (int i = 0; user[i]; i++)
		if (!strcmp(state, user[i]))
			return 1;
	return 0;
}

/* "{a,b}" text[] literal from "a,b", each element double-quoted and escaped. */
static char *capture_array_literal(const char *csv)
{
	struct buf b = {0};
	int first = 1;

	buf_puts(&b, "{");
	while (csv && *csv) {
		size_t n = strcspn(csv, ",");
		if (n) {
			if (!first)
				buf_puts(&b, ",");
			buf_puts(&b, "\"");
			for (size_t i = 0; i < n; i++) {
				if (csv[i] == '"' || csv[i] == '\\')
					buf_puts(&b, "\\");
				buf_append(&b, &csv[i], 1);
			}
			buf_puts(&b, "\"");
			first = 0;
		}
		csv += n;
		if (*csv == ',')
			csv++;
	}
	buf_puts(&b, "}");
	return buf_steal(&b);
}

/* Runs tdgl.track()/untrack() and reports it: 0 done, 1 refused (the database's reason on
 * stderr: no primary key, unknown table, ...), -1 any other failure (logged). */
static int capture_run(PGconn *c, const char *what, const char *sql, int nparams,
                       const char *const *params, const char *done)
{
	PGresult *res = db_try(c, sql, nparams, params);
	int rc = -1;

	if (!res) {
		if (capture_refused(db_last_sqlstate())) {
			fprintf(stderr, "error: %s\n", db_last_error());
			rc = 1;
		} else {
			log_error("%s: %s", what, db_last_error());
		}
		goto out;
	}
	printf("%s %s\n", done, PQgetvalue(res, 0, 0));
	log_info("%s %s", what, PQgetvalue(res, 0, 0));
	rc = 0;
out:
	PQclear(res);
	return rc;
}

int capture_track(PGconn *c, const char *table, const char *status_column, const char *attach)
{
	char *arr = attach ? capture_array_literal(attach) : NULL;
	const char *params[3] = { table, status_column, arr };
	int rc = capture_run(c, "track", Q_TRACK, 3, params, "tracking");

	free(arr);
	return rc;
}

int capture_untrack(PGconn *c, const char *table)
{
	const char *params[1] = { table };

	return capture_run(c, "untrack", Q_UNTRACK, 1, params, "untracked");
}

int capture_list(PGconn *c, FILE *out)
{
	PGresult *res = db_exec(c, "tables", Q_LIST, 0, NULL);

	if (!res)
		return -1;
	fprintf(out, "%-30s  %-20s  %-12s  %-20s  %s\n", "TABLE", "PRIMARY KEY", "STATUS",
	        "ATTACHMENTS", "TRIGGER");
	for (int i = 0; i < PQntuples(res); i++)
		fprintf(out, "%-30s  %-20s  %-12s  %-20s  %s\n", PQgetvalue(res, i, 0),
		        PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
		        PQgetvalue(res, i, 5)[0] != 't' ? "MISSING" :
		        PQgetvalue(res, i, 6)[0] != 't' ? "STALE (run track again)" : "ok");
	PQclear(res);
	return 0;
}

cJSON *capture_list_json(PGconn *c)
{
	PGresult *res = db_exec(c, "tables", Q_LIST, 0, NULL);
	cJSON *arr = NULL;

	if (!res)
		goto out;
	arr = cJSON_CreateArray();
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "table", PQgetvalue(res, i, 0));
		cJSON_AddStringToObject(o, "pk_columns", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(o, "status_column", PQgetvalue(res, i, 2));
		cJSON_AddStringToObject(o, "attach_columns", PQgetvalue(res, i, 3));
		cJSON_AddBoolToObject(o, "enabled", PQgetvalue(res, i, 4)[0] == 't');
		cJSON_AddStringToObject(o, "trigger", PQgetvalue(res, i, 5)[0] != 't' ? "missing" :
		                        PQgetvalue(res, i, 6)[0] != 't' ? "stale" : "ok");
		cJSON_AddItemToArray(arr, o);
	}
out:
	PQclear(res);
	return arr;
}

char *capture_tables_literal(PGconn *c, const char *csv, int *bad, char *err, size_t errlen)
{
	char *lit = NULL;
	PGresult *res = NULL;
	size_t n;

	*bad = 1;
	if (!csv || !*csv || strlen(csv) > 8192) {
		snprintf(err, errlen, "tables: expected a comma-separated list of table names");
		goto fail;
	}
	for (const char *p = csv; *p; p += n + (p[n] == ',')) {
		n = strcspn(p, ",");
		if (n == 0 || n > CAPTURE_NAME_MAX) {
			snprintf(err, errlen, "tables: empty or overlong table name");
			goto fail;
		}
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] < 0x20) {
				snprintf(err, errlen, "tables: control character in a table name");
				goto fail;
			}
	}
	lit = capture_array_literal(csv);
	{
		const char *params[1] = { lit };
		res = db_exec(c, "check tables", Q_UNKNOWN, 1, params);
	}
	if (!res) {
		*bad = 0;
		snprintf(err, errlen, "database error");
		goto fail;
	}
	if (PQntuples(res) > 0) {
		snprintf(err, errlen, "unknown or untracked table: %.200s", PQgetvalue(res, 0, 0));
		goto fail;
	}
	PQclear(res);
	return lit;
fail:
	PQclear(res);
	free(lit);
	return NULL;
}
