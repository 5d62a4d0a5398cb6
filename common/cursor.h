/* cursor: the primary's opaque change-log position, following transaction visibility
 * (as PgQ does). A batch is the changes whose transaction is visible in snapshot s2 and not
 * in snapshot s1, served in change-id order; `last` is the last id served in the batch.
 *
 * Bounds that keep every page an index range scan (see docs/design.md, "Cursor"):
 *   l1  change-id sequence value read just BEFORE s1 was taken: every change of a
 *       transaction that was not running at s1 and not visible in s1 has id > l1;
 *   l2  the same for s2 (becomes l1 of the next batch);
 *   u2  sequence value read just AFTER s2 was taken: every change visible in s2 has id <= u2.
 * Transactions running at s1 (s1's xip list) are fetched by their txid.
 *
 * Between batches (open == 0) only s2/l2 matter: the next call opens batch (s2, now).
 * The token is base64url text "v1.<open>.<s1>.<l1>.<s2>.<l2>.<u2>.<last>", snapshots as
 * PostgreSQL prints them ("xmin:xmax:xip1,xip2"). */
#ifndef TDGL_CURSOR_H
#define TDGL_CURSOR_H
#include <stddef.h>
#include <stdint.h>

#define CURSOR_MAX_TOKEN 65536   /* longest token accepted (snapshots with many xips) */

struct cursor {
	int     open;     /* 1: inside batch (s1, s2]; 0: at snapshot s2, no batch open */
	char   *s1;       /* snapshot text, malloc'd; NULL when !open */
	int64_t l1;
	char   *s2;       /* snapshot text, malloc'd, never NULL after decode */
	int64_t l2;
	int64_t u2;
	int64_t last;     /* last id served inside the open batch (0 at batch start) */
};

/* The cursor of an empty log: at snapshot "1:1:" (nothing visible), l2 = 0. */
void cursor_init_start(struct cursor *c);
/* Returns a malloc'd token (caller frees). */
char *cursor_encode(const struct cursor *c);
/* Parses and validates a token into c (fields malloc'd; release with cursor_free).
 * Returns 0, or -1 with a reason in err. */
int cursor_decode(const char *token, struct cursor *c, char *err, size_t errlen);
/* Validates a snapshot text "xmin:xmax:xip,..." (xmin <= xip < xmax, ascending). 0 or -1. */
int cursor_snapshot_valid(const char *snap);
/* xmin and xmax of a valid snapshot text. */
uint64_t cursor_snapshot_xmin(const char *snap);
uint64_t cursor_snapshot_xmax(const char *snap);
void cursor_free(struct cursor *c);

#endif
