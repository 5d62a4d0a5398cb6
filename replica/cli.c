/* cli: see cli.h. */
#include <stdio.h>
#include "common/db.h"
#include "replica/cli.h"

PGconn *cli_open(const struct arg_opt *opts, int check, int *rc)
{
	const char *db = args_get(opts, "db");
	char err[512];
	PGconn *c = NULL;

	*rc = 1;
	if (!db || !*db) {
		fprintf(stderr, "error: no database: give --db CONNINFO or set TDGL_DB\n");
		*rc = 2;
		goto out;
	}
	if (!(c = db_connect(db, err, sizeof err))) {
		fprintf(stderr, "error: cannot connect to the database: %s\n", err);
		goto out;
	}
	if (db_schema_check(c, DB_ROLE_REPLICA, REPLICA_SCHEMA_VERSION, !check, err,
	                    sizeof err) < 0) {
		fprintf(stderr, "error: %s\n", err);
		PQfinish(c);
		c = NULL;
	}
out:
	return c;
}

PGconn *cli_open_named(int argc, char **argv, struct arg_opt *opts, const char *usage,
                       const char *missing, const char **name, int *rc)
{
	const char *pos[1] = { 0 };
	int np = 0, r = args_parse(argc, argv, opts, usage, pos, 1, &np);
	PGconn *c = NULL;

	*rc = r == 1 ? 0 : 2;
	if (r)
		goto out;
	if (np != 1) {
		fprintf(stderr, "error: %s\n", missing);
		goto out;
	}
	*name = pos[0];
	c = cli_open(opts, 1, rc);
out:
	return c;
}
