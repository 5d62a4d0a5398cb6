/* settings: changing a source after it was added (`tdgl-replica source set`, and
 * PATCH /api/sources/<name>): schedule (poll interval, or a cron expression in a time zone),
 * rate limit, retry base delay and maximum, batch size, enabled, and per source table the
 * control flags insert_enabled, update_enabled, delete_enabled, update_without_changes.
 * A patch is a JSON object; every key is optional, unknown keys are refused:
 *   {"poll_interval":60, "cron":"30 4 * * 1-5"|null, "tz":"America/New_York",
 *    "rate_limit":2.5 (0 = unlimited), "retry_base_s":300, "max_retries":3,
 *    "batch_size":100, "enabled":true,
 *    "tables":{"customer":{"insert_enabled":false, ...}}}
 * or, for one table, {"table":"customer","insert_enabled":false,...}.
 * Everything is checked before anything is written (one transaction). A bad cron
 * expression or zone is refused with the parser's message naming the field.
 * Returned cJSON is owned by the caller. */
#ifndef TDGL_REPLICA_SETTINGS_H
#define TDGL_REPLICA_SETTINGS_H
#include <stddef.h>
#include <time.h>
#include <libpq-fe.h>
#include <cjson/cJSON.h>
#include "common/result.h"

/* Applies patch to source `name`. RESULT_OK (*out = settings_get), RESULT_INVALID a bad
 * patch, RESULT_NOT_FOUND unknown source, RESULT_INTERNAL; err holds the message when not
 * RESULT_OK. */
enum result settings_apply(PGconn *c, const char *name, const cJSON *patch, cJSON **out,
                           char *err, size_t errlen);
/* The schedule, limits and table flags of a source (no secrets), or NULL when unknown.
 * Adds "schedule" (text) and, for a cron schedule, "next_run_at" (ISO 8601 UTC). */
cJSON *settings_get(PGconn *c, const char *name);
/* The next pull after `after` for a source's schedule: cron expr in tz when expr is set,
 * else every poll_interval seconds. *next: the instant ((time_t)-1: the cron never fires);
 * text: "cron EXPR (TZ)" or "every N s". Returns 1 cron, 0 interval, -1 the stored cron is
 * invalid (then the interval is used). */
int settings_schedule(const char *expr, const char *tz, long poll_interval, time_t after,
                      time_t *next, char *text, size_t textlen);

/* 1 when p names a conflict policy of two-way tables: manual, source-wins, local-wins,
 * latest-wins (docs/design.md "Two-way sync"). */
int settings_conflict_policy_ok(const char *p);
/* Their names, for error messages. */
#define SETTINGS_POLICIES "manual, source-wins, local-wins or latest-wins"

#endif
