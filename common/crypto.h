/* crypto: randomness, hashing, HMAC, constant-time compare, secret hashes and
 * AES-256-GCM sealing of secrets at rest (OpenSSL). */
#ifndef TDGL_CRYPTO_H
#define TDGL_CRYPTO_H
#include <stddef.h>

/* Writes 2*nbytes hex chars + NUL into out (size >= 2*nbytes+1). Returns 0, -1 on failure. */
int crypto_random_hex(char *out, size_t nbytes);
void crypto_sha256_hex(const void *data, size_t len, char out[65]);
void crypto_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                            char out[65]);
/* Constant-time equality of two NUL-terminated strings (time depends only on lengths). */
int crypto_str_equal(const char *a, const char *b);

/* Salted hash of an API secret: "sha256$<salt hex>$<hash hex>"; returns malloc'd string
 * (caller frees) or NULL. Secrets are 256-bit random values, so one salted SHA-256 suffices. */
char *crypto_hash_secret(const char *secret);
/* 1 when secret matches stored (constant time), else 0. */
int crypto_verify_secret(const char *secret, const char *stored);

/* Seals plaintext with AES-256-GCM under a key derived from key_material (SHA-256 of it).
 * Returns malloc'd "v1:<base64(nonce|ciphertext|tag)>" (caller frees) or NULL. */
char *crypto_seal(const char *key_material, const char *plaintext);
/* Opens what crypto_seal made. Returns malloc'd plaintext (caller frees) or NULL when the
 * key is wrong or the data was altered. */
char *crypto_open(const char *key_material, const char *sealed);

/* Base64 (standard alphabet, padded). Returned strings malloc'd, caller frees; decode
 * returns NULL on invalid input and sets *outlen. */
char *crypto_base64_encode(const void *data, size_t len);
unsigned char *crypto_base64_decode(const char *text, size_t *outlen);

#endif
