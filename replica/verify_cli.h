/* verify_cli: `tdgl-replica verify NAME [--table T ...] [--repair] [--json]` (verify.h).
 * Prints per table "identical" or what differs (--json: the whole report). Exit 0 every
 * table identical, 3 something differs, 1 runtime error (a table could not be verified),
 * 2 usage error (also a table the source does not sync). */
#ifndef TDGL_REPLICA_VERIFY_CLI_H
#define TDGL_REPLICA_VERIFY_CLI_H

int verify_cli_run(int argc, char **argv);

#endif
