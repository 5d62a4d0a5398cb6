/* fuzz_page: the replica splits every change page it pulls with page_parse (replica/page.c,
 * on common/json.c's scanner) and encodes it with page_arrays. They must never crash or
 * read past the body; every span handed on must itself be one valid JSON value; the string
 * decoder must never crash on any literal. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/json.h"
#include "replica/page.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_span(const struct page_span *s)
{
	if (s->p && json_scan_value(s->p, s->p + s->n, 1000) != s->p + s->n)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy without a terminator: reading past the end is caught by ASan */
	char *body = malloc(size ? size : 1), err[128];
	struct page pg;
	struct page_arrays a;
	struct buf b = { 0 };

	memcpy(body, data, size);
	json_string_decode(body, size, &b);
	buf_free(&b);
	if (page_parse(body, size, &pg, err, sizeof err) == 0) {
		for (int i = 0; i < pg.count; i++) {
			check_span(&pg.ch[i].id);
			check_span(&pg.ch[i].table);
			check_span(&pg.ch[i].pk);
			check_span(&pg.ch[i].row);
			check_span(&pg.ch[i].old_pk);
			check_span(&pg.ch[i].changed_at);
		}
		if (page_arrays(&pg, &a, err, sizeof err) == 0)
			page_arrays_free(&a);
		page_free(&pg);
	}
	free(body);
	return 0;
}
