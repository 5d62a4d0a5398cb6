/* db: libpq helpers. Every connection is made with client_encoding UTF8 and TCP keepalives
 * (so a vanished database server is noticed), and a connect timeout the conninfo may
 * override. Errors are logged as "<what>: <message>" and remembered per thread. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/clock.h"
#include "common/db.h"
#include "common/log.h"

static _Thread_local char db_state[6];
static _Thread_local char db_msg[1024];

static const char Q_LOCK[] = "SELECT pg_advisory_xact_lock(hashtext($1))";
static const char Q_HAS_VERSION[] = "SELECT to_regclass($1) IS NOT NULL";
static const char Q_ROLES[] =
	"SELECT to_regclass('tdgl.change_log') IS NOT NULL,"
	" to_regclass('tdgl_replica.sources') IS NOT NULL";

/* Copies libpq's multi-line message s into out as one line; a line that ends without
 * punctuation gets a period ("Connection refused. Is the server running ...?"). */
static void db_copy_trim(char *out, size_t outlen, const char *s)
{
	size_t n = 0;

	for (s = s ? s : ""; *s && n + 2 < outlen; s++) {
		if (*s == '\n' || *s == '\r' || *s == '\t') {
			if (*s == '\n' && n && !strchr(".:;?! ", out[n - 1]))
				out[n++] = '.';
			if (n && out[n - 1] != ' ')
				out[n++] = ' ';
		} else {
			out[n++] = *s;
		}
	}
	while (n && out[n - 1] == ' ')
		n--;
	if (outlen)
		out[n] = '\0';
}

/* Server notices and warnings go to our log instead of libpq's raw stderr. */
static void db_notice(void *arg, const char *message)
{
	char line[1024];

	(void)arg;
	db_copy_trim(line, sizeof line, message);
	log_warn("database: %s", line);
}

PGconn *db_connect(const char *conninfo, char *err, size_t errlen)
{
	/* Entries before "dbname" may be overridden by the conninfo; entries after it win. */
	static const char *const keys[] = {
		"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "dbname", "client_encoding", NULL
	};
	const char *vals[] = { "10", "1", "30", "10", "3", conninfo ? conninfo : "", "UTF8", NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);

	if (!c) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		db_copy_trim(err, errlen, PQerrorMessage(c));
		PQfinish(c);
		c = NULL;
		goto out;
	}
	PQsetNoticeProcessor(c, db_notice, NULL);
out:
	return c;
}

/* Records the failure of res (may be NULL) on c; logs it unless what is NULL. */
static void db_fail(PGconn *c, const char *what, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;

	if (!state)
		state = PQstatus(c) == CONNECTION_BAD ? "08006" : "XX000";
	snprintf(db_state, sizeof db_state, "%s", state);
	if (primary && detail)
		snprintf(db_msg, sizeof db_msg, "%s (%s)", primary, detail);
	else if (primary)
		snprintf(db_msg, sizeof db_msg, "%s", primary);
	else if (res && *PQresultErrorMessage(res))
		db_copy_trim(db_msg, sizeof db_msg, PQresultErrorMessage(res));
	else if (res)
		snprintf(db_msg, sizeof db_msg, "unexpected result %s",
		         PQresStatus(PQresultStatus(res)));
	else
		db_copy_trim(db_msg, sizeof db_msg, PQerrorMessage(c));
	if (what)
		log_error("%s: %s", what, db_msg);
}

/* The status check shared by db_exec and db_exec_prepared. */
static PGresult *db_check(PGconn *c, const char *what, PGresult *res)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		db_fail(c, what, res);
		PQclear(res);
		res = NULL;
	}
	return res;
}

PGresult *db_exec(PGconn *c, const char *what, const char *sql, int nparams,
                  const char *const *params)
{
	return db_check(c, what ? what : "query",
	                PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0));
}

PGresult *db_try(PGconn *c, const char *sql, int nparams, const char *const *params)
{
	return db_check(c, NULL, PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0));
}

int db_prepare(PGconn *c, const char *what, const char *name, const char *sql, int nparams)
{
	PGresult *res = db_check(c, what, PQprepare(c, name, sql, nparams, NULL));

	PQclear(res);
	return res ? 0 : -1;
}

PGresult *db_exec_prepared(PGconn *c, const char *what, const char *name, int nparams,
                           const char *const *params)
{
	return db_check(c, what, PQexecPrepared(c, name, nparams, params, NULL, NULL, 0));
}

cJSON *db_json(PGconn *c, const char *what, const char *sql, int nparams,
               const char *const *params)
{
	PGresult *res = db_exec(c, what, sql, nparams, params);
	cJSON *j = NULL;

	if (res && PQntuples(res) >= 1 && !PQgetisnull(res, 0, 0))
		j = cJSON_Parse(PQgetvalue(res, 0, 0));
	PQclear(res);
	return j;
}

int db_run(PGconn *c, const char *what, const char *sql, int nparams, const char *const *params)
{
	PGresult *res = db_exec(c, what, sql, nparams, params);

	PQclear(res);
	return res ? 0 : -1;
}

