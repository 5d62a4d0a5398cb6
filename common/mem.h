/* mem: the one rule for running out of memory. An allocation that fails ends the process
 * (after a log line naming what was being allocated), as buf.c always did: tdgl's
 * allocations are small and bounded, a process that cannot make them cannot keep its
 * promises (a cursor stored with its page, a pull summarised), and a NULL checked in one
 * file and forgotten in the next is a crash somewhere else later. So callers never test
 * these for NULL, and domain functions never return RESULT_NO_MEMORY for them. */
#ifndef TDGL_MEM_H
#define TDGL_MEM_H
#include <stddef.h>

/* calloc(1, n), or the end of the process. */
void *mem_alloc(size_t n, const char *what);
/* strdup(s) (NULL stays NULL), or the end of the process. */
char *mem_strdup(const char *s, const char *what);
/* Ends the process when p is NULL (for allocations made by libraries: cJSON, libpq). */
void mem_check(const void *p, const char *what);

#endif
