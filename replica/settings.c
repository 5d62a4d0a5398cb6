/* settings: validated patches of tdgl_replica.sources / tdgl_replica.source_tables; see settings.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/db.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/clock.h"
#include "replica/cron.h"
#include "replica/settings.h"

static const char Q_GET[] =
	"SELECT json_build_object('name', s.name, 'enabled', s.enabled, "
	"'poll_interval', s.poll_interval, 'cron', s.cron, 'tz', s.tz, "
	"'rate_limit', coalesce(s.rate_limit, 0), 'retry_base_s', s.retry_base_s, "
	"'max_retries', s.max_retries, 'batch_size', s.batch_size, 'long_poll', s.long_poll, "
	"'last_run_at', s.last_run_at, 'last_status', s.last_status, "
	"'conflict_policy', s.conflict_policy, 'site', tdgl_replica.site(), "
	"'tables', (SELECT coalesce(json_agg(json_build_object('table', t.tbl, "
	"  'filter', t.filter, 'insert_enabled', t.insert_enabled, "
	"  'update_enabled', t.update_enabled, 'delete_enabled', t.delete_enabled, "
	"  'update_without_changes', t.update_without_changes, "
	"  'two_way', tdgl_replica.two_way(t.tbl), "
	"  'conflict_policy', coalesce(t.conflict_policy, s.conflict_policy)) ORDER BY t.tbl), '[]') "
	"  FROM tdgl_replica.source_tables t WHERE t.source = s.name))::text "
	"FROM tdgl_replica.sources s WHERE s.name = $1";
static const char Q_LOCK[] =
	"SELECT cron, tz FROM tdgl_replica.sources WHERE name = $1 FOR UPDATE";
static const char Q_SET_SCHEDULE[] =
	"UPDATE tdgl_replica.sources SET cron = $2, tz = $3 WHERE name = $1";
static const char Q_SET_POLL[] =
	"UPDATE tdgl_replica.sources SET poll_interval = $2::int WHERE name = $1";
static const char Q_SET_RETRY_BASE[] =
	"UPDATE tdgl_replica.sources SET retry_base_s = $2::int WHERE name = $1";
static const char Q_SET_MAX_RETRIES[] =
	"UPDATE tdgl_replica.sources SET max_retries = $2::int WHERE name = $1";
static const char Q_SET_BATCH[] =
	"UPDATE tdgl_replica.sources SET batch_size = $2::int WHERE name = $1";
static const char Q_SET_RATE[] =
	"UPDATE tdgl_replica.sources SET rate_limit = nullif($2::float8, 0) WHERE name = $1";
static const char Q_SET_POLICY[] =
	"UPDATE tdgl_replica.sources SET conflict_policy = $2 WHERE name = $1";
/* NULL: the table takes the source's policy */
static const char Q_SET_TABLE_POLICY[] =
	"UPDATE tdgl_replica.source_tables SET conflict_policy = $3 WHERE source = $1 AND tbl = $2";
static const char Q_SET_ENABLED[] =
	"UPDATE tdgl_replica.sources SET enabled = $2::bool WHERE name = $1";
static const char Q_SET_FLAGS[] =
	"UPDATE tdgl_replica.source_tables SET insert_enabled = coalesce($3::bool, insert_enabled), "
	"update_enabled = coalesce($4::bool, update_enabled), "
	"delete_enabled = coalesce($5::bool, delete_enabled), "
	"update_without_changes = coalesce($6::bool, update_without_changes) "
	"WHERE source = $1 AND tbl = $2";

static const struct { const char *key, *query; long min, max; } settings_ints[] = {
	{ "poll_interval", Q_SET_POLL, 1, 31 * 86400 },
	{ "retry_base_s", Q_SET_RETRY_BASE, 0, 7 * 86400 },
	{ "max_retries", Q_SET_MAX_RETRIES, 0, 100 },
	{ "batch_size", Q_SET_BATCH, 1, CHANGES_LIMIT_MAX },
};
static const char *const settings_flags[] = { "insert_enabled", "update_enabled",
	"delete_enabled", "update_without_changes" };
#define SETTINGS_NFLAGS 4