int db_send(PGconn *c, const char *what, const char *sql, int nparams,
            const char *const *params, const int *lengths, const int *formats)
{
	if (PQsendQueryParams(c, sql, nparams, NULL, params, lengths, formats, 0))
		return 0;
	db_fail(c, what, NULL);
	return -1;
}

PGresult *db_wait(PGconn *c, const char *what)
{
	PGresult *res, *ok = NULL, *bad = NULL;

	/* every result must be read before the connection takes the next statement */
	while ((res = PQgetResult(c))) {
		ExecStatusType st = PQresultStatus(res);

		if ((st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) && !ok && !bad) {
			ok = res;
		} else if (!bad && st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			bad = res;
		} else {
			PQclear(res);
		}
	}
	if (bad || !ok) {
		db_fail(c, what, bad);
		PQclear(bad);
		PQclear(ok);
		ok = NULL;
	}
	return ok;
}

const char *db_last_sqlstate(void)
{
	return db_state;
}

const char *db_last_error(void)
{
	return db_msg;
}

/* ---- pool ---- */

/* Reads what an idle connection has pending, so a server that closed it (restart, admin
 * kill: a FATAL message, then EOF, two reads) is noticed here and not in the caller's first
 * query. Non-blocking. */
static int db_idle_alive(PGconn *c)
{
	for (int i = 0; i < 2; i++)
		if (!PQconsumeInput(c))
			return 0;
	return PQstatus(c) == CONNECTION_OK;
}

struct db_pool {
	pthread_mutex_t lock;
	pthread_cond_t  cond;
	char    *conninfo;
	int      size;
	int      open;     /* connections that exist: idle + handed out + being opened */
	int      nidle;
	PGconn **idle;
	db_setup_fn setup;   /* run on every connection the pool opens (may be NULL) */
};

struct db_pool *db_pool_new(const char *conninfo, int size)
{
	struct db_pool *p = calloc(1, sizeof *p);

	if (!p)
		abort();
	if (size < 1)
		size = 1;
	p->size = size;
	p->conninfo = strdup(conninfo ? conninfo : "");
	p->idle = calloc((size_t)size, sizeof *p->idle);
	if (!p->conninfo || !p->idle)
		abort();
	pthread_mutex_init(&p->lock, NULL);
	clock_cond_init(&p->cond);
	return p;
}

PGconn *db_pool_get(struct db_pool *p, int timeout_ms)
{
	struct timespec deadline;
	PGconn *c = NULL;
	char err[512];

	clock_after(&deadline, timeout_ms);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (p->nidle > 0) {
			c = p->idle[--p->nidle];
			if (db_idle_alive(c))
				break;
			PQfinish(c);  /* broke while idle: drop it and look again */
			c = NULL;
			p->open--;
			continue;
		}
		if (p->open < p->size) {
			db_setup_fn setup = p->setup;

			p->open++;
			pthread_mutex_unlock(&p->lock);
			c = db_connect(p->conninfo, err, sizeof err);
			if (c && setup && setup(c) < 0) {
				snprintf(err, sizeof err, "session setup: %.400s", db_last_error());
				PQfinish(c);
				c = NULL;
			}
			pthread_mutex_lock(&p->lock);
			if (!c) {
				p->open--;
				pthread_cond_signal(&p->cond);
				log_error("database connection: %s", err);
			}
			break;
		}
		if (clock_wait(&p->cond, &p->lock, &deadline) == ETIMEDOUT) {
			log_warn("database pool: no connection free within %d ms", timeout_ms);
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return c;
}

void db_pool_set_setup(struct db_pool *p, db_setup_fn setup)
{
	pthread_mutex_lock(&p->lock);
	p->setup = setup;
	pthread_mutex_unlock(&p->lock);
}

void db_pool_put(struct db_pool *p, PGconn *c)
{
	int keep;

	if (!c)
		return;
	keep = PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE &&
	       PQpipelineStatus(c) == PQ_PIPELINE_OFF;
	if (!keep)
		PQfinish(c);
	pthread_mutex_lock(&p->lock);
	if (keep)
		p->idle[p->nidle++] = c;
	else
		p->open--;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void db_pool_free(struct db_pool *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->nidle; i++)
		PQfinish(p->idle[i]);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->idle);
	free(p->conninfo);
	free(p);
}

/* ---- migrations ---- */

/* Reads max(version) of <schema>.schema_version into *v (0 when the table is absent). */
static int db_read_version(PGconn *c, const char *qschema, int *v, char *err, size_t errlen)
{
	char regname[512], sql[600];
	const char *params[1] = { regname };
	PGresult *res = NULL;
	int rc = -1;

	*v = 0;
	snprintf(regname, sizeof regname, "%s.schema_version", qschema);
	res = db_exec(c, "migrate: find version table", Q_HAS_VERSION, 1, params);
	if (!res)
		goto fail;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		rc = 0;
		goto out;
	}
	PQclear(res);
	snprintf(sql, sizeof sql, "SELECT coalesce(max(version), 0) FROM %s.schema_version", qschema);
	res = db_exec(c, "migrate: read version", sql, 0, NULL);
	if (!res)
		goto fail;
	*v = atoi(PQgetvalue(res, 0, 0));
	rc = 0;
	goto out;
