/* report: what the replica tells about its work: the sync log, the runs and the status
 * counts. Every query of them is here, once; the admin API reads them as JSON text built by
 * the database (one value in row 0, column 0), the CLI as rows it prints tab-separated.
 * Filters are optional (NULL: all); values are bound, never spliced. Each returns the result
 * (caller PQclear's) or NULL on a database error (logged by db_exec). */
#ifndef TDGL_REPLICA_REPORT_H
#define TDGL_REPLICA_REPORT_H
#include <libpq-fe.h>

/* GET /api/log: entries newest first (limit: decimal text), as a JSON array in id order. */
PGresult *report_log_json(PGconn *c, const char *status, const char *source,
                          const char *run_id, const char *limit);
/* GET /api/runs: runs newest first, a JSON array. */
PGresult *report_runs_json(PGconn *c, const char *source, const char *limit);
/* GET /api/status's counts: open conflicts, failed changes, local edits (a JSON object). */
PGresult *report_counts_json(PGconn *c);
/* `tdgl-replica log`: the 200 newest entries. */
PGresult *report_log_rows(PGconn *c, const char *status, const char *source);
/* `tdgl-replica runs`: the 50 newest runs. */
PGresult *report_runs_rows(PGconn *c, const char *source);
/* `tdgl-replica status`: per source lag, cursor age, last run, conflicts, failures. */
PGresult *report_sources_rows(PGconn *c);
/* This site's identity (sql/site.sql) into out ("" on error); out holds 37 bytes. */
void report_site(PGconn *c, char *out, size_t outlen);

#endif