int settings_schedule(const char *expr, const char *tz, long poll_interval, time_t after,
                      time_t *next, char *text, size_t textlen)
{
	struct cron cr;
	char err[256];

	if (!expr || !*expr) {
		snprintf(text, textlen, "every %ld s", poll_interval);
		*next = after + poll_interval;
		return 0;
	}
	if (cron_parse(expr, tz, &cr, err, sizeof err) < 0) {
		snprintf(text, textlen, "invalid cron: %s", err);
		*next = after + poll_interval;   /* a stored schedule gone bad still pulls */
		return -1;
	}
	snprintf(text, textlen, "cron %s (%s)", cr.expr, cr.tz);
	*next = cron_next(&cr, after);
	return 1;
}

cJSON *settings_get(PGconn *c, const char *name)
{
	const char *p[1] = { name };
	cJSON *o = db_json(c, "source settings", Q_GET, 1, p);

	if (o) {
		char text[CRON_EXPR_MAX + ZONE_NAME_MAX + 32], iso[32];
		time_t next;

		/* a cron schedule's next firing is known here; an interval's depends on the last
		 * pull of the running server (GET /api/status shows it) */
		if (settings_schedule(json_get_string(o, "cron"), json_get_string(o, "tz"),
		                      (long)json_get_int(o, "poll_interval", 60), time(NULL), &next,
		                      text, sizeof text) == 1 && next != (time_t)-1) {
			clock_iso_utc(next, iso, sizeof iso);
			cJSON_AddStringToObject(o, "next_run_at", iso);
		}
		cJSON_AddStringToObject(o, "schedule", text);
	}
	return o;
}

int settings_conflict_policy_ok(const char *p)
{
	static const char *const policies[] = { "manual", "source-wins", "local-wins",
		"latest-wins" };

	for (size_t i = 0; p && i < sizeof policies / sizeof *policies; i++)
		if (!strcmp(p, policies[i]))
			return 1;
	return 0;
}

static int settings_known(const char *k)
{
	static const char *const keys[] = { "poll_interval", "retry_base_s", "max_retries",
		"batch_size", "cron", "tz", "rate_limit", "enabled", "tables", "table",
		"insert_enabled", "update_enabled", "delete_enabled", "update_without_changes",
		"conflict_policy" };

	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		if (!strcmp(k, keys[i]))
			return 1;
	return 0;
}

/* Checks one table's flags object; 0 or -1 with err. */
static int settings_check_flags(const char *tbl, const cJSON *o, int allow_table, char *err,
                                size_t errlen)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, o) {
		int known = 0;

		if (!strcmp(v->string, "conflict_policy")) {
			/* a table's own policy, or null for the source's */
			if (!cJSON_IsNull(v) && !settings_conflict_policy_ok(cJSON_GetStringValue(v))) {
				snprintf(err, errlen, "table %.64s: conflict_policy must be "
				         SETTINGS_POLICIES " (or null)", tbl);
				return -1;
			}
			continue;
		}
		for (int i = 0; i < SETTINGS_NFLAGS; i++)
			if (!strcmp(v->string, settings_flags[i]))
				known = 1;
		if (!known && allow_table)
			continue;   /* the flat form: source-level keys are checked elsewhere */
		if (!known) {
			snprintf(err, errlen, "table %.64s: unknown flag \"%.64s\"", tbl, v->string);
			return -1;
		}
		if (!cJSON_IsBool(v)) {
			snprintf(err, errlen, "table %.64s: %s must be true or false", tbl, v->string);
			return -1;
		}
	}
	return 0;
}

