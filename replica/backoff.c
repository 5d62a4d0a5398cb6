/* backoff: see backoff.h. */
#include <stdint.h>
#include <time.h>
#include "replica/backoff.h"

double backoff_delay(double base, double cap, int attempt)
{
	double d = base;

	if (base <= 0)
		return 0;
	for (int i = 0; i < attempt && (cap <= 0 || d < cap) && d < 1e12; i++)
		d *= 2;
	return cap > 0 && d > cap ? cap : d;
}

double backoff_jitter(double delay)
{
	static __thread uint64_t state;
	uint64_t x;

	if (!state) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		state = ((uint64_t)ts.tv_nsec << 20 ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts) | 1;
	}
	x = state;   /* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	state = x;
	x *= 0x2545F4914F6CDD1DULL;
	return delay / 2 + delay / 2 * ((double)(x >> 11) / (double)(1ULL << 53));
}
