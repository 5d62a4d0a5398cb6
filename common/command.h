/* command: the dispatch both binaries share ("tdgl-x <command> [options]"). */
#ifndef TDGL_COMMAND_H
#define TDGL_COMMAND_H

struct command {
	const char *name;
	int (*run)(int argc, char **argv, int arg);  /* argv[0] is the command's name */
	int arg;                                     /* passed to run: a variant of the command */
};

/* Runs the command named by the first argument after the global options (--log-level
 * TDGL_LOG_LEVEL, --log-format TDGL_LOG_FORMAT: every command's, set up here with log_init
 * before the command runs) from cmds (ended by a NULL name) and returns its exit code. No
 * command: usage on stderr, 2. --help/-h/help: usage and the global options on stdout, 0.
 * --version: "prog version", 0. Unknown command or a bad global option: an error and the
 * usage on stderr, 2. */
int command_dispatch(int argc, char **argv, const char *prog, const char *usage,
                     const struct command *cmds);

#endif
