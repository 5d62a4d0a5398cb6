/* zone: TZif reader (RFC 8536) with the POSIX TZ footer rule; see zone.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "replica/zone.h"

#define ZONE_FILE_MAX (1024 * 1024)

/* A POSIX TZ rule date: Jn (1-365, no Feb 29), n (0-365) or Mm.w.d. */
struct zone_date {
	char kind;   /* 'J', 'N' or 'M' */
	int  n, m, w, d;
	long time;   /* seconds after local midnight (may be negative or past 24 h) */
};

struct zone_rule {
	long std_off, dst_off;   /* seconds east */
	int  has_dst;
	struct zone_date start, end;
};

struct zone {
	char     name[ZONE_NAME_MAX];
	int      ntrans;
	int64_t *trans;          /* transition instants, ascending */
	long    *trans_off;      /* offset in force from each transition on */
	long     off0;           /* before the first transition */
	int      has_rule;       /* the footer applies after the last transition */
	struct zone_rule rule;
	struct zone *next;       /* cache list */
};

static pthread_mutex_t zone_mu = PTHREAD_MUTEX_INITIALIZER;
static struct zone *zone_cache;
static struct zone zone_utc = { .name = "UTC" };

/* ---- calendar arithmetic (proleptic Gregorian, days since 1970-01-01) ---- */

static int64_t zone_days_from_civil(int64_t y, int m, int d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int zone_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int zone_mdays(int64_t y, int m)
{
	static const int md[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && zone_leap(y) ? 29 : md[m - 1];
}

static int64_t zone_year_of(int64_t t)
{
	int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
	int64_t y = 1970 + days / 366;

	while (zone_days_from_civil(y + 1, 1, 1) <= days)
		y++;
	while (zone_days_from_civil(y, 1, 1) > days)
		y--;
	return y;
}

/* Local midnight (as seconds since the epoch, offset not applied) of a rule date in year y. */
static int64_t zone_rule_day(const struct zone_date *dt, int64_t y)
{
	int64_t jan1 = zone_days_from_civil(y, 1, 1), day;

	if (dt->kind == 'J')
		day = jan1 + dt->n - 1 + (zone_leap(y) && dt->n >= 60);
	else if (dt->kind == 'N')
		day = jan1 + dt->n;
	else {
		int64_t first = zone_days_from_civil(y, dt->m, 1);
		int wday = (int)(((first % 7) + 7 + 4) % 7);   /* 1970-01-01 was a Thursday */
		int mday = (dt->d - wday + 7) % 7 + 1 + (dt->w - 1) * 7;

		while (mday > zone_mdays(y, dt->m))
			mday -= 7;
		day = first + mday - 1;
	}
	return day * 86400;
}

static void zone_rule_bounds(const struct zone_rule *r, int64_t y, int64_t *start, int64_t *end)
{
	/* DST starts while standard time is in force and ends while DST is. */
	*start = zone_rule_day(&r->start, y) + r->start.time - r->std_off;
	*end = zone_rule_day(&r->end, y) + r->end.time - r->dst_off;
}

static long zone_rule_offset(const struct zone_rule *r, int64_t t)
{
	int64_t y, s, e;

	if (!r->has_dst)
		return r->std_off;
	y = zone_year_of(t);
	zone_rule_bounds(r, y, &s, &e);
	if (s < e)
		return t >= s && t < e ? r->dst_off : r->std_off;
	return t >= e && t < s ? r->std_off : r->dst_off;   /* southern hemisphere */
}

/* ---- POSIX TZ string: std offset [dst [offset] [,start[/time],end[/time]]] ---- */

static int zone_parse_name(const char **p)
{
	const char *s = *p;

	if (*s == '<') {
		while (*s && *s != '>')
			s++;
		if (*s != '>')
			return -1;
		s++;
	} else {
		const char *b = s;

		while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
			s++;
		if (s - b < 3)
			return -1;
	}
	*p = s;
	return 0;
}

/* [+-]hh[:mm[:ss]] -> seconds (sign applied). */
static int zone_parse_hms(const char **p, long *out)
{
	const char *s = *p;
	long sign = 1, v = 0, part;
	int i;

	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	for (i = 0; i < 3; i++) {
		if (i > 0) {
			if (*s != ':')
				break;
			s++;
		}
		if (*s < '0' || *s > '9')
			return -1;
		for (part = 0; *s >= '0' && *s <= '9' && part < 1000; s++)
			part = part * 10 + (*s - '0');
		v += part * (i == 0 ? 3600 : i == 1 ? 60 : 1);
	}
	*out = sign * v;
	*p = s;
	return 0;
}

static int zone_parse_num(const char **p, int *out)
{
	const char *s = *p;
	int v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	while (*s >= '0' && *s <= '9' && v < 10000)
		v = v * 10 + (*s++ - '0');
	*out = v;
	*p = s;
	return 0;
}

static int zone_parse_date(const char **p, struct zone_date *d)
{
	const char *s = *p;

	memset(d, 0, sizeof *d);
	d->time = 7200;
	if (*s == 'J') {
		s++;
		d->kind = 'J';
		if (zone_parse_num(&s, &d->n) || d->n < 1 || d->n > 365)
			return -1;
	} else if (*s == 'M') {
		s++;
		d->kind = 'M';
		if (zone_parse_num(&s, &d->m) || *s++ != '.' || zone_parse_num(&s, &d->w) ||
		    *s++ != '.' || zone_parse_num(&s, &d->d) || d->m < 1 || d->m > 12 ||
		    d->w < 1 || d->w > 5 || d->d > 6)
			return -1;
	} else {
		d->kind = 'N';
		if (zone_parse_num(&s, &d->n) || d->n > 365)
			return -1;
	}
	if (*s == '/') {
		s++;
		if (zone_parse_hms(&s, &d->time))
			return -1;
	}
	*p = s;
	return 0;
}

static int zone_parse_rule(const char *s, struct zone_rule *r)
{
	long off;

	memset(r, 0, sizeof *r);
	if (zone_parse_name(&s) || zone_parse_hms(&s, &off))
		return -1;
	r->std_off = -off;   /* POSIX offsets count west */
	if (!*s)
		return 0;
	if (zone_parse_name(&s))
		return -1;
	r->dst_off = r->std_off + 3600;
	if (*s && *s != ',') {
		if (zone_parse_hms(&s, &off))
			return -1;
		r->dst_off = -off;
	}
	if (*s != ',')
		return -1;   /* a DST name without rules: no sensible default today */
	s++;
	if (zone_parse_date(&s, &r->start) || *s++ != ',' || zone_parse_date(&s, &r->end) || *s)
		return -1;
	r->has_dst = 1;
	return 0;
}

/* ---- TZif ---- */

static uint32_t zone_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t zone_be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)zone_be32(p) << 32 | zone_be32(p + 4));
}

