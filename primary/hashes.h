/* hashes: GET /api/hashes, what a replica's `verify` compares (replica/verify.c). The SQL is
 * tdgl.verify_buckets / verify_keys / verify_rows in sql/primary.sql; this module checks the
 * request and binds every value (table, columns, filter, buckets, keys, cursor snapshots) as
 * a parameter. Requests (all take table, columns = JSON array of names, filter = JSON object):
 *   mode=columns                                            the shared columns and the key
 *   mode=buckets&bits=G[&prefix_bits=P&prefixes=b1,b2,...]  per-bucket row count and hash
 *   mode=keys&prefix_bits=P&prefixes=b1,...                 key and row hash of each row
 *   mode=rows&keys=[{key},...][&cursor=TOKEN]               the rows of those keys, and whether
 *                                                           a change of each is past the cursor
 * Answers are built by PostgreSQL; see docs/api.md. */
#ifndef TDGL_PRIMARY_HASHES_H
#define TDGL_PRIMARY_HASHES_H
#include <stddef.h>
#include <libpq-fe.h>
#include "common/buf.h"

#define HASHES_PARAM_MAX 65536   /* longest prefixes/keys value */
#define HASHES_MAX_PREFIXES 8192
#define HASHES_MAX_KEYS 1000

struct hashes_req {
	const char *table, *columns, *filter, *mode;
	const char *bits, *prefix_bits, *prefixes, *keys, *cursor;   /* NULL when absent */
};

/* 200 with the JSON body appended to out, or 4xx/5xx with a message for the client in err. */
unsigned hashes_answer(PGconn *c, const struct hashes_req *r, struct buf *out, char *err,
                       size_t errlen);

#endif
