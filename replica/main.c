/* tdgl-replica: command-line entry point (migrate, source add/list/remove, conflicts,
 * resolve, pull, status, log, runs, purge, serve). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/args.h"
#include "common/command.h"
#include "common/buf.h"
#include "common/db.h"
#include "common/http.h"
#include "common/httpc.h"
#include "common/json.h"
#include "common/log.h"
#include "common/version.h"
#include "replica/api.h"
#include "replica/apply.h"
#include "replica/cli.h"
#include "replica/conflict.h"
#include "replica/jobs_cli.h"
#include "replica/pull.h"
#include "replica/retention.h"
#include "replica/run.h"
#include "replica/scheduler.h"
#include "replica/source.h"
#include "replica/verify_cli.h"

extern const char sql_replica[];

#define MAIN_RELOAD_S 2
#define MAIN_DURATION_MAX (36500L * 86400)

static const char main_usage[] =
	"tdgl-replica <command> [options]\n"
	"commands:\n"
	"  migrate                      create or upgrade the tdgl schema\n"
	"  serve                        run the scheduler and the admin API\n"
	"  source add NAME --url U --key K --secret S --tables t1,t2 [--filter 't1={...}']\n"
	"             [--attach t1=col1,col2] [--batch-size N] [--poll-interval S]\n"
	"             [--push-secret P] [--long-poll]\n"
	"  source list | source remove NAME\n"
	"  source set NAME [--table T --insert-enabled on|off ...] [--cron EXPR --tz ZONE]\n"
	"             [--poll-interval S] [--rate-limit N] [--retry-base S] [--max-retries N]\n"
	"  source show NAME             schedule, limits and control flags of a source\n"
	"  pull NAME [--dry-run]        run one pull now (or only report it) and print its summary\n"
	"  verify NAME [--table T ...] [--repair] [--json]\n"
	"                               compare the source's tables with the primary (exit 3:\n"
	"                               they differ); --repair fixes what differs\n"
	"  retry ID | retry --all-failed   retry Failed changes now\n"
	"  conflicts [--status open|resolved]\n"
	"  resolve ID accept-primary|keep-local\n"
	"  log [--status Synced|Failed|Skipped] [--source NAME]\n"
	"  runs [--source NAME]\n"
	"  status\n"
	"  purge [--log-retention 14d]  delete old Synced/Skipped log entries and finished runs\n"
	"every command takes --db CONNINFO (TDGL_DB) and --help; tdgl-replica --version\n\n"
	"logs: one line per event on stderr, text or json [env TDGL_LOG_FORMAT] (default: text)\n"
	"exit codes: 0 ok, 1 runtime error, 2 usage error, 3 verify found differences";

static const char Q_SOURCE_EXISTS[] = "SELECT 1 FROM tdgl_replica.sources WHERE name = $1";
static const char Q_LOG[] =
	"SELECT id, coalesce(run_id::text, '-'), source, coalesce(change_id::text, '-'), tbl, "
	"op, status, coalesce(reason, error, ''), pk::text FROM tdgl_replica.sync_log "
	"WHERE ($1::text IS NULL OR lower(status) = lower($1)) AND ($2::text IS NULL OR source = $2) "
	"ORDER BY id DESC LIMIT 200";
static const char Q_RUNS[] =
	"SELECT id, source, trigger, status, fetched, synced, failed, skipped, conflicts, "
	"to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'), "
	"coalesce(round(extract(epoch FROM ended_at - started_at) * 1000)::text, '-'), "
	"coalesce(error, '') FROM tdgl_replica.runs WHERE ($1::text IS NULL OR source = $1) "
	"ORDER BY id DESC LIMIT 50";
/* lag: now - the primary's capture time of the newest change applied; cursor age: since the
 * cursor last moved ("-" until the first change arrives) */
static const char Q_STATUS[] =
	"SELECT s.name, s.enabled, s.cursor IS NOT NULL, "
	"coalesce(round(extract(epoch FROM now() - s.last_change_at))::text, '-'), "
	"coalesce(round(extract(epoch FROM now() - s.cursor_moved_at))::text, '-'), "
	"coalesce(s.last_status, '-'), "
	"coalesce(to_char(s.last_run_at, 'YYYY-MM-DD HH24:MI:SS'), '-'), "
	"(SELECT count(*) FROM tdgl_replica.conflicts c WHERE c.source = s.name AND c.status = 'Open'), "
	"(SELECT count(*) FROM tdgl_replica.sync_log l WHERE l.source = s.name AND l.status = 'Failed') "
	"FROM tdgl_replica.sources s ORDER BY s.name";

