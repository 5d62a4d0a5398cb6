/* http_guard: request deadlines for the HTTP server (used by http.c only). A connection must
 * deliver each complete request (headers and body) within `timeout_s` of connecting or of
 * finishing its previous request; a background thread shuts down the sockets of those that
 * do not (slowloris, slow POST). Idle timeouts alone do not stop a client that trickles one
 * byte every few seconds. Handlers run without a deadline (long-polls, event streams). */
#ifndef TDGL_HTTP_GUARD_H
#define TDGL_HTTP_GUARD_H

struct http_guard;
struct http_guard_conn;

struct http_guard *http_guard_start(unsigned timeout_s);
/* Stops the thread and frees the guard; every connection must have ended first. */
void http_guard_stop(struct http_guard *g);
/* Registers a connection's socket; its deadline starts now. Returns its handle. */
struct http_guard_conn *http_guard_conn_start(struct http_guard *g, int fd);
/* armed = 1: deadline restarts now; armed = 0: no deadline (handler running). */
void http_guard_conn_arm(struct http_guard *g, struct http_guard_conn *c, int armed);
/* Connections closed for being too slow, since the process started (every guard). */
unsigned long http_guard_closed_total(void);
/* Unregisters, before the socket is closed (so a reused descriptor is never shut down). */
void http_guard_conn_end(struct http_guard *g, struct http_guard_conn *c);

#endif
