/* auth: API keys. Secrets are random and stored only as salted hashes (crypto_hash_secret);
 * checks are constant time. Verified credentials are cached for one second, so revocation
 * takes effect within about a second. Also records, per key, the horizon of the cursor it
 * last used (tdgl.api_keys.cursor_xmin) for purge; writes at most every few seconds per key. */
#ifndef TDGL_PRIMARY_AUTH_H
#define TDGL_PRIMARY_AUTH_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <libpq-fe.h>
#include "common/db.h"

#define AUTH_KEY_MAX 65

/* CLI: prints "key: <key>\nsecret: <secret>\n" to out, the only place a secret appears. */
int auth_keygen(PGconn *c, const char *label, FILE *out);
int auth_list(PGconn *c, FILE *out);
int auth_revoke(PGconn *c, const char *key);   /* 0, 1 when no such key, -1 error */

struct auth *auth_new(void);
void auth_free(struct auth *a);
/* Checks an "Authorization: token key:secret" header value. Returns 1 and copies the key
 * into key (AUTH_KEY_MAX bytes) when valid, 0 when not, -1 on a database error. */
int auth_verify(struct auth *a, PGconn *c, const char *header, char *key);
/* Records that key used a cursor needing transactions >= xmin; takes a connection from pool
 * only when it writes (every few seconds per key), so callers need not hold one. */
void auth_note_cursor(struct auth *a, struct db_pool *pool, const char *key, uint64_t xmin);
#endif
