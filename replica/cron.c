/* cron: parser and next-time computation; see cron.h for the rules.
 *
 * cron_next searches "wall times" (local calendar times written as if they were UTC
 * seconds, so plain timegm arithmetic walks them) that match the fields, and maps each one
 * back to the instants that show it on the local clock: one normally, two in a repeated
 * hour, none in a gap. Because fall-back makes the wall clock non-monotonic, the search
 * starts a few hours before the wall time of `after` and keeps the smallest instant. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "replica/cron.h"

#define CRON_SLACK_S   (6 * 3600)   /* more than any DST shift */
#define CRON_YEARS_MAX 50

struct cron_field {
	const char *name;
	int lo, hi;
	const char *const *names;   /* names[i] is value lo_name + i */
	int names_base;
};

static const char *const cron_months[] = { "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
	"AUG", "SEP", "OCT", "NOV", "DEC", NULL };
static const char *const cron_days[] = { "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT",
	NULL };

static const struct cron_field cron_fields[5] = {
	{ "minute", 0, 59, NULL, 0 },
	{ "hour", 0, 23, NULL, 0 },
	{ "day of month", 1, 31, NULL, 0 },
	{ "month", 1, 12, cron_months, 1 },
	{ "day of week", 0, 7, cron_days, 0 },
};

/* Vixie cron's *_STAR flags: set for a field that starts with a star, steps included. */
static const unsigned cron_star_flag[5] = { CRON_MIN_STAR, CRON_HOUR_STAR, CRON_DOM_STAR, 0,
	CRON_DOW_STAR };

static const struct { const char *macro, *expr; } cron_macros[] = {
	{ "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
	{ "@weekly", "0 0 * * 0" }, { "@daily", "0 0 * * *" }, { "@midnight", "0 0 * * *" },
	{ "@hourly", "0 * * * *" },
};

/* A number or a name of field f at *p. 0, or -1 with err. */
static int cron_value(const struct cron_field *f, int idx, const char **p, int *out,
                      char *err, size_t errlen)
{
	const char *s = *p;
	int v = 0, nd = 0;

	if (isdigit((unsigned char)*s)) {
		while (isdigit((unsigned char)*s)) {
			if (++nd > 4) {
				snprintf(err, errlen, "field %d (%s): number too long", idx + 1, f->name);
				return -1;
			}
			v = v * 10 + (*s++ - '0');
		}
	} else if (isalpha((unsigned char)*s)) {
		const char *b = s;
		int i;

		while (isalpha((unsigned char)*s))
			s++;
		for (i = 0; f->names && f->names[i]; i++)
			if ((size_t)(s - b) == strlen(f->names[i]) &&
			    strncasecmp(b, f->names[i], (size_t)(s - b)) == 0)
				break;
		if (!f->names || !f->names[i]) {
			snprintf(err, errlen, "field %d (%s): unknown name \"%.*s\"", idx + 1, f->name,
			         (int)(s - b) > 16 ? 16 : (int)(s - b), b);
			return -1;
		}
		v = f->names_base + i;
	} else {
		snprintf(err, errlen, "field %d (%s): expected a number%s at \"%.16s\"", idx + 1,
		         f->name, f->names ? " or a name" : "", s);
		return -1;
	}
	if (v < f->lo || v > f->hi) {
		snprintf(err, errlen, "field %d (%s): %d out of range %d-%d", idx + 1, f->name, v,
		         f->lo, f->hi);
		return -1;
	}
	*out = v;
	*p = s;
	return 0;
}

/* Parses one field (text of length len) into *bits. */
static int cron_field_parse(int idx, const char *text, size_t len, uint64_t *bits,
                            char *err, size_t errlen)
{
	const struct cron_field *f = &cron_fields[idx];
	char buf[CRON_EXPR_MAX];
	char *item, *save = NULL;

	*bits = 0;
	snprintf(buf, sizeof buf, "%.*s", (int)len, text);
	if (buf[0] == ',' || buf[strlen(buf) - 1] == ',' || strstr(buf, ",,")) {
		snprintf(err, errlen, "field %d (%s): empty list item", idx + 1, f->name);
		return -1;
	}
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		const char *p = item;
		int a, b, step = 1, ranged = 0;

		if (*p == '*') {
			a = f->lo;
			b = f->hi == 7 ? 6 : f->hi;
			p++;
			ranged = 1;
		} else {
			if (cron_value(f, idx, &p, &a, err, errlen))
				return -1;
			b = a;
			if (*p == '-') {
				p++;
				if (cron_value(f, idx, &p, &b, err, errlen))
					return -1;
				if (b < a) {
					snprintf(err, errlen, "field %d (%s): range %d-%d runs backwards",
					         idx + 1, f->name, a, b);
					return -1;
				}
				ranged = 1;
			}
		}
		if (*p == '/') {
			const char *q = ++p;

			step = 0;
			while (isdigit((unsigned char)*p) && step <= f->hi + 1)
				step = step * 10 + (*p++ - '0');
			if (p == q || step < 1 || step > f->hi) {
				snprintf(err, errlen, "field %d (%s): step \"%.8s\" must be 1-%d", idx + 1,
				         f->name, q, f->hi);
				return -1;
			}
			if (!ranged)
				b = f->hi == 7 ? 6 : f->hi;   /* N/STEP: from N to the end of the range */
		}
		if (*p) {
			snprintf(err, errlen, "field %d (%s): unexpected \"%.16s\"", idx + 1, f->name, p);
			return -1;
		}
		for (int v = a; v <= b; v += step)
			*bits |= 1ull << (idx == 4 && v == 7 ? 0 : v);   /* weekday 7 is Sunday */
	}
	return 0;
}

