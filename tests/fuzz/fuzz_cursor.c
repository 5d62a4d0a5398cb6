/* fuzz_cursor: cursor tokens come straight from clients (?cursor=). cursor_decode must refuse
 * anything malformed without crashing, and whatever it accepts must survive an
 * encode/decode round trip unchanged (the token is the replica's only position). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/cursor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *token = malloc(size + 1), err[128];
	struct cursor c, d;

	memcpy(token, data, size);
	token[size] = '\0';
	/* the raw bytes as a snapshot text too: it is parsed from tokens */
	if (cursor_snapshot_valid(token) == 0 &&
	    cursor_snapshot_xmin(token) > cursor_snapshot_xmax(token))
		abort();
	if (cursor_decode(token, &c, err, sizeof err) == 0) {
		char *again = cursor_encode(&c);
		if (cursor_decode(again, &d, err, sizeof err) != 0)
			abort();
		if (c.open != d.open || !fuzz_same(c.s1, d.s1) || !fuzz_same(c.s2, d.s2) ||
		    c.l1 != d.l1 || c.l2 != d.l2 || c.u2 != d.u2 || c.last != d.last)
			abort();
		/* canonical: the accepted token is exactly what encode makes of it */
		if (strcmp(again, token) != 0)
			abort();
		cursor_free(&d);
		free(again);
	}
	cursor_free(&c);
	free(token);
	return 0;
}