fail:
	snprintf(err, errlen, "reading schema version: %s", db_msg);
out:
	PQclear(res);
	return rc;
}

/* Formats the error of a failed script result, with the script line it points at. */
static void db_script_error(const PGresult *res, const char *script, char *err, size_t errlen)
{
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	const char *where = PQresultErrorField(res, PG_DIAG_CONTEXT);
	long line = 1, p = pos ? atol(pos) : 0;
	char at[48] = "";

	for (long i = 0; i + 1 < p && script[i]; i++)
		line += script[i] == '\n';
	if (p)
		snprintf(at, sizeof at, " at line %ld", line);
	snprintf(err, errlen, "migration script failed%s: %s%s%s", at,
	         msg ? msg : PQresultErrorMessage(res), where ? " | " : "", where ? where : "");
}

int db_migrate(PGconn *c, const char *schema, int version, const char *script,
               char *err, size_t errlen)
{
	const char *params[1] = { schema };
	char *qschema = NULL;
	PGresult *res = NULL;
	int rc = -1, in_tx = 0, have = 0;

	err[0] = '\0';
	if (db_run(c, "migrate: settings", "SET client_min_messages = warning", 0, NULL) < 0 ||
	    db_run(c, "migrate: begin", "BEGIN", 0, NULL) < 0)
		goto dberr;
	in_tx = 1;
	if (db_run(c, "migrate: lock", Q_LOCK, 1, params) < 0)
		goto dberr;
	qschema = PQescapeIdentifier(c, schema, strlen(schema));
	if (!qschema) {
		snprintf(err, errlen, "bad schema name: %s", PQerrorMessage(c));
		goto out;
	}
	if (db_read_version(c, qschema, &have, err, errlen) < 0)
		goto out;
	if (have > version) {
		snprintf(err, errlen, "database schema version %d is newer than this binary "
		         "supports (%d); upgrade tdgl", have, version);
		goto out;
	}
	if (have < version) {
		res = PQexec(c, script);
		if (!res || (PQresultStatus(res) != PGRES_COMMAND_OK &&
		             PQresultStatus(res) != PGRES_TUPLES_OK)) {
			if (res)
				db_script_error(res, script, err, errlen);
			else
				db_copy_trim(err, errlen, PQerrorMessage(c));
			goto out;
		}
		if (db_read_version(c, qschema, &have, err, errlen) < 0)
			goto out;
		if (have != version) {
			snprintf(err, errlen, "migration script recorded version %d, expected %d",
			         have, version);
			goto out;
		}
		log_info("migrated schema %s to version %d", schema, version);
	}
	if (db_run(c, "migrate: commit", "COMMIT", 0, NULL) < 0)
		goto dberr;
	in_tx = 0;
	rc = 0;
	goto out;
dberr:
	snprintf(err, errlen, "%s", db_msg);
out:
	if (in_tx) {
		PGresult *rb = PQexec(c, "ROLLBACK");
		PQclear(rb);
	}
	PQclear(res);
	PQfreemem(qschema);
	return rc;
}

const char *db_role_schema(enum db_role role)
{
	return role == DB_ROLE_PRIMARY ? "tdgl" : "tdgl_replica";
}

int db_schema_check(PGconn *c, enum db_role role, int version, int for_migrate,
                    char *err, size_t errlen)
{
	static const char *const prog[] = { "tdgl-primary", "tdgl-replica" };
	const char *me = prog[role], *other = prog[!role], *schema = db_role_schema(role);
	PGresult *res = db_exec(c, "schema roles", Q_ROLES, 0, NULL);
	int mine, theirs, v = 0, rc = -1;

	if (!res) {
		snprintf(err, errlen, "cannot read the schema version: %s", db_last_error());
		goto out;
	}
	mine = !strcmp(PQgetvalue(res, 0, role == DB_ROLE_PRIMARY ? 0 : 1), "t");
	theirs = !strcmp(PQgetvalue(res, 0, role == DB_ROLE_PRIMARY ? 1 : 0), "t");
	if (for_migrate) {
		rc = 0;
		goto out;
	}
	if (theirs && !mine) {
		/* most likely --db names the other site's database; a site that runs both roles
		 * (two-way sync) migrates this role there too */
		snprintf(err, errlen, "this database holds the %s schema, not %s's: --db must name "
		         "the %s site's database, or run `%s migrate` if this site runs both",
		         other, me, role == DB_ROLE_PRIMARY ? "primary" : "replica", me);
		goto out;
	}
	if (!mine) {
		snprintf(err, errlen, "the database has no tdgl schema: run `%s migrate`", me);
		goto out;
	}
	if (db_read_version(c, schema, &v, err, errlen) < 0)
		goto out;
	if (v > version)
		snprintf(err, errlen, "the %s schema version %d is newer than this %s supports "
		         "(%d): upgrade %s", schema, v, me, version, me);
	else if (v < version)
		snprintf(err, errlen, "the %s schema version %d is old: run `%s migrate`", schema, v,
		         me);
	else
		rc = 0;
out:
	PQclear(res);
	return rc;
}
