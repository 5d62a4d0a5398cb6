/* push: webhook notifier threads. The watch's listener only records the newest head and
 * signals (never blocks on the network); each target's thread sends at most one notify at a
 * time, so a burst of changes while a notify is in flight collapses into one more. */
#include <pthread.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/db.h"
#include "common/httpc.h"
#include "common/log.h"
#include "primary/metrics.h"
#include "primary/push.h"

#define PUSH_RELOAD_MS 2000
#define PUSH_BACKOFF_MIN_MS 250
#define PUSH_BACKOFF_MAX_MS 30000
#define PUSH_TIMEOUT_MS 5000

static const char Q_TARGETS[] =
	"SELECT id, url, secret FROM tdgl.push_targets WHERE enabled ORDER BY id";
static const char Q_ADD[] =
	"INSERT INTO tdgl.push_targets (url, secret) VALUES ($1, $2)"
	" ON CONFLICT (url) DO UPDATE SET secret = EXCLUDED.secret, enabled = true RETURNING id";
static const char Q_LIST[] =
	"SELECT id, url, enabled, created_at FROM tdgl.push_targets ORDER BY id";
static const char Q_LEAD[] = "SELECT pg_try_advisory_lock(hashtext('tdgl.push'))";
static const char Q_ALIVE[] = "SELECT 1";
static const char Q_PLAIN[] =
	"SELECT id, secret FROM tdgl.push_targets WHERE secret NOT LIKE 'v1:%' ORDER BY id";
static const char Q_SEAL[] =
	"UPDATE tdgl.push_targets SET secret = $3 WHERE id = $1::bigint AND secret = $2";
static const char Q_REMOVE_ID[] = "DELETE FROM tdgl.push_targets WHERE id = $1::bigint";
static const char Q_REMOVE_URL[] = "DELETE FROM tdgl.push_targets WHERE url = $1";

struct push_target {
	struct push        *push;
	struct push_target *next;
	int64_t             id;
	char               *url;       /* .../api/notify */
	char               *secret;    /* opened */
	char               *stored;    /* as stored (sealed or not): a change means reload */
	pthread_t           thread;
	pthread_cond_t      cond;
	int                 pending;
	int64_t             head;
	int                 stopping;
	int                 seen;      /* still configured at the last reload */
	/* delivery status (push_status), under push.lock */
	time_t              last_attempt, last_delivered;
	long                failures;  /* consecutive failed attempts */
	char                last_result[160];   /* "HTTP 202", a transport error (cut) */
};

struct push {
	const char         *key_material;   /* opens sealed secrets; NULL: none given */
	const char         *conninfo;
	PGconn             *lead_conn;      /* holds the "tdgl.push" lock while leading */
	int                 leading;
	struct db_pool     *pool;
	struct watch       *watch;
	pthread_t           thread;
	pthread_mutex_t     lock;
	pthread_cond_t      cond;
	int                 stopping;
	int64_t             head;
	struct push_target *targets;
};

void push_sign(const char *secret, const char *timestamp, const char *body, char out[72])
{
	struct buf msg = {0};
	char hex[65];

	buf_printf(&msg, "%s.%s", timestamp, body);
	crypto_hmac_sha256_hex(secret, strlen(secret), msg.data, msg.len, hex);
	snprintf(out, 72, "sha256=%s", hex);
	buf_free(&msg);
}

/* Sends one notify; 0 when the target answered 2xx. What happened goes into result. */
static int push_send(const struct push_target *t, int64_t head, char *result, size_t rlen)
{
	char body[96], ts[24], sig[72], h_ts[64], h_sig[128];
	const char *headers[4] = { "Content-Type: application/json", h_ts, h_sig, NULL };
	struct httpc_opts opts = { .timeout_ms = PUSH_TIMEOUT_MS, .connect_timeout_ms = 3000,
	                           .max_body = 65536 };
	struct httpc_resp resp = {0};
	int rc = -1;

	snprintf(body, sizeof body, "{\"event\":\"changes\",\"head\":%" PRId64 "}", head);
	snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
	push_sign(t->secret, ts, body, sig);
	snprintf(h_ts, sizeof h_ts, "X-TDGL-Timestamp: %s", ts);
	snprintf(h_sig, sizeof h_sig, "X-TDGL-Signature: %s", sig);
	if (httpc_request("POST", t->url, headers, body, strlen(body), &opts, &resp) < 0) {
		log_warn("push %s: %s", t->url, resp.err);
		snprintf(result, rlen, "%.150s", resp.err);
		goto out;
	}
	if (resp.status < 200 || resp.status > 299) {
		log_warn("push %s: HTTP %ld", t->url, resp.status);
		snprintf(result, rlen, "HTTP %ld", resp.status);
		goto out;
	}
	snprintf(result, rlen, "HTTP %ld", resp.status);
	log_debug("push %s: head %" PRId64 " delivered", t->url, head);
	rc = 0;
out:
	httpc_resp_free(&resp);
	explicit_bzero(sig, sizeof sig);
	explicit_bzero(h_sig, sizeof h_sig);
	return rc;
}

