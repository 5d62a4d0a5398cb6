/* crypto: OpenSSL 3 primitives for secrets. Secret hashes are "sha256$<salt>$<hash>" with
 * hash = SHA-256(salt hex || secret); sealed secrets are "v1:" base64(nonce12 | ciphertext |
 * tag16) under AES-256-GCM with key SHA-256(key material). */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "common/crypto.h"

#define SEAL_PREFIX "v1:"
#define SEAL_NONCE 12
#define SEAL_TAG 16
#define SALT_BYTES 16

static void crypto_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int crypto_random_hex(char *out, size_t nbytes)
{
	unsigned char *raw = malloc(nbytes ? nbytes : 1);
	int rc = -1;

	if (!raw)
		goto out;
	if (nbytes > 0x7fffffff || RAND_bytes(raw, (int)nbytes) != 1)
		goto out;
	crypto_hex(raw, nbytes, out);
	rc = 0;
out:
	if (raw)
		OPENSSL_cleanse(raw, nbytes);
	free(raw);
	return rc;
}

static void crypto_sha256(const void *data, size_t len, unsigned char md[32])
{
	unsigned int mdlen = 32;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
		abort();  /* SHA-256 cannot fail short of a broken library */
}

void crypto_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];

	crypto_sha256(data, len, md);
	crypto_hex(md, 32, out);
}

void crypto_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                            char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!HMAC(EVP_sha256(), keylen ? key : "", (int)keylen, data, len, md, &mdlen) ||
	    mdlen != 32)
		abort();
	crypto_hex(md, 32, out);
}

int crypto_str_equal(const char *a, const char *b)
{
	unsigned char ha[32], hb[32];

	if (!a || !b)
		return 0;
	/* Comparing digests makes the time independent of where the strings differ. */
	crypto_sha256(a, strlen(a), ha);
	crypto_sha256(b, strlen(b), hb);
	return CRYPTO_memcmp(ha, hb, 32) == 0;
}

/* hex(SHA-256(salt_hex || secret)) into out. */
static void crypto_salted(const char *salt_hex, const char *secret, char out[65])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[32];
	unsigned int mdlen = 32;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, salt_hex, strlen(salt_hex)) != 1 ||
	    EVP_DigestUpdate(ctx, secret, strlen(secret)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		abort();
	EVP_MD_CTX_free(ctx);
	crypto_hex(md, 32, out);
}

char *crypto_hash_secret(const char *secret)
{
	char salt[2 * SALT_BYTES + 1], hash[65];
	char *out = NULL;

	if (!secret || crypto_random_hex(salt, SALT_BYTES) < 0)
		goto out;
	crypto_salted(salt, secret, hash);
	out = malloc(7 + sizeof salt + sizeof hash + 1);
	if (out)
		sprintf(out, "sha256$%s$%s", salt, hash);
out:
	return out;
}

int crypto_verify_secret(const char *secret, const char *stored)
{
	char salt[2 * SALT_BYTES + 1], hash[65];
	const char *s, *h;

	if (!secret || !stored || strncmp(stored, "sha256$", 7) != 0)
		return 0;
	s = stored + 7;
	h = strchr(s, '$');
	if (!h || h - s != 2 * SALT_BYTES || strlen(h + 1) != 64)
		return 0;
	memcpy(salt, s, 2 * SALT_BYTES);
	salt[2 * SALT_BYTES] = '\0';
	crypto_salted(salt, secret, hash);
	return CRYPTO_memcmp(hash, h + 1, 64) == 0;
}

/* ---- base64 ---- */