/* 1 when some selected day of month exists in some selected month (Feb counts 29). */
static int cron_day_possible(const struct cron *c)
{
	static const int maxd[13] = { 0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	for (int m = 1; m <= 12; m++)
		if (c->month >> m & 1)
			for (int d = 1; d <= maxd[m]; d++)
				if (c->dom >> d & 1)
					return 1;
	return 0;
}

int cron_parse(const char *expr, const char *tz, struct cron *out, char *err, size_t errlen)
{
	const char *p, *start[5];
	size_t len[5];
	uint64_t bits;
	int n = 0;

	memset(out, 0, sizeof *out);
	if (!expr || strlen(expr) >= CRON_EXPR_MAX) {
		snprintf(err, errlen, "cron expression missing or longer than %d bytes",
		         CRON_EXPR_MAX - 1);
		return -1;
	}
	snprintf(out->expr, sizeof out->expr, "%s", expr);
	p = expr;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '@') {
		size_t i, ml = strcspn(p, " \t");

		for (i = 0; i < sizeof cron_macros / sizeof cron_macros[0]; i++)
			if (strlen(cron_macros[i].macro) == ml &&
			    strncasecmp(p, cron_macros[i].macro, ml) == 0 && !p[ml + strspn(p + ml, " \t")])
				break;
		if (i == sizeof cron_macros / sizeof cron_macros[0]) {
			snprintf(err, errlen, "unknown cron macro \"%.*s\"", (int)(ml > 16 ? 16 : ml), p);
			return -1;
		}
		p = cron_macros[i].expr;
	}
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (n < 5) {
			start[n] = p;
			len[n] = strcspn(p, " \t");
		}
		p += strcspn(p, " \t");
		n++;
	}
	if (n != 5) {
		snprintf(err, errlen, "expected 5 fields (minute hour day-of-month month "
		         "day-of-week), got %d", n);
		return -1;
	}
	for (int i = 0; i < 5; i++) {
		if (cron_field_parse(i, start[i], len[i], &bits, err, errlen))
			return -1;
		if (start[i][0] == '*')
			out->flags |= cron_star_flag[i];
		switch (i) {
		case 0: out->minute = bits; break;
		case 1: out->hour = (uint32_t)bits; break;
		case 2: out->dom = (uint32_t)bits; break;
		case 3: out->month = (uint32_t)bits; break;
		default: out->dow = (uint32_t)bits; break;
		}
	}
	if ((out->flags & CRON_DOW_STAR) && !cron_day_possible(out)) {
		snprintf(err, errlen, "field 3 (day of month): no selected day exists in the "
		         "selected months");
		return -1;
	}
	if (!(out->zone = zone_get(tz, err, errlen)))
		return -1;
	snprintf(out->tz, sizeof out->tz, "%s", zone_name(out->zone));
	return 0;
}

