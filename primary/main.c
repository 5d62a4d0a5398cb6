/* tdgl-primary: command-line dispatch. Each command parses its own options (common/args.h,
 * every option with an environment fallback shown in --help), connects, runs, and exits
 * 0 ok, 1 runtime error, 2 usage error. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/args.h"
#include "common/clock.h"
#include "common/command.h"
#include "common/db.h"
#include "common/http.h"
#include "common/httpc.h"
#include "common/log.h"
#include "primary/api.h"
#include "primary/auth.h"
#include "primary/capture.h"
#include "primary/changes.h"
#include "primary/metrics.h"
#include "primary/purge.h"
#include "primary/push.h"
#include "primary/watch.h"
#include "primary/admission.h"
#include "primary/flight.h"
#include "primary/heads.h"

#define SCHEMA_VERSION 5

extern const char sql_primary[];

static const char main_usage[] =
	"tdgl-primary [--log-level LEVEL] [--log-format FORMAT] <command> [options]\n\n"
	"Captures changes of tracked PostgreSQL tables and serves them over HTTP.\n\n"
	"commands:\n"
	"  migrate                      create or upgrade the tdgl schema (idempotent)\n"
	"  serve                        run the HTTP API, push notifier and purge\n"
	"  track TABLE                  capture changes of TABLE\n"
	"  untrack TABLE                stop capturing TABLE\n"
	"  tables                       list tracked tables\n"
	"  keygen --label L             create an API key (prints key and secret once)\n"
	"  keys                         list API keys (never secrets)\n"
	"  revoke KEY                   revoke an API key\n"
	"  push add URL --secret S      add a push target (POST URL/api/notify)\n"
	"  push list                    list push targets\n"
	"  push remove ID|URL           remove a push target\n"
	"  purge [--retention 7d]       delete old changes no active key still needs\n\n"
	"Run `tdgl-primary <command> --help` for a command's options. --version prints the version.\n\n"
	"logs: one line per event on stderr (--log-format, --log-level below)\n"
	"exit codes: 0 ok, 1 runtime error, 2 usage error";

static atomic_int main_stopping;

/* Connects to the database named by --db / TDGL_DB and, with `check`, checks it holds this
 * role's schema at SCHEMA_VERSION. On failure prints why, sets *rc (2: no --db, a usage
 * error; 1: runtime) and returns NULL. */
static PGconn *main_connect(const char *conninfo, int check, int *rc)
{
	char err[512];
	PGconn *c = NULL;

	*rc = 1;
	if (!conninfo || !*conninfo) {
		fprintf(stderr, "error: no database: give --db CONNINFO or set TDGL_DB\n");
		*rc = 2;
		goto out;
	}
	c = db_connect(conninfo, err, sizeof err);
	if (!c) {
		fprintf(stderr, "error: cannot connect to the database: %s\n", err);
		goto out;
	}
	if (db_schema_check(c, DB_ROLE_PRIMARY, SCHEMA_VERSION, !check, err, sizeof err) < 0) {
		fprintf(stderr, "error: %s\n", err);
		PQfinish(c);
		c = NULL;
	}
out:
	return c;
}

/* Parses a command's options; returns -1 to continue, else the exit code. */
static int main_parse(int argc, char **argv, struct arg_opt *opts, const char *usage,
                      const char **pos, int maxpos, int minpos, int *npos)
{
	int n = 0, r = args_parse(argc, argv, opts, usage, pos, maxpos, &n);

	if (r == 1)
		return 0;
	if (r != 0)
		return 2;
	if (n < minpos) {
		fprintf(stderr, "error: missing argument\n");
		args_usage(stderr, opts, usage);
		return 2;
	}
	if (npos)
		*npos = n;
	return -1;
}

#define DB_OPT { "db", "TDGL_DB", "CONNINFO", "libpq connection string of the primary database", NULL }
#define SECRET_KEY_OPT { "secret-key", "TDGL_SECRET_KEY", "KEY", \
	"key that seals push secrets at rest (AES-256-GCM)", NULL }

