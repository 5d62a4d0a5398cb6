/* backoff: exponential backoff with jitter, for retrying failed changes and failed pulls.
 * Pure functions; the jitter uses a per-thread generator (thread-safe). */
#ifndef TDGL_REPLICA_BACKOFF_H
#define TDGL_REPLICA_BACKOFF_H

/* min(cap, base * 2^attempt) seconds; attempt counts from 0. base/cap <= 0 give 0/no cap. */
double backoff_delay(double base, double cap, int attempt);
/* "Equal jitter": a uniformly random delay in [delay/2, delay], so many replicas that failed
 * together do not retry in lock-step. */
double backoff_jitter(double delay);

#endif
