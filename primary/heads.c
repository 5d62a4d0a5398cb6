/* heads: see heads.h. A ring of the last HEADS_MAX heads searched linearly: the ones that
 * matter are those of the current generation, a handful at a time. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "primary/heads.h"

struct heads_entry {
	char    *token;
	uint64_t gen;
};

struct heads {
	pthread_mutex_t    mu;
	struct heads_entry e[HEADS_MAX];
	unsigned           next;
};

struct heads *heads_new(void)
{
	struct heads *h = calloc(1, sizeof *h);

	if (!h)
		abort();
	pthread_mutex_init(&h->mu, NULL);
	return h;
}

void heads_free(struct heads *h)
{
	if (!h)
		return;
	for (unsigned i = 0; i < HEADS_MAX; i++)
		free(h->e[i].token);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

void heads_note(struct heads *h, const char *token, uint64_t gen)
{
	char *t = strdup(token);
	struct heads_entry *e;

	if (!t)
		abort();
	pthread_mutex_lock(&h->mu);
	e = &h->e[h->next++ % HEADS_MAX];
	free(e->token);
	e->token = t;
	e->gen = gen;
	pthread_mutex_unlock(&h->mu);
}

int heads_current(struct heads *h, const char *token, uint64_t gen)
{
	int found = 0;

	pthread_mutex_lock(&h->mu);
	for (unsigned i = 0; i < HEADS_MAX && !found; i++)
		found = h->e[i].token && h->e[i].gen == gen && !strcmp(h->e[i].token, token);
	pthread_mutex_unlock(&h->mu);
	return found;
}
