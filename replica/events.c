/* events: SSE hub; see events.h.
 *
 * One mutex guards the subscriber list, every queue and the message reference counts: all
 * work under it is a few pointer moves, so a publisher never waits on a slow client (the
 * client's socket writes happen outside the lock, in its own connection thread).
 * A message is formatted once and shared by reference between the queues. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "replica/events.h"

#define EVENTS_WAIT_MS 250

struct events_msg {
	int    refs;
	size_t len;
	char   text[];
};

struct events_sub {
	struct events_sub *prev, *next;
	pthread_cond_t cond;
	struct events_msg *q[EVENTS_QUEUE_MAX];
	unsigned head, count;
	long dropped;                 /* lost since the last `dropped` note was queued */
	struct events_msg *cur;       /* being written */
	size_t cur_off;
	struct timespec last_write;
};

static pthread_mutex_t events_mu = PTHREAD_MUTEX_INITIALIZER;
static struct events_sub *events_list;
static int events_nsubs;
static long events_seq;
static int events_down;

/* Under events_mu. */
static void events_release(struct events_msg *m)
{
	if (m && --m->refs == 0)
		free(m);
}

static struct events_msg *events_msg_new(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static struct events_msg *events_msg_new(const char *fmt, ...)
{
	struct events_msg *m;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(m = malloc(sizeof *m + (size_t)n + 1)))
		return NULL;
	va_start(ap, fmt);
	vsnprintf(m->text, (size_t)n + 1, fmt, ap);
	va_end(ap);
	m->len = (size_t)n;
	m->refs = 1;
	return m;
}

/* Under events_mu: appends m (adding a reference) to s's queue; 0, or -1 when full. */
static int events_push(struct events_sub *s, struct events_msg *m)
{
	if (s->count >= EVENTS_QUEUE_MAX)
		return -1;
	s->q[(s->head + s->count) % EVENTS_QUEUE_MAX] = m;
	s->count++;
	m->refs++;
	return 0;
}

/* Under events_mu: a `dropped` note carrying the count, queued where the loss happened. */
static struct events_msg *events_dropped_msg(long n)
{
	return events_msg_new("event: dropped\ndata: {\"dropped\":%ld}\n\n", n);
}

static int events_type_ok(const char *type)
{
	if (!type || !*type || strlen(type) > 64)
		return 0;
	for (const char *c = type; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			return 0;
	return 1;
}

int events_publish(const char *type, cJSON *payload)
{
	struct events_msg *m = NULL;
	char *data = NULL;
	int n = 0;

	if (!events_type_ok(type)) {
		log_warn("events: refusing event type \"%.64s\"", type ? type : "(null)");
		goto out;
	}
	/* cJSON's compact print has no raw newlines, so one data: line carries it. */
	if (!(data = payload ? json_print(payload) : strdup("{}"))) {
		log_error("events: %s: out of memory", type);
		goto out;
	}
	pthread_mutex_lock(&events_mu);
	m = events_msg_new("id: %ld\nevent: %s\ndata: %s\n\n", ++events_seq, type, data);
	for (struct events_sub *s = events_list; m && s; s = s->next) {
		if (s->dropped > 0 && EVENTS_QUEUE_MAX - s->count >= 2) {
			struct events_msg *note = events_dropped_msg(s->dropped);

			if (note) {
				events_push(s, note);
				events_release(note);
				s->dropped = 0;
			}
		}
		if (s->dropped > 0 || events_push(s, m) != 0)
			s->dropped++;   /* a slow subscriber loses events; the publisher never waits */
		else
			n++;
		pthread_cond_signal(&s->cond);
	}
	events_release(m);
	pthread_mutex_unlock(&events_mu);
out:
	free(data);
	cJSON_Delete(payload);
	return n;
}

struct events_sub *events_subscribe(void)
{
	struct events_sub *s = NULL;
	struct events_msg *hello = NULL;

	pthread_mutex_lock(&events_mu);
	if (events_down || events_nsubs >= EVENTS_SUBS_MAX || !(s = calloc(1, sizeof *s)))
		goto out;
	clock_cond_init(&s->cond);
	clock_now(&s->last_write);
	/* A first write makes the headers go out now and tells clients how soon to reconnect. */
	if ((hello = events_msg_new(": connected\nretry: 3000\n\n"))) {
		events_push(s, hello);
		events_release(hello);
	}
	s->next = events_list;
	if (events_list)
		events_list->prev = s;
	events_list = s;
	events_nsubs++;
out:
	pthread_mutex_unlock(&events_mu);
	return s;
}

void events_unsubscribe(struct events_sub *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&events_mu);
	if (s->prev)
		s->prev->next = s->next;
	else
		events_list = s->next;
	if (s->next)
		s->next->prev = s->prev;
	events_nsubs--;
	while (s->count) {
		events_release(s->q[s->head]);
		s->head = (s->head + 1) % EVENTS_QUEUE_MAX;
		s->count--;
	}
	events_release(s->cur);
	pthread_mutex_unlock(&events_mu);
	pthread_cond_destroy(&s->cond);
	free(s);
}

