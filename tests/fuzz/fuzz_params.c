/* fuzz_params: the primary's HTTP parameter parsing, fed raw (libmicrohttpd has already
 * percent-decoded them): durations and integers (limit, wait, CLI options), the `tables` list
 * turned into a PostgreSQL text[] literal, the Authorization header, and the pk/after key
 * check of /api/rows. The static parsers are reached by including their modules. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/args.h"

#include "primary/auth.c"
#include "primary/capture.c"
#include "primary/rows.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads back a text[] literal as PostgreSQL's array_in does for quoted elements; returns the
 * elements joined by '\n' (element text never contains '\n' in these checks), or NULL. */
static char *fuzz_unarray(const char *lit)
{
	struct buf out = {0};
	const char *p = lit;
	int first = 1;

	if (*p++ != '{')
		goto bad;
	while (*p != '}') {
		if (!first && *p++ != ',')
			goto bad;
		if (*p++ != '"')
			goto bad;
		if (!first)
			buf_puts(&out, "\n");
		while (*p != '"') {
			if (!*p)
				goto bad;
			if (*p == '\\') {
				p++;
				if (!*p)
					goto bad;
			}
			buf_append(&out, p, 1);
			p++;
		}
		p++;
		first = 0;
	}
	if (p[1])
		goto bad;
	return buf_steal(&out);
bad:
	buf_free(&out);
	return NULL;
}

static void fuzz_tables(const char *csv)
{
	struct buf want = {0};
	char *lit, *back;
	int first = 1;

	if (strchr(csv, '\n'))
		return;
	for (const char *p = csv; *p;) {
		size_t n = strcspn(p, ",");
		if (n) {
			if (!first)
				buf_puts(&want, "\n");
			buf_append(&want, p, n);
			first = 0;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	lit = capture_array_literal(csv);
	back = fuzz_unarray(lit);
	/* every name arrives as exactly one element, byte for byte: no quote breaks out */
	if (!back || strcmp(back, want.data ? want.data : ""))
		abort();
	free(back);
	free(lit);
	buf_free(&want);
}

static void fuzz_auth(const char *header)
{
	char key[AUTH_KEY_MAX];
	const char *secret = NULL;

	memset(key, 'X', sizeof key);
	if (auth_parse(header, key, &secret) == 0) {
		size_t kl = strnlen(key, sizeof key);
		if (kl == 0 || kl >= AUTH_KEY_MAX || strspn(key, "0123456789abcdef") != kl)
			abort();
		if (!secret || !*secret || strlen(secret) > AUTH_SECRET_MAX)
			abort();
	}
}

static void fuzz_pk(const char *text)
{
	struct rows_table t = {0};
	char err[512];
	static char c_id[] = "id", c_doc[] = "doc", c_line[] = "line";

	t.npk = 1;
	t.pk[0] = c_id;
	(void)rows_check_pk(&t, "pk", text, err, sizeof err);
	t.npk = 2;
	t.pk[0] = c_doc;
	t.pk[1] = c_line;
	(void)rows_check_pk(&t, "after", text, err, sizeof err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	long v = 0;

	memcpy(s, data, size);
	s[size] = '\0';
	{
		long d = args_duration(s);
		if (d < -1)
			abort();
	}
	if (args_int(s, 1, 500, &v) == 0 && (v < 1 || v > 500))
		abort();
	/* accepted integers are exactly what they spell (leading zeros allowed) */
	if (args_int(s, LONG_MIN, LONG_MAX, &v) == 0) {
		char back[32];
		const char *digits = s + (*s == '-');
		snprintf(back, sizeof back, "%ld", v < 0 ? -(v + 1) : v);
		while (*digits == '0' && digits[1])
			digits++;
		if (v >= 0 && strcmp(back, digits) != 0)
			abort();
	}
	fuzz_tables(s);
	fuzz_auth(s);
	fuzz_pk(s);
	free(s);
	return 0;
}