static volatile int main_stop;

#define OPT_DB { "db", "TDGL_DB", "CONNINFO", "libpq connection string", NULL }
#define OPT_END { 0 }
#define OPT_LOG_RETENTION { "log-retention", "TDGL_LOG_RETENTION", "DURATION", \
	"keep sync log entries and runs this long (30s, 5m, 2h, 14d)", RETENTION_DEFAULT }

static void main_print_json(const cJSON *j)
{
	char *s = cJSON_Print(j);

	printf("%s\n", s ? s : "null");
	free(s);
}

static int cmd_migrate(int argc, char **argv, int arg __attribute__((unused)))
{
	struct arg_opt opts[] = { OPT_DB, OPT_END };
	char err[1024];
	PGconn *c = NULL;
	int rc = args_parse(argc, argv, opts, "tdgl-replica migrate [--db CONNINFO]", NULL, 0, NULL);

	if (rc)
		return rc == 1 ? 0 : 2;
	c = cli_open(opts, 0, &rc);
	if (!c)
		return rc;
	if (db_migrate(c, db_role_schema(DB_ROLE_REPLICA), REPLICA_SCHEMA_VERSION, sql_replica, err, sizeof err) < 0) {
		fprintf(stderr, "error: migrate: %s\n", err);
		rc = 1;
	} else {
		printf("schema tdgl at version %d\n", REPLICA_SCHEMA_VERSION);
		rc = 0;
	}
	PQfinish(c);
	return rc;
}

