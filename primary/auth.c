/* auth: API keys, credential checks with a one-second cache, and per-key cursor horizons. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <inttypes.h>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/db.h"
#include "common/log.h"
#include "primary/auth.h"

#define AUTH_CACHE 128
#define AUTH_CACHE_MS 1000        /* revocation takes effect within this */
#define AUTH_NOTE_MS 5000         /* cursor horizons written at most this often per key */
#define AUTH_NOTE_POOL_WAIT_MS 1000
#define AUTH_SECRET_MAX 256

static const char Q_INSERT_KEY[] =
	"INSERT INTO tdgl.api_keys (key, label, secret_hash) VALUES ($1, $2, $3)";
static const char Q_LIST_KEYS[] =
	"SELECT key, label, created_at, coalesce(revoked_at::text, ''),"
	" coalesce(last_seen::text, ''), coalesce(cursor_xmin::text, '')"
	" FROM tdgl.api_keys ORDER BY created_at, key";
static const char Q_REVOKE[] =
	"UPDATE tdgl.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key = $1";
static const char Q_LOOKUP[] =
	"SELECT secret_hash FROM tdgl.api_keys WHERE key = $1 AND revoked_at IS NULL";
static const char Q_NOTE[] =
	"UPDATE tdgl.api_keys SET last_seen = now(), cursor_xmin = $2::bigint WHERE key = $1";

struct auth_entry {
	char     key[AUTH_KEY_MAX];
	char     secret_sha[65];     /* sha256 of the presented secret, never the secret */
	int64_t  verified_ms;        /* 0: not verified */
	int64_t  noted_ms;
	uint64_t noted_xmin;
};

struct auth {
	pthread_mutex_t   lock;
	struct auth_entry e[AUTH_CACHE];
};

int auth_keygen(PGconn *c, const char *label, FILE *out)
{
	char key[33], secret[65];
	char *hash = NULL;
	int rc = -1;

	if (crypto_random_hex(key, 16) < 0 || crypto_random_hex(secret, 32) < 0) {
		log_error("keygen: no randomness");
		goto out;
	}
	hash = crypto_hash_secret(secret);
	if (!hash)
		goto out;
	{
		const char *params[3] = { key, label ? label : "", hash };
		if (db_run(c, "keygen: store key", Q_INSERT_KEY, 3, params) < 0)
			goto out;
	}
	fprintf(out, "key: %s\nsecret: %s\n", key, secret);
	fflush(out);
	rc = 0;
out:
	explicit_bzero(secret, sizeof secret);
	free(hash);
	return rc;
}

int auth_list(PGconn *c, FILE *out)
{
	PGresult *res = db_exec(c, "keys: list", Q_LIST_KEYS, 0, NULL);

	if (!res)
		return -1;
	fprintf(out, "%-32s  %-20s  %-8s  %-29s  %s\n", "KEY", "LABEL", "STATUS", "CREATED",
	        "LAST SEEN");
	for (int i = 0; i < PQntuples(res); i++)
		fprintf(out, "%-32s  %-20s  %-8s  %-29s  %s\n", PQgetvalue(res, i, 0),
		        PQgetvalue(res, i, 1), *PQgetvalue(res, i, 3) ? "revoked" : "active",
		        PQgetvalue(res, i, 2), *PQgetvalue(res, i, 4) ? PQgetvalue(res, i, 4) : "never");
	PQclear(res);
	return 0;
}

int auth_revoke(PGconn *c, const char *key)
{
	const char *params[1] = { key };
	PGresult *res = db_exec(c, "revoke key", Q_REVOKE, 1, params);
	int rc;

	if (!res)
		return -1;
	rc = strcmp(PQcmdTuples(res), "0") == 0 ? 1 : 0;
	PQclear(res);
	return rc;
}

struct auth *auth_new(void)
{
	struct auth *a = calloc(1, sizeof(*a));

	if (!a)
		abort();
	pthread_mutex_init(&a->lock, NULL);
	return a;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->lock);
	explicit_bzero(a, sizeof(*a));
	free(a);
}

