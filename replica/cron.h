/* cron: 5-field cron schedules (minute hour day-of-month month day-of-week) in an IANA
 * time zone, for source schedules.
 *
 * Syntax per field: a comma list of `*`, `N`, `A-B`, each optionally `/STEP` (`N/STEP`
 * means N-max/STEP); month names JAN..DEC and weekday names SUN..SAT (any case); weekday 7
 * is Sunday too. Macros @yearly @annually @monthly @weekly @daily @midnight @hourly.
 * Day matching follows Vixie cron: when both day-of-month and day-of-week are restricted
 * (neither starts with `*`) a day matching EITHER fires; otherwise both must match.
 * Daylight saving, as cronie does: a job with a fixed hour and minute (neither field starts
 * with `*`) whose local time is skipped by a spring-forward gap fires once at the first
 * instant after the gap, and fires only once (the first occurrence) in a repeated fall-back
 * hour; a wildcard job (`*` in minute or hour) simply follows the wall clock: it does not
 * fire for skipped local times and fires in both passes of a repeated hour.
 * struct cron holds no heap memory (its zone lives in zone.c's process-wide cache): copy it
 * freely, nothing to free. Thread-safe. */
#ifndef TDGL_REPLICA_CRON_H
#define TDGL_REPLICA_CRON_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "replica/zone.h"

#define CRON_EXPR_MAX 128

struct cron {
	uint64_t minute;        /* bit n: minute n (0-59) */
	uint32_t hour;          /* 0-23 */
	uint32_t dom;           /* 1-31 */
	uint32_t month;         /* 1-12 */
	uint32_t dow;           /* 0-6, Sunday = 0 */
	unsigned flags;         /* CRON_*_STAR */
	const struct zone *zone;
	char expr[CRON_EXPR_MAX];
	char tz[ZONE_NAME_MAX];
};

#define CRON_MIN_STAR  1u
#define CRON_HOUR_STAR 2u
#define CRON_DOM_STAR  4u
#define CRON_DOW_STAR  8u

/* Parses expr in zone tz (NULL/"" = UTC). 0, or -1 with a message in err naming the bad
 * field, e.g. "field 2 (hour): 25 out of range 0-23", or the bad zone. */
int cron_parse(const char *expr, const char *tz, struct cron *out, char *err, size_t errlen);
/* The first firing instant strictly after `after`, or (time_t)-1 when none within 50 years. */
time_t cron_next(const struct cron *c, time_t after);

#endif
