/* cursor: encoding, decoding and validation of the primary's change-log position.
 * Pure code (no database): the queries that use it live in primary/changes.c. A token comes
 * from untrusted clients, so decoding validates every field and every relation between them;
 * anything odd is refused (the caller answers 400). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/cursor.h"

#define CURSOR_FIELDS 8

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding: tokens travel in query strings. */
static char *cursor_b64_encode(const unsigned char *in, size_t len)
{
	char *out = malloc(len / 3 * 4 + 5);
	size_t o = 0, i = 0;

	if (!out)
		abort();
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
		out[o++] = b64url[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
	}
	out[o] = '\0';
	return out;
}

static int cursor_b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

/* Strict decoding: only the alphabet, no padding, no leftover bits. Returns malloc'd
 * NUL-terminated bytes or NULL. */
static char *cursor_b64_decode(const char *in, size_t len)
{
	char *out = NULL;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (len % 4 == 1)
		goto fail;
	out = malloc(len / 4 * 3 + 4);
	if (!out)
		abort();
	for (size_t i = 0; i < len; i++) {
		int v = cursor_b64_value(in[i]);
		if (v < 0)
			goto fail;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)(acc >> bits & 0xff);
		}
	}
	if (acc & ((1u << bits) - 1))   /* non-canonical: stray low bits */
		goto fail;
	out[o] = '\0';
	if (strlen(out) != o)           /* embedded NUL */
		goto fail;
	return out;
fail:
	free(out);
	return NULL;
}

/* Parses a decimal uint64 of s[0..len) (no sign, no leading zeros except "0"). */
static int cursor_parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int cursor_parse_i64(const char *s, size_t len, int64_t *out)
{
	uint64_t v;

	if (cursor_parse_u64(s, len, &v) < 0 || v > INT64_MAX)
		return -1;
	*out = (int64_t)v;
	return 0;
}

/* Splits a snapshot text into xmin, xmax and validates the xip list. Transaction ids are
 * kept below 2^63 so they also fit PostgreSQL's bigint. */
static int cursor_snapshot_parse(const char *snap, uint64_t *xmin, uint64_t *xmax)
{
	const char *p = snap, *c1, *c2;
	uint64_t lo, hi, prev = 0;
	int first = 1;

	if (!snap)
		return -1;
	c1 = strchr(p, ':');
	if (!c1)
		return -1;
	c2 = strchr(c1 + 1, ':');
	if (!c2)
		return -1;
	if (cursor_parse_u64(p, (size_t)(c1 - p), &lo) < 0 ||
	    cursor_parse_u64(c1 + 1, (size_t)(c2 - c1 - 1), &hi) < 0)
		return -1;
	if (lo == 0 || lo > hi || hi > INT64_MAX)
		return -1;
	p = c2 + 1;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		uint64_t x;
		if (cursor_parse_u64(p, n, &x) < 0 || x < lo || x >= hi || (!first && x <= prev))
			return -1;
		prev = x;
		first = 0;
		p += n;
		if (*p == ',') {
			p++;
			if (!*p)        /* trailing comma */
				return -1;
		}
	}
	if (xmin)
		*xmin = lo;
	if (xmax)
		*xmax = hi;
	return 0;
}

int cursor_snapshot_valid(const char *snap)
{
	return cursor_snapshot_parse(snap, NULL, NULL);
}

uint64_t cursor_snapshot_xmin(const char *snap)
{
	uint64_t lo = 0;

	cursor_snapshot_parse(snap, &lo, NULL);
	return lo;
}

uint64_t cursor_snapshot_xmax(const char *snap)
{
	uint64_t hi = 0;

	cursor_snapshot_parse(snap, NULL, &hi);
	return hi;
}

static char *cursor_strdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		abort();
	return d;
}

void cursor_init_start(struct cursor *c)
{
	memset(c, 0, sizeof(*c));
	c->open = 0;
	c->s2 = cursor_strdup("1:1:");
}

char *cursor_encode(const struct cursor *c)
{
	struct buf b = {0};
	char *out;

	buf_printf(&b, "v1.%d.%s.%" PRId64 ".%s.%" PRId64 ".%" PRId64 ".%" PRId64,
	           c->open ? 1 : 0, c->open && c->s1 ? c->s1 : "", c->open ? c->l1 : 0,
	           c->s2 ? c->s2 : "1:1:", c->l2, c->u2, c->open ? c->last : 0);
	out = cursor_b64_encode((const unsigned char *)b.data, b.len);
	buf_free(&b);
	return out;
}

int cursor_decode(const char *token, struct cursor *c, char *err, size_t errlen)
{
	char *text = NULL;
	const char *field[CURSOR_FIELDS];
	size_t flen[CURSOR_FIELDS];
	const char *why = "malformed cursor";
	size_t len;
	int n = 0, rc = -1;
	uint64_t x1min = 0, x1max = 0, x2min = 0, x2max = 0;

	memset(c, 0, sizeof(*c));
	if (!token)
		goto out;
	len = strlen(token);
	if (len == 0 || len > CURSOR_MAX_TOKEN)
		goto out;
	text = cursor_b64_decode(token, len);
	if (!text)
		goto out;
	for (char *p = text;;) {
		char *dot = strchr(p, '.');
		if (n == CURSOR_FIELDS)
			goto out;
		field[n] = p;
		flen[n] = dot ? (size_t)(dot - p) : strlen(p);
		n++;
		if (!dot)
			break;
		*dot = '\0';
		p = dot + 1;
	}
	if (n != CURSOR_FIELDS || strcmp(field[0], "v1") != 0) {
		why = "malformed cursor (unknown version)";
		goto out;
	}
	if (strcmp(field[1], "0") == 0)
		c->open = 0;
	else if (strcmp(field[1], "1") == 0)
		c->open = 1;
	else
		goto out;
	if (cursor_parse_i64(field[3], flen[3], &c->l1) < 0 ||
	    cursor_parse_i64(field[5], flen[5], &c->l2) < 0 ||
	    cursor_parse_i64(field[6], flen[6], &c->u2) < 0 ||
	    cursor_parse_i64(field[7], flen[7], &c->last) < 0)
		goto out;
	if (cursor_snapshot_parse(field[4], &x2min, &x2max) < 0)
		goto out;
	c->s2 = cursor_strdup(field[4]);
	if (c->open) {
		if (cursor_snapshot_parse(field[2], &x1min, &x1max) < 0)
			goto out;
		/* s1 was taken before s2; l1 read before s1, l2 before s2, u2 after s2. */
		if (x1min > x2min || x1max > x2max || c->l1 > c->l2 || c->l2 > c->u2 ||
		    c->last > c->u2)
			goto out;
		c->s1 = cursor_strdup(field[2]);
	} else {
		if (flen[2] != 0 || c->l1 != 0 || c->last != 0 || c->l2 > c->u2)
			goto out;
	}
	rc = 0;
out:
	if (rc < 0) {
		if (err && errlen)
			snprintf(err, errlen, "%s", why);
		cursor_free(c);
	}
	free(text);
	return rc;
}

void cursor_free(struct cursor *c)
{
	if (!c)
		return;
	free(c->s1);
	free(c->s2);
	memset(c, 0, sizeof(*c));
}