/* Under events_mu: the next thing to write, if any, becomes s->cur. */
static int events_next_locked(struct events_sub *s)
{
	struct timespec now;

	if (s->cur)
		return 1;
	if (s->count) {
		s->cur = s->q[s->head];
		s->head = (s->head + 1) % EVENTS_QUEUE_MAX;
		s->count--;
		s->cur_off = 0;
		return 1;
	}
	if (s->dropped > 0 && (s->cur = events_dropped_msg(s->dropped))) {
		s->dropped = 0;
		s->cur_off = 0;
		return 1;
	}
	clock_now(&now);
	if (now.tv_sec - s->last_write.tv_sec >= EVENTS_KEEPALIVE_S &&
	    (s->cur = events_msg_new(": keep-alive\n\n"))) {
		s->cur_off = 0;
		return 1;
	}
	return 0;
}

long events_read(struct events_sub *s, char *out, size_t max)
{
	long n = 0;

	pthread_mutex_lock(&events_mu);
	if (!events_next_locked(s)) {
		struct timespec until;

		if (events_down) {
			n = -1;
			goto out;
		}
		clock_after(&until, EVENTS_WAIT_MS);
		clock_wait(&s->cond, &events_mu, &until);
		if (!events_next_locked(s)) {
			n = events_down ? -1 : 0;
			goto out;
		}
	}
	n = (long)(s->cur->len - s->cur_off < max ? s->cur->len - s->cur_off : max);
	memcpy(out, s->cur->text + s->cur_off, (size_t)n);
	s->cur_off += (size_t)n;
	if (s->cur_off == s->cur->len) {
		events_release(s->cur);
		s->cur = NULL;
	}
	clock_now(&s->last_write);
out:
	pthread_mutex_unlock(&events_mu);
	return n;
}

int events_subscribers(void)
{
	int n;

	pthread_mutex_lock(&events_mu);
	n = events_nsubs;
	pthread_mutex_unlock(&events_mu);
	return n;
}

void events_shutdown(void)
{
	pthread_mutex_lock(&events_mu);
	events_down = 1;
	for (struct events_sub *s = events_list; s; s = s->next)
		pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&events_mu);
}

static long events_stream_next(void *ctx, char *out, size_t max)
{
	return events_read(ctx, out, max);
}

static void events_stream_done(void *ctx)
{
	events_unsubscribe(ctx);
}

int events_serve(struct http_req *req)
{
	struct events_sub *s = events_subscribe();

	if (!s) {
		http_reply_error(req, 503, "too many event subscribers");
		return -1;
	}
	/* On failure http_reply_stream calls events_stream_done itself. */
	return http_reply_stream(req, "text/event-stream", events_stream_next,
	                         events_stream_done, s);
}