static enum result settings_set_flags(PGconn *c, const char *name, const char *tbl,
                                      const cJSON *o, char *err, size_t errlen)
{
	const char *p[6] = { name, tbl, NULL, NULL, NULL, NULL };
	const cJSON *pol;
	PGresult *res;
	enum result rc = RESULT_INVALID;

	for (int i = 0; i < SETTINGS_NFLAGS; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, settings_flags[i]);

		if (cJSON_IsBool(v))
			p[2 + i] = cJSON_IsTrue(v) ? "true" : "false";
	}
	if (!(res = db_exec(c, "source table flags", Q_SET_FLAGS, 6, p))) {
		snprintf(err, errlen, "database error");
		rc = RESULT_INTERNAL;
	} else if (strcmp(PQcmdTuples(res), "1")) {
		snprintf(err, errlen, "table \"%.64s\" is not configured for source %s", tbl, name);
	} else {
		rc = RESULT_OK;
	}
	PQclear(res);
	if (rc == RESULT_OK && (pol = cJSON_GetObjectItemCaseSensitive(o, "conflict_policy"))) {
		p[2] = cJSON_GetStringValue(pol);     /* NULL for null: the source's */
		if (db_run(c, "source table policy", Q_SET_TABLE_POLICY, 3, p) < 0) {
			snprintf(err, errlen, "database error");
			rc = RESULT_INTERNAL;
		}
	}
	return rc;
}