static int cmd_migrate(int argc, char **argv, int arg __attribute__((unused)))
{
	struct arg_opt opts[] = { DB_OPT, { 0 } };
	char err[512];
	PGconn *c = NULL;
	int rc = main_parse(argc, argv, opts, "tdgl-primary migrate [--db CONNINFO]", NULL, 0, 0,
	                    NULL);

	if (rc >= 0)
		return rc;
	c = main_connect(args_get(opts, "db"), 0, &rc);
	if (!c)
		goto out;
	rc = 1;
	if (db_migrate(c, db_role_schema(DB_ROLE_PRIMARY), SCHEMA_VERSION, sql_primary, err, sizeof err) < 0) {
		fprintf(stderr, "error: migrate: %s\n", err);
		goto out;
	}
	printf("tdgl schema at version %d\n", SCHEMA_VERSION);
	rc = 0;
out:
	if (c)
		PQfinish(c);
	return rc;
}

/* Commands that run one function on a migrated database. */
enum main_simple { M_TRACK, M_UNTRACK, M_TABLES, M_KEYGEN, M_KEYS, M_REVOKE, M_PURGE };

static int cmd_simple(int argc, char **argv, int which)
{
	struct arg_opt opts[] = {
		DB_OPT,
		{ "status-column", NULL, "COLUMN", "track: status column (default docstatus when present)", NULL },
		{ "attach-columns", NULL, "A,B", "track: columns holding attachment file URLs", NULL },
		{ "label", NULL, "LABEL", "keygen: a label for the key (e.g. the replica's name)", NULL },
		{ "retention", "TDGL_RETENTION", "DURATION", "purge: keep changes this long (30s, 5m, 2h, 7d)", PURGE_RETENTION_DEFAULT },
		{ 0 }
	};
	static const char *const usage[] = {
		"tdgl-primary track TABLE [--status-column C] [--attach-columns a,b] [--db CONNINFO]",
		"tdgl-primary untrack TABLE [--db CONNINFO]",
		"tdgl-primary tables [--db CONNINFO]",
		"tdgl-primary keygen --label LABEL [--db CONNINFO]",
		"tdgl-primary keys [--db CONNINFO]",
		"tdgl-primary revoke KEY [--db CONNINFO]",
		"tdgl-primary purge [--retention 7d] [--db CONNINFO]",
	};
	static const int npos_needed[] = { 1, 1, 0, 0, 0, 1, 0 };
	/* which commands each option of opts belongs to: --help shows a command's own only */
	static const unsigned opt_of[] = {
		~0u, 1u << M_TRACK, 1u << M_TRACK, 1u << M_KEYGEN, 1u << M_PURGE,
	};
	struct arg_opt mine[sizeof opts / sizeof *opts];
	const char *pos[1] = { NULL };
	PGconn *c = NULL;
	long retention = 0;
	size_t k = 0;
	int r, rc;

	for (size_t i = 0; i < sizeof opt_of / sizeof *opt_of; i++)
		if (opt_of[i] & (1u << which))
			mine[k++] = opts[i];
	mine[k] = (struct arg_opt){ 0 };
	rc = main_parse(argc, argv, mine, usage[which], pos, npos_needed[which],
	                npos_needed[which], NULL);
	if (rc >= 0)
		return rc;
	if (which == M_PURGE) {
		retention = args_duration(args_get(mine, "retention"));
		if (retention < 0) {
			fprintf(stderr, "error: --retention: expected a duration such as 7d, 12h, 30m\n");
			return 2;
		}
	}
	c = main_connect(args_get(mine, "db"), 1, &rc);
	if (!c)
		goto out;
	rc = 1;
	switch (which) {
	case M_TRACK:
		r = capture_track(c, pos[0], args_get(mine, "status-column"),
		                  args_get(mine, "attach-columns"));
		break;
	case M_UNTRACK:
		r = capture_untrack(c, pos[0]);
		break;
	case M_TABLES:
		r = capture_list(c, stdout);
		break;
	case M_KEYGEN:
		r = auth_keygen(c, args_get(mine, "label"), stdout);
		break;
	case M_KEYS:
		r = auth_list(c, stdout);
		break;
	case M_REVOKE:
		r = auth_revoke(c, pos[0]);
		if (r == 1)
			fprintf(stderr, "error: no API key %s\n", pos[0]);
		else if (r == 0)
			printf("revoked %s\n", pos[0]);
		break;
	default: {
		long long n = purge_run(c, retention);
		if (n >= 0)
			printf("purged %lld changes\n", n);
		r = n < 0 ? -1 : 0;
	}
	}
	rc = r == 0 ? 0 : 1;
out:
	if (c)
		PQfinish(c);
	return rc;
}

