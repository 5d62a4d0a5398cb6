/* Unit tests for common/cursor.c: round trips, and refusal of every malformed token. */
#include <stdlib.h>
#include <string.h>

#include "common/cursor.h"
#include "tests/unit/unit.h"

/* base64url of a raw token text, for crafting bad tokens. */
static char *cursor_test_token(const char *text)
{
	static const char a[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t len = strlen(text), o = 0;
	char *out = malloc(len * 2 + 4);
	unsigned acc = 0;
	int bits = 0;

	for (size_t i = 0; i < len; i++) {
		acc = acc << 8 | (unsigned char)text[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = a[acc >> bits & 63];
		}
	}
	if (bits)
		out[o++] = a[acc << (6 - bits) & 63];
	out[o] = '\0';
	return out;
}

static int cursor_test_decodes(const char *text)
{
	char *tok = cursor_test_token(text);
	struct cursor c;
	char err[128];
	int rc = cursor_decode(tok, &c, err, sizeof(err));

	cursor_free(&c);
	free(tok);
	return rc == 0;
}

UNIT_TEST(cursor_start_round_trip)
{
	struct cursor c, d;
	char err[128];
	char *tok;

	cursor_init_start(&c);
	tok = cursor_encode(&c);
	CHECK(cursor_decode(tok, &d, err, sizeof(err)) == 0);
	CHECK(d.open == 0);
	CHECK_STR(d.s2, "1:1:");
	CHECK(d.s1 == NULL);
	CHECK(d.l2 == 0 && d.u2 == 0 && d.last == 0);
	free(tok);
	cursor_free(&c);
	cursor_free(&d);
}

UNIT_TEST(cursor_open_round_trip)
{
	struct cursor c = {0}, d;
	char err[128];
	char *tok, *tok2;

	c.open = 1;
	c.s1 = strdup("100:105:100,103");
	c.l1 = 40;
	c.s2 = strdup("103:120:103,110,119");
	c.l2 = 90;
	c.u2 = 95;
	c.last = 61;
	tok = cursor_encode(&c);
	CHECK(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
	      == strlen(tok));
	CHECK(cursor_decode(tok, &d, err, sizeof(err)) == 0);
	CHECK(d.open == 1);
	CHECK_STR(d.s1, "100:105:100,103");
	CHECK_STR(d.s2, "103:120:103,110,119");
	CHECK(d.l1 == 40 && d.l2 == 90 && d.u2 == 95 && d.last == 61);
	tok2 = cursor_encode(&d);
	CHECK_STR(tok, tok2);
	free(tok);
	free(tok2);
	cursor_free(&c);
	cursor_free(&d);
}

UNIT_TEST(cursor_snapshot_validation)
{
	CHECK(cursor_snapshot_valid("1:1:") == 0);
	CHECK(cursor_snapshot_valid("10:20:10,15,19") == 0);
	CHECK(cursor_snapshot_valid("10:20:") == 0);
	CHECK(cursor_snapshot_valid("0:1:") < 0);         /* xmin 0 is invalid */
	CHECK(cursor_snapshot_valid("20:10:") < 0);       /* xmin > xmax */
	CHECK(cursor_snapshot_valid("10:20:9") < 0);      /* xip < xmin */
	CHECK(cursor_snapshot_valid("10:20:20") < 0);     /* xip >= xmax */
	CHECK(cursor_snapshot_valid("10:20:15,12") < 0);  /* not ascending */
	CHECK(cursor_snapshot_valid("10:20:15,15") < 0);  /* duplicate */
	CHECK(cursor_snapshot_valid("10:20:15,") < 0);
	CHECK(cursor_snapshot_valid("10:20") < 0);
	CHECK(cursor_snapshot_valid("10:20:x") < 0);
	CHECK(cursor_snapshot_valid("-1:20:") < 0);
	CHECK(cursor_snapshot_valid("010:20:") < 0);
	CHECK(cursor_snapshot_valid("1:99999999999999999999:") < 0);
	CHECK(cursor_snapshot_valid(NULL) < 0);
	CHECK(cursor_snapshot_xmin("10:20:15") == 10);
	CHECK(cursor_snapshot_xmax("10:20:15") == 20);
}

UNIT_TEST(cursor_rejects_malformed_tokens)
{
	struct cursor c;
	char err[128] = "";

	CHECK(cursor_decode("", &c, err, sizeof(err)) < 0);
	CHECK(cursor_decode(NULL, &c, err, sizeof(err)) < 0);
	CHECK(cursor_decode("!!!", &c, err, sizeof(err)) < 0);
	CHECK(cursor_decode("dj", &c, err, sizeof(err)) < 0);
	CHECK(err[0] != '\0');
	CHECK(cursor_decode("A", &c, err, sizeof(err)) < 0);       /* impossible length */
	CHECK(cursor_decode("AAA=", &c, err, sizeof(err)) < 0);    /* padding refused */
	CHECK(cursor_test_decodes("v1.0..0.5:9:6.3.4.0"));
	CHECK(!cursor_test_decodes("v2.0..0.5:9:6.3.4.0"));        /* unknown version */
	CHECK(!cursor_test_decodes("v1.2..0.5:9:6.3.4.0"));        /* open flag */
	CHECK(!cursor_test_decodes("v1.0..0.5:9:6.3.4"));          /* too few fields */
	CHECK(!cursor_test_decodes("v1.0..0.5:9:6.3.4.0.0"));      /* too many */
	CHECK(!cursor_test_decodes("v1.0.1:2:.0.5:9:6.3.4.0"));    /* closed with s1 */
	CHECK(!cursor_test_decodes("v1.0..0.5:9:6.5.4.0"));        /* l2 > u2 */
	CHECK(!cursor_test_decodes("v1.0..0.5:9:6.3.4.7"));        /* closed with last */
	CHECK(!cursor_test_decodes("v1.0..0.5:9:6.-3.4.0"));
	CHECK(!cursor_test_decodes("v1.0..0.5:9:6.99999999999999999999.4.0"));
	CHECK(!cursor_test_decodes("v1.0..0.5:4:.3.4.0"));         /* bad snapshot */
	CHECK(cursor_test_decodes("v1.1.3:5:4.2.5:9:6.3.4.1"));
	CHECK(!cursor_test_decodes("v1.1..2.5:9:6.3.4.1"));        /* open without s1 */
	CHECK(!cursor_test_decodes("v1.1.6:9:.2.5:9:6.3.4.1"));    /* s1 after s2 */
	CHECK(!cursor_test_decodes("v1.1.3:5:4.4.5:9:6.3.4.1"));   /* l1 > l2 */
	CHECK(!cursor_test_decodes("v1.1.3:5:4.2.5:9:6.3.4.5"));   /* last > u2 */
	CHECK(!cursor_test_decodes("v1.1.3:5:4.2.5:9:6.3.4.1x"));
}

UNIT_TEST(cursor_rejects_oversized_token)
{
	struct cursor c;
	char err[64];
	char *big = malloc(CURSOR_MAX_TOKEN + 2);

	memset(big, 'A', CURSOR_MAX_TOKEN + 1);
	big[CURSOR_MAX_TOKEN + 1] = '\0';
	CHECK(cursor_decode(big, &c, err, sizeof(err)) < 0);
	free(big);
}