static int cron_day_match(const struct cron *c, const struct tm *tm)
{
	int dom = c->dom >> tm->tm_mday & 1, dow = c->dow >> tm->tm_wday & 1;

	if (c->flags & (CRON_DOM_STAR | CRON_DOW_STAR))
		return dom && dow;
	return dom || dow;
}

/* The first matching wall time >= w (minute-aligned), or -1 past the horizon. */
static time_t cron_wall_next(const struct cron *c, time_t w, int max_year)
{
	struct tm tm;
	time_t t = w;

	gmtime_r(&t, &tm);
	tm.tm_sec = 0;
	for (;;) {
		if (tm.tm_year + 1900 > max_year)
			return -1;
		if (!(c->month >> (tm.tm_mon + 1) & 1)) {
			tm.tm_mon++;
			tm.tm_mday = 1;
			tm.tm_hour = tm.tm_min = 0;
		} else if (!cron_day_match(c, &tm)) {
			tm.tm_mday++;
			tm.tm_hour = tm.tm_min = 0;
		} else if (!(c->hour >> tm.tm_hour & 1)) {
			tm.tm_hour++;
			tm.tm_min = 0;
		} else if (!(c->minute >> tm.tm_min & 1)) {
			tm.tm_min++;
		} else {
			return timegm(&tm);
		}
		t = timegm(&tm);
		gmtime_r(&t, &tm);
	}
}

/* The first instant at or after lo whose offset is `off` (binary search; one transition
 * between lo and hi assumed, offset(hi) == off). */
static time_t cron_transition(const struct zone *z, time_t lo, time_t hi, long off)
{
	while (lo < hi) {
		time_t mid = lo + (hi - lo) / 2;

		if (zone_offset(z, mid) == off)
			hi = mid;
		else
			lo = mid + 1;
	}
	return hi;
}

time_t cron_next(const struct cron *c, time_t after)
{
	const struct zone *z = c->zone;
	int fixed = !(c->flags & (CRON_MIN_STAR | CRON_HOUR_STAR));
	time_t best = -1, w, wall_after;
	struct tm tm;
	int max_year;

	if (!z)
		return -1;
	wall_after = after + zone_offset(z, after);
	w = wall_after - CRON_SLACK_S;
	w -= ((w % 60) + 60) % 60;
	gmtime_r(&wall_after, &tm);
	max_year = tm.tm_year + 1900 + CRON_YEARS_MAX;
	for (;;) {
		time_t W = cron_wall_next(c, w, max_year), ta, tb, cand = -1;
		long oa, ob;
		int va, vb;

		if (W == -1)
			break;
		/* An instant before best shows a wall time before best's + the largest shift. */
		if (best != -1 && W > best + zone_offset(z, best) + CRON_SLACK_S)
			break;
		oa = zone_offset(z, W - 86400);
		ob = zone_offset(z, W + 86400);
		ta = W - oa;
		tb = W - ob;
		va = zone_offset(z, ta) == oa;
		vb = oa != ob && zone_offset(z, tb) == ob;
		if (va || vb) {
			time_t first = va && vb ? (ta < tb ? ta : tb) : va ? ta : tb;
			time_t second = va && vb ? (ta < tb ? tb : ta) : first;

			if (first > after)
				cand = first;
			else if (!fixed && second > after)
				cand = second;   /* a wildcard job fires in both passes of a repeat */
		} else if (fixed && oa < ob) {
			/* Skipped by spring-forward: fire at the first instant after the gap. */
			time_t gap_end = cron_transition(z, tb, ta, ob);

			if (gap_end > after)
				cand = gap_end;
		}
		if (cand != -1 && (best == -1 || cand < best))
			best = cand;
		w = W + 60;
	}
	return best;
}