/* Parses the TZif bytes into z. 0, or -1 when malformed. */
static int zone_parse_tzif(const unsigned char *b, size_t len, struct zone *z)
{
	const unsigned char *p = b, *end = b + len, *tt;
	uint32_t isut, isstd, leap, timecnt, typecnt, charcnt;
	size_t tsize = 4, need;
	int rc = -1;

	for (int pass = 0; pass < 2; pass++) {
		if ((size_t)(end - p) < 44 || memcmp(p, "TZif", 4) != 0)
			goto out;
		isut = zone_be32(p + 20);
		isstd = zone_be32(p + 24);
		leap = zone_be32(p + 28);
		timecnt = zone_be32(p + 32);
		typecnt = zone_be32(p + 36);
		charcnt = zone_be32(p + 40);
		if (timecnt > 100000 || typecnt == 0 || typecnt > 256 || charcnt > 100000 ||
		    leap > 100000 || isut > 256 || isstd > 256)
			goto out;
		need = timecnt * tsize + timecnt + typecnt * 6 + charcnt + leap * (tsize + 4) +
		       isstd + isut;
		if ((size_t)(end - p) < 44 + need)
			goto out;
		if (pass == 0 && p[4] >= '2') {
			p += 44 + need;   /* skip the 32-bit block: the 64-bit one follows */
			tsize = 8;
			continue;
		}
		p += 44;
		break;
	}
	tt = p + timecnt * tsize + timecnt;
	if (!(z->trans = calloc(timecnt + 1, sizeof *z->trans)) ||
	    !(z->trans_off = calloc(timecnt + 1, sizeof *z->trans_off)))
		goto out;
	z->ntrans = (int)timecnt;
	for (uint32_t i = 0; i < timecnt; i++) {
		unsigned idx = p[timecnt * tsize + i];

		if (idx >= typecnt)
			goto out;
		z->trans[i] = tsize == 8 ? zone_be64(p + i * 8) : (int32_t)zone_be32(p + i * 4);
		z->trans_off[i] = (int32_t)zone_be32(tt + idx * 6);
		if (i > 0 && z->trans[i] <= z->trans[i - 1])
			goto out;
	}
	z->off0 = (int32_t)zone_be32(tt);   /* RFC 8536: type 0 before the first transition */
	p += need;
	if (tsize == 8 && p < end && *p == '\n') {
		const unsigned char *nl = memchr(p + 1, '\n', (size_t)(end - p - 1));
		char footer[128];

		if (nl && nl - p - 1 > 0 && (size_t)(nl - p - 1) < sizeof footer) {
			memcpy(footer, p + 1, (size_t)(nl - p - 1));
			footer[nl - p - 1] = '\0';
			z->has_rule = zone_parse_rule(footer, &z->rule) == 0;
		}
	}
	rc = 0;
out:
	return rc;
}

