/* Unit tests for common/crypto.c: known vectors, secret hashes, sealing, base64. */
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "tests/unit/unit.h"

UNIT_TEST(crypto_sha256_vectors)
{
	static const struct { const char *in, *hex; } cases[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	};
	char out[65];

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		crypto_sha256_hex(cases[i].in, strlen(cases[i].in), out);
		CHECK_STR(out, cases[i].hex);
	}
}

UNIT_TEST(crypto_hmac_vectors)
{
	/* RFC 4231 test cases 1 and 2. */
	char key1[20], out[65];

	memset(key1, 0x0b, sizeof key1);
	crypto_hmac_sha256_hex(key1, sizeof key1, "Hi There", 8, out);
	CHECK_STR(out, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	crypto_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, out);
	CHECK_STR(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	crypto_hmac_sha256_hex(NULL, 0, "", 0, out);
	CHECK_STR(out, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

UNIT_TEST(crypto_random_hex_distinct)
{
	char a[65], b[65];

	CHECK(crypto_random_hex(a, 32) == 0);
	CHECK(crypto_random_hex(b, 32) == 0);
	CHECK(strlen(a) == 64 && strspn(a, "0123456789abcdef") == 64);
	CHECK(strcmp(a, b) != 0);
}

UNIT_TEST(crypto_str_equal_table)
{
	static const struct { const char *a, *b; int eq; } cases[] = {
		{ "", "", 1 }, { "abc", "abc", 1 }, { "abc", "abd", 0 }, { "abc", "ab", 0 },
		{ "ab", "abc", 0 }, { "", "a", 0 }, { "x", NULL, 0 }, { NULL, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		CHECK(crypto_str_equal(cases[i].a, cases[i].b) == cases[i].eq);
}

UNIT_TEST(crypto_secret_hash_roundtrip)
{
	char *h1 = crypto_hash_secret("s3cret"), *h2 = crypto_hash_secret("s3cret");
	static const char *const bad[] = {
		"", "sha256$", "sha256$$", "md5$00$00", "sha256$abcd$0123",
		"sha256$00000000000000000000000000000000$short",
	};

	CHECK(h1 && h2);
	if (!h1 || !h2)
		goto out;
	CHECK(strncmp(h1, "sha256$", 7) == 0 && strlen(h1) == 7 + 32 + 1 + 64);
	CHECK(strcmp(h1, h2) != 0);  /* salted */
	CHECK(crypto_verify_secret("s3cret", h1) == 1);
	CHECK(crypto_verify_secret("s3cret", h2) == 1);
	CHECK(crypto_verify_secret("s3cret!", h1) == 0);
	CHECK(crypto_verify_secret("", h1) == 0);
	CHECK(crypto_verify_secret(NULL, h1) == 0);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECK(crypto_verify_secret("s3cret", bad[i]) == 0);
	h1[strlen(h1) - 1] ^= 1;
	CHECK(crypto_verify_secret("s3cret", h1) == 0);
out:
	free(h1);
	free(h2);
}

UNIT_TEST(crypto_seal_open)
{
	static const char *const texts[] = { "", "api-secret-0123", "ünïcödé ✓ 🙂" };

	for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
		char *s = crypto_seal("key material", texts[i]), *p = NULL, *q = NULL;
		size_t n;

		CHECK(s && strncmp(s, "v1:", 3) == 0);
		if (!s)
			continue;
		p = crypto_open("key material", s);
		CHECK_STR(p, texts[i]);
		q = crypto_open("other key", s);
		CHECK(q == NULL);
		free(q);
		n = strlen(s);
		s[n - 2] = s[n - 2] == 'A' ? 'B' : 'A';  /* alter the tag */
		q = crypto_open("key material", s);
		CHECK(q == NULL);
		free(q);
		free(p);
		free(s);
	}
	CHECK(crypto_seal("", "x") == NULL);
	CHECK(crypto_seal(NULL, "x") == NULL);
	CHECK(crypto_open("k", "v1:") == NULL);
	CHECK(crypto_open("k", "v2:AAAA") == NULL);
	CHECK(crypto_open("k", "v1:!!!!") == NULL);
	CHECK(crypto_open("k", NULL) == NULL);
}

UNIT_TEST(crypto_base64_table)
{
	static const struct { const char *raw, *b64; } cases[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	static const char *const bad[] = {
		"Zg=", "Zg", "Z===", "====", "Zm9v\n", "Zm 9", "Zg==Zg==", "Zh==", "Zm9=", "Zm-_",
	};

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		size_t n = 99;
		char *e = crypto_base64_encode(cases[i].raw, strlen(cases[i].raw));
		unsigned char *d = crypto_base64_decode(cases[i].b64, &n);

		CHECK_STR(e, cases[i].b64);
		CHECK(d && n == strlen(cases[i].raw) && memcmp(d, cases[i].raw, n) == 0);
		free(e);
		free(d);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		size_t n = 99;
		unsigned char *d = crypto_base64_decode(bad[i], &n);

		if (d)
			fprintf(stderr, "  base64 accepted \"%s\"\n", bad[i]);
		CHECK(d == NULL && n == 0);
		free(d);
	}
	{
		unsigned char bin[256];
		size_t n;
		char *e;
		unsigned char *d;

		for (int i = 0; i < 256; i++)
			bin[i] = (unsigned char)i;
		e = crypto_base64_encode(bin, sizeof bin);
		d = crypto_base64_decode(e, &n);
		CHECK(d && n == sizeof bin && memcmp(d, bin, n) == 0);
		free(e);
		free(d);
	}
}
