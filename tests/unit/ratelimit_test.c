/* Unit tests for replica/ratelimit.c and replica/backoff.c: unlimited is free, a rate spaces
 * requests (lower bounds only: a loaded machine can only make it slower), concurrent
 * waiters share one budget, a stop flag ends a long wait; backoff doubling, cap, jitter
 * bounds. The unit-test binary links only common/, so the modules are included here. */
#include <stdatomic.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "replica/backoff.c"
#include "replica/ratelimit.c"
#include "tests/unit/unit.h"

static double ratelimit_test_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

UNIT_TEST(ratelimit_unlimited_and_spacing)
{
	struct ratelimit rl;
	double t0;

	ratelimit_init(&rl, 0);
	t0 = ratelimit_test_now();
	for (int i = 0; i < 10000; i++)
		ratelimit_wait(&rl);
	CHECK(ratelimit_test_now() - t0 < 1.0);   /* no sleeping at all */
	ratelimit_set(&rl, 50);
	t0 = ratelimit_test_now();
	for (int i = 0; i < 11; i++)
		ratelimit_wait(&rl);
	CHECK(ratelimit_test_now() - t0 >= 0.2 - 0.005);   /* 10 gaps of 20 ms */
	ratelimit_destroy(&rl);
}

static void *ratelimit_test_worker(void *arg)
{
	for (int i = 0; i < 5; i++)
		ratelimit_wait(arg);
	return NULL;
}

UNIT_TEST(ratelimit_shared_by_threads)
{
	struct ratelimit *rl = ratelimit_for("unit-src", 100);
	pthread_t th[4];
	double t0 = ratelimit_test_now();

	CHECK(rl && ratelimit_for("unit-src", 100) == rl);
	CHECK(ratelimit_for("other-src", 0) != rl);
	if (!rl)
		return;
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, ratelimit_test_worker, rl);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	CHECK(ratelimit_test_now() - t0 >= 0.19 - 0.005);   /* 20 requests, 19 gaps of 10 ms */
}

UNIT_TEST(ratelimit_stop_ends_wait)
{
	struct ratelimit rl;
	atomic_int stop = 0;
	double t0;

	ratelimit_init(&rl, 0.1);   /* one request per 10 s */
	CHECK(ratelimit_wait_stop(&rl, &stop) == 0);
	stop = 1;
	t0 = ratelimit_test_now();
	CHECK(ratelimit_wait_stop(&rl, &stop) == -1);
	CHECK(ratelimit_test_now() - t0 < 5);
	ratelimit_destroy(&rl);
}

UNIT_TEST(backoff_table)
{
	static const struct { double base, cap; int attempt; double want; } t[] = {
		{ 300, 0, 0, 300 }, { 300, 0, 1, 600 }, { 300, 0, 2, 1200 }, { 300, 0, 3, 2400 },
		{ 1, 60, 0, 1 }, { 1, 60, 5, 32 }, { 1, 60, 6, 60 }, { 1, 60, 1000, 60 },
		{ 0, 60, 3, 0 }, { 2, 0, 100000, 1.099511627776e12 },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		CHECK(backoff_delay(t[i].base, t[i].cap, t[i].attempt) == t[i].want);
	for (int i = 0; i < 1000; i++) {
		double j = backoff_jitter(10);

		CHECK(j >= 5 && j <= 10);
	}
	CHECK(backoff_jitter(0) == 0);
}