enum result settings_apply(PGconn *c, const char *name, const cJSON *patch, cJSON **out,
                           char *err, size_t errlen)
{
	const cJSON *v, *tables = NULL, *table = NULL, *cronv, *tzv, *rate, *policy;
	const char *p[3];
	PGresult *res = NULL;
	enum result st = RESULT_INVALID;
	int in_tx = 0, flat_flags = 0;
	char num[64];

	*out = NULL;
	if (!cJSON_IsObject(patch)) {
		snprintf(err, errlen, "the settings must be a JSON object");
		goto out;
	}
	/* ---- check everything first ---- */
	cJSON_ArrayForEach(v, patch) {
		if (!settings_known(v->string)) {
			snprintf(err, errlen, "unknown setting \"%.64s\"", v->string);
			goto out;
		}
		for (int i = 0; i < SETTINGS_NFLAGS; i++)
			if (!strcmp(v->string, settings_flags[i]))
				flat_flags = 1;
	}
	for (size_t i = 0; i < sizeof settings_ints / sizeof *settings_ints; i++) {
		v = cJSON_GetObjectItemCaseSensitive(patch, settings_ints[i].key);
		if (v && (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
		          v->valuedouble < settings_ints[i].min ||
		          v->valuedouble > settings_ints[i].max)) {
			snprintf(err, errlen, "%s must be an integer within %ld..%ld",
			         settings_ints[i].key, settings_ints[i].min, settings_ints[i].max);
			goto out;
		}
	}
	rate = cJSON_GetObjectItemCaseSensitive(patch, "rate_limit");
	if (rate && (!cJSON_IsNumber(rate) || !(rate->valuedouble >= 0) ||
	             rate->valuedouble > 100000)) {
		snprintf(err, errlen, "rate_limit must be requests per second, 0..100000 "
		         "(0 = unlimited)");
		goto out;
	}
	/* with "table" the policy is that table's (checked with its flags), else the source's */
	policy = cJSON_GetObjectItemCaseSensitive(patch, "conflict_policy");
	if (policy && !cJSON_GetObjectItemCaseSensitive(patch, "table") &&
	    !settings_conflict_policy_ok(cJSON_GetStringValue(policy))) {
		snprintf(err, errlen, "conflict_policy must be " SETTINGS_POLICIES);
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(patch, "enabled");
	if (v && !cJSON_IsBool(v)) {
		snprintf(err, errlen, "enabled must be true or false");
		goto out;
	}
	cronv = cJSON_GetObjectItemCaseSensitive(patch, "cron");
	tzv = cJSON_GetObjectItemCaseSensitive(patch, "tz");
	if ((cronv && !cJSON_IsNull(cronv) && !cJSON_IsString(cronv)) ||
	    (tzv && !cJSON_IsNull(tzv) && !cJSON_IsString(tzv))) {
		snprintf(err, errlen, "cron and tz must be strings (or null to clear)");
		goto out;
	}
	tables = cJSON_GetObjectItemCaseSensitive(patch, "tables");
	table = cJSON_GetObjectItemCaseSensitive(patch, "table");
	if (tables && !cJSON_IsObject(tables)) {
		snprintf(err, errlen, "tables must be an object {\"table\": {\"flag\": bool}}");
		goto out;
	}
	if ((table && !cJSON_IsString(table)) || (flat_flags && !table)) {
		snprintf(err, errlen, "control flags need \"table\": the name of a source table");
		goto out;
	}
	cJSON_ArrayForEach(v, tables) {
		if (!cJSON_IsObject(v)) {
			snprintf(err, errlen, "tables.%.64s must be an object of flags", v->string);
			goto out;
		}
		if (settings_check_flags(v->string, v, 0, err, errlen) < 0)
			goto out;
	}
	if (table && settings_check_flags(table->valuestring, patch, 1, err, errlen) < 0)
		goto out;

	/* ---- then write, in one transaction ---- */
	st = RESULT_INTERNAL;
	if (db_run(c, "begin", "BEGIN", 0, NULL) < 0) {
		snprintf(err, errlen, "database error");
		goto out;
	}
	in_tx = 1;
	p[0] = name;
	if (!(res = db_exec(c, "source lock", Q_LOCK, 1, p)))
		goto dberr;
	if (PQntuples(res) != 1) {
		st = RESULT_NOT_FOUND;
		snprintf(err, errlen, "unknown source \"%.64s\"", name);
		goto out;
	}
	if (cronv || tzv) {
		/* the schedule is checked as a whole: the new or kept expression in the new or
		 * kept zone */
		const char *expr = cronv ? (cJSON_IsString(cronv) ? cronv->valuestring : NULL)
		                         : (PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0));
		const char *tz = tzv ? (cJSON_IsString(tzv) ? tzv->valuestring : NULL)
		                     : (PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1));
		struct cron cr;

		if (expr && (!*expr || !strcmp(expr, "off")))
			expr = NULL;
		if (tz && !*tz)
			tz = NULL;
		if (expr && cron_parse(expr, tz, &cr, err, errlen) < 0) {
			st = RESULT_INVALID;
			goto out;
		}
		if (!expr && tz && !zone_get(tz, err, errlen)) {
			st = RESULT_INVALID;
			goto out;
		}
		p[1] = expr;
		p[2] = tz;
		if (db_run(c, "source schedule", Q_SET_SCHEDULE, 3, p) < 0)
			goto dberr;
	}
	for (size_t i = 0; i < sizeof settings_ints / sizeof *settings_ints; i++) {
		v = cJSON_GetObjectItemCaseSensitive(patch, settings_ints[i].key);
		if (!v)
			continue;
		snprintf(num, sizeof num, "%ld", (long)v->valuedouble);
		p[1] = num;
		if (db_run(c, settings_ints[i].key, settings_ints[i].query, 2, p) < 0)
			goto dberr;
	}
	if (rate) {
		snprintf(num, sizeof num, "%.6g", rate->valuedouble);
		p[1] = num;
		if (db_run(c, "source rate limit", Q_SET_RATE, 2, p) < 0)
			goto dberr;
	}
	if (policy && !table) {
		p[1] = cJSON_GetStringValue(policy);
		if (db_run(c, "source conflict policy", Q_SET_POLICY, 2, p) < 0)
			goto dberr;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(patch, "enabled"))) {
		p[1] = cJSON_IsTrue(v) ? "true" : "false";
		if (db_run(c, "source enabled", Q_SET_ENABLED, 2, p) < 0)
			goto dberr;
	}
	cJSON_ArrayForEach(v, tables) {
		if ((st = settings_set_flags(c, name, v->string, v, err, errlen)) != RESULT_OK)
			goto out;
	}
	if (table &&
	    (st = settings_set_flags(c, name, table->valuestring, patch, err, errlen)) != RESULT_OK)
		goto out;
	st = RESULT_INTERNAL;
	if (db_run(c, "commit", "COMMIT", 0, NULL) < 0)
		goto dberr;
	in_tx = 0;
	if (!(*out = settings_get(c, name)))
		goto dberr;
	log_info("source %s: settings changed", name);
	st = RESULT_OK;
	goto out;
dberr:
	st = RESULT_INTERNAL;
	snprintf(err, errlen, "database error: %s", db_last_error());
out:
	PQclear(res);
	if (in_tx)
		db_run(c, "rollback", "ROLLBACK", 0, NULL);
	return st;
}
