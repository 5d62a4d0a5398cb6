/* rows: current rows of tracked tables for initial sync (/api/rows, in primary-key order,
 * keyset paged) and single-row reads (/api/row). Rows are row_to_json text, exactly as
 * capture prints them, or (format=copy) COPY text lines. Every identifier is quoted, every value bound. */
#ifndef TDGL_PRIMARY_ROWS_H
#define TDGL_PRIMARY_ROWS_H
#include <stddef.h>
#include <libpq-fe.h>
#include "common/buf.h"
#include "common/result.h"

#define ROWS_LIMIT_DEFAULT 500
#define ROWS_LIMIT_MAX 5000
#define ROWS_COPY_LIMIT_DEFAULT 10000
#define ROWS_COPY_LIMIT_MAX 50000
#define ROWS_COPY_MAX_BYTES (4u << 20)   /* a copy page ends after this much data */

/* Each returns RESULT_OK with the whole JSON body in out, or RESULT_INVALID (a bad request:
 * unknown table, bad key or filter), RESULT_NOT_FOUND (rows_get: no such row) or
 * RESULT_INTERNAL with a message for the client in err. after, filter and pk are untrusted
 * JSON texts (after/filter may be NULL). */
enum result rows_page(PGconn *c, const char *table, const char *after, const char *filter,
                      int limit, struct buf *out, char *err, size_t errlen);
/* rows_page for a two-way peer (docs/design.md "Two-way sync"): the body also holds
 * "versions", each row's version as this site holds it ({"origin","id","at"}, or null
 * for a row without history here), read in the same statement as the row, and "site", this
 * site's identity; so the peer's copy can log the rows as the versions they are. */
enum result rows_page_versions(PGconn *c, const char *table, const char *after,
                               const char *filter, int limit, struct buf *out, char *err,
                               size_t errlen);
/* The same page in PostgreSQL COPY text format (format=copy): a first line
 * {"columns":[...],"rows":n,"next":"<key as JSON text>"|null}, then one line per row holding the columns
 * listed, each the column type's output text (COPY's escapes, \N for NULL). columns: a JSON
 * array of names (untrusted; NULL = all); names the table lacks are left out. A page ends
 * after `limit` rows or ROWS_COPY_MAX_BYTES of data, whichever comes first. */
enum result rows_copy_page(PGconn *c, const char *table, const char *after,
                           const char *filter, const char *columns, int limit,
                           struct buf *out, char *err, size_t errlen);
enum result rows_get(PGconn *c, const char *table, const char *pk, struct buf *out,
                     char *err, size_t errlen);
#endif
