/* cli: what every tdgl-replica command shares: opening the site's database. */
#ifndef TDGL_REPLICA_CLI_H
#define TDGL_REPLICA_CLI_H
#include <libpq-fe.h>
#include "common/args.h"

#define REPLICA_SCHEMA_VERSION 7

/* Connects to the database of opts' "db" (--db / TDGL_DB). With check, the database must
 * hold the replica schema at REPLICA_SCHEMA_VERSION; without (migrate), only be reachable
 * (the primary role's schema may be there too). On failure prints why on stderr, sets *rc (2: no --db, a usage error; 1: any
 * other) and returns NULL. The caller PQfinish'es the connection. */
PGconn *cli_open(const struct arg_opt *opts, int check, int *rc);

#endif
