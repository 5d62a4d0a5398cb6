/* watch: notices new committed changes without pg_notify. A thread polls the database's
 * snapshot every few ms (the log only when the snapshot changed), but only while someone
 * waits (long-poll) or push targets exist, on a connection of its own. Each time new changes became visible
 * the generation counter grows, waiters wake and the listener (push) is called. */
#ifndef TDGL_PRIMARY_WATCH_H
#define TDGL_PRIMARY_WATCH_H
#include <stdint.h>

struct watch;
typedef void (*watch_listener)(void *ctx, int64_t head);

#define WATCH_POLL_MS_DEFAULT 5
/* Starts the poller thread; it polls every poll_ms (<= 0: the default) while needed. */
struct watch *watch_start(const char *conninfo, int poll_ms);
void watch_stop(struct watch *w);        /* joins the thread, frees w; NULL is fine */
uint64_t watch_generation(struct watch *w);
/* Blocks until the generation differs from gen, or until timeout_ms passed, or the watch is
 * stopping. Holds no database connection. Returns the current generation. */
uint64_t watch_wait(struct watch *w, uint64_t gen, int timeout_ms);
/* Keeps polling even without waiters (push targets exist) and calls fn on every change. */
void watch_set_listener(struct watch *w, watch_listener fn, void *ctx);
void watch_set_always(struct watch *w, int on);
int watch_waiters(struct watch *w);
#endif
