/* verify_cli: see verify_cli.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/args.h"
#include "common/db.h"
#include "common/json.h"
#include "replica/cli.h"
#include "replica/pull.h"
#include "replica/source.h"
#include "replica/verify.h"
#include "replica/verify_cli.h"

#define VERIFY_CLI_CATCH_UP_WAIT_MS 1000

/* Takes every --table T / --table=T out of argv into tables. 0, or -1 (message printed). */
static int verify_cli_tables(int *argc, char **argv, const char **tables, int *n)
{
	int j = 0;

	for (int i = 0; i < *argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--table") || !strncmp(a, "--table=", 8)) {
			const char *v = a[7] == '=' ? a + 8 : (i + 1 < *argc ? argv[++i] : NULL);

			if (!v || !*v || *n >= SOURCE_MAX_TABLES) {
				fprintf(stderr, "error: --table needs a table name (at most %d)\n",
				        SOURCE_MAX_TABLES);
				return -1;
			}
			tables[(*n)++] = v;
			continue;
		}
		argv[j++] = argv[i];
	}
	*argc = j;
	return 0;
}

static const char Q_CURSOR_OF[] = "SELECT cursor FROM tdgl_replica.sources WHERE name = $1";

/* The source's cursor (malloc'd; NULL when none or on error). */
static char *verify_cli_cursor_of(PGconn *c, const char *source)
{
	const char *p[1] = { source };
	PGresult *res = db_exec(c, "verify: read cursor", Q_CURSOR_OF, 1, p);
	char *cur = res && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ?
	            strdup(PQgetvalue(res, 0, 0)) : NULL;

	PQclear(res);
	return cur;
}

/* verify's catch-up: waits up to VERIFY_CLI_CATCH_UP_WAIT_MS for the cursor to move (a `serve`
 * pulling this source moves it), else runs one pull itself, as `pull` does. */
static int verify_cli_catch_up(void *ctx, PGconn *c, const char *source)
{
	struct timespec step = { 0, 50 * 1000000L };
	struct pull_result r;
	char *before = verify_cli_cursor_of(c, source), *now = NULL;
	int moved = 0;

	for (int ms = 0; before && !moved && ms < VERIFY_CLI_CATCH_UP_WAIT_MS; ms += 50) {
		nanosleep(&step, NULL);
		now = verify_cli_cursor_of(c, source);
		moved = now && strcmp(now, before);
		free(now);
	}
	free(before);
	return moved ? 0 : pull_run(c, source, "Manual", 0, ctx, NULL, &r);
}

/* Prints a verify report: per table "identical" or what differs. */
static void verify_cli_print(const cJSON *report)
{
	static const char *const kinds[][2] = {
		{ "missing", "missing on the replica" }, { "extra", "extra on the replica" },
		{ "different", "different" }, { "kept_local", "kept local" },
		{ "in_flight", "in flight (not compared)" },
	};
	const cJSON *t;

	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(report, "tables")) {
		const char *status = json_get_string(t, "status");
		const cJSON *counts = cJSON_GetObjectItemCaseSensitive(t, "counts");
		const cJSON *rep = cJSON_GetObjectItemCaseSensitive(t, "repair");

		printf("%s: %s", json_get_string(t, "table"), status);
		if (!strcmp(status, "failed"))
			printf(" (%s)", json_get_string(t, "error"));
		printf("\n");
		if (rep)
			printf("  repaired: %lld rows applied, %lld failed\n",
			       json_get_int(rep, "applied", 0), json_get_int(rep, "failed", 0));
		for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
			const cJSON *x;
			long long n = json_get_int(counts, kinds[k][0], 0);

			if (n == 0)
				continue;
			printf("  %s: %lld\n", kinds[k][1], n);
			cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(t, kinds[k][0])) {
				const cJSON *key = cJSON_IsObject(x) &&
				                   cJSON_GetObjectItemCaseSensitive(x, "columns") ?
				                   cJSON_GetObjectItemCaseSensitive(x, "key") : x;
				char *ks = cJSON_PrintUnformatted(key);

				printf("    %s", ks ? ks : "?");
				free(ks);
				if (key != x) {
					char *cs = cJSON_PrintUnformatted(
						cJSON_GetObjectItemCaseSensitive(x, "columns"));
					printf(" columns %s", cs ? cs : "?");
					free(cs);
				}
				printf("\n");
			}
		}
	}
}

int verify_cli_run(int argc, char **argv)
{
	struct arg_opt opts[] = {
		{ "db", "TDGL_DB", "CONNINFO", "libpq connection string", NULL },
		{ "secret-key", "TDGL_SECRET_KEY", "KEY", "key that encrypts secrets at rest", NULL },
		{ "files-dir", "TDGL_FILES_DIR", "DIR", "where attachment files go", "./files" },
		{ "repair", NULL, NULL, "apply the primary's rows where they differ, then verify again",
		  NULL },
		{ "json", NULL, NULL, "print the whole report as JSON", NULL },
		{ 0 }
	};
	const char *name = NULL, *tables[SOURCE_MAX_TABLES];
	struct pull_env env = { 0 };
	struct verify_opts vo = { 0 };
	int nt = 0, rc;
	char err[512];
	PGconn *c;
	cJSON *report = NULL;
	enum result st;

	if (verify_cli_tables(&argc, argv, tables, &nt) < 0)
		return 2;
	c = cli_open_named(argc, argv, opts, "tdgl-replica verify NAME [--table T ...] [--repair] [--json]",
	                   "verify needs a source NAME", &name, &rc);
	if (!c)
		return rc;
	env.key_material = args_get(opts, "secret-key");
	env.files_dir = args_get(opts, "files-dir");
	vo = (struct verify_opts){ .tables = tables, .ntables = nt,
	                           .repair = args_get(opts, "repair") != NULL,
	                           .key_material = env.key_material,
	                           .catch_up = verify_cli_catch_up, .catch_up_ctx = &env };
	st = verify_run(c, name, &vo, &report, err, sizeof err);
	if (st != RESULT_OK) {
		fprintf(stderr, "error: %s\n", err);
		rc = result_exit_code(st);
		goto out;
	}
	if (args_get(opts, "json"))
		{
		char *text = cJSON_Print(report);

		printf("%s\n", text ? text : "null");
		free(text);
	}
	else
		verify_cli_print(report);
	rc = 0;
	{
		const cJSON *t;

		cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(report, "tables")) {
			if (!strcmp(json_get_string(t, "status"), "failed"))
				rc = 1;
			else if (rc == 0 && strcmp(json_get_string(t, "status"), "identical"))
				rc = 3;
		}
	}
out:
	cJSON_Delete(report);
	PQfinish(c);
	return rc;
}
