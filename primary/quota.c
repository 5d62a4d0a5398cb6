/* quota: see quota.h. Keys in use are few (one or a few per replica): a small array,
 * searched linearly, entries dropped when their counts return to zero. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "primary/quota.h"

struct quota_entry {
	char *key;
	int held[QUOTA_KINDS];
};

struct quota {
	pthread_mutex_t mu;
	int max[QUOTA_KINDS];
	struct quota_entry *e;
	size_t n, cap;
};

struct quota *quota_new(const int max[QUOTA_KINDS])
{
	struct quota *q = calloc(1, sizeof *q);

	if (!q)
		abort();
	pthread_mutex_init(&q->mu, NULL);
	memcpy(q->max, max, sizeof q->max);
	return q;
}

void quota_free(struct quota *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->n; i++)
		free(q->e[i].key);
	free(q->e);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

/* Call with q->mu held: key's entry, created when create is set; NULL when absent (or out
 * of memory: the caller then lets the request through rather than refuse everyone). */
static struct quota_entry *quota_find(struct quota *q, const char *key, int create)
{
	for (size_t i = 0; i < q->n; i++)
		if (!strcmp(q->e[i].key, key))
			return &q->e[i];
	if (!create)
		return NULL;
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		struct quota_entry *e = realloc(q->e, cap * sizeof *e);

		if (!e)
			return NULL;
		q->e = e;
		q->cap = cap;
	}
	memset(&q->e[q->n], 0, sizeof q->e[q->n]);
	if (!(q->e[q->n].key = strdup(key)))
		return NULL;
	return &q->e[q->n++];
}

int quota_take(struct quota *q, const char *key, enum quota_kind k)
{
	struct quota_entry *e;
	int rc = 0;

	pthread_mutex_lock(&q->mu);
	e = quota_find(q, key, 1);
	if (e && q->max[k] > 0 && e->held[k] >= q->max[k])
		rc = -1;
	else if (e)
		e->held[k]++;
	pthread_mutex_unlock(&q->mu);
	return rc;
}

void quota_give(struct quota *q, const char *key, enum quota_kind k)
{
	struct quota_entry *e;
	int idle = 1;

	pthread_mutex_lock(&q->mu);
	e = quota_find(q, key, 0);
	if (e && e->held[k] > 0)
		e->held[k]--;
	for (int i = 0; e && i < QUOTA_KINDS; i++)
		idle = idle && e->held[i] == 0;
	if (e && idle) {
		free(e->key);
		*e = q->e[--q->n];
	}
	pthread_mutex_unlock(&q->mu);
}