char *crypto_base64_encode(const void *data, size_t len)
{
	char *out;

	if (len > (size_t)0x7fffffff / 4 * 3)
		return NULL;
	out = malloc(4 * ((len + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

static int crypto_b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

unsigned char *crypto_base64_decode(const char *text, size_t *outlen)
{
	size_t n = text ? strlen(text) : 0, pad = 0, o = 0;
	unsigned char *out = NULL;

	*outlen = 0;
	if (!text || n % 4)
		goto fail;
	if (n && text[n - 1] == '=')
		pad = n >= 2 && text[n - 2] == '=' ? 2 : 1;
	out = malloc(n / 4 * 3 + 1);
	if (!out)
		goto fail;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int last = i + 4 == n;

		for (int k = 0; k < 4; k++) {
			v[k] = crypto_b64val(text[i + k]);
			if (v[k] < 0 && !(last && text[i + k] == '=' && k >= 4 - (int)pad))
				goto fail;
		}
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (!last || pad < 2)
			out[o++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		if (!last || pad < 1)
			out[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
		/* Canonical encodings only: unused bits of the last group must be zero. */
		if (last && ((pad == 2 && (v[1] & 15)) || (pad == 1 && (v[2] & 3))))
			goto fail;
	}
	out[o] = '\0';
	*outlen = o;
	return out;
fail:
	free(out);
	return NULL;
}

/* ---- sealing ---- */

char *crypto_seal(const char *key_material, const char *plaintext)
{
	unsigned char key[32], *raw = NULL;
	size_t plen = plaintext ? strlen(plaintext) : 0;
	EVP_CIPHER_CTX *ctx = NULL;
	char *b64 = NULL, *out = NULL;
	int n = 0, fin = 0;

	if (!key_material || !*key_material || !plaintext || plen > 0x7fff0000)
		goto out;
	crypto_sha256(key_material, strlen(key_material), key);
	raw = malloc(SEAL_NONCE + plen + SEAL_TAG);
	ctx = EVP_CIPHER_CTX_new();
	if (!raw || !ctx || RAND_bytes(raw, SEAL_NONCE) != 1 ||
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) != 1 ||
	    EVP_EncryptUpdate(ctx, raw + SEAL_NONCE, &n, (const unsigned char *)plaintext,
	                      (int)plen) != 1 ||
	    EVP_EncryptFinal_ex(ctx, raw + SEAL_NONCE + n, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG, raw + SEAL_NONCE + plen) != 1)
		goto out;
	b64 = crypto_base64_encode(raw, SEAL_NONCE + plen + SEAL_TAG);
	if (!b64)
		goto out;
	out = malloc(strlen(SEAL_PREFIX) + strlen(b64) + 1);
	if (out)
		sprintf(out, SEAL_PREFIX "%s", b64);
out:
	OPENSSL_cleanse(key, sizeof key);
	EVP_CIPHER_CTX_free(ctx);
	free(raw);
	free(b64);
	return out;
}

char *crypto_open(const char *key_material, const char *sealed)
{
	unsigned char key[32], *raw = NULL;
	size_t rlen = 0, clen;
	EVP_CIPHER_CTX *ctx = NULL;
	char *plain = NULL, *out = NULL;
	int n = 0, fin = 0;

	if (!key_material || !*key_material || !sealed ||
	    strncmp(sealed, SEAL_PREFIX, strlen(SEAL_PREFIX)) != 0)
		goto out;
	raw = crypto_base64_decode(sealed + strlen(SEAL_PREFIX), &rlen);
	if (!raw || rlen < SEAL_NONCE + SEAL_TAG)
		goto out;
	clen = rlen - SEAL_NONCE - SEAL_TAG;
	crypto_sha256(key_material, strlen(key_material), key);
	plain = malloc(clen + 1);
	ctx = EVP_CIPHER_CTX_new();
	if (!plain || !ctx ||
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) != 1 ||
	    EVP_DecryptUpdate(ctx, (unsigned char *)plain, &n, raw + SEAL_NONCE, (int)clen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG, raw + SEAL_NONCE + clen) != 1 ||
	    EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + n, &fin) != 1)
		goto out;  /* wrong key or altered data: the tag does not verify */
	plain[clen] = '\0';
	if (memchr(plain, '\0', clen))
		goto out;
	out = plain;
	plain = NULL;
out:
	OPENSSL_cleanse(key, sizeof key);
	if (plain) {
		OPENSSL_cleanse(plain, clen + 1);
		free(plain);
	}
	EVP_CIPHER_CTX_free(ctx);
	free(raw);
	return out;
}
