/* buf: a growable NUL-terminated byte buffer. Allocation failure aborts (out of memory
 * is not a runtime error we can survive meaningfully). */
#ifndef TDGL_BUF_H
#define TDGL_BUF_H
#include <stddef.h>

struct buf {
	char  *data;   /* always NUL-terminated once anything was appended; NULL when empty */
	size_t len;
	size_t cap;
};

void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);          /* len = 0, keeps memory */
void buf_free(struct buf *b);           /* frees memory, zeroes b */
/* Returns the data (caller owns, free()) and leaves b empty; never NULL ("" when empty). */
char *buf_steal(struct buf *b);

#endif
