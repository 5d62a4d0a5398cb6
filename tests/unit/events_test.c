/* Unit tests for replica/events.c: wire format, fan-out, bounded queues with a `dropped`
 * note in place of lost events, partial reads, keep-alive, unsubscribe and shutdown.
 * The unit-test binary links only common/, so the module is included here. */
#include <stdlib.h>
#include <string.h>

#include "replica/events.c"
#include "tests/unit/unit.h"

/* Reads everything s has queued (stops at the first empty read) into a malloc'd string. */
static char *events_test_drain(struct events_sub *s, size_t chunk)
{
	char *all = calloc(1, 1), buf[8192];
	size_t len = 0;
	long n;

	while ((n = events_read(s, buf, chunk < sizeof buf ? chunk : sizeof buf)) > 0) {
		all = realloc(all, len + (size_t)n + 1);
		memcpy(all + len, buf, (size_t)n);
		len += (size_t)n;
		all[len] = '\0';
	}
	return all;
}

static int events_test_count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

UNIT_TEST(events_publish_without_subscribers)
{
	cJSON *p = cJSON_CreateObject();

	cJSON_AddNumberToObject(p, "run", 1);
	CHECK(events_publish("run.started", p) == 0);   /* payload freed: ASan would say */
	CHECK(events_publish("bad type\n", cJSON_CreateObject()) == 0);
	CHECK(events_publish("run.completed", NULL) == 0);
}

UNIT_TEST(events_fan_out_and_format)
{
	struct events_sub *a = events_subscribe(), *b = events_subscribe();
	cJSON *p = cJSON_CreateObject();
	char *ta, *tb, want[128];
	long id;

	CHECK(a && b);
	if (!a || !b)
		return;
	CHECK(events_subscribers() == 2);
	cJSON_AddStringToObject(p, "source", "s1\nx");
	CHECK(events_publish("run.completed", p) == 2);
	ta = events_test_drain(a, 4096);
	tb = events_test_drain(b, 3);   /* tiny reads reassemble the same bytes */
	id = events_seq;
	snprintf(want, sizeof want,
	         ": connected\nretry: 3000\n\nid: %ld\nevent: run.completed\ndata: "
	         "{\"source\":\"s1\\nx\"}\n\n", id);
	CHECK_STR(ta, want);
	CHECK_STR(tb, want);
	free(ta);
	free(tb);
	events_unsubscribe(a);
	events_unsubscribe(b);
	CHECK(events_subscribers() == 0);
}

UNIT_TEST(events_slow_subscriber_drops_not_blocks)
{
	struct events_sub *slow = events_subscribe();
	char *text, *tail;

	CHECK(slow != NULL);
	if (!slow)
		return;
	/* the hello note holds one slot: 255 events fit, 45 are lost */
	for (int i = 0; i < 300; i++)
		events_publish("conflict.created", cJSON_CreateNumber(i));
	text = events_test_drain(slow, 4096);
	CHECK(events_test_count(text, "event: conflict.created\n") == EVENTS_QUEUE_MAX - 1);
	CHECK(events_test_count(text, "event: dropped\ndata: {\"dropped\":45}\n\n") == 1);
	tail = strstr(text, "event: dropped");
	CHECK(tail && !strstr(tail, "conflict.created"));   /* the note comes after the kept ones */
	free(text);

	/* lost again, then space frees up: the note is queued before the next event */
	for (int i = 0; i < EVENTS_QUEUE_MAX + 3; i++)
		events_publish("run.started", NULL);
	text = events_test_drain(slow, 100000);   /* reads the full queue */
	free(text);
	CHECK(slow->dropped == 0);
	for (int i = 0; i < EVENTS_QUEUE_MAX + 3; i++)
		events_publish("run.started", NULL);
	{
		char buf[4096];

		CHECK(events_read(slow, buf, sizeof buf) > 0);   /* frees two slots */
		CHECK(events_read(slow, buf, sizeof buf) > 0);
	}
	events_publish("run.failed", NULL);
	text = events_test_drain(slow, 4096);
	tail = strstr(text, "event: dropped\ndata: {\"dropped\":3}");
	CHECK(tail && strstr(tail, "event: run.failed"));
	free(text);
	events_unsubscribe(slow);
}

UNIT_TEST(events_keepalive_and_shutdown)
{
	struct events_sub *s = events_subscribe();
	char *text, buf[64];

	CHECK(s != NULL);
	if (!s)
		return;
	free(events_test_drain(s, 4096));
	s->last_write.tv_sec -= EVENTS_KEEPALIVE_S;
	text = events_test_drain(s, 4096);
	CHECK_STR(text, ": keep-alive\n\n");
	free(text);
	CHECK(events_read(s, buf, sizeof buf) == 0);   /* nothing: waits briefly, returns 0 */
	events_shutdown();
	CHECK(events_read(s, buf, sizeof buf) == -1);
	CHECK(events_subscribe() == NULL);
	events_unsubscribe(s);
	events_down = 0;   /* other tests in this process */
}
