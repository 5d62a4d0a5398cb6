/* events: the process-wide Server-Sent Events hub behind GET /api/events.
 *
 * events_publish never blocks on a subscriber: each subscriber has a bounded queue
 * (EVENTS_QUEUE_MAX); when it is full the event is dropped for that subscriber only and,
 * once its queue drains, the subscriber gets `event: dropped` with the count lost. A
 * subscriber with nothing to read gets a `: keep-alive` comment every EVENTS_KEEPALIVE_S.
 * Wire format per event: "id: <n>\nevent: <type>\ndata: <compact JSON>\n\n".
 * A subscriber is removed when its client goes away (the HTTP stream ends).
 * Thread-safe. */
#ifndef TDGL_REPLICA_EVENTS_H
#define TDGL_REPLICA_EVENTS_H
#include <stddef.h>
#include <cjson/cJSON.h>
#include "common/http.h"

#define EVENTS_QUEUE_MAX   256
#define EVENTS_KEEPALIVE_S 15
#define EVENTS_SUBS_MAX    64     /* more subscribers are refused with 503 */

struct events_sub;

/* Queues an event of `type` ("run.started", ...) for every subscriber. Takes ownership of
 * payload (may be NULL: data is {}). Returns the number of subscribers it was queued for. */
int events_publish(const char *type, cJSON *payload);

/* Answers req with the event stream (text/event-stream) until the client leaves or
 * events_shutdown() is called. Returns 0, or -1 when refused (a 503 JSON reply is queued). */
int events_serve(struct http_req *req);

/* Lower level, for events_serve and tests: a subscriber and its reader. events_read has
 * the http_stream_next contract: bytes written, 0 when nothing yet (after waiting up to
 * ~250 ms), -1 when the hub shut down. */
struct events_sub *events_subscribe(void);
long events_read(struct events_sub *s, char *out, size_t max);
void events_unsubscribe(struct events_sub *s);

/* Number of current subscribers. */
int events_subscribers(void);
/* Ends every stream (process shutdown). */
void events_shutdown(void);

#endif
