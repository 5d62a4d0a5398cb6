/* source_cli: see source_cli.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/args.h"
#include "common/db.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/result.h"
#include "replica/cli.h"
#include "replica/dryrun.h"
#include "replica/pull.h"
#include "replica/settings.h"
#include "replica/source.h"
#include "replica/source_cli.h"

#define SOURCE_CLI_OPT_DB { "db", "TDGL_DB", "CONNINFO", "libpq connection string", NULL }

static const char Q_SOURCE_EXISTS[] = "SELECT 1 FROM tdgl_replica.sources WHERE name = $1";

static void source_cli_print(const cJSON *j)
{
	char *s = cJSON_Print(j);

	printf("%s\n", s ? s : "null");
	free(s);
}

/* on/off -> 1/0; -1 when neither. */
static int source_cli_onoff(const char *v)
{
	static const char *const on[] = { "on", "true", "yes", "1" }, *const off[] = { "off",
		"false", "no", "0" };

	for (int i = 0; i < 4; i++) {
		if (!strcasecmp(v, on[i]))
			return 1;
		if (!strcasecmp(v, off[i]))
			return 0;
	}
	return -1;
}

/* Moves every "--NAME VALUE" / "--NAME=VALUE" of a repeatable option out of argv. */
static int source_cli_take_repeated(int *argc, char **argv, const char *name, const char **out,
                              int max, int *n)
{
	size_t nl = strlen(name);
	int j = 0;

	for (int i = 0; i < *argc; i++) {
		const char *a = argv[i];
		if (!strncmp(a, "--", 2) && !strncmp(a + 2, name, nl) &&
		    (a[2 + nl] == '\0' || a[2 + nl] == '=')) {
			const char *v = a[2 + nl] == '=' ? a + 3 + nl : (i + 1 < *argc ? argv[++i] : NULL);
			if (!v || *n >= max) {
				fprintf(stderr, "error: option --%s needs a value TABLE=...\n", name);
				return -1;
			}
			out[(*n)++] = v;
			continue;
		}
		argv[j++] = argv[i];
	}
	*argc = j;
	return 0;
}

static int source_cli_add(int argc, char **argv)
{
	struct arg_opt opts[] = {
		SOURCE_CLI_OPT_DB,
		{ "url", NULL, "URL", "the primary's base URL", NULL },
		{ "key", NULL, "KEY", "API key from `tdgl-primary keygen`", NULL },
		{ "secret", NULL, "SECRET", "API secret (stored encrypted)", NULL },
		{ "tables", NULL, "T1,T2", "tables to pull", NULL },
		{ "batch-size", NULL, "N", "changes per page (1-" LIMITS_TEXT(CHANGES_LIMIT_MAX) ")",
		  LIMITS_TEXT(CHANGES_BATCH_DEFAULT) },
		{ "poll-interval", NULL, "DURATION", "interval between scheduled pulls", "60" },
		{ "push-secret", NULL, "SECRET", "shared secret of push notifications", NULL },
		{ "long-poll", NULL, NULL, "keep a long-poll open instead of waiting for pushes",
		  NULL },
		{ "conflict-policy", NULL, "P", "a two-way table's conflicts: manual, source-wins, "
		  "local-wins or latest-wins", "manual" },
		{ "secret-key", "TDGL_SECRET_KEY", "KEY", "key that encrypts secrets at rest", NULL },
		{ 0 }
	};
	struct source_spec spec = { 0 };
	const char *pos[1] = { 0 };
	char err[512];
	int np = 0, rc;
	enum result r;
	long v;
	PGconn *c = NULL;

	if (source_cli_take_repeated(&argc, argv, "filter", spec.filters, SOURCE_MAX_TABLES,
	                       &spec.nfilters) < 0 ||
	    source_cli_take_repeated(&argc, argv, "attach", spec.attach, SOURCE_MAX_TABLES,
	                       &spec.nattach) < 0)
		return 2;
	rc = args_parse(argc, argv, opts,
	                "tdgl-replica source add NAME --url U --key K --secret S --tables t1,t2 "
	                "[--filter 't1={\"col\":\"v\"}']... [--attach t1=col1,col2]...",
	                pos, 1, &np);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (np != 1) {
		fprintf(stderr, "error: source add needs a NAME\n");
		return 2;
	}
	spec.name = pos[0];
	spec.url = args_get(opts, "url");
	spec.key = args_get(opts, "key");
	spec.secret = args_get(opts, "secret");
	spec.tables = args_get(opts, "tables");
	spec.push_secret = args_get(opts, "push-secret");
	spec.long_poll = args_get(opts, "long-poll") != NULL;
	spec.conflict_policy = args_get(opts, "conflict-policy");   /* checked by source_add */
	if (args_int(args_get(opts, "batch-size"), 1, CHANGES_LIMIT_MAX, &spec.batch_size) < 0) {
		fprintf(stderr, "error: --batch-size must be within 1..%d\n", CHANGES_LIMIT_MAX);
		return 2;
	}
	v = args_duration(args_get(opts, "poll-interval"));
	if (v < 1) {
		fprintf(stderr, "error: --poll-interval must be a duration like 30, 30s, 5m\n");
		return 2;
	}
	spec.poll_interval = v;
	c = cli_open(opts, 1, &rc);
	if (!c)
		return rc;
	if ((r = source_add(c, &spec, args_get(opts, "secret-key"), err, sizeof err)) != RESULT_OK) {
		fprintf(stderr, "error: %s\n", err);
		rc = result_exit_code(r);
	} else {
		printf("source %s added; its initial sync starts at the next pull\n", spec.name);
		rc = 0;
	}
	PQfinish(c);
	return rc;
}

