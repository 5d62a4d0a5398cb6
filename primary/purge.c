/* purge: one call of tdgl.purge() (the rules live in SQL, next to the data they protect). */
#include <stdio.h>
#include <stdlib.h>

#include "common/db.h"
#include "common/log.h"
#include "primary/purge.h"

static const char Q_PURGE[] = "SELECT tdgl.purge(make_interval(secs => $1::bigint))";

long long purge_run(PGconn *c, long retention_s)
{
	char secs[24];
	const char *params[1] = { secs };
	PGresult *res;
	long long n = -1;

	snprintf(secs, sizeof secs, "%ld", retention_s);
	res = db_exec(c, "purge", Q_PURGE, 1, params);
	if (res && PQgetisnull(res, 0, 0)) {
		n = 0;
		log_info("purge: skipped, another process is purging this database");
	} else if (res) {
		n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		log_info("purge: deleted %lld changes older than %lds", n, retention_s);
	}
	PQclear(res);
	return n;
}