static void *push_target_main(void *arg)
{
	struct push_target *t = arg;
	struct push *p = t->push;
	int backoff = 0;

	pthread_mutex_lock(&p->lock);
	while (!t->stopping) {
		int64_t head;
		char result[sizeof t->last_result] = "";
		int ok;

		if (!t->pending) {
			pthread_cond_wait(&t->cond, &p->lock);
			continue;
		}
		head = t->head;
		t->pending = 0;
		pthread_mutex_unlock(&p->lock);
		ok = push_send(t, head, result, sizeof result) == 0;
		metrics_push(ok);
		pthread_mutex_lock(&p->lock);
		t->last_attempt = time(NULL);
		if (ok)
			t->last_delivered = t->last_attempt;
		t->failures = ok ? 0 : t->failures + 1;
		memcpy(t->last_result, result, sizeof result);
		if (ok) {
			backoff = 0;
			continue;
		}
		/* Down: retry (with the newest head by then) after an exponential backoff. */
		backoff = backoff ? backoff * 2 : PUSH_BACKOFF_MIN_MS;
		if (backoff > PUSH_BACKOFF_MAX_MS)
			backoff = PUSH_BACKOFF_MAX_MS;
		{
			struct timespec ts;
			clock_after(&ts, backoff);
			while (!t->stopping && clock_wait(&t->cond, &p->lock, &ts) != ETIMEDOUT)
				;
		}
		if (!t->pending) {
			t->pending = 1;
			t->head = head > t->head ? head : t->head;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Watch listener: record the head, signal. Never blocks on the network. */
static void push_on_change(void *ctx, int64_t head)
{
	struct push *p = ctx;

	pthread_mutex_lock(&p->lock);
	p->head = head;
	for (struct push_target *t = p->targets; t; t = t->next) {
		t->pending = 1;
		t->head = head;
		pthread_cond_signal(&t->cond);
	}
	pthread_mutex_unlock(&p->lock);
}

/* The secret of a target as stored ("v1:..." sealed, else plain); malloc'd, or NULL when it
 * cannot be opened (logged: the target is left out until the key is given). */
static char *push_open(struct push *p, const char *url, const char *stored)
{
	static struct log_limit no_key = LOG_LIMIT_INIT;
	char *s;

	if (strncmp(stored, "v1:", 3) != 0)
		s = strdup(stored);
	else if (!p->key_material || !*p->key_material)
		s = NULL;
	else
		s = crypto_open(p->key_material, stored);
	if (!s)
		log_limited(&no_key, LOG_ERROR, "push %s: its secret is sealed and %s: set the "
		            "TDGL_SECRET_KEY it was sealed with", url,
		            p->key_material && *p->key_material ? "this key does not open it"
		                                                : "no key is set");
	return s;
}

/* Whether this process sends the notifications: it holds (or now takes) the "tdgl.push"
 * advisory lock on its own connection. The lock goes with the connection, so a process that
 * dies hands it over; a connection that broke leads no more. Push thread only. */
static int push_lead(struct push *p)
{
	char err[512];
	PGresult *res = NULL;
	int was = p->leading;

	if (p->lead_conn && (PQstatus(p->lead_conn) != CONNECTION_OK ||
	                     (p->leading && db_run(p->lead_conn, "push: lead", Q_ALIVE, 0, NULL) < 0))) {
		PQfinish(p->lead_conn);
		p->lead_conn = NULL;
		p->leading = 0;
	}
	if (!p->lead_conn && !(p->lead_conn = db_connect(p->conninfo, err, sizeof err)))
		log_warn("push: cannot connect to the database: %s", err);
	if (p->lead_conn && !p->leading) {
		res = db_exec(p->lead_conn, "push: lead", Q_LEAD, 0, NULL);
		p->leading = res && PQgetvalue(res, 0, 0)[0] == 't';
	}
	if (p->leading != was)
		log_info("push: %s", p->leading ? "this process sends the push notifications"
		                                 : "another process sends the push notifications");
	PQclear(res);
	return p->leading;
}

static void push_target_free(struct push_target *t)
{
	pthread_cond_destroy(&t->cond);
	free(t->url);
	if (t->secret)
		explicit_bzero(t->secret, strlen(t->secret));
	free(t->secret);
	free(t->stored);
	free(t);
}

/* Stops and joins the targets in list (already unlinked). */
static void push_join_all(struct push *p, struct push_target *list)
{
	for (struct push_target *t = list; t; t = t->next) {
		pthread_mutex_lock(&p->lock);
		t->stopping = 1;
		pthread_cond_signal(&t->cond);
		pthread_mutex_unlock(&p->lock);
	}
	while (list) {
		struct push_target *next = list->next;
		pthread_join(list->thread, NULL);
		push_target_free(list);
		list = next;
	}
}

/* Reloads the configured targets: starts new ones, stops removed or changed ones. */
static void push_reload(struct push *p)
{
	PGconn *c = db_pool_get(p->pool, 2000);
	PGresult *res = NULL;
	struct push_target *gone = NULL, **pp;
	int n = 0, lead;
	char url[2048];

	if (!c)
		return;
	res = db_exec(c, "push: load targets", Q_TARGETS, 0, NULL);
	db_pool_put(p->pool, c);
	if (!res)
		return;
	lead = push_lead(p);
	pthread_mutex_lock(&p->lock);
	for (struct push_target *t = p->targets; t; t = t->next)
		t->seen = 0;
	for (int i = 0; lead && i < PQntuples(res); i++) {   /* not leading: no target runs */
		int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		const char *base = PQgetvalue(res, i, 1), *stored = PQgetvalue(res, i, 2);
		size_t bl = strlen(base);
		struct push_target *t;
		char *secret;

		while (bl && base[bl - 1] == '/')
			bl--;
		snprintf(url, sizeof url, "%.*s/api/notify", (int)bl, base);
		for (t = p->targets; t; t = t->next)
			if (t->id == id && !strcmp(t->url, url) && !strcmp(t->stored, stored))
				break;
		if (t) {
			t->seen = 1;
			n++;
			continue;
		}
		if (!(secret = push_open(p, url, stored)))
			continue;
		t = calloc(1, sizeof(*t));
		if (!t)
			abort();
		t->push = p;
		t->id = id;
		t->url = strdup(url);
		t->secret = secret;
		t->stored = strdup(stored);
		t->seen = 1;
		if (!t->url || !t->stored)
			abort();
		clock_cond_init(&t->cond);
		if (pthread_create(&t->thread, NULL, push_target_main, t) != 0) {
			log_error("push %s: cannot start thread", url);
			push_target_free(t);
			continue;
		}
		log_info("push target %s active", url);
		t->next = p->targets;
		p->targets = t;
		n++;
	}
	for (pp = &p->targets; *pp;) {
		struct push_target *t = *pp;
		if (t->seen) {
			pp = &t->next;
			continue;
		}
		*pp = t->next;
		t->next = gone;
		gone = t;
	}
	pthread_mutex_unlock(&p->lock);
	PQclear(res);
	push_join_all(p, gone);
	watch_set_always(p->watch, n > 0);
}

static void *push_main(void *arg)
{
	struct push *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		struct timespec ts;

		pthread_mutex_unlock(&p->lock);
		push_reload(p);
		pthread_mutex_lock(&p->lock);
		clock_after(&ts, PUSH_RELOAD_MS);
		while (!p->stopping && clock_wait(&p->cond, &p->lock, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ISO 8601 UTC of t, or JSON null when t is 0. */
static void push_add_time(cJSON *o, const char *name, time_t t)
{
	char iso[CLOCK_ISO_MAX];

	if (!t || !clock_iso_utc(t, iso, sizeof iso))
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddStringToObject(o, name, iso);
}

cJSON *push_status(struct push *p)
{
	cJSON *arr = cJSON_CreateArray();

	if (!p)
		return arr;
	pthread_mutex_lock(&p->lock);
	for (struct push_target *t = p->targets; t; t = t->next) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddNumberToObject(o, "id", (double)t->id);
		push_add_time(o, "last_attempt_at", t->last_attempt);
		push_add_time(o, "last_delivered_at", t->last_delivered);
		cJSON_AddNumberToObject(o, "failures", (double)t->failures);
		if (t->last_attempt)
			cJSON_AddStringToObject(o, "last_result", t->last_result);
		else
			cJSON_AddNullToObject(o, "last_result");
		cJSON_AddItemToArray(arr, o);
	}
	pthread_mutex_unlock(&p->lock);
	return arr;
}

struct push *push_start(struct db_pool *pool, struct watch *w, const char *key_material,
                        const char *conninfo)
{
	struct push *p = calloc(1, sizeof(*p));

	if (!p)
		abort();
	p->pool = pool;
	p->watch = w;
	p->key_material = key_material;
	p->conninfo = conninfo;
	pthread_mutex_init(&p->lock, NULL);
	clock_cond_init(&p->cond);
	watch_set_listener(w, push_on_change, p);
	if (pthread_create(&p->thread, NULL, push_main, p) != 0) {
		log_error("push: cannot start thread");
		abort();
	}
	return p;
}

void push_stop(struct push *p)
{
	struct push_target *list;

	if (!p)
		return;
	watch_set_listener(p->watch, NULL, NULL);
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_mutex_lock(&p->lock);
	list = p->targets;
	p->targets = NULL;
	pthread_mutex_unlock(&p->lock);
	push_join_all(p, list);
	if (p->lead_conn)
		PQfinish(p->lead_conn);   /* hands the lead to another process */
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int push_add(PGconn *c, const char *url, const char *secret, const char *key_material)
{
	const char *params[2] = { url, NULL };
	char *sealed = NULL;
	PGresult *res = NULL;
	int rc = -1;

	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		fprintf(stderr, "error: push target URL must start with http:// or https://\n");
		return 1;
	}
	if (!secret || strlen(secret) < 16) {
		fprintf(stderr, "error: --secret must be at least 16 characters\n");
		return 1;
	}
	if (key_material && *key_material && !(sealed = crypto_seal(key_material, secret))) {
		log_error("push add: cannot seal the secret");
		goto out;
	}
	params[1] = sealed ? sealed : secret;
	res = db_exec(c, "push add", Q_ADD, 2, params);
	if (!res)
		goto out;
	printf("push target %s: %s%s\n", PQgetvalue(res, 0, 0), url,
	       sealed ? "" : " (secret stored in plain text: set TDGL_SECRET_KEY to seal it)");
	rc = 0;
out:
	PQclear(res);
	free(sealed);
	return rc;
}

int push_plain_count(PGconn *c)
{
	PGresult *res = db_exec(c, "push: plain secrets", Q_PLAIN, 0, NULL);
	int n = res ? PQntuples(res) : -1;

	PQclear(res);
	return n;
}

int push_seal_all(PGconn *c, const char *key_material)
{
	PGresult *res = db_exec(c, "push: plain secrets", Q_PLAIN, 0, NULL);
	int n = 0;

	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res) && n >= 0; i++) {
		char *sealed = crypto_seal(key_material, PQgetvalue(res, i, 1));
		const char *p[3] = { PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), sealed };

		if (!sealed || db_run(c, "push: seal secret", Q_SEAL, 3, p) < 0)
			n = -1;
		else
			n++;
		free(sealed);
	}
	PQclear(res);
	return n;
}

int push_list(PGconn *c, FILE *out)
{
	PGresult *res = db_exec(c, "push list", Q_LIST, 0, NULL);

	if (!res)
		return -1;
	fprintf(out, "%-6s  %-8s  %-29s  %s\n", "ID", "ENABLED", "CREATED", "URL");
	for (int i = 0; i < PQntuples(res); i++)
		fprintf(out, "%-6s  %-8s  %-29s  %s\n", PQgetvalue(res, i, 0),
		        PQgetvalue(res, i, 2)[0] == 't' ? "yes" : "no", PQgetvalue(res, i, 3),
		        PQgetvalue(res, i, 1));
	PQclear(res);
	return 0;
}

int push_remove(PGconn *c, const char *id_or_url)
{
	const char *params[1] = { id_or_url };
	int by_id = *id_or_url && strspn(id_or_url, "0123456789") == strlen(id_or_url) &&
	            strlen(id_or_url) < 19;
	PGresult *res = db_exec(c, "push remove", by_id ? Q_REMOVE_ID : Q_REMOVE_URL, 1, params);
	int rc;

	if (!res)
		return -1;
	rc = strcmp(PQcmdTuples(res), "0") == 0;
	if (rc)
		fprintf(stderr, "error: no push target %s\n", id_or_url);
	else
		printf("removed push target %s\n", id_or_url);
	PQclear(res);
	return rc;
}
