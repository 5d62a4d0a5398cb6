/* http_guard: see http_guard.h. One mutex guards the connection list; the thread scans it
 * once a second, so deadlines hold to within a second. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include "common/clock.h"
#include "common/http_guard.h"
#include "common/log.h"

struct http_guard_conn {
	int fd;
	time_t deadline;  /* CLOCK_MONOTONIC seconds; 0 = none */
	struct http_guard_conn *prev, *next;
};

struct http_guard {
	pthread_mutex_t lock;
	pthread_cond_t  wake;
	pthread_t       thread;
	unsigned        timeout_s;
	int             stopping;
	struct http_guard_conn *conns;
};

static unsigned long http_guard_closed;   /* __atomic */
static struct log_limit http_guard_log = LOG_LIMIT_INIT;

unsigned long http_guard_closed_total(void)
{
	return __atomic_load_n(&http_guard_closed, __ATOMIC_RELAXED);
}

static time_t http_guard_now(void)
{
	return (time_t)(clock_ms() / 1000);
}

static void *http_guard_main(void *arg)
{
	struct http_guard *g = arg;
	struct timespec tick;

	pthread_mutex_lock(&g->lock);
	while (!g->stopping) {
		time_t now = http_guard_now();
		int closed = 0;

		for (struct http_guard_conn *c = g->conns; c; c = c->next)
			if (c->deadline && now >= c->deadline) {
				shutdown(c->fd, SHUT_RDWR);  /* its thread sees EOF and closes it */
				c->deadline = 0;
				closed++;
			}
		if (closed) {
			__atomic_add_fetch(&http_guard_closed, (unsigned long)closed, __ATOMIC_RELAXED);
			log_limited(&http_guard_log, LOG_INFO, "http: closed %d connection(s) that sent "
			            "no complete request within %u s", closed, g->timeout_s);
		}
		clock_after(&tick, 1000);
		while (!g->stopping && clock_wait(&g->wake, &g->lock, &tick) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

struct http_guard *http_guard_start(unsigned timeout_s)
{
	struct http_guard *g = calloc(1, sizeof *g);

	if (!g)
		abort();
	g->timeout_s = timeout_s;
	pthread_mutex_init(&g->lock, NULL);
	clock_cond_init(&g->wake);
	if (pthread_create(&g->thread, NULL, http_guard_main, g) != 0) {
		pthread_cond_destroy(&g->wake);
		pthread_mutex_destroy(&g->lock);
		free(g);
		g = NULL;
	}
	return g;
}

void http_guard_stop(struct http_guard *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->stopping = 1;
	pthread_cond_signal(&g->wake);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->thread, NULL);
	while (g->conns)  /* only if a connection outlived the server: never expected */
		http_guard_conn_end(g, g->conns);
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

struct http_guard_conn *http_guard_conn_start(struct http_guard *g, int fd)
{
	struct http_guard_conn *c = calloc(1, sizeof *c);

	if (!c)
		abort();
	c->fd = fd;
	c->deadline = http_guard_now() + g->timeout_s;
	pthread_mutex_lock(&g->lock);
	c->next = g->conns;
	if (g->conns)
		g->conns->prev = c;
	g->conns = c;
	pthread_mutex_unlock(&g->lock);
	return c;
}

void http_guard_conn_arm(struct http_guard *g, struct http_guard_conn *c, int armed)
{
	pthread_mutex_lock(&g->lock);
	c->deadline = armed ? http_guard_now() + g->timeout_s : 0;
	pthread_mutex_unlock(&g->lock);
}

void http_guard_conn_end(struct http_guard *g, struct http_guard_conn *c)
{
	pthread_mutex_lock(&g->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		g->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&g->lock);
	free(c);
}
