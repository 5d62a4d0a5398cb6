/* tdgl-replica: command-line entry point (migrate, serve, conflicts, resolve, retry, log,
 * runs, status, purge; the source and pull commands are source_cli.h, verify verify_cli.h). */
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
#include "replica/source_cli.h"
#include "replica/pull.h"
#include "replica/report.h"
#include "replica/retention.h"
#include "replica/retry.h"
#include "replica/run.h"
#include "replica/scheduler.h"
#include "replica/source.h"
#include "replica/verify_cli.h"

extern const char sql_replica[];

#define MAIN_RELOAD_S 2
#define MAIN_DURATION_MAX (36500L * 86400)

static const char main_usage[] =
	"tdgl-replica [--log-level LEVEL] [--log-format FORMAT] <command> [options]\n"
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
	"logs: one line per event on stderr (--log-format, --log-level below)\n"
	"exit codes: 0 ok, 1 runtime error, 2 usage error, 3 verify found differences";


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
		res = report_log_rows(c, args_get(opts, "status"), args_get(opts, "source"));
		if (res)
			main_print_rows(res, "id\trun\tsource\tchange\ttable\top\tstatus\treason\tpk");
	} else if (which == TABLE_RUNS) {
		res = report_runs_rows(c, args_get(opts, "source"));
		if (res)
			main_print_rows(res, "id\tsource\ttrigger\tstatus\tfetched\tsynced\tfailed\t"
			                "skipped\tconflicts\tresolved\tstarted\tms\terror");
	} else {
		char site[40];

		res = report_sources_rows(c);
		if (res)
			main_print_rows(res, "source\tenabled\tsynced_once\tlag_s\tcursor_age_s\t"
			                "last_status\tlast_run\topen_conflicts\tfailed_changes");
		report_site(c, site, sizeof site);
		if (res && site[0])
			printf("site: %s\n", site);   /* this database's identity (two-way origins) */
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
		{ "http-timeout", "TDGL_HTTP_TIMEOUT", "SECONDS", "time a client has to send a whole request; the idle timeout", "30" },
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
	long retention_s, purge_s, max_conns, per_ip = 0, http_timeout;
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
	if (args_int(args_get(opts, "http-timeout"), 1, 86400, &http_timeout) < 0) {
		fprintf(stderr, "error: --http-timeout: 1..86400 seconds\n");
		return 2;
	}
	limits.timeout_s = (unsigned)http_timeout;
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
	for (;;) {
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
	struct arg_opt opts[] = {
		OPT_DB,
		{ "all-failed", NULL, NULL, "retry every Failed change now", NULL },
		{ "source", NULL, "NAME", "with --all-failed: only this source", NULL },
		OPT_END
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
		main_print_json(out);
	if (rc)
		fprintf(stderr, "error: %s\n", err);
	cJSON_Delete(out);
	PQfinish(c);
	return rc;
}

static int cmd_verify(int argc, char **argv, int arg __attribute__((unused)))
{
	return verify_cli_run(argc, argv);
}

int main(int argc, char **argv)
{
	static const struct command cmds[] = {
		{ "migrate", cmd_migrate, 0 }, { "serve", cmd_serve, 0 },
		{ "source", source_cli_run, 0 }, { "pull", source_cli_pull, 0 }, { "verify", cmd_verify, 0 },
		{ "conflicts", cmd_conflicts, 0 }, { "retry", cmd_retry, 0 },
		{ "resolve", cmd_resolve, 0 }, { "log", cmd_table, TABLE_LOG },
		{ "runs", cmd_table, TABLE_RUNS }, { "status", cmd_table, TABLE_STATUS },
		{ "purge", cmd_purge, 0 }, { NULL, NULL, 0 }
	};
	httpc_global_init();
	return command_dispatch(argc, argv, "tdgl-replica", main_usage, cmds);
}
