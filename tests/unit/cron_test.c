/* Unit tests for replica/cron.c and replica/zone.c: steps, ranges, lists, names, weekdays,
 * the Vixie day rule, time zones (America/New_York, Europe/London, Australia/Sydney),
 * daylight-saving gaps and repeats (inside the TZif table and after it, where the POSIX
 * footer rule applies), and invalid input. Expected instants were computed independently
 * (a brute-force scan of UTC minutes with Python's zoneinfo); the local time is noted.
 * The unit-test binary links only common/, so the replica modules are included here. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "replica/zone.c"
#include "replica/cron.c"
#include "tests/unit/unit.h"

static time_t cron_test_time(const char *iso)
{
	struct tm tm;

	memset(&tm, 0, sizeof tm);
	if (!strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm))
		return -2;
	return timegm(&tm);
}

static const char *cron_test_iso(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == -1)
		return "never";
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static const struct { const char *expr, *tz, *after, *next; } cron_test_cases[] = {
	/* steps, ranges, lists */
	{ "*/5 * * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z" },
	{ "*/5 * * * *", "UTC", "2026-01-01T00:03:59Z", "2026-01-01T00:05:00Z" },
	{ "*/15 * * * *", "UTC", "2026-01-01T23:59:00Z", "2026-01-02T00:00:00Z" },
	{ "0 * * * *", "UTC", "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z" },
	{ "1-5/2 * * * *", "UTC", "2026-01-01T10:03:00Z", "2026-01-01T10:05:00Z" },
	{ "1-5/2 * * * *", "UTC", "2026-01-01T10:05:00Z", "2026-01-01T11:01:00Z" },
	{ "10/20 * * * *", "UTC", "2026-01-01T10:31:00Z", "2026-01-01T10:50:00Z" },
	{ "0,15,45 9-17 * * *", "UTC", "2026-01-01T17:45:00Z", "2026-01-02T09:00:00Z" },
	{ "0 0 1 * *", "UTC", "2026-01-15T12:00:00Z", "2026-02-01T00:00:00Z" },
	{ "0 0 31 * *", "UTC", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z" },
	{ "0 12 29 FEB *", "UTC", "2026-03-01T00:00:00Z", "2028-02-29T12:00:00Z" },
	{ "0 0 1 jan-mar/2 *", "UTC", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z" },
	{ "@daily", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z" },
	{ "@hourly", "UTC", "2026-01-01T00:59:59Z", "2026-01-01T01:00:00Z" },
	/* weekdays; 7 is Sunday; Vixie: both day fields restricted -> either matches */
	{ "0 9 * * MON-FRI", "UTC", "2026-01-02T09:00:00Z", "2026-01-05T09:00:00Z" },
	{ "0 9 * * 7", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T09:00:00Z" },
	{ "0 9 * * 5-7", "UTC", "2026-01-05T00:00:00Z", "2026-01-09T09:00:00Z" },
	{ "0 9 13 * 5", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T09:00:00Z" },
	{ "0 9 */10 * 5", "UTC", "2026-01-01T00:00:00Z", "2026-05-01T09:00:00Z" },
	{ "0 0 * * sat,sun", "UTC", "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z" },
	/* America/New_York: the seed's "4:30 and 16:30 ET on weekdays" */
	{ "30 4,16 * * 1-5", "America/New_York", "2026-01-09T21:30:00Z", "2026-01-12T09:30:00Z" },  /* Mon 04:30 EST */
	{ "30 4,16 * * 1-5", "America/New_York", "2026-07-01T09:00:00Z", "2026-07-01T20:30:00Z" },  /* Wed 16:30 EDT */
	{ "30 4 * * 1", "America/New_York", "2026-03-06T12:00:00Z", "2026-03-09T08:30:00Z" },  /* Mon 04:30 EDT */
	/* spring forward 2026-03-08 02:00 EST -> 03:00 EDT */
	{ "*/5 * * * *", "America/New_York", "2026-03-08T06:58:00Z", "2026-03-08T07:00:00Z" },  /* 03:00 EDT */
	{ "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z" },  /* gap -> 03:00 EDT */
	{ "30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z" },  /* next day 02:30 EDT */
	{ "0,30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z" },  /* fires once for the gap */
	{ "30 * * * *", "America/New_York", "2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z" },  /* wildcard skips 02:30 */
	/* fall back 2026-11-01 02:00 EDT -> 01:00 EST */
	{ "30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z" },  /* 01:30 EDT */
	{ "30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z" },  /* not again at 01:30 EST */
	{ "*/20 * * * *", "America/New_York", "2026-11-01T05:50:00Z", "2026-11-01T06:00:00Z" },  /* 01:00 EST */
	{ "*/20 * * * *", "America/New_York", "2026-11-01T06:00:00Z", "2026-11-01T06:20:00Z" },  /* 01:20 EST */
	{ "0 * * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z" },  /* 01:00 EST */
	{ "0 * * * *", "America/New_York", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z" },  /* 02:00 EST */
	/* Europe/London: 2026-03-29 01:00 GMT -> 02:00 BST, 2026-10-25 02:00 BST -> 01:00 GMT */
	{ "30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z" },  /* gap -> 02:00 BST */
	{ "30 1 * * *", "Europe/London", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z" },  /* 01:30 BST */
	{ "30 1 * * *", "Europe/London", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z" },  /* 01:30 GMT next day */
	{ "0 9 * * *", "Europe/London", "2026-06-01T09:00:00Z", "2026-06-02T08:00:00Z" },  /* 09:00 BST */
	{ "0 9 * * *", "Europe/London", "2026-12-01T09:00:00Z", "2026-12-02T09:00:00Z" },  /* 09:00 GMT */
	{ "45 * * * *", "Europe/London", "2026-10-25T00:50:00Z", "2026-10-25T01:45:00Z" },  /* 01:45 GMT, 2nd pass */
	{ "0 0 * * *", "Europe/London", "2026-07-01T12:00:00Z", "2026-07-01T23:00:00Z" },  /* 00:00 BST */
	/* after the TZif table ends (2037): the footer's POSIX rule */
	{ "0 2 * * *", "America/New_York", "2040-03-11T05:00:00Z", "2040-03-11T07:00:00Z" },  /* gap -> 03:00 EDT */
	{ "30 2 * * *", "America/New_York", "2040-03-11T06:59:00Z", "2040-03-11T07:00:00Z" },
	{ "30 1 * * *", "America/New_York", "2040-11-04T05:00:00Z", "2040-11-04T05:30:00Z" },  /* 01:30 EDT */
	{ "0 9 * * 1-5", "Europe/London", "2040-03-23T12:00:00Z", "2040-03-26T08:00:00Z" },  /* 09:00 BST */
	{ "*/30 * * * *", "Europe/London", "2040-10-28T00:45:00Z", "2040-10-28T01:00:00Z" },  /* 01:00 GMT */
	/* southern hemisphere */
	{ "0 0 1 1 *", "Australia/Sydney", "2026-06-01T00:00:00Z", "2026-12-31T13:00:00Z" },  /* 00:00 AEDT */
	{ "30 2 * * *", "Australia/Sydney", "2026-10-03T12:00:00Z", "2026-10-03T16:00:00Z" },  /* gap -> 03:00 AEDT */
};

UNIT_TEST(cron_next_table)
{
	for (size_t i = 0; i < sizeof cron_test_cases / sizeof cron_test_cases[0]; i++) {
		struct cron c;
		char err[256] = "", got[32], want[32];
		time_t next;

		if (cron_parse(cron_test_cases[i].expr, cron_test_cases[i].tz, &c, err, sizeof err)) {
			fprintf(stderr, "  case %zu \"%s\": %s\n", i, cron_test_cases[i].expr, err);
			*unit_failed = 1;
			continue;
		}
		next = cron_next(&c, cron_test_time(cron_test_cases[i].after));
		if (next != cron_test_time(cron_test_cases[i].next)) {
			fprintf(stderr, "  case %zu \"%s\" %s after %s: got %s, want %s\n", i,
			        cron_test_cases[i].expr, cron_test_cases[i].tz, cron_test_cases[i].after,
			        cron_test_iso(next, got, sizeof got),
			        cron_test_iso(cron_test_time(cron_test_cases[i].next), want, sizeof want));
			*unit_failed = 1;
		}
	}
}

static const struct { const char *expr, *tz, *err; } cron_test_bad[] = {
	{ "* 25 * * *", "UTC", "field 2 (hour): 25 out of range 0-23" },
	{ "60 * * * *", "UTC", "field 1 (minute): 60 out of range 0-59" },
	{ "* * 0 * *", "UTC", "field 3 (day of month): 0 out of range 1-31" },
	{ "* * * 13 *", "UTC", "field 4 (month): 13 out of range 1-12" },
	{ "* * * * 8", "UTC", "field 5 (day of week): 8 out of range 0-7" },
	{ "* * * FOO *", "UTC", "field 4 (month): unknown name \"FOO\"" },
	{ "* * * * MON-FOO", "UTC", "field 5 (day of week): unknown name \"FOO\"" },
	{ "MON * * * *", "UTC", "field 1 (minute): unknown name \"MON\"" },
	{ "*/0 * * * *", "UTC", "field 1 (minute): step \"0\" must be 1-59" },
	{ "*/ * * * *", "UTC", "field 1 (minute): step \"\" must be 1-59" },
	{ "5-1 * * * *", "UTC", "field 1 (minute): range 5-1 runs backwards" },
	{ "1,,2 * * * *", "UTC", "field 1 (minute): empty list item" },
	{ "1x * * * *", "UTC", "field 1 (minute): unexpected \"x\"" },
	{ "-1 * * * *", "UTC", "field 1 (minute): expected a number at \"-1\"" },
	{ "* * * *", "UTC", "expected 5 fields (minute hour day-of-month month day-of-week), got 4" },
	{ "* * * * * *", "UTC", "expected 5 fields (minute hour day-of-month month day-of-week), got 6" },
	{ "", "UTC", "expected 5 fields (minute hour day-of-month month day-of-week), got 0" },
	{ "0 0 30 2 *", "UTC", "field 3 (day of month): no selected day exists in the selected months" },
	{ "@reboot", "UTC", "unknown cron macro \"@reboot\"" },
	{ "* * * * *", "Mars/Olympus", "unknown time zone \"Mars/Olympus\"" },
	{ "* * * * *", "../../etc/passwd", "invalid time zone name \"../../etc/passwd\"" },
	{ "* * * * *", "/etc/localtime", "invalid time zone name \"/etc/localtime\"" },
	{ "* * * * *", "America", "unknown time zone \"America\"" },
	{ "* * * * *", "zone.tab", "invalid time zone name \"zone.tab\"" },
	{ "* * * * *", "iso3166.tab", "invalid time zone name \"iso3166.tab\"" },
	{ "* * * * *", "leapseconds", "unknown time zone \"leapseconds\" (not a TZif file)" },
};

UNIT_TEST(cron_parse_refuses_bad_input)
{
	for (size_t i = 0; i < sizeof cron_test_bad / sizeof cron_test_bad[0]; i++) {
		struct cron c;
		char err[256] = "";

		CHECK(cron_parse(cron_test_bad[i].expr, cron_test_bad[i].tz, &c, err, sizeof err) == -1);
		CHECK_STR(err, cron_test_bad[i].err);
	}
}

UNIT_TEST(cron_parse_fields)
{
	struct cron c;
	char err[256];

	CHECK(cron_parse("1-5/2,30 */6 1,15 jan,Jul sun,7", "Europe/London", &c, err, sizeof err) == 0);
	CHECK(c.minute == (1ull << 1 | 1ull << 3 | 1ull << 5 | 1ull << 30));
	CHECK(c.hour == (1u << 0 | 1u << 6 | 1u << 12 | 1u << 18));
	CHECK(c.dom == (1u << 1 | 1u << 15));
	CHECK(c.month == (1u << 1 | 1u << 7));
	CHECK(c.dow == 1u);
	CHECK(c.flags == CRON_HOUR_STAR);
	CHECK_STR(c.tz, "Europe/London");
	CHECK(cron_parse("  0   0  * * *  ", NULL, &c, err, sizeof err) == 0);
	CHECK_STR(c.tz, "UTC");
	CHECK(c.flags == (CRON_DOM_STAR | CRON_DOW_STAR));
}

UNIT_TEST(zone_offsets)
{
	char err[128];
	const struct zone *ny = zone_get("America/New_York", err, sizeof err);
	const struct zone *ld = zone_get("Europe/London", err, sizeof err);

	CHECK(ny && ld);
	if (!ny || !ld)
		return;
	CHECK(zone_get("America/New_York", err, sizeof err) == ny);   /* cached */
	CHECK(zone_offset(ny, cron_test_time("2026-01-15T12:00:00Z")) == -5 * 3600);
	CHECK(zone_offset(ny, cron_test_time("2026-07-15T12:00:00Z")) == -4 * 3600);
	CHECK(zone_offset(ny, cron_test_time("2026-03-08T06:59:59Z")) == -5 * 3600);
	CHECK(zone_offset(ny, cron_test_time("2026-03-08T07:00:00Z")) == -4 * 3600);
	CHECK(zone_offset(ny, cron_test_time("2045-07-15T12:00:00Z")) == -4 * 3600);
	CHECK(zone_offset(ny, cron_test_time("2045-12-15T12:00:00Z")) == -5 * 3600);
	CHECK(zone_offset(ld, cron_test_time("2026-10-25T00:59:59Z")) == 3600);
	CHECK(zone_offset(ld, cron_test_time("2026-10-25T01:00:00Z")) == 0);
	CHECK(zone_offset(ld, cron_test_time("2050-06-01T00:00:00Z")) == 3600);
}
