/* flight: see flight.h. Runs in flight are listed in a small hash table by key; a finished
 * run leaves the table at once (its value stays alive for the callers holding it). One
 * mutex guards the table and every call's state; runs are done outside it. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "primary/flight.h"

#define FLIGHT_BUCKETS 256

struct flight_call {
	struct flight_call *next;    /* in its bucket while listed */
	char               *key;
	uint64_t            gen;
	uint64_t            mark;    /* when it started (flight_mark) */
	void               *value;
	int                 done;
	int                 listed;
	int                 refs;    /* callers holding it: the runner and those who joined */
	pthread_cond_t      finished;
};

struct flight {
	pthread_mutex_t     mu;
	flight_free_fn      free_value;
	int                 joined;  /* callers waiting for another's run */
	uint64_t            marks;   /* runs started so far */
	struct flight_call *bucket[FLIGHT_BUCKETS];
};

static unsigned flight_hash(const char *key)
{
	unsigned h = 2166136261u;    /* FNV-1a */

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % FLIGHT_BUCKETS;
}

struct flight *flight_new(flight_free_fn free_value)
{
	struct flight *f = calloc(1, sizeof *f);

	if (!f)
		abort();
	pthread_mutex_init(&f->mu, NULL);
	f->free_value = free_value;
	return f;
}

void flight_free(struct flight *f)
{
	if (!f)
		return;
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* With f->mu held: unlists call (it stays alive for its holders). */
static void flight_unlist(struct flight *f, struct flight_call *call)
{
	struct flight_call **p = &f->bucket[flight_hash(call->key)];

	while (*p && *p != call)
		p = &(*p)->next;
	if (*p)
		*p = call->next;
	call->next = NULL;
	call->listed = 0;
}

/* With f->mu held: the listed run of key (at most one per key). */
static struct flight_call *flight_find(struct flight *f, const char *key)
{
	struct flight_call *c = f->bucket[flight_hash(key)];

	while (c && strcmp(c->key, key) != 0)
		c = c->next;
	return c;
}

uint64_t flight_mark(struct flight *f)
{
	uint64_t m;

	pthread_mutex_lock(&f->mu);
	m = f->marks;
	pthread_mutex_unlock(&f->mu);
	return m;
}

struct flight_call *flight_do(struct flight *f, const char *key, uint64_t gen, uint64_t since,
                              flight_run_fn run, void *ctx, int *led)
{
	struct flight_call *call;
	void *value;

	pthread_mutex_lock(&f->mu);
	call = flight_find(f, key);
	if (call && call->gen >= gen && call->mark > since) {
		/* Joins the run: it started after the caller did, and its snapshot is taken
		 * after gen was reached. */
		call->refs++;
		f->joined++;
		while (!call->done)
			pthread_cond_wait(&call->finished, &f->mu);
		f->joined--;
		*led = 0;
		goto out;
	}
	if (call)    /* a run too early for this caller: its callers keep it, this one runs anew */
		flight_unlist(f, call);
	call = calloc(1, sizeof *call);
	if (!call || !(call->key = strdup(key)))
		abort();
	call->gen = gen;
	call->mark = ++f->marks;
	call->refs = 1;
	call->listed = 1;
	pthread_cond_init(&call->finished, NULL);
	{
		struct flight_call **b = &f->bucket[flight_hash(key)];
		call->next = *b;
		*b = call;
	}
	pthread_mutex_unlock(&f->mu);
	value = run(ctx);
	pthread_mutex_lock(&f->mu);
	call->value = value;
	call->done = 1;
	if (call->listed)
		flight_unlist(f, call);
	pthread_cond_broadcast(&call->finished);
	*led = 1;
out:
	pthread_mutex_unlock(&f->mu);
	return call;
}

const void *flight_value(const struct flight_call *call)
{
	return call->value;
}

uint64_t flight_generation(const struct flight_call *call)
{
	return call->gen;
}

void flight_release(struct flight *f, struct flight_call *call)
{
	int last;

	if (!call)
		return;
	pthread_mutex_lock(&f->mu);
	last = --call->refs == 0;
	pthread_mutex_unlock(&f->mu);
	if (last) {     /* unlisted (done) and nobody else holds it */
		if (f->free_value)
			f->free_value(call->value);
		pthread_cond_destroy(&call->finished);
		free(call->key);
		free(call);
	}
}

int flight_joined(struct flight *f)
{
	int n;

	pthread_mutex_lock(&f->mu);
	n = f->joined;
	pthread_mutex_unlock(&f->mu);
	return n;
}
