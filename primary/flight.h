/* flight: one run of a query for every request that asks for the same result at the same
 * time ("single flight"). The first caller for a key runs it; callers arriving while it
 * runs wait for it (holding no database connection) and share its value, which is
 * reference-counted and freed by the last caller to release it. A value is shared only
 * while its run is in flight, never after: a later caller runs the query again.
 *
 * A caller joins a run only if its snapshot is late enough for it, on two counts:
 *  - the run started after the caller did (flight_mark, read when the caller's request
 *    arrived): whatever was committed before the request arrived is in the result, as if the
 *    caller had run the query itself (a client that commits, then asks, sees its commit);
 *  - the run's generation (read by its runner before the run started, so its database
 *    snapshot is taken after that generation was reached) is >= the caller's: a caller woken
 *    by changes that became visible at generation g never gets a result taken before g.
 * Thread-safe. */
#ifndef TDGL_PRIMARY_FLIGHT_H
#define TDGL_PRIMARY_FLIGHT_H
#include <stdint.h>

struct flight;
struct flight_call;

/* Computes a run's value, called without any flight lock held. The value carries its own
 * outcome, errors included: every caller of the run reads the same one. It is owned by the
 * flight afterwards (freed with free_value; NULL is a valid value). */
typedef void *(*flight_run_fn)(void *ctx);
typedef void (*flight_free_fn)(void *value);

/* free_value frees values when their last caller releases them. */
struct flight *flight_new(flight_free_fn free_value);
/* Every call must have been released. NULL is fine. */
void flight_free(struct flight *f);

/* Where runs started so far end: runs started later have a greater mark. */
uint64_t flight_mark(struct flight *f);
/* The value for key at generation gen for a caller that started at mark since: joins a run
 * of key in flight that started after since and whose generation is >= gen, or runs
 * run(ctx) itself. Returns the call (never NULL), which the caller must give to
 * flight_release; *led is set to 1 when this caller ran it, 0 when it shared another's. */
struct flight_call *flight_do(struct flight *f, const char *key, uint64_t gen, uint64_t since,
                              flight_run_fn run, void *ctx, int *led);
/* The call's value (read-only; valid until flight_release) and its run's generation. */
const void *flight_value(const struct flight_call *call);
uint64_t flight_generation(const struct flight_call *call);
void flight_release(struct flight *f, struct flight_call *call);
/* Callers waiting now for a run of another caller (a gauge for /metrics and tests). */
int flight_joined(struct flight *f);
#endif
