/* changes: the cursor queries over tdgl.change_log (see common/cursor.h and docs/design.md
 * "Cursor"). A page holds the changes of one visibility batch in id order; the returned
 * cursor continues exactly after it. */
#ifndef TDGL_PRIMARY_CHANGES_H
#define TDGL_PRIMARY_CHANGES_H
#include <stdint.h>
#include <libpq-fe.h>
#include "common/buf.h"
#include "common/cursor.h"

enum changes_status { CHANGES_OK = 0, CHANGES_GONE = 1, CHANGES_ERROR = -1 };

struct changes_page {
	struct buf    items;    /* the change objects, comma-separated JSON (caller buf_free()s) */
	int           count;
	struct cursor next;     /* caller cursor_free()s */
	int           more;     /* 1 when more changes may be fetched right away */
	uint64_t      horizon;  /* oldest transaction id the next cursor still needs */
	char          site[40]; /* this site's identity (asked by a two-way peer; else "") */
};

/* Prepares the statements below on a connection (a db_setup_fn for the serving pool): every
 * connection passed to changes_fetch/changes_snapshot must have been set up so. 0 or -1
 * (logged). */
int changes_session(PGconn *c);

/* Fetches up to limit changes after cur. tables is a PostgreSQL text[] literal of API table
 * names, or NULL for all. peer (a site identity, NULL for a one-way replica): the asking
 * site syncs both ways with this one; what it made or sent here is left out and each change
 * carries its version and its base (docs/design.md "Two-way sync"). Returns CHANGES_OK (page filled), CHANGES_GONE (the cursor is older
 * than the purge horizon or from a database that went back in time; reason in err), or
 * CHANGES_ERROR (database error, logged). */
int changes_fetch(PGconn *c, const struct cursor *cur, const char *tables, const char *peer,
                  int limit, struct changes_page *page, char *err, size_t errlen);
void changes_page_free(struct changes_page *page);

/* Ids one page query examines at most (tuning; see changes.c). Not thread-safe: call at
 * start-up. */
#define CHANGES_WINDOW_DEFAULT 20000
void changes_set_window(long ids);

/* A closed cursor at the current snapshot: a starting point taken before rows are copied.
 * Returns 0 or -1 (logged). */
int changes_snapshot(PGconn *c, struct cursor *out);

/* Current change-log head: the last allocated change id (0 when none). -1 on error. */
int64_t changes_head(PGconn *c);

#endif