static int source_cli_set(int argc, char **argv)
{
	struct arg_opt opts[] = {
		SOURCE_CLI_OPT_DB,
		{ "table", NULL, "T", "the source table the control flags below apply to", NULL },
		{ "insert-enabled", NULL, "on|off", "apply inserts of new rows", NULL },
		{ "update-enabled", NULL, "on|off", "apply updates of existing rows", NULL },
		{ "delete-enabled", NULL, "on|off", "apply deletes", NULL },
		{ "update-without-changes", NULL, "on|off",
		  "apply a snapshot equal to the local row (default off: Skipped \"no changes\")",
		  NULL },
		{ "poll-interval", NULL, "DURATION", "interval between scheduled pulls (30, 5m)",
		  NULL },
		{ "cron", NULL, "EXPR", "5-field cron schedule instead of the interval; off clears it",
		  NULL },
		{ "tz", NULL, "ZONE", "IANA time zone of the cron schedule (default UTC)", NULL },
		{ "rate-limit", NULL, "N", "requests per second to the primary (0 = unlimited)", NULL },
		{ "retry-base", NULL, "DURATION", "first retry delay of a Failed change (doubles)",
		  NULL },
		{ "max-retries", NULL, "N", "automatic retries of a Failed change", NULL },
		{ "batch-size", NULL, "N", "changes per page (1-" LIMITS_TEXT(CHANGES_LIMIT_MAX) ")",
		  NULL },
		{ "enabled", NULL, "on|off", "pull this source at all", NULL },
		{ "conflict-policy", NULL, "P", "a two-way table's conflicts (with --table: that "
		  "table's; default: the source's): manual, source-wins, local-wins, latest-wins, "
		  "or source (the table takes the source's)", NULL },
		{ 0 }
	};
	static const char *const flags[] = { "insert-enabled", "update-enabled", "delete-enabled",
		"update-without-changes" };
	static const char *const keys[] = { "insert_enabled", "update_enabled", "delete_enabled",
		"update_without_changes" };
	const char *pos[1] = { 0 }, *v;
	char err[512];
	cJSON *patch = cJSON_CreateObject(), *out = NULL;
	PGconn *c = NULL;
	int np = 0, rc, nflags = 0;
	enum result st;

	rc = args_parse(argc, argv, opts,
	                "tdgl-replica source set NAME [--table T --insert-enabled on|off ...] "
	                "[--cron EXPR [--tz ZONE] | --poll-interval DURATION] [--rate-limit N] "
	                "[--retry-base DURATION] [--max-retries N] [--conflict-policy P]", pos, 1,
	                &np);
	if (rc) {
		rc = rc == 1 ? 0 : 2;
		goto out;
	}
	rc = 2;
	if (np != 1) {
		fprintf(stderr, "error: source set needs a NAME\n");
		goto out;
	}
	for (int i = 0; i < 4; i++) {
		int b;

		if (!(v = args_get(opts, flags[i])))
			continue;
		if ((b = source_cli_onoff(v)) < 0) {
			fprintf(stderr, "error: --%s takes on or off\n", flags[i]);
			goto out;
		}
		cJSON_AddBoolToObject(patch, keys[i], b);
		nflags++;
	}
	if ((v = args_get(opts, "conflict-policy"))) {
		int tbl = args_get(opts, "table") != NULL;

		if (tbl && !strcmp(v, "source")) {
			cJSON_AddNullToObject(patch, "conflict_policy");
		} else if (settings_conflict_policy_ok(v)) {
			cJSON_AddStringToObject(patch, "conflict_policy", v);
		} else {
			fprintf(stderr, "error: --conflict-policy must be " SETTINGS_POLICIES "%s\n",
			        tbl ? " (or source)" : "");
			goto out;
		}
		nflags += tbl;
	}
	if ((v = args_get(opts, "table"))) {
		if (!nflags) {
			fprintf(stderr, "error: --table goes with a flag such as --insert-enabled off\n");
			goto out;
		}
		cJSON_AddStringToObject(patch, "table", v);
	} else if (nflags) {
		fprintf(stderr, "error: control flags need --table T\n");
		goto out;
	}
	if ((v = args_get(opts, "poll-interval"))) {
		long d = args_duration(v);

		if (d < 1) {
			fprintf(stderr, "error: --poll-interval must be a duration like 30, 30s, 5m\n");
			goto out;
		}
		cJSON_AddNumberToObject(patch, "poll_interval", (double)d);
	}
	if ((v = args_get(opts, "retry-base"))) {
		long d = args_duration(v);

		if (d < 0 || (d == 0 && strcmp(v, "0") && strcmp(v, "0s"))) {
			fprintf(stderr, "error: --retry-base must be a duration like 300, 5m (0: at the "
			        "next pull)\n");
			goto out;
		}
		cJSON_AddNumberToObject(patch, "retry_base_s", (double)d);
	}
	if ((v = args_get(opts, "max-retries"))) {
		long n;

		if (args_int(v, 0, 100, &n) < 0) {
			fprintf(stderr, "error: --max-retries must be within 0..100\n");
			goto out;
		}
		cJSON_AddNumberToObject(patch, "max_retries", (double)n);
	}
	if ((v = args_get(opts, "batch-size"))) {
		long n;

		if (args_int(v, 1, CHANGES_LIMIT_MAX, &n) < 0) {
			fprintf(stderr, "error: --batch-size must be within 1..%d\n", CHANGES_LIMIT_MAX);
			goto out;
		}
		cJSON_AddNumberToObject(patch, "batch_size", (double)n);
	}
	if ((v = args_get(opts, "rate-limit"))) {
		char *end;
		double r = strtod(v, &end);

		if (*end || end == v || !(r >= 0) || r > 100000) {
			fprintf(stderr, "error: --rate-limit must be requests per second (0 = unlimited)\n");
			goto out;
		}
		cJSON_AddNumberToObject(patch, "rate_limit", r);
	}
	if ((v = args_get(opts, "cron")))
		cJSON_AddStringToObject(patch, "cron", v);
	if ((v = args_get(opts, "tz")))
		cJSON_AddStringToObject(patch, "tz", v);
	if ((v = args_get(opts, "enabled"))) {
		int b = source_cli_onoff(v);

		if (b < 0) {
			fprintf(stderr, "error: --enabled takes on or off\n");
			goto out;
		}
		cJSON_AddBoolToObject(patch, "enabled", b);
	}
	if (!cJSON_GetArraySize(patch)) {
		fprintf(stderr, "error: nothing to set; see tdgl-replica source set --help\n");
		goto out;
	}
	if (!(c = cli_open(opts, 1, &rc)))
		goto out;
	st = settings_apply(c, pos[0], patch, &out, err, sizeof err);
	rc = result_exit_code(st);
	if (st == RESULT_OK)
		source_cli_print(out);
	else
		fprintf(stderr, "error: %s\n", err);
out:
	cJSON_Delete(patch);
	cJSON_Delete(out);
	if (c)
		PQfinish(c);
	return rc;
}