static int cmd_push(int argc, char **argv, int arg __attribute__((unused)))
{
	struct arg_opt opts[] = {
		DB_OPT,
		{ "secret", "TDGL_PUSH_SECRET", "SECRET", "push add: shared HMAC secret (the replica's push secret)", NULL },
		SECRET_KEY_OPT,
		{ 0 }
	};
	static const char usage[] =
		"tdgl-primary push add URL --secret S | push list | push remove ID|URL [--db CONNINFO]";
	const char *pos[2] = { NULL, NULL };
	PGconn *c = NULL;
	int n = 0, r = -1, rc = main_parse(argc, argv, opts, usage, pos, 2, 1, &n);

	if (rc >= 0)
		return rc;
	if (!((!strcmp(pos[0], "add") && n == 2) || (!strcmp(pos[0], "list") && n == 1) ||
	      (!strcmp(pos[0], "remove") && n == 2))) {
		fprintf(stderr, "error: unknown push command\n");
		args_usage(stderr, opts, usage);
		return 2;
	}
	if (!strcmp(pos[0], "add") && !args_get(opts, "secret")) {
		fprintf(stderr, "error: push add needs --secret (or TDGL_PUSH_SECRET)\n");
		return 2;
	}
	c = main_connect(args_get(opts, "db"), 1, &rc);
	if (!c)
		goto out;
	rc = 1;
	if (!strcmp(pos[0], "add"))
		r = push_add(c, pos[1], args_get(opts, "secret"), args_get(opts, "secret-key"));
	else if (!strcmp(pos[0], "list"))
		r = push_list(c, stdout);
	else
		r = push_remove(c, pos[1]);
	rc = r == 0 ? 0 : 1;
out:
	if (c)
		PQfinish(c);
	return rc;
}

/* With a key, seals the push secrets stored in plain text; without, says they are. */
static int main_seal_push_secrets(PGconn *c, const char *key_material)
{
	int n = key_material && *key_material ? push_seal_all(c, key_material) : push_plain_count(c);

	if (n < 0) {
		fprintf(stderr, "error: cannot read the push targets: %s\n", db_last_error());
		return -1;
	}
	if (n > 0 && key_material && *key_material)
		log_info("push: sealed %d secret(s) stored in plain text", n);
	else if (n > 0)
		log_warn("push: %d secret(s) stored in plain text: set TDGL_SECRET_KEY (or "
		         "--secret-key-file) to seal them at rest", n);
	return 0;
}

