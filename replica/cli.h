/* cli: what every tdgl-replica command shares: opening the site's database. */
#ifndef TDGL_REPLICA_CLI_H
#define TDGL_REPLICA_CLI_H
#include <libpq-fe.h>
#include "common/args.h"

#define REPLICA_SCHEMA_VERSION 9

/* Connects to the database of opts' "db" (--db / TDGL_DB). With check, the database must
 * hold the replica schema at REPLICA_SCHEMA_VERSION; without (migrate), only be reachable
 * (the primary role's schema may be there too). On failure prints why on stderr, sets *rc (2: no --db, a usage error; 1: any
 * other) and returns NULL. The caller PQfinish'es the connection. */
PGconn *cli_open(const struct arg_opt *opts, int check, int *rc);

/* Parses a command's options and its one positional NAME (*name), then cli_open's the
 * database (checked). NULL with *rc the exit code to return: 0 after --help, 2 for a usage
 * error (printed; `missing` is the message when NAME is not given, "pull needs a source
 * NAME"), or cli_open's. */
PGconn *cli_open_named(int argc, char **argv, struct arg_opt *opts, const char *usage,
                       const char *missing, const char **name, int *rc);

#endif
