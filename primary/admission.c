/* admission: see admission.h. A counted waiting room on one condition variable: a freed
 * slot goes to whichever waiter wakes first (no strict order; every waiter has a deadline). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "common/clock.h"
#include "primary/admission.h"

struct admission {
	pthread_mutex_t mu;
	pthread_cond_t  freed;      /* a slot was given back */
	int             max_running, max_queued;
	int             running, queued;
	long long       rejected;
};

struct admission *admission_new(int running, int queued)
{
	struct admission *a = calloc(1, sizeof *a);

	if (!a)
		abort();
	pthread_mutex_init(&a->mu, NULL);
	clock_cond_init(&a->freed);
	a->max_running = running > 0 ? running : 1;
	a->max_queued = queued > 0 ? queued : 0;
	return a;
}

void admission_free(struct admission *a)
{
	if (!a)
		return;
	pthread_cond_destroy(&a->freed);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

enum result admission_enter(struct admission *a, int timeout_ms)
{
	struct timespec deadline;
	enum result r = RESULT_BUSY;

	clock_after(&deadline, timeout_ms);
	pthread_mutex_lock(&a->mu);
	/* straight in only when nobody waits: a burst does not overtake the line */
	if (a->queued == 0 && a->running < a->max_running) {
		a->running++;
		r = RESULT_OK;
		goto out;
	}
	if (a->queued >= a->max_queued) {
		a->rejected++;
		goto out;
	}
	a->queued++;
	while (a->running >= a->max_running &&
	       clock_wait(&a->freed, &a->mu, &deadline) != ETIMEDOUT)
		;
	a->queued--;
	if (a->running < a->max_running) {
		a->running++;
		r = RESULT_OK;
	} else {
		a->rejected++;
	}
out:
	pthread_mutex_unlock(&a->mu);
	return r;
}

void admission_leave(struct admission *a)
{
	pthread_mutex_lock(&a->mu);
	a->running--;
	pthread_cond_broadcast(&a->freed);
	pthread_mutex_unlock(&a->mu);
}

void admission_counts(struct admission *a, int *running, int *queued, long long *rejected)
{
	pthread_mutex_lock(&a->mu);
	*running = a->running;
	*queued = a->queued;
	*rejected = a->rejected;
	pthread_mutex_unlock(&a->mu);
}