/* Moves every "--NAME VALUE" / "--NAME=VALUE" of a repeatable option out of argv. */
static int main_take_repeated(int *argc, char **argv, const char *name, const char **out,
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

static int cmd_source_add(int argc, char **argv)
{
	struct arg_opt opts[] = {
		OPT_DB,
		{ "url", NULL, "URL", "the primary's base URL", NULL },
		{ "key", NULL, "KEY", "API key from `tdgl-primary keygen`", NULL },
		{ "secret", NULL, "SECRET", "API secret (stored encrypted)", NULL },
		{ "tables", NULL, "T1,T2", "tables to pull", NULL },
		{ "batch-size", NULL, "N", "changes per page (1-500)", "500" },
		{ "poll-interval", NULL, "DURATION", "interval between scheduled pulls", "60" },
		{ "push-secret", NULL, "SECRET", "shared secret of push notifications", NULL },
		{ "long-poll", NULL, NULL, "keep a long-poll open instead of waiting for pushes",
		  NULL },
		{ "secret-key", "TDGL_SECRET_KEY", "KEY", "key that encrypts secrets at rest", NULL },
		OPT_END
	};
	struct source_spec spec = { 0 };
	const char *pos[1] = { 0 };
	char err[512];
	int np = 0, rc, st;
	long v;
	PGconn *c = NULL;

	if (main_take_repeated(&argc, argv, "filter", spec.filters, SOURCE_MAX_TABLES,
	                       &spec.nfilters) < 0 ||
	    main_take_repeated(&argc, argv, "attach", spec.attach, SOURCE_MAX_TABLES,
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
	if (args_int(args_get(opts, "batch-size"), 1, 500, &spec.batch_size) < 0) {
		fprintf(stderr, "error: --batch-size must be within 1..500\n");
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
	if (source_add(c, &spec, args_get(opts, "secret-key"), err, sizeof err, &st) < 0) {
		fprintf(stderr, "error: %s\n", err);
		rc = st == 400 ? 2 : 1;
	} else {
		printf("source %s added; its initial sync starts at the next pull\n", spec.name);
		rc = 0;
	}
	PQfinish(c);
	return rc;
}

static int cmd_source(int argc, char **argv, int arg __attribute__((unused)))
{
	struct arg_opt opts[] = { OPT_DB, OPT_END };
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
		return cmd_source_add(argc - 1, argv + 1);
	if (!strcmp(argv[1], "set"))
		return jobs_cli_source_set(argc - 1, argv + 1);
	if (!strcmp(argv[1], "show"))
		return jobs_cli_source_show(argc - 1, argv + 1);
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
			main_print_json(l);
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

static int cmd_pull(int argc, char **argv, int arg __attribute__((unused)))
{
	struct arg_opt opts[] = {
		OPT_DB,
		{ "secret-key", "TDGL_SECRET_KEY", "KEY", "key that encrypts secrets at rest", NULL },
		{ "files-dir", "TDGL_FILES_DIR", "DIR", "where attachment files go", "./files" },
		{ "dry-run", NULL, NULL, "only report what the pull would do; change nothing", NULL },
		OPT_END
	};
	const char *pos[1] = { 0 };
	struct pull_env env = { 0 };
	struct pull_result r;
	int np = 0, rc;
	PGconn *c;
	cJSON *o;

	rc = args_parse(argc, argv, opts, "tdgl-replica pull NAME [--dry-run]", pos, 1, &np);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (np != 1) {
		fprintf(stderr, "error: pull needs a source NAME\n");
		return 2;
	}
	c = cli_open(opts, 1, &rc);
	if (!c)
		return rc;
	env.key_material = args_get(opts, "secret-key");
	env.files_dir = args_get(opts, "files-dir");
	if (args_get(opts, "dry-run")) {
		rc = jobs_cli_dry_run(c, pos[0], env.key_material);
		PQfinish(c);
		return rc;
	}
	{
		const char *p[1] = { pos[0] };
		PGresult *res = db_exec(c, "pull: source", Q_SOURCE_EXISTS, 1, p);
		int asked = res != NULL, known = res && PQntuples(res) == 1;

		PQclear(res);
		if (!known) {   /* refused before a run is recorded for a source that is not there */
			if (asked)
				fprintf(stderr, "error: unknown source \"%s\"\n", pos[0]);
			PQfinish(c);
			return 1;
		}
	}
	rc = pull_run(c, pos[0], "Manual", 0, &env, NULL, &r) < 0 ? 1 : 0;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "source", pos[0]);
	cJSON_AddNumberToObject(o, "run_id", (double)r.run_id);
	cJSON_AddStringToObject(o, "status", r.status);
	cJSON_AddNumberToObject(o, "fetched", (double)r.fetched);
	cJSON_AddNumberToObject(o, "synced", (double)r.synced);
	cJSON_AddNumberToObject(o, "failed", (double)r.failed_changes);
	cJSON_AddNumberToObject(o, "skipped", (double)r.skipped);
	cJSON_AddNumberToObject(o, "conflicts", (double)r.conflicts);
	cJSON_AddNumberToObject(o, "pages", (double)r.pages);
	cJSON_AddBoolToObject(o, "more", r.more);
	if (r.failed)
		cJSON_AddStringToObject(o, "error", r.error);
	main_print_json(o);
	cJSON_Delete(o);
	PQfinish(c);
	return rc;
}

static int cmd_conflicts(int argc, char **argv, int arg __attribute__((unused)))
{
	struct arg_opt opts[] = {
		OPT_DB,
		{ "status", NULL, "STATUS", "open or resolved (default: all)", NULL },
		OPT_END
	};
	int rc = args_parse(argc, argv, opts, "tdgl-replica conflicts [--status open]", NULL, 0,
	                    NULL);
	const char *st;
	PGconn *c;
	cJSON *l;

	if (rc)
		return rc == 1 ? 0 : 2;
	st = args_get(opts, "status");
	if (st && strcasecmp(st, "open") && strcasecmp(st, "resolved")) {
		fprintf(stderr, "error: --status must be open or resolved\n");
		return 2;
	}
	c = cli_open(opts, 1, &rc);
	if (!c)
		return rc;
	rc = 1;
	if ((l = conflict_list(c, st, 1000)) != NULL) {
		main_print_json(l);
		cJSON_Delete(l);
		rc = 0;
	}
	PQfinish(c);
	return rc;
}

static int cmd_resolve(int argc, char **argv, int arg __attribute__((unused)))
{
	struct arg_opt opts[] = { OPT_DB, OPT_END };
	const char *pos[2] = { 0 };
	char err[512], *end;
	int np = 0, rc;
	long id;
	enum result r;
	PGconn *c;
	cJSON *out = NULL;

	rc = args_parse(argc, argv, opts, "tdgl-replica resolve ID accept-primary|keep-local",
	                pos, 2, &np);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (np != 2 || !conflict_resolution(pos[1])) {
		fprintf(stderr, "error: usage: tdgl-replica resolve ID accept-primary|keep-local\n");
		return 2;
	}
	id = strtol(pos[0], &end, 10);
	if (*end || id <= 0) {
		fprintf(stderr, "error: bad conflict id \"%s\"\n", pos[0]);
		return 2;
	}
	c = cli_open(opts, 1, &rc);
	if (!c)
		return rc;
	r = conflict_resolve(c, id, pos[1], &out, err, sizeof err);
	rc = result_exit_code(r);
	if (r == RESULT_OK)
		printf("conflict %ld resolved: %s\n", id, conflict_resolution(pos[1]));
	else
		fprintf(stderr, "error: %s\n", err);
	cJSON_Delete(out);
	PQfinish(c);
	return rc;
}

/* Prints a table of text rows (tab-separated), header first. */
static void main_print_rows(const PGresult *res, const char *header)
{
	printf("%s\n", header);
	for (int i = 0; i < PQntuples(res); i++) {
		for (int j = 0; j < PQnfields(res); j++)
			printf("%s%s", j ? "\t" : "", PQgetvalue(res, i, j));
		printf("\n");
	}
}

enum main_table { TABLE_LOG, TABLE_RUNS, TABLE_STATUS };

static int cmd_table(int argc, char **argv, int which)
{
	/* each command gets only its own options (log: --status --source, runs: --source) */
	struct arg_opt log_opts[] = {
		OPT_DB,
		{ "status", NULL, "STATUS", "only entries with this status: Synced, Failed or Skipped",
		  NULL },
		{ "source", NULL, "NAME", "only this source", NULL },
		OPT_END
	};
	struct arg_opt runs_opts[] = {
		OPT_DB, { "source", NULL, "NAME", "only this source", NULL }, OPT_END
	};
	struct arg_opt status_opts[] = { OPT_DB, OPT_END };
	struct arg_opt *opts = which == TABLE_LOG ? log_opts
	                       : which == TABLE_RUNS ? runs_opts : status_opts;
	const char *usage = which == TABLE_LOG
		? "tdgl-replica log [--status Synced|Failed|Skipped] [--source NAME] [--db CONNINFO]"
		: which == TABLE_RUNS ? "tdgl-replica runs [--source NAME] [--db CONNINFO]"
		                         : "tdgl-replica status [--db CONNINFO]";
	int rc = args_parse(argc, argv, opts, usage, NULL, 0, NULL);
	PGconn *c;
	PGresult *res = NULL;

	if (rc)
		return rc == 1 ? 0 : 2;
	c = cli_open(opts, 1, &rc);
	if (!c)
		return rc;
	rc = 1;
	if (which != TABLE_LOG)
		run_close_interrupted(c);   /* shown as they are, also while no serve runs */
	if (which == TABLE_LOG) {
		const char *p[2] = { args_get(opts, "status"), args_get(opts, "source") };
		res = db_exec(c, "log", Q_LOG, 2, p);
		if (res)
			main_print_rows(res, "id\trun\tsource\tchange\ttable\top\tstatus\treason\tpk");
	} else if (which == TABLE_RUNS) {
		const char *p[1] = { args_get(opts, "source") };
		res = db_exec(c, "runs", Q_RUNS, 1, p);
		if (res)
			main_print_rows(res, "id\tsource\ttrigger\tstatus\tfetched\tsynced\tfailed\t"
			                "skipped\tconflicts\tstarted\tms\terror");
	} else {
		res = db_exec(c, "status", Q_STATUS, 0, NULL);
		if (res)
			main_print_rows(res, "source\tenabled\tsynced_once\tlag_s\tcursor_age_s\t"
			                "last_status\tlast_run\topen_conflicts\tfailed_changes");
	}
	rc = res ? 0 : 1;
	PQclear(res);
	PQfinish(c);
	return rc;
}

/* A duration option in seconds, at least min and at most MAIN_DURATION_MAX (beyond, the
 * database cannot compute the cutoff and timers overflow), or -1 after printing why. */
static long main_duration(const struct arg_opt *opts, const char *name, long min)
{
	long v = args_duration(args_get(opts, name));

	if (v < min || v > MAIN_DURATION_MAX) {
		fprintf(stderr, "error: --%s \"%s\": expected a duration%s up to 36500d, such as "
		        "30s, 5m, 2h, 14d\n", name, args_get(opts, name),
		        min ? " of at least 1s" : " (0: never)");
		return -1;
	}
	return v;
}

static int cmd_purge(int argc, char **argv, int arg __attribute__((unused)))
{
	struct arg_opt opts[] = { OPT_DB, OPT_LOG_RETENTION, OPT_END };
	struct retention_counts n;
	long retention_s;
	PGconn *c;
	cJSON *o;
	int rc = args_parse(argc, argv, opts, "tdgl-replica purge [--log-retention 14d]", NULL, 0,
	                    NULL);

	if (rc)
		return rc == 1 ? 0 : 2;
	retention_s = main_duration(opts, "log-retention", 1);
	if (retention_s < 0)
		return 2;
	c = cli_open(opts, 1, &rc);
	if (!c)
		return rc;
	rc = 1;
	if (retention_purge(c, retention_s, NULL, &n) == 0) {
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "log_entries", (double)n.log_entries);
		cJSON_AddNumberToObject(o, "runs", (double)n.runs);
		cJSON_AddStringToObject(o, "before", n.before);
		cJSON_AddNumberToObject(o, "seconds", n.seconds);
		main_print_json(o);
		cJSON_Delete(o);
		rc = 0;
	}
	PQfinish(c);
	return rc;
}

/* Closes runs a killed or crashed process left Running (run.h). */
static void main_close_interrupted(struct db_pool *pool)
{
	PGconn *c = db_pool_get(pool, 1000);

	if (!c)
		return;
	run_close_interrupted(c);
	db_pool_put(pool, c);
}

static int cmd_serve(int argc, char **argv, int arg __attribute__((unused)))
{
	struct arg_opt opts[] = {
		OPT_DB,
		{ "listen", "TDGL_LISTEN", "HOST:PORT", "admin API address", "0.0.0.0:8081" },
		{ "admin-token", "TDGL_ADMIN_TOKEN", "TOKEN", "Bearer token of the admin API", NULL },
		{ "secret-key", "TDGL_SECRET_KEY", "KEY", "key that encrypts secrets at rest", NULL },
		{ "files-dir", "TDGL_FILES_DIR", "DIR", "where attachment files go", "./files" },
		{ "max-conns", "TDGL_MAX_CONNS", "N", "concurrent HTTP connections", "256" },
		{ "max-conns-per-ip", "TDGL_MAX_CONNS_PER_IP", "N", "concurrent HTTP connections of one client address (default: a quarter of --max-conns)", NULL },
		OPT_LOG_RETENTION,
		{ "purge-interval", "TDGL_PURGE_INTERVAL", "DURATION",
		  "purge the sync log and runs this often (0: never)", RETENTION_INTERVAL_DEFAULT },
		OPT_END
	};
	struct http_limits limits = { .max_body = 1 << 20, .timeout_s = 30 };
	struct pull_env env = { 0 };
	struct api api = { 0 };
	struct http_server *srv = NULL;
	struct db_pool *pool = NULL;
	struct sched *sched = NULL;
	struct retention *purge = NULL;
	sigset_t sigs;
	char err[512];
	PGconn *c = NULL;
	long retention_s, purge_s, max_conns, per_ip = 0;
	int rc, sealed;

	rc = args_parse(argc, argv, opts, "tdgl-replica serve [--listen HOST:PORT]", NULL, 0, NULL);
	if (rc)
		return rc == 1 ? 0 : 2;
	retention_s = main_duration(opts, "log-retention", 1);
	purge_s = main_duration(opts, "purge-interval", 0);
	if (retention_s < 0 || purge_s < 0)
		return 2;
	if (args_int(args_get(opts, "max-conns"), 1, 100000, &max_conns) < 0 ||
	    (args_get(opts, "max-conns-per-ip") &&
	     args_int(args_get(opts, "max-conns-per-ip"), 1, 100000, &per_ip) < 0)) {
		fprintf(stderr, "error: --max-conns and --max-conns-per-ip: 1..100000\n");
		return 2;
	}
	limits.max_conns = (unsigned)max_conns;
	limits.max_conns_per_ip = (unsigned)per_ip;   /* 0: http.c's default */
	c = cli_open(opts, 1, &rc);
	if (!c)
		return rc;
	rc = 1;
	api.admin_token = args_get(opts, "admin-token");
	if (!api.admin_token || strlen(api.admin_token) < 16) {
		fprintf(stderr, "error: TDGL_ADMIN_TOKEN (or --admin-token) must be set, at least 16 "
		        "characters: the admin API needs it\n");
		goto out;
	}
	env.key_material = args_get(opts, "secret-key");
	env.files_dir = args_get(opts, "files-dir");
	sealed = source_any_sealed(c);
	if (sealed < 0)
		goto out;
	if (sealed && (!env.key_material || !*env.key_material)) {
		fprintf(stderr, "error: TDGL_SECRET_KEY is not set, but sources with encrypted "
		        "secrets exist: it is needed to open them\n");
		goto out;
	}
	source_watch_all(c);
	apply_replica_role(c);   /* warns now when applies cannot run as replica */
	PQfinish(c);
	c = NULL;

	/* signals go to the main thread only: block them before any thread starts */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	pool = db_pool_new(args_get(opts, "db"), 8);
	sched = sched_new(args_get(opts, "db"), &env);
	api.pool = pool;
	api.sched = sched;
	api.key_material = env.key_material;
	srv = http_start(args_get(opts, "listen"), &limits, api_handle, &api, err, sizeof err);
	if (!srv) {
		fprintf(stderr, "error: %s\n", err);
		goto out;
	}
	log_info("tdgl-replica %s serving on port %u", TDGL_VERSION, http_port(srv));
	purge = retention_start(args_get(opts, "db"), retention_s, purge_s);
	main_close_interrupted(pool);   /* before any worker starts a run of its own */
	sched_reload(sched);
	while (!main_stop) {
		struct timespec ts = { MAIN_RELOAD_S, 0 };
		int sig = sigtimedwait(&sigs, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			log_info("signal %d: stopping", sig);
			break;
		}
		sched_reload(sched);   /* sources added or removed by the CLI */
		main_close_interrupted(pool);   /* e.g. a `tdgl-replica pull` that was killed */
	}
	rc = 0;
out:
	retention_stop(purge);
	if (sched)
		sched_quiesce(sched);
	if (srv)
		http_stop(srv);
	if (sched)
		sched_stop(sched);
	if (pool)
		db_pool_free(pool);
	if (c)
		PQfinish(c);
	if (rc == 0)
		log_info("stopped");
	return rc;
}

static int cmd_retry(int argc, char **argv, int arg __attribute__((unused)))
{
	return jobs_cli_retry(argc, argv);
}

static int cmd_verify(int argc, char **argv, int arg __attribute__((unused)))
{
	return verify_cli_run(argc, argv);
}

int main(int argc, char **argv)
{
	static const struct command cmds[] = {
		{ "migrate", cmd_migrate, 0 }, { "serve", cmd_serve, 0 },
		{ "source", cmd_source, 0 }, { "pull", cmd_pull, 0 }, { "verify", cmd_verify, 0 },
		{ "conflicts", cmd_conflicts, 0 }, { "retry", cmd_retry, 0 },
		{ "resolve", cmd_resolve, 0 }, { "log", cmd_table, TABLE_LOG },
		{ "runs", cmd_table, TABLE_RUNS }, { "status", cmd_table, TABLE_STATUS },
		{ "purge", cmd_purge, 0 }, { NULL, NULL, 0 }
	};
	const char *fmt = getenv("TDGL_LOG_FORMAT");

	log_init("tdgl-replica", fmt && !strcmp(fmt, "json"));
	httpc_global_init();
	return command_dispatch(argc, argv, "tdgl-replica", main_usage, cmds);
}
