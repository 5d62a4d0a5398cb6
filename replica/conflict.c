/* conflict: thin layer over tdgl_replica.conflicts and tdgl_replica.resolve_conflict(). */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "common/db.h"
#include "common/log.h"
#include "replica/conflict.h"

static const char Q_LIST[] =
	"SELECT coalesce(json_agg(tdgl_replica.conflict_json(c) ORDER BY c.id), '[]')::text "
	"FROM (SELECT * FROM tdgl_replica.conflicts WHERE $1::text IS NULL OR lower(status) = lower($1) "
	"ORDER BY id DESC LIMIT $2::int) c";
static const char Q_RESOLVE[] = "SELECT tdgl_replica.resolve_conflict($1::bigint, $2)::text";

cJSON *conflict_list(PGconn *c, const char *status, long limit)
{
	char lim[32];
	const char *p[2] = { status, lim };
	PGresult *res;
	cJSON *out = NULL;

	snprintf(lim, sizeof lim, "%ld", limit > 0 ? limit : 1000);
	res = db_exec(c, "conflicts list", Q_LIST, 2, p);
	if (res)
		out = cJSON_Parse(PQgetvalue(res, 0, 0));
	PQclear(res);
	return out;
}

const char *conflict_resolution(const char *s)
{
	if (!s)
		return NULL;
	if (!strcasecmp(s, "Accept Primary") || !strcasecmp(s, "accept-primary"))
		return "Accept Primary";
	if (!strcasecmp(s, "Keep Local") || !strcasecmp(s, "keep-local"))
		return "Keep Local";
	return NULL;
}

enum result conflict_resolve(PGconn *c, long id, const char *resolution, cJSON **out,
                             char *err, size_t errlen)
{
	char sid[32];
	const char *canon = conflict_resolution(resolution);
	const char *p[2] = { sid, canon };
	PGresult *res = NULL;
	enum result rc = RESULT_INTERNAL;

	*out = NULL;
	if (!canon) {
		snprintf(err, errlen, "resolution must be \"Accept Primary\" or \"Keep Local\"");
		rc = RESULT_INVALID;
		goto out;
	}
	snprintf(sid, sizeof sid, "%ld", id);
	res = db_try(c, Q_RESOLVE, 2, p);
	if (!res) {
		/* tdgl_replica.resolve_conflict's errors (sql/replica/50-conflicts.sql) */
		const char *state = db_last_sqlstate();
		rc = !strcmp(state, "P0002") ? RESULT_NOT_FOUND : !strcmp(state, "55000") ?
		     RESULT_CONFLICT : !strcmp(state, "22023") ? RESULT_INVALID : RESULT_INTERNAL;
		snprintf(err, errlen, "%s", db_last_error());
		if (rc == RESULT_INTERNAL)
			log_error("resolve conflict %ld: %s", id, err);
		goto out;
	}
	*out = cJSON_Parse(PQgetvalue(res, 0, 0));
	rc = RESULT_OK;
out:
	PQclear(res);
	return rc;
}
