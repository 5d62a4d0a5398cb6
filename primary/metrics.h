/* metrics: process counters (atomic) and the Prometheus text rendering of /metrics. */
#ifndef TDGL_PRIMARY_METRICS_H
#define TDGL_PRIMARY_METRICS_H
#include <libpq-fe.h>

void metrics_served(long n);
void metrics_page_query(void);      /* one change-page query ran */
void metrics_request(unsigned status);
void metrics_longpoll(int delta);
void metrics_push(int ok);
/* Renders every metric (database figures read through c, may be NULL). Caller frees. */
char *metrics_render(PGconn *c);
#endif
