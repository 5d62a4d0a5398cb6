/* source_cli: the tdgl-replica commands about sources (source.h, settings.h):
 *   source add NAME --url U --key K --secret S --tables t1,t2 [...]
 *   source list | source remove NAME
 *   source set NAME [--table T --insert-enabled on|off ...] [--cron EXPR --tz ZONE] ...
 *   source show NAME
 *   pull NAME [--dry-run]   one pull now (pull.h), or only what it would do (dryrun.h)
 * Exit 0 ok, 1 runtime error (an unknown source too), 2 usage error or invalid value. */
#ifndef TDGL_REPLICA_SOURCE_CLI_H
#define TDGL_REPLICA_SOURCE_CLI_H

/* `tdgl-replica source ...` (argv[0] "source"); a command of common/command.h. */
int source_cli_run(int argc, char **argv, int arg);
/* `tdgl-replica pull NAME [--dry-run]`; a command of common/command.h. */
int source_cli_pull(int argc, char **argv, int arg);

#endif
