/* heads: the cursors recent pages ended at, at the head of the log, with the watch
 * generation their page query started at. A long-poll coming back with such a cursor while
 * the generation has not moved has nothing to read yet: everything visible when that page was
 * read was on it, and anything visible since moved the generation (watch.h). It waits without
 * asking, and a wake of many replicas costs one query, not one per replica coming back.
 * Recorded only for a page that opened its batch itself (its query took the snapshot the
 * cursor holds, after reading the generation) and finished it (closed cursor, more = false).
 * Bounded (the last HEADS_MAX), thread-safe. */
#ifndef TDGL_PRIMARY_HEADS_H
#define TDGL_PRIMARY_HEADS_H
#include <stdint.h>

#define HEADS_MAX 64

struct heads;

struct heads *heads_new(void);
void heads_free(struct heads *h);      /* NULL is fine */
/* Records that a page read at generation gen ended at cursor token (copied). */
void heads_note(struct heads *h, const char *token, uint64_t gen);
/* 1 when token is a recorded head whose generation is gen (nothing new since), else 0. */
int heads_current(struct heads *h, const char *token, uint64_t gen);
#endif