static int zone_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= ZONE_NAME_MAX || name[0] == '/' || strstr(name, ".."))
		return 0;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '+' || *c == '-' || *c == '/'))
			return 0;
	return 1;
}

static struct zone *zone_load(const char *name, char *err, size_t errlen)
{
	char path[sizeof ZONE_DIR + ZONE_NAME_MAX + 1];
	struct zone *z = NULL, *ret = NULL;
	unsigned char *data = NULL;
	struct stat st;
	size_t got = 0;
	int fd = -1;

	snprintf(path, sizeof path, "%s/%s", ZONE_DIR, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0 ||
	    !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > ZONE_FILE_MAX) {
		snprintf(err, errlen, "unknown time zone \"%s\"", name);
		goto out;
	}
	if (!(data = malloc((size_t)st.st_size)) || !(z = calloc(1, sizeof *z))) {
		snprintf(err, errlen, "time zone \"%s\": out of memory", name);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	snprintf(z->name, sizeof z->name, "%s", name);
	if (got != (size_t)st.st_size || zone_parse_tzif(data, got, z) != 0) {
		snprintf(err, errlen, "unknown time zone \"%s\" (not a TZif file)", name);
		goto out;
	}
	ret = z;
	z = NULL;
out:
	if (z) {
		free(z->trans);
		free(z->trans_off);
		free(z);
	}
	free(data);
	if (fd >= 0)
		close(fd);
	return ret;
}

const struct zone *zone_get(const char *name, char *err, size_t errlen)
{
	struct zone *z;

	if (!name || !*name || strcmp(name, "UTC") == 0)
		return &zone_utc;
	if (!zone_name_ok(name)) {
		snprintf(err, errlen, "invalid time zone name \"%.*s\"", ZONE_NAME_MAX, name);
		return NULL;
	}
	pthread_mutex_lock(&zone_mu);
	for (z = zone_cache; z; z = z->next)
		if (strcmp(z->name, name) == 0)
			break;
	if (!z && (z = zone_load(name, err, errlen))) {
		z->next = zone_cache;
		zone_cache = z;
	}
	pthread_mutex_unlock(&zone_mu);
	return z;
}

const char *zone_name(const struct zone *z)
{
	return z->name;
}

long zone_offset(const struct zone *z, time_t t)
{
	int lo = 0, hi = z->ntrans - 1;

	if (z->ntrans == 0)
		return z->has_rule ? zone_rule_offset(&z->rule, t) : z->off0;
	if (t < z->trans[0])
		return z->off0;
	if (t >= z->trans[hi])
		return z->has_rule ? zone_rule_offset(&z->rule, t) : z->trans_off[hi];
	while (lo < hi) {   /* last transition <= t */
		int mid = (lo + hi + 1) / 2;

		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid - 1;
	}
	return z->trans_off[lo];
}
