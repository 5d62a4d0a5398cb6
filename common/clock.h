/* clock: the one clock every deadline, interval and timed wait uses (CLOCK_MONOTONIC).
 * The wall clock (time(2)) is only for what people read or schedule: log stamps, run times,
 * cron plans, push signature windows. A wall clock that jumps or is skewed (NTP, libfaketime)
 * therefore never shortens or stretches a wait.
 *
 * Condition variables made by clock_cond_init are waited on with clock_wait, which asks for
 * CLOCK_MONOTONIC explicitly (pthread_cond_clockwait): pthread_cond_timedwait's deadline is
 * reinterpreted by wall-clock shims such as libfaketime, which turned every wait of a skewed
 * process into a busy loop. */
#ifndef TDGL_CLOCK_H
#define TDGL_CLOCK_H
#include <pthread.h>
#include <time.h>

/* Now on the monotonic clock. */
void clock_now(struct timespec *t);
/* Now on the monotonic clock in milliseconds (for deadlines kept as numbers). */
long long clock_ms(void);
/* *t = now + ms (ms <= 0: now). */
void clock_after(struct timespec *t, long ms);
/* *t += ms. */
void clock_add_ms(struct timespec *t, long ms);
/* Whether the monotonic clock has reached t. */
int clock_due(const struct timespec *t);
/* Milliseconds from `since` to now (never negative). */
long clock_ms_since(const struct timespec *since);
/* Milliseconds from now to t (0 when due). */
long clock_ms_until(const struct timespec *t);
/* Initializes a condition variable for clock_wait. */
void clock_cond_init(pthread_cond_t *cv);
/* Waits on cv (mu held) until signalled or the monotonic deadline; returns 0 or ETIMEDOUT.
 * Like any condition wait it may return early: callers re-check their predicate. */
int clock_wait(pthread_cond_t *cv, pthread_mutex_t *mu, const struct timespec *deadline);
/* Sleeps ms milliseconds (monotonic, resumed after signals). */
void clock_sleep_ms(long ms);

/* Wall-clock instants as people read them (ISO 8601, UTC): "2026-01-02T03:04:05Z" (0 when
 * t does not convert), and the current one with milliseconds, "2026-01-02T03:04:05.678Z"
 * (log stamps). out holds at least CLOCK_ISO_MAX bytes. */
#define CLOCK_ISO_MAX 32
int clock_iso_utc(time_t t, char *out, size_t len);
void clock_iso_utc_now_ms(char *out, size_t len);

#endif
