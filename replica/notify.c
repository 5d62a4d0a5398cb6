/* notify: HMAC verification, timestamp window, replay cache. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/crypto.h"
#include "replica/notify.h"

#define NOTIFY_CACHE 8192
#define NOTIFY_SIG_LEN 71   /* "sha256=" + 64 hex */

struct notify_seen {
	char sig[NOTIFY_SIG_LEN + 1];
	long at;
};

static pthread_mutex_t notify_lock = PTHREAD_MUTEX_INITIALIZER;
static struct notify_seen notify_cache[NOTIFY_CACHE];

int notify_check_time(const char *ts_hdr, long now, char *err, size_t errlen)
{
	char *end = NULL;
	long ts;

	if (!ts_hdr || !*ts_hdr) {
		snprintf(err, errlen, "missing X-TDGL-Timestamp");
		return -1;
	}
	ts = strtol(ts_hdr, &end, 10);
	if (*end || end == ts_hdr || ts <= 0) {
		snprintf(err, errlen, "bad X-TDGL-Timestamp");
		return -1;
	}
	if (ts < now - NOTIFY_WINDOW_S || ts > now + NOTIFY_WINDOW_S) {
		/* says by how much, so a skewed clock on either site is plain to see */
		snprintf(err, errlen, "timestamp %s this replica's clock by %ld s (clock skew?), "
		         "outside the %d s window", ts > now ? "ahead of" : "behind",
		         ts > now ? (ts > LONG_MAX / 2 ? LONG_MAX / 2 : ts - now) : now - ts,
		         NOTIFY_WINDOW_S);
		return -1;
	}
	return 0;
}

int notify_signature_ok(const char *secret, const char *ts_hdr, const char *sig_hdr,
                        const char *body, size_t len)
{
	struct buf msg = { 0 };
	char mac[65], want[NOTIFY_SIG_LEN + 1];
	int ok;

	if (!secret || !ts_hdr || !sig_hdr || strlen(sig_hdr) != NOTIFY_SIG_LEN)
		return 0;
	buf_puts(&msg, ts_hdr);
	buf_puts(&msg, ".");
	buf_append(&msg, body ? body : "", len);
	crypto_hmac_sha256_hex(secret, strlen(secret), msg.data, msg.len, mac);
	snprintf(want, sizeof want, "sha256=%s", mac);
	ok = crypto_str_equal(want, sig_hdr);
	buf_free(&msg);
	return ok;
}

int notify_remember(const char *sig_hdr, long now)
{
	int fresh = 1, empty = -1, oldest = 0;

	pthread_mutex_lock(&notify_lock);
	for (int i = 0; i < NOTIFY_CACHE; i++) {
		struct notify_seen *e = &notify_cache[i];

		if (e->sig[0] && e->at < now - 2 * NOTIFY_WINDOW_S - 60)
			e->sig[0] = '\0';   /* expired: its timestamp can no longer pass */
		if (!e->sig[0]) {
			if (empty < 0)
				empty = i;
			continue;
		}
		if (!strcmp(e->sig, sig_hdr)) {
			fresh = 0;
			break;
		}
		if (e->at < notify_cache[oldest].at || !notify_cache[oldest].sig[0])
			oldest = i;
	}
	if (fresh) {
		int slot = empty >= 0 ? empty : oldest;
		snprintf(notify_cache[slot].sig, sizeof notify_cache[slot].sig, "%s", sig_hdr);
		notify_cache[slot].at = now;
	}
	pthread_mutex_unlock(&notify_lock);
	return fresh;
}
