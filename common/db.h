/* db: libpq helpers: connect, parameterised queries with logged errors, a blocking
 * connection pool, and versioned migrations. Values are always bound, never pasted. */
#ifndef TDGL_DB_H
#define TDGL_DB_H
#include <stddef.h>
#include <libpq-fe.h>
#include <cjson/cJSON.h>

/* Connects (client_encoding UTF8, TCP keepalives, connect_timeout 10 s unless conninfo sets
 * it; server notices go to the log). On failure returns NULL and libpq's message in err. */
PGconn *db_connect(const char *conninfo, char *err, size_t errlen);

/* Runs one SQL statement with text parameters. Returns the result when it succeeded (PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK; caller PQclear()s), else logs "<what>: <error>" and returns NULL.
 * what names the operation for the log (may be NULL). */
PGresult *db_exec(PGconn *c, const char *what, const char *sql, int nparams,
                  const char *const *params);
/* db_exec for statements whose errors may be answers the caller reports itself (a refused
 * request): a failure is recorded (db_last_sqlstate, db_last_error) but not logged. */
PGresult *db_try(PGconn *c, const char *sql, int nparams, const char *const *params);
/* A statement that builds one JSON value (row 0, column 0), parsed (caller deletes). NULL
 * when it failed (logged), returned no row, or the value is NULL. */
cJSON *db_json(PGconn *c, const char *what, const char *sql, int nparams,
               const char *const *params);
/* Same, for statements whose result is not needed: 0 or -1. */
int db_run(PGconn *c, const char *what, const char *sql, int nparams, const char *const *params);
/* The same in two halves, so the caller can work while the database does: db_send queues the
 * statement (0, or -1 logged); db_wait reads all of its results and returns what db_exec
 * would have. Nothing else may use c in between. lengths/formats as PQexecParams's (NULL:
 * all text); parameters are copied before db_send returns. */
int db_send(PGconn *c, const char *what, const char *sql, int nparams,
            const char *const *params, const int *lengths, const int *formats);
PGresult *db_wait(PGconn *c, const char *what);
/* Prepares a named statement on c (session setup: a statement run very often skips its
 * parse and analysis); 0 or -1 (logged). */
int db_prepare(PGconn *c, const char *what, const char *name, const char *sql, int nparams);
/* db_exec of a statement prepared on c with db_prepare. */
PGresult *db_exec_prepared(PGconn *c, const char *what, const char *name, int nparams,
                           const char *const *params);
/* SQLSTATE of the last failed db_exec on this thread ("" if none) and its message. */
const char *db_last_sqlstate(void);
const char *db_last_error(void);

/* Pool: at most `size` connections, opened lazily, re-opened when broken. */
struct db_pool *db_pool_new(const char *conninfo, int size);
/* Waits up to timeout_ms for a connection; NULL on timeout or when the database is down. */
PGconn *db_pool_get(struct db_pool *p, int timeout_ms);
/* Session setup run on every connection the pool opens, before it is handed out (session
 * settings, prepared statements): 0 ok; on -1 (logged) the connection is closed and the
 * caller of db_pool_get gets NULL. Call before the first db_pool_get. */
typedef int (*db_setup_fn)(PGconn *c);
void db_pool_set_setup(struct db_pool *p, db_setup_fn setup);
/* Returns a connection; a broken one (or one left inside a transaction or in pipeline mode)
 * is dropped. */
void db_pool_put(struct db_pool *p, PGconn *c);
void db_pool_free(struct db_pool *p);    /* every connection must have been put back */

/* Applies a migration script under an advisory lock, in one transaction (so the script must
 * not COMMIT, nor use CREATE INDEX CONCURRENTLY), when <schema>.schema_version holds less
 * than `version`. The script must be idempotent and itself record its version in
 * <schema>.schema_version (column `version int`); -1 if it does not. Refuses (returns -1, message in err) when the database holds a
 * newer version than `version`. Returns 0 when applied or already current. */
int db_migrate(PGconn *c, const char *schema, int version, const char *script,
               char *err, size_t errlen);

/* The two tdgl roles. Each keeps its state in its own schema (tdgl, tdgl_replica), so one
 * database can hold both (a site of a two-way sync) and each migrates on its own. */
enum db_role { DB_ROLE_PRIMARY, DB_ROLE_REPLICA };
/* "tdgl" or "tdgl_replica"; static storage. */
const char *db_role_schema(enum db_role role);

/* Checks that the database holds `role`'s schema at `version`; with for_migrate only that
 * the database can be reached. 0 ok; -1 with err saying what is
 * wrong and what to do ("run `tdgl-primary migrate`", "--db names a replica's database"). */
int db_schema_check(PGconn *c, enum db_role role, int version, int for_migrate,
                    char *err, size_t errlen);

#endif
