/* ratelimit: slot reservation (GCRA with a burst of one); see ratelimit.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/clock.h"
#include "replica/ratelimit.h"

#define RATELIMIT_SLICE_NS 100000000L

struct ratelimit_entry {
	char *source;
	struct ratelimit rl;
	struct ratelimit_entry *next;
};

static pthread_mutex_t ratelimit_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ratelimit_entry *ratelimit_registry;

static int64_t ratelimit_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

void ratelimit_init(struct ratelimit *rl, double per_second)
{
	memset(rl, 0, sizeof *rl);
	pthread_mutex_init(&rl->mu, NULL);
	rl->rate = per_second;
}

void ratelimit_set(struct ratelimit *rl, double per_second)
{
	pthread_mutex_lock(&rl->mu);
	rl->rate = per_second;
	pthread_mutex_unlock(&rl->mu);
}

void ratelimit_destroy(struct ratelimit *rl)
{
	pthread_mutex_destroy(&rl->mu);
}

int ratelimit_wait_stop(struct ratelimit *rl, const atomic_int *stop)
{
	struct timespec now;
	int64_t start, now_ns;

	clock_now(&now);
	now_ns = ratelimit_ns(&now);
	pthread_mutex_lock(&rl->mu);
	if (rl->rate <= 0) {
		pthread_mutex_unlock(&rl->mu);
		return 0;
	}
	start = ratelimit_ns(&rl->next) > now_ns ? ratelimit_ns(&rl->next) : now_ns;
	{
		int64_t next = start + (int64_t)(1e9 / rl->rate);

		rl->next.tv_sec = (time_t)(next / 1000000000);
		rl->next.tv_nsec = (long)(next % 1000000000);
	}
	pthread_mutex_unlock(&rl->mu);
	while (now_ns < start) {
		int64_t left = start - now_ns;
		struct timespec d = { 0, left < RATELIMIT_SLICE_NS ? (long)left : RATELIMIT_SLICE_NS };

		if (stop && *stop)
			return -1;
		nanosleep(&d, NULL);
		clock_now(&now);
		now_ns = ratelimit_ns(&now);
	}
	return 0;
}

void ratelimit_wait(struct ratelimit *rl)
{
	ratelimit_wait_stop(rl, NULL);
}

struct ratelimit *ratelimit_for(const char *source, double per_second)
{
	struct ratelimit_entry *e;

	pthread_mutex_lock(&ratelimit_mu);
	for (e = ratelimit_registry; e; e = e->next)
		if (strcmp(e->source, source) == 0)
			break;
	if (!e && (e = calloc(1, sizeof *e))) {
		if (!(e->source = strdup(source))) {
			free(e);
			e = NULL;
		} else {
			ratelimit_init(&e->rl, per_second);
			e->next = ratelimit_registry;
			ratelimit_registry = e;
		}
	}
	pthread_mutex_unlock(&ratelimit_mu);
	if (!e)
		return NULL;
	ratelimit_set(&e->rl, per_second);
	return &e->rl;
}
