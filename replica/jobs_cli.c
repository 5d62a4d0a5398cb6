/* jobs_cli: see jobs_cli.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/args.h"
#include "common/db.h"
#include "common/json.h"
#include "replica/cli.h"
#include "replica/dryrun.h"
#include "replica/jobs_cli.h"
#include "replica/retry.h"
#include "replica/settings.h"

#define JOBS_OPT_DB { "db", "TDGL_DB", "CONNINFO", "libpq connection string", NULL }

static void jobs_print(const cJSON *j)
{
	char *s = cJSON_Print(j);

	printf("%s\n", s ? s : "null");
	free(s);
}

/* on/off -> 1/0; -1 when neither. */
static int jobs_onoff(const char *v)
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

/* HTTP-like status of settings/retry -> exit code. */
static int jobs_exit(unsigned st)
{
	return st == 200 ? 0 : st == 400 ? 2 : 1;
}

int jobs_cli_source_set(int argc, char **argv)
{
	struct arg_opt opts[] = {
		JOBS_OPT_DB,
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
		{ "batch-size", NULL, "N", "changes per page (1-500)", NULL },
		{ "enabled", NULL, "on|off", "pull this source at all", NULL },
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
	unsigned st;

	rc = args_parse(argc, argv, opts,
	                "tdgl-replica source set NAME [--table T --insert-enabled on|off ...] "
	                "[--cron EXPR [--tz ZONE] | --poll-interval DURATION] [--rate-limit N] "
	                "[--retry-base DURATION] [--max-retries N]", pos, 1, &np);
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
		if ((b = jobs_onoff(v)) < 0) {
			fprintf(stderr, "error: --%s takes on or off\n", flags[i]);
			goto out;
		}
		cJSON_AddBoolToObject(patch, keys[i], b);
		nflags++;
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

		if (args_int(v, 1, 500, &n) < 0) {
			fprintf(stderr, "error: --batch-size must be within 1..500\n");
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
		int b = jobs_onoff(v);

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
	rc = jobs_exit(st);
	if (st == 200)
		jobs_print(out);
	else
		fprintf(stderr, "error: %s\n", err);
out:
	cJSON_Delete(patch);
	cJSON_Delete(out);
	if (c)
		PQfinish(c);
	return rc;
}

int jobs_cli_source_show(int argc, char **argv)
{
	struct arg_opt opts[] = { JOBS_OPT_DB, { 0 } };
	const char *pos[1] = { 0 };
	PGconn *c;
	cJSON *o;
	int np = 0, rc;

	rc = args_parse(argc, argv, opts, "tdgl-replica source show NAME", pos, 1, &np);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (np != 1) {
		fprintf(stderr, "error: source show needs a NAME\n");
		return 2;
	}
	if (!(c = cli_open(opts, 1, &rc)))
		return rc;
	if ((o = settings_get(c, pos[0]))) {
		jobs_print(o);
		cJSON_Delete(o);
		rc = 0;
	} else {
		fprintf(stderr, "error: unknown source \"%s\"\n", pos[0]);
		rc = 1;
	}
	PQfinish(c);
	return rc;
}

int jobs_cli_retry(int argc, char **argv)
{
	struct arg_opt opts[] = {
		JOBS_OPT_DB,
		{ "all-failed", NULL, NULL, "retry every Failed change now", NULL },
		{ "source", NULL, "NAME", "with --all-failed: only this source", NULL },
		{ 0 }
	};
	const char *pos[1] = { 0 };
	char err[512], *end;
	cJSON *out = NULL;
	PGconn *c = NULL;
	int np = 0, rc, all;
	long id = 0;

	rc = args_parse(argc, argv, opts, "tdgl-replica retry ID | --all-failed [--source NAME]",
	                pos, 1, &np);
	if (rc)
		return rc == 1 ? 0 : 2;
	all = args_get(opts, "all-failed") != NULL;
	if (all == (np == 1) || (!all && args_get(opts, "source"))) {
		fprintf(stderr, "error: give a log entry ID or --all-failed\n"
		        "usage: tdgl-replica retry ID | --all-failed [--source NAME]\n");
		return 2;
	}
	if (!all) {
		id = strtol(pos[0], &end, 10);
		if (*end || end == pos[0] || id <= 0) {
			fprintf(stderr, "error: bad log entry id \"%s\"\n", pos[0]);
			return 2;
		}
	}
	if (!(c = cli_open(opts, 1, &rc)))
		return rc;
	if (all) {
		rc = result_exit_code(retry_all_failed(c, args_get(opts, "source"), &out, err,
		                                       sizeof err));
	} else {
		rc = result_exit_code(retry_entry(c, id, &out, err, sizeof err));
	}
	if (out)
		jobs_print(out);
	if (rc)
		fprintf(stderr, "error: %s\n", err);
	cJSON_Delete(out);
	PQfinish(c);
	return rc;
}

int jobs_cli_dry_run(PGconn *c, const char *name, const char *key_material)
{
	cJSON *report = NULL;
	char err[512];
	unsigned st = dryrun_run(c, name, "Manual", key_material, &report, err, sizeof err);
	int rc = 1;

	if (st == 200) {
		jobs_print(report);
		rc = strcmp(json_get_string(report, "status"), "Failed") ? 0 : 1;
	} else if (st == 404) {
		fprintf(stderr, "error: unknown source \"%s\"\n", name);
	} else {
		fprintf(stderr, "error: dry run: %s\n", err);
	}
	cJSON_Delete(report);
	return rc;
}
