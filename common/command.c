/* command: see command.h. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "common/args.h"
#include "common/command.h"
#include "common/log.h"
#include "common/version.h"

/* The options every command of both binaries shares, given before the command name or by
 * their environment variables (copied before parsing: usage shows these defaults). */
static const struct arg_opt command_globals[] = {
	{ "log-level", "TDGL_LOG_LEVEL", "LEVEL", "lowest level logged: debug, info, warn or error",
	  "info" },
	{ "log-format", "TDGL_LOG_FORMAT", "FORMAT", "log lines (stderr) as text or json", "text" },
	{ 0 }
};

/* The log level named by s, or -1. */
static int command_log_level(const char *s)
{
	static const struct { const char *name; enum log_level level; } levels[] = {
		{ "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "warn", LOG_WARN },
		{ "warning", LOG_WARN }, { "error", LOG_ERROR },
	};

	for (size_t i = 0; i < sizeof levels / sizeof *levels; i++)
		if (!strcasecmp(s, levels[i].name))
			return (int)levels[i].level;
	return -1;
}

/* How many of argv[1..] are global options (up to the command name). */
static int command_globals_end(int argc, char **argv)
{
	int i = 1;

	while (i < argc && !strncmp(argv[i], "--", 2) && strcmp(argv[i], "--help") &&
	       strcmp(argv[i], "--version") && strcmp(argv[i], "--"))
		i += strchr(argv[i], '=') ? 1 : 2;
	return i < argc ? i : argc;
}

int command_dispatch(int argc, char **argv, const char *prog, const char *usage,
                     const struct command *cmds)
{
	struct arg_opt globals[sizeof command_globals / sizeof *command_globals];
	int n = command_globals_end(argc, argv), level, rc = 2;
	const char *cmd, *fmt;

	memcpy(globals, command_globals, sizeof globals);
	log_init(prog, 0);
	if (args_parse(n, argv, globals, usage, NULL, 0, NULL) != 0)
		goto out;   /* a usage error, printed (--help is the command name's) */
	fmt = args_get(globals, "log-format");
	level = command_log_level(args_get(globals, "log-level"));
	if (level < 0 || (strcmp(fmt, "text") && strcmp(fmt, "json"))) {
		fprintf(stderr, "error: %s\n\n", level < 0 ? "--log-level: expected debug, info, "
		        "warn or error" : "--log-format: expected text or json");
		args_usage(stderr, command_globals, usage);
		goto out;
	}
	log_init(prog, !strcmp(fmt, "json"));
	log_set_level((enum log_level)level);
	cmd = n < argc ? argv[n] : NULL;
	if (!cmd) {
		fprintf(stderr, "error: no command given\n\n");
		args_usage(stderr, command_globals, usage);
		goto out;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		args_usage(stdout, command_globals, usage);
		rc = 0;
		goto out;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("%s %s\n", prog, TDGL_VERSION);
		rc = 0;
		goto out;
	}
	for (const struct command *c = cmds; c->name; c++)
		if (!strcmp(cmd, c->name)) {
			rc = c->run(argc - n, argv + n, c->arg);
			goto out;
		}
	fprintf(stderr, "error: unknown command \"%s\"\n\n", cmd);
	args_usage(stderr, command_globals, usage);
out:
	return rc;
}
