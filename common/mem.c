/* mem: see mem.h. */
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "common/mem.h"

void mem_check(const void *p, const char *what)
{
	if (!p) {
		log_error("out of memory (%s)", what);
		abort();
	}
}

void *mem_alloc(size_t n, const char *what)
{
	void *p = calloc(1, n ? n : 1);

	mem_check(p, what);
	return p;
}

char *mem_strdup(const char *s, const char *what)
{
	char *p = NULL;

	if (s) {
		p = strdup(s);
		mem_check(p, what);
	}
	return p;
}
