/* jobs_cli: the sync-job commands of tdgl-replica (issue 4):
 *   source set NAME [--table T --insert-enabled on|off ...] [--cron EXPR --tz ZONE] ...
 *   source show NAME
 *   retry ID | retry --all-failed [--source NAME]
 *   pull NAME --dry-run   (jobs_cli_dry_run, called by `pull`)
 * Each prints JSON on stdout; exit 0 ok, 1 runtime error, 2 usage error or invalid value. */
#ifndef TDGL_REPLICA_JOBS_CLI_H
#define TDGL_REPLICA_JOBS_CLI_H
#include <libpq-fe.h>

int jobs_cli_source_set(int argc, char **argv);
int jobs_cli_source_show(int argc, char **argv);
int jobs_cli_retry(int argc, char **argv);
/* The dry run of `pull NAME --dry-run` on an open connection. */
int jobs_cli_dry_run(PGconn *c, const char *name, const char *key_material);

#endif
