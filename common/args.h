/* args: command-line options with environment-variable fallbacks, and --help text.
 * Usage: declare a table of struct arg_opt ending with {0}; args_parse fills `value`
 * (pointers into argv or the environment, or process-lifetime copies of a secret read from
 * a file or stdin). Precedence: command line, then a non-empty environment variable, then
 * the default. A flag's variable accepts 1/true/yes/on and 0/false/no/off. On error or
 * --help nothing in opts is changed.
 * Secret options (name contains token, secret, key or password) never show their value in
 * usage text and need never be on a command line, where every local user sees them (ps):
 * besides the environment variable, `--NAME-file PATH` reads the first line of PATH and
 * `--NAME -` reads one line from standard input. */
#ifndef TDGL_ARGS_H
#define TDGL_ARGS_H

struct arg_opt {
	const char *name;     /* long option without dashes, e.g. "db" */
	const char *env;      /* environment fallback, e.g. "TDGL_DB", or NULL */
	const char *metavar;  /* e.g. "CONNINFO"; NULL for a boolean flag */
	const char *help;
	const char *value;    /* default in, parsed value out ("1" for a set flag) */
};

/* Parses argv[0..argc) (argv[0] is the command name). Positionals are collected into
 * pos (up to maxpos; more is an error). Returns 0 ok, 1 when --help was printed (exit 0),
 * 2 on a usage error (message and usage printed on stderr). */
int args_parse(int argc, char **argv, struct arg_opt *opts, const char *usage,
               const char **pos, int maxpos, int *npos);
const char *args_get(const struct arg_opt *opts, const char *name);
/* Prints "usage: ...", and each option with its env var and default, to f (FILE *). */
void args_usage(void *f, const struct arg_opt *opts, const char *usage);

/* "30" "30s" "5m" "2h" "7d" -> seconds; -1 when invalid. */
long args_duration(const char *s);
/* Decimal integer within [min, max]; returns 0 and sets *out, or -1. */
int args_int(const char *s, long min, long max, long *out);

#endif