static int source_cli_show(int argc, char **argv)
{
	struct arg_opt opts[] = { SOURCE_CLI_OPT_DB, { 0 } };
	const char *name = NULL;
	PGconn *c;
	cJSON *o;
	int rc;

	c = cli_open_named(argc, argv, opts, "tdgl-replica source show NAME",
	                   "source show needs a NAME", &name, &rc);
	if (!c)
		return rc;
	if ((o = settings_get(c, name))) {
		source_cli_print(o);
		cJSON_Delete(o);
		rc = 0;
	} else {
		fprintf(stderr, "error: unknown source \"%s\"\n", name);
		rc = 1;
	}
	PQfinish(c);
	return rc;
}

int source_cli_run(int argc, char **argv, int arg __attribute__((unused)))
{
	struct arg_opt opts[] = { SOURCE_CLI_OPT_DB, { 0 } };
	const char *pos[2] = { 0 };
	int np = 0, rc;
	PGconn *c = NULL;

	static const char usage[] =
		"usage: tdgl-replica source add|list|remove|set|show ...\n\n"
		"  source add NAME --url U --key K --secret S --tables t1,t2 ...  add a source\n"
		"  source list                  list sources (never secrets)\n"
		"  source remove NAME           remove a source\n"
		"  source set NAME --cron EXPR --tz ZONE | --table T --insert-enabled off ...\n"
		"                               change schedule, limits, retries, control flags\n"
		"  source show NAME             schedule, limits and control flags of a source\n"
		"Run `tdgl-replica source <command> --help` for a command's options.\n";

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		if (argc < 2)
			fprintf(stderr, "error: missing source command\n%s", usage);
		else
			printf("%s", usage);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "add"))
		return source_cli_add(argc - 1, argv + 1);
	if (!strcmp(argv[1], "set"))
		return source_cli_set(argc - 1, argv + 1);
	if (!strcmp(argv[1], "show"))
		return source_cli_show(argc - 1, argv + 1);
	if (strcmp(argv[1], "list") && strcmp(argv[1], "remove")) {
		fprintf(stderr, "error: unknown source command \"%s\"\n%s", argv[1], usage);
		return 2;
	}
	rc = args_parse(argc - 1, argv + 1, opts,
	                !strcmp(argv[1], "list") ? "tdgl-replica source list"
	                                         : "tdgl-replica source remove NAME",
	                pos, 1, &np);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (!strcmp(argv[1], "remove") && np != 1) {
		fprintf(stderr, "error: source remove needs a NAME\n");
		return 2;
	}
	c = cli_open(opts, 1, &rc);
	if (!c)
		return rc;
	rc = 1;
	if (!strcmp(argv[1], "list")) {
		cJSON *l = source_list_json(c);
		if (l) {
			source_cli_print(l);
			cJSON_Delete(l);
			rc = 0;
		}
	} else {
		int r = source_remove(c, pos[0]);
		if (r == 1) {
			printf("source %s removed\n", pos[0]);
			rc = 0;
		} else if (r == 0) {
			fprintf(stderr, "error: unknown source \"%s\"\n", pos[0]);
		}
	}
	PQfinish(c);
	return rc;
}

