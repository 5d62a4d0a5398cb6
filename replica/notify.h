/* notify: checks of POST /api/notify from the primary. The signature is
 * "sha256=" + hex HMAC-SHA256(push secret, timestamp + "." + body); the timestamp must be
 * within NOTIFY_WINDOW_S of now; a signature already seen is a replay (kept for twice the
 * window, after which the timestamp check refuses it anyway). Thread-safe. */
#ifndef TDGL_REPLICA_NOTIFY_H
#define TDGL_REPLICA_NOTIFY_H
#include <stddef.h>

#define NOTIFY_WINDOW_S 300

/* 0 when ts_hdr is a unix time within the window of now, else -1 with err. */
int notify_check_time(const char *ts_hdr, long now, char *err, size_t errlen);
/* 1 when sig_hdr is the signature of ts_hdr + "." + body under secret (constant time). */
int notify_signature_ok(const char *secret, const char *ts_hdr, const char *sig_hdr,
                        const char *body, size_t len);
/* Records sig as seen. Returns 1 when new, 0 when it was seen before (a replay). */
int notify_remember(const char *sig_hdr, long now);

#endif
