/* ratelimit: requests per second to a primary, per source (a token bucket holding one
 * token, so requests are spaced 1/rate apart; rate 0 means unlimited). Waiters are served
 * in the order they arrive: each reserves the next free slot under the lock, then sleeps
 * outside it. Thread-safe. */
#ifndef TDGL_REPLICA_RATELIMIT_H
#define TDGL_REPLICA_RATELIMIT_H
#include <stdatomic.h>
#include <pthread.h>
#include <time.h>

struct ratelimit {
	pthread_mutex_t mu;
	double rate;              /* requests per second; <= 0: unlimited */
	struct timespec next;     /* CLOCK_MONOTONIC: when the next request may start */
};

void ratelimit_init(struct ratelimit *rl, double per_second);
void ratelimit_set(struct ratelimit *rl, double per_second);
void ratelimit_destroy(struct ratelimit *rl);
/* Blocks until the caller may send one request. */
void ratelimit_wait(struct ratelimit *rl);
/* Same, but returns -1 early once *stop is non-zero (checked every 100 ms); else 0. */
int ratelimit_wait_stop(struct ratelimit *rl, const atomic_int *stop);
/* The process-wide limiter of `source` (created on first use, never freed), its rate set
 * to per_second. NULL only when out of memory. */
struct ratelimit *ratelimit_for(const char *source, double per_second);

#endif
