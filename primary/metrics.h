/* metrics: process counters (atomic) and the Prometheus text rendering of /metrics. */
#ifndef TDGL_PRIMARY_METRICS_H
#define TDGL_PRIMARY_METRICS_H
#include <libpq-fe.h>

void metrics_served(long n);
void metrics_page_query(void);      /* one change-page query ran */
void metrics_page_shared(void);     /* a request got its page from another's query */
void metrics_page_skipped(void);    /* a long-poll back at a current head waited unasked */
struct admission;
struct flight;
/* Where /metrics reads the page queries running, queued, turned away, and the requests
 * waiting for another's query (NULL, NULL: none; set before serving, cleared after). */
void metrics_set_page_queries(struct admission *a, struct flight *f);
void metrics_request(unsigned status);
void metrics_longpoll(int delta);
void metrics_push(int ok);
/* Names this process in /metrics (tdgl_process_info{instance=...}): several processes serve
 * one database behind a load balancer, each scraped on its own address. Copied. */
void metrics_set_instance(const char *instance);
/* Renders every metric (database figures read through c, may be NULL). Caller frees. */
char *metrics_render(PGconn *c);
#endif
