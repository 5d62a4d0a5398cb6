/* admission: at most `running` page queries at once on this process, up to `queued` more
 * waiting in line; a request finding the line full is turned
 * away at once (the API answers 503 with Retry-After), as is one that waited too long. The
 * cap protects the database's CPU (and the application's own connections) from a crowd of
 * replicas catching up at once; the pool's size only bounds connections. Thread-safe. */
#ifndef TDGL_PRIMARY_ADMISSION_H
#define TDGL_PRIMARY_ADMISSION_H
#include "common/result.h"

struct admission;

/* running >= 1, queued >= 0. */
struct admission *admission_new(int running, int queued);
void admission_free(struct admission *a);     /* nobody may be inside; NULL is fine */
/* Takes a slot, waiting in line up to timeout_ms. RESULT_OK (call admission_leave after
 * the query), or RESULT_BUSY: the line was full, or the wait timed out. */
enum result admission_enter(struct admission *a, int timeout_ms);
void admission_leave(struct admission *a);
/* For /metrics: queries running and waiting now, requests turned away so far. */
void admission_counts(struct admission *a, int *running, int *queued, long long *rejected);
#endif
