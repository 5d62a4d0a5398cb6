/* push: signed webhooks to the configured push targets (tdgl.push_targets) when new changes
 * became visible. One thread per target: at most one notify in flight plus one pending
 * (bursts coalesce), exponential backoff up to 30 s on failure. Never blocks capture or the
 * API: the watch only records the newest head and signals. Targets reload every few seconds. */
#ifndef TDGL_PRIMARY_PUSH_H
#define TDGL_PRIMARY_PUSH_H
#include <stdio.h>
#include <libpq-fe.h>
#include <cjson/cJSON.h>
#include "common/db.h"
#include "primary/watch.h"

/* key_material (TDGL_SECRET_KEY; may be NULL) opens sealed push secrets; it and conninfo
 * must outlive the notifier. Of several processes serving one database, one sends the
 * notifications: the one holding the session advisory lock "tdgl.push" on a connection of
 * its own (taken over within a reload, ~2 s, when that process dies). */
struct push *push_start(struct db_pool *pool, struct watch *w, const char *key_material,
                        const char *conninfo);
void push_stop(struct push *p);   /* joins every thread; NULL is fine */
/* Delivery status of each active target since this process started (caller deletes):
 * [{"id","last_attempt_at","last_delivered_at","failures" (consecutive),"last_result"
 * ("HTTP 202", a connection error)}]; times ISO 8601 UTC or null. p may be NULL: []. */
cJSON *push_status(struct push *p);

/* CLI. Return 0 ok, 1 refused/not found (message printed), -1 database error. With
 * key_material the secret is stored sealed (AES-256-GCM, crypto.h), else as given. */
int push_add(PGconn *c, const char *url, const char *secret, const char *key_material);
/* Seals every push secret stored in plain text (an older version, or added without a key).
 * Returns how many, or -1 (logged). */
int push_seal_all(PGconn *c, const char *key_material);
/* How many push secrets are stored in plain text, or -1 (logged). */
int push_plain_count(PGconn *c);
int push_list(PGconn *c, FILE *out);
int push_remove(PGconn *c, const char *id_or_url);

/* "sha256=<hex HMAC-SHA256(secret, timestamp "." body)>" into out (72 bytes). */
void push_sign(const char *secret, const char *timestamp, const char *body, char out[72]);
#endif
