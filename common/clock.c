/* clock: see clock.h. */
#include <errno.h>
#include <stdio.h>
#include "common/clock.h"

#define NS_PER_S 1000000000L

void clock_now(struct timespec *t)
{
	clock_gettime(CLOCK_MONOTONIC, t);
}

long long clock_ms(void)
{
	struct timespec t;

	clock_now(&t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void clock_add_ms(struct timespec *t, long ms)
{
	if (ms <= 0)
		return;
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000L;
	if (t->tv_nsec >= NS_PER_S) {
		t->tv_sec++;
		t->tv_nsec -= NS_PER_S;
	}
}

void clock_after(struct timespec *t, long ms)
{
	clock_now(t);
	clock_add_ms(t, ms);
}

static long clock_diff_ms(const struct timespec *a, const struct timespec *b)
{
	return (long)(b->tv_sec - a->tv_sec) * 1000L + (b->tv_nsec - a->tv_nsec) / 1000000L;
}

int clock_due(const struct timespec *t)
{
	struct timespec n;

	clock_now(&n);
	return n.tv_sec > t->tv_sec || (n.tv_sec == t->tv_sec && n.tv_nsec >= t->tv_nsec);
}

long clock_ms_since(const struct timespec *since)
{
	struct timespec n;
	long d;

	clock_now(&n);
	d = clock_diff_ms(since, &n);
	return d > 0 ? d : 0;
}

long clock_ms_until(const struct timespec *t)
{
	struct timespec n;
	long d;

	clock_now(&n);
	d = clock_diff_ms(&n, t);
	return d > 0 ? d : 0;
}

void clock_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

int clock_wait(pthread_cond_t *cv, pthread_mutex_t *mu, const struct timespec *deadline)
{
	int rc = pthread_cond_clockwait(cv, mu, CLOCK_MONOTONIC, deadline);

	return rc == ETIMEDOUT ? ETIMEDOUT : 0;
}

void clock_sleep_ms(long ms)
{
	struct timespec until;
	long left;

	/* relative sleeps against a monotonic deadline: an absolute clock_nanosleep is
	 * reinterpreted by wall-clock shims (it returned at once under libfaketime) */
	clock_after(&until, ms);
	while ((left = clock_ms_until(&until)) > 0) {
		struct timespec d = { left / 1000, (left % 1000) * 1000000L };

		nanosleep(&d, NULL);
	}
}

int clock_iso_utc(time_t t, char *out, size_t len)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		if (len)
			out[0] = '\0';
		return 0;
	}
	return 1;
}

void clock_iso_utc_now_ms(char *out, size_t len)
{
	struct timespec now;
	struct tm tm;
	char ts[CLOCK_ISO_MAX];

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s.%03ldZ", ts, now.tv_nsec / 1000000);
}
