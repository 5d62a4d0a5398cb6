/* fuzz_cron: source schedules (cron expressions and time-zone names come from admins over
 * the API) and the TZif/POSIX-rule parsers under them. The first byte picks the target:
 *   0: "expr\ntz" -> cron_parse; accepted schedules must give strictly increasing firing
 *      instants from cron_next (or none), quickly;
 *   1: raw TZif bytes -> zone_parse_tzif, then offsets at assorted instants;
 *   2: a POSIX TZ rule -> zone_parse_rule, then offsets at assorted instants.
 * Zone names must never reach outside /usr/share/zoneinfo (zone_name_ok). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "replica/zone.c"
#include "replica/cron.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const time_t fuzz_instants[] = {
	-2208988800LL, 0, 1700000000, 1711846799, 1711846800, 1729990800, 2147483647,
	4102444800LL, 253402300799LL,
};

static void fuzz_cron_expr(const char *s)
{
	char *copy = strdup(s), *tz = strchr(copy, '\n'), err[256];
	struct cron c;

	if (tz)
		*tz++ = '\0';
	if (tz && !zone_name_ok(tz) && strcmp(tz, "") && strcmp(tz, "UTC") &&
	    zone_get(tz, err, sizeof err))
		abort();   /* an unsafe name was loaded */
	if (cron_parse(copy, tz, &c, err, sizeof err) == 0) {
		time_t t = 1700000000;
		for (int i = 0; i < 4; i++) {
			time_t n = cron_next(&c, t);
			if (n == (time_t)-1)
				break;
			if (n <= t)
				abort();
			t = n;
		}
	}
	free(copy);
}

static void fuzz_tzif(const uint8_t *b, size_t len)
{
	struct zone z;

	memset(&z, 0, sizeof z);
	if (zone_parse_tzif(b, len, &z) == 0)
		for (size_t i = 0; i < sizeof fuzz_instants / sizeof *fuzz_instants; i++)
			(void)zone_offset(&z, fuzz_instants[i]);
	free(z.trans);
	free(z.trans_off);
}

static void fuzz_rule(const char *s)
{
	struct zone_rule r;

	memset(&r, 0, sizeof r);
	if (zone_parse_rule(s, &r) == 0)
		for (size_t i = 0; i < sizeof fuzz_instants / sizeof *fuzz_instants; i++)
			(void)zone_rule_offset(&r, fuzz_instants[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	if (data[0] % 3 == 1) {
		fuzz_tzif(data + 1, size - 1);
		return 0;
	}
	s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if (data[0] % 3 == 0)
		fuzz_cron_expr(s);
	else
		fuzz_rule(s);
	free(s);
	return 0;
}
