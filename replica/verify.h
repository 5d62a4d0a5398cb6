/* verify: proves that a source's tables on this replica equal the primary's, and repairs
 * them when they do not (`tdgl-replica verify`, POST /api/sources/<name>/verify).
 *
 * Per table: both sites hash their rows into buckets by the key's hash (primary: GET
 * /api/hashes, SQL tdgl_replica.verify_* in sql/primary.sql; here tdgl_replica.verify_local_* in
 * sql/replica.sql), only the buckets that differ are split further and finally listed row
 * by row, so what travels grows with the number of differences, not with the table. The
 * primary counts only rows passing the source's filter, both sites only the columns both
 * have. Rows that differ are then read on both sites (here together with the source's
 * cursor, in one statement) and sorted: missing, extra, different (which columns),
 * kept_local (edited here or in an open conflict: never touched), in_flight (the primary
 * holds a change of the row that the cursor has not reached). In-flight rows are read again
 * after `catch_up` (a pull) up to VERIFY_SETTLE_ROUNDS times; those still in flight are
 * listed as such, not as differences.
 *
 * A repair applies the primary's rows of the missing and different keys and deletes the
 * extra ones through tdgl_replica.apply_safely (the pull's apply path) in a run with trigger
 * 'Repair' (each row in tdgl_replica.sync_log), then verifies the table again. Each table's result
 * is kept in tdgl_replica.verifications. */
#ifndef TDGL_REPLICA_VERIFY_H
#define TDGL_REPLICA_VERIFY_H
#include <stddef.h>
#include <libpq-fe.h>
#include <cjson/cJSON.h>
#include "common/result.h"

#define VERIFY_SETTLE_ROUNDS 5
#define VERIFY_LIST_MAX 1000     /* keys listed per kind and table; counts cover all */

/* Brings the source's cursor forward (a pull) so that changes in flight arrive. 0 or -1. */
typedef int (*verify_catch_up_fn)(void *ctx, PGconn *c, const char *source);

struct verify_opts {
	const char *const *tables;   /* tables to verify; NULL/0: every table of the source */
	int ntables;
	int repair;
	const char *key_material;    /* TDGL_SECRET_KEY: opens the source's API secret */
	verify_catch_up_fn catch_up; /* may be NULL: in-flight rows are read again without */
	void *catch_up_ctx;
};

/* Verifies (and with opts->repair repairs) source `name`. Returns 200 with *report =
 * {"source","identical":bool,"tables":[{"table","status":"identical"|"different"|"failed",
 * "missing":[key],"extra":[key],"different":[{"key","columns"}],"kept_local":[key],
 * "in_flight":[key],"counts":{...},"repair":{...}?,"requests","bytes","error"?}]} (caller
 * deletes); RESULT_NOT_FOUND unknown source, RESULT_INVALID a table the source does not
 * sync, else RESULT_INTERNAL (err). */
enum result verify_run(PGconn *c, const char *name, const struct verify_opts *opts,
                       cJSON **report, char *err, size_t errlen);

/* The last verification of each table (of one source when name is not NULL), as
 * GET /api/verifications shows it; NULL on a database error. Caller deletes. */
cJSON *verify_last(PGconn *c, const char *name);

#endif
