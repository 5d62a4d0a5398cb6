/* Unit tests for common/buf.c. */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "tests/unit/unit.h"

UNIT_TEST(buf_append_printf_steal)
{
	struct buf b = { 0 };
	char *s;

	s = buf_steal(&b);
	CHECK_STR(s, "");
	free(s);
	buf_puts(&b, "ab");
	buf_append(&b, "c\0d", 3);
	CHECK(b.len == 5);
	CHECK(memcmp(b.data, "abc\0d", 6) == 0);
	buf_reset(&b);
	CHECK(b.len == 0);
	CHECK_STR(b.data, "");
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%d,", i);
	CHECK(b.len == strlen(b.data));
	CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
	CHECK(strstr(b.data, ",999,") != NULL);
	s = buf_steal(&b);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
	free(s);
	buf_append(&b, "", 0);
	CHECK_STR(b.data, "");
	buf_free(&b);
	CHECK(b.data == NULL);
}

UNIT_TEST(buf_printf_large)
{
	struct buf b = { 0 };
	char big[10000];

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	buf_printf(&b, "<%s>", big);
	CHECK(b.len == sizeof big + 1);
	CHECK(b.data[0] == '<' && b.data[b.len - 1] == '>' && b.data[b.len] == '\0');
	buf_free(&b);
}