static int source_cli_dry_run(PGconn *c, const char *name, const char *key_material)
{
	cJSON *report = NULL;
	char err[512];
	enum result st = dryrun_run(c, name, "Manual", key_material, &report, err, sizeof err);
	int rc = 1;

	if (st == RESULT_OK) {
		source_cli_print(report);
		rc = strcmp(json_get_string(report, "status"), "Failed") ? 0 : 1;
	} else if (st == RESULT_NOT_FOUND) {
		fprintf(stderr, "error: unknown source \"%s\"\n", name);
	} else {
		fprintf(stderr, "error: dry run: %s\n", err);
	}
	cJSON_Delete(report);
	return rc;
}

int source_cli_pull(int argc, char **argv, int arg __attribute__((unused)))
{
	struct arg_opt opts[] = {
		SOURCE_CLI_OPT_DB,
		{ "secret-key", "TDGL_SECRET_KEY", "KEY", "key that encrypts secrets at rest", NULL },
		{ "files-dir", "TDGL_FILES_DIR", "DIR", "where attachment files go", "./files" },
		{ "dry-run", NULL, NULL, "only report what the pull would do; change nothing", NULL },
		{ 0 }
	};
	const char *name = NULL;
	struct pull_env env = { 0 };
	struct pull_result r;
	int rc;
	PGconn *c;
	cJSON *o;

	c = cli_open_named(argc, argv, opts, "tdgl-replica pull NAME [--dry-run]",
	                   "pull needs a source NAME", &name, &rc);
	if (!c)
		return rc;
	env.key_material = args_get(opts, "secret-key");
	env.files_dir = args_get(opts, "files-dir");
	if (args_get(opts, "dry-run")) {
		rc = source_cli_dry_run(c, name, env.key_material);
		PQfinish(c);
		return rc;
	}
	{
		const char *p[1] = { name };
		PGresult *res = db_exec(c, "pull: source", Q_SOURCE_EXISTS, 1, p);
		int asked = res != NULL, known = res && PQntuples(res) == 1;

		PQclear(res);
		if (!known) {   /* refused before a run is recorded for a source that is not there */
			if (asked)
				fprintf(stderr, "error: unknown source \"%s\"\n", name);
			PQfinish(c);
			return 1;
		}
	}
	rc = pull_run(c, name, "Manual", 0, &env, NULL, &r) < 0 ? 1 : 0;
	o = pull_result_json(&r, name);
	source_cli_print(o);
	cJSON_Delete(o);
	PQfinish(c);
	return rc;
}