/* The cache slot of key (or a free/oldest one to reuse). Called with the lock held. */
static struct auth_entry *auth_slot(struct auth *a, const char *key)
{
	struct auth_entry *victim = &a->e[0];

	for (int i = 0; i < AUTH_CACHE; i++) {
		if (!strcmp(a->e[i].key, key))
			return &a->e[i];
		if (a->e[i].verified_ms < victim->verified_ms)
			victim = &a->e[i];
	}
	memset(victim, 0, sizeof(*victim));
	snprintf(victim->key, sizeof victim->key, "%s", key);
	return victim;
}

/* Splits "token key:secret" into key and secret; 0 ok, -1 malformed. */
static int auth_parse(const char *header, char *key, const char **secret)
{
	const char *p, *colon;
	size_t klen;

	if (!header || strncasecmp(header, "token ", 6) != 0)
		return -1;
	p = header + 6;
	while (*p == ' ')
		p++;
	colon = strchr(p, ':');
	if (!colon)
		return -1;
	klen = (size_t)(colon - p);
	if (klen == 0 || klen >= AUTH_KEY_MAX || strspn(p, "0123456789abcdef") < klen)
		return -1;
	if (strlen(colon + 1) == 0 || strlen(colon + 1) > AUTH_SECRET_MAX)
		return -1;
	memcpy(key, p, klen);
	key[klen] = '\0';
	*secret = colon + 1;
	return 0;
}

int auth_verify(struct auth *a, PGconn *c, const char *header, char *key)
{
	const char *secret = NULL;
	char sha[65];
	PGresult *res = NULL;
	int rc = 0, cached = 0;
	int64_t now = clock_ms();

	if (auth_parse(header, key, &secret) < 0)
		goto out;
	crypto_sha256_hex(secret, strlen(secret), sha);
	pthread_mutex_lock(&a->lock);
	{
		struct auth_entry *e = auth_slot(a, key);
		cached = e->verified_ms && now - e->verified_ms < AUTH_CACHE_MS &&
		         crypto_str_equal(e->secret_sha, sha);
	}
	pthread_mutex_unlock(&a->lock);
	if (cached) {
		rc = 1;
		goto out;
	}
	{
		const char *params[1] = { key };
		res = db_exec(c, "check api key", Q_LOOKUP, 1, params);
	}
	if (!res) {
		rc = -1;
		goto out;
	}
	if (PQntuples(res) == 1 && crypto_verify_secret(secret, PQgetvalue(res, 0, 0))) {
		rc = 1;
		pthread_mutex_lock(&a->lock);
		{
			struct auth_entry *e = auth_slot(a, key);
			memcpy(e->secret_sha, sha, sizeof sha);
			e->verified_ms = now;
		}
		pthread_mutex_unlock(&a->lock);
	}
out:
	explicit_bzero(sha, sizeof sha);
	PQclear(res);
	return rc;
}

void auth_note_cursor(struct auth *a, struct db_pool *pool, const char *key, uint64_t xmin)
{
	int64_t now = clock_ms();
	int write = 0;
	char xs[24];
	PGconn *c = NULL;

	pthread_mutex_lock(&a->lock);
	{
		struct auth_entry *e = auth_slot(a, key);
		/* A cursor that went backwards is recorded at once: purge must not cut below it. */
		if (!e->noted_ms || now - e->noted_ms >= AUTH_NOTE_MS || xmin < e->noted_xmin) {
			e->noted_ms = now;
			e->noted_xmin = xmin;
			write = 1;
		}
	}
	pthread_mutex_unlock(&a->lock);
	if (!write)
		goto out;
	snprintf(xs, sizeof xs, "%" PRIu64, xmin);
	c = db_pool_get(pool, AUTH_NOTE_POOL_WAIT_MS);
	{
		const char *params[2] = { key, xs };
		if (!c || db_run(c, "record key cursor", Q_NOTE, 2, params) < 0) {
			if (!c)
				log_warn("record key cursor: no database connection free; later");
			pthread_mutex_lock(&a->lock);
			auth_slot(a, key)->noted_ms = 0;   /* try again next time */
			pthread_mutex_unlock(&a->lock);
		}
	}
out:
	db_pool_put(pool, c);
}