static int cmd_serve(int argc, char **argv, int arg __attribute__((unused)))
{
	struct arg_opt opts[] = {
		DB_OPT,
		{ "listen", "TDGL_LISTEN", "HOST:PORT", "address to serve HTTP on", "0.0.0.0:8080" },
		{ "files-dir", "TDGL_FILES_DIR", "DIR", "directory served by /api/files/ (unset: none)", NULL },
		{ "retention", "TDGL_RETENTION", "DURATION", "keep changes this long before purging", PURGE_RETENTION_DEFAULT },
		{ "purge-interval", "TDGL_PURGE_INTERVAL", "DURATION", "run the purge this often (0: never)", "5m" },
		{ "pool-size", "TDGL_POOL_SIZE", "N", "database connections for requests", "8" },
		{ "max-conns", "TDGL_MAX_CONNS", "N", "concurrent HTTP connections", "1024" },
		{ "max-conns-per-ip", "TDGL_MAX_CONNS_PER_IP", "N", "concurrent HTTP connections of one client address (default: a quarter of --max-conns)", NULL },
		{ "http-timeout", "TDGL_HTTP_TIMEOUT", "SECONDS", "time a client has to send a whole request; the idle timeout", "90" },
		{ "max-requests-per-key", "TDGL_MAX_REQUESTS_PER_KEY", "N", "change, row and copy requests one API key may have in flight", "32" },
		{ "max-waits-per-key", "TDGL_MAX_WAITS_PER_KEY", "N", "long-polls one API key may hold open", "16" },
		{ "max-page-queries", "TDGL_MAX_PAGE_QUERIES", "N", "change-page queries running at once (default: half of --pool-size, at least 1)", NULL },
		{ "page-queue", "TDGL_PAGE_QUEUE", "N", "change-page queries waiting for one of those; past it: 503 with Retry-After", "64" },
		{ "metrics-public", "TDGL_METRICS_PUBLIC", NULL, "serve /metrics without an API key", NULL },
		{ "admin-token", "TDGL_ADMIN_TOKEN", "TOKEN", "Bearer token of the web console and /api/admin/ (unset: both off), at least 16 characters", NULL },
		{ "page-window", "TDGL_PAGE_WINDOW", "IDS", "tuning: change ids one page query examines at most", "20000" },
		{ "watch-interval", "TDGL_WATCH_INTERVAL", "MS", "tuning: poll for new commits this often while long-polls wait or push targets exist", "5" },
		SECRET_KEY_OPT,
		{ 0 }
	};
	struct http_limits limits = { .max_body = 65536, .max_conns = 1024, .timeout_s = 90 };
	struct api api = {0};
	struct http_server *srv = NULL;
	struct db_pool *pool = NULL;
	struct watch *w = NULL;
	struct push *push = NULL;
	struct auth *auth = NULL;
	struct quota *quota = NULL;
	struct flight *flight = NULL;
	struct heads *heads = NULL;
	struct admission *admission = NULL;
	PGconn *c = NULL;
	sigset_t sigs;
	char err[512];
	const char *files, *key_material;
	long retention, interval, pool_size, max_conns, window, watch_ms, per_ip = 0, per_key_req,
	     per_key_wait, http_timeout, max_pq = 0, page_queue;
	struct timespec next_purge;
	int rc = main_parse(argc, argv, opts, "tdgl-primary serve [options]", NULL, 0, 0, NULL);

	if (rc >= 0)
		return rc;
	/* A page is a ~200 KB buffer built and freed per request on the server's threads: keep
	 * freed memory in the malloc arenas instead of handing it back to the kernel and
	 * faulting it in again on the next page (bench: 5.2 -> 2.1 ms CPU of this process per
	 * page of 500 changes). */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 16 << 20);
	retention = args_duration(args_get(opts, "retention"));
	interval = args_duration(args_get(opts, "purge-interval"));
	if (retention < 0 || interval < 0) {
		fprintf(stderr, "error: --retention/--purge-interval: expected a duration such as 7d, 5m\n");
		return 2;
	}
	if (args_int(args_get(opts, "pool-size"), 1, 200, &pool_size) < 0 ||
	    args_int(args_get(opts, "max-conns"), 1, 100000, &max_conns) < 0 ||
	    args_int(args_get(opts, "page-window"), 1, 100000000, &window) < 0 ||
	    args_int(args_get(opts, "watch-interval"), 1, 1000, &watch_ms) < 0 ||
	    (args_get(opts, "max-conns-per-ip") &&
	     args_int(args_get(opts, "max-conns-per-ip"), 1, 100000, &per_ip) < 0) ||
	    args_int(args_get(opts, "max-requests-per-key"), 1, 100000, &per_key_req) < 0 ||
	    args_int(args_get(opts, "max-waits-per-key"), 1, 100000, &per_key_wait) < 0 ||
	    (args_get(opts, "max-page-queries") &&
	     args_int(args_get(opts, "max-page-queries"), 1, 200, &max_pq) < 0) ||
	    args_int(args_get(opts, "page-queue"), 0, 100000, &page_queue) < 0) {
		fprintf(stderr, "error: --pool-size 1..200, --max-conns 1..100000, --page-window >= 1, "
		        "--watch-interval 1..1000, --max-conns-per-ip, --max-requests-per-key and "
		        "--max-waits-per-key >= 1, --max-page-queries 1..200, --page-queue >= 0\n");
		return 2;
	}
	/* half the pool by default: the rest answers authentication, snapshots and row pages
	 * while page queries queue, and the database's CPU stays mostly the application's */
	if (!max_pq)
		max_pq = pool_size / 2 > 0 ? pool_size / 2 : 1;
	limits.max_conns = (unsigned)max_conns;
	limits.max_conns_per_ip = (unsigned)per_ip;   /* 0: http.c's default */
	if (args_int(args_get(opts, "http-timeout"), 1, 86400, &http_timeout) < 0) {
		fprintf(stderr, "error: --http-timeout: 1..86400 seconds\n");
		return 2;
	}
	limits.timeout_s = (unsigned)http_timeout;
	api.admin_token = args_get(opts, "admin-token");
	if (api.admin_token && !*api.admin_token)
		api.admin_token = NULL;
	if (api.admin_token && strlen(api.admin_token) < 16) {
		fprintf(stderr, "error: --admin-token (TDGL_ADMIN_TOKEN) must be at least 16 characters\n");
		return 2;
	}
	changes_set_window(window);
	files = args_get(opts, "files-dir");
	if (files && *files) {
		struct stat st;
		if (stat(files, &st) < 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "error: --files-dir %s is not a directory\n", files);
			return 1;
		}
	}
	c = main_connect(args_get(opts, "db"), 1, &rc);
	if (!c)
		goto out;
	rc = 1;
	key_material = args_get(opts, "secret-key");
	if (main_seal_push_secrets(c, key_material) < 0)
		goto out;
	PQfinish(c);
	c = NULL;

	/* Signals are taken synchronously by this thread; every other thread blocks them. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	httpc_global_init();
	pool = db_pool_new(args_get(opts, "db"), (int)pool_size);
	db_pool_set_setup(pool, changes_session);
	auth = auth_new();
	{
		int caps[QUOTA_KINDS] = { [QUOTA_REQUEST] = (int)per_key_req,
		                          [QUOTA_WAIT] = (int)per_key_wait };
		quota = quota_new(caps);
	}
	w = watch_start(args_get(opts, "db"), (int)watch_ms);
	flight = flight_new(api_page_free);
	heads = heads_new();
	api.heads = heads;
	admission = admission_new((int)max_pq, (int)page_queue);
	metrics_set_page_queries(admission, flight);
	api.flight = flight;
	api.admission = admission;
	api.pool = pool;
	api.watch = w;
	api.auth = auth;
	api.quota = quota;
	api.files_dir = files && *files ? files : NULL;
	api.metrics_public = args_get(opts, "metrics-public") != NULL;
	api.stopping = &main_stopping;
	srv = http_start(args_get(opts, "listen"), &limits, api_handle, &api, err, sizeof err);
	if (!srv) {
		fprintf(stderr, "error: %s\n", err);
		goto out;
	}
	log_info("serving on %s (port %u), retention %lds, files %s", args_get(opts, "listen"),
	         http_port(srv), retention, api.files_dir ? api.files_dir : "(none)");
	{
		char host[256] = "localhost", inst[300];

		gethostname(host, sizeof host - 1);
		snprintf(inst, sizeof inst, "%s:%u", host, http_port(srv));
		metrics_set_instance(inst);
	}
	push = push_start(pool, w, key_material, args_get(opts, "db"));   /* after the listen succeeded: nothing starts for a refused serve */
	__atomic_store_n(&api.push, push, __ATOMIC_RELEASE);   /* delivery status for the console */
	clock_after(&next_purge, interval * 1000L);
	for (;;) {
		struct timespec one = { 1, 0 };
		int sig = sigtimedwait(&sigs, NULL, &one);

		if (sig == SIGTERM || sig == SIGINT) {
			log_info("received %s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
			break;
		}
		if (interval > 0 && clock_due(&next_purge)) {
			PGconn *pc = db_pool_get(pool, 1000);
			if (pc) {
				purge_run(pc, retention);
				db_pool_put(pool, pc);
			}
			clock_after(&next_purge, interval * 1000L);
		}
	}
	rc = 0;
out:
	main_stopping = 1;
	http_stop(srv);        /* waits for handlers; long-polls notice main_stopping within 1 s */
	push_stop(push);
	watch_stop(w);
	auth_free(auth);
	quota_free(quota);
	metrics_set_page_queries(NULL, NULL);
	flight_free(flight);
	heads_free(heads);
	admission_free(admission);
	db_pool_free(pool);
	if (c)
		PQfinish(c);
	if (rc == 0)
		log_info("stopped");
	return rc;
}

int main(int argc, char **argv)
{
	static const struct command cmds[] = {
		{ "migrate", cmd_migrate, 0 }, { "serve", cmd_serve, 0 },
		{ "track", cmd_simple, M_TRACK }, { "untrack", cmd_simple, M_UNTRACK },
		{ "tables", cmd_simple, M_TABLES }, { "keygen", cmd_simple, M_KEYGEN },
		{ "keys", cmd_simple, M_KEYS }, { "revoke", cmd_simple, M_REVOKE },
		{ "purge", cmd_simple, M_PURGE }, { "push", cmd_push, 0 }, { NULL, NULL, 0 }
	};
	return command_dispatch(argc, argv, "tdgl-primary", main_usage, cmds);
}
