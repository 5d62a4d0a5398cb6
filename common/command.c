/* command: see command.h. */
#include <stdio.h>
#include <string.h>
#include "common/command.h"
#include "common/version.h"

int command_dispatch(int argc, char **argv, const char *prog, const char *usage,
                     const struct command *cmds)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd) {
		fprintf(stderr, "error: no command given\n\nusage: %s\n", usage);
		return 2;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		printf("usage: %s\n", usage);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("%s %s\n", prog, TDGL_VERSION);
		return 0;
	}
	for (const struct command *c = cmds; c->name; c++)
		if (!strcmp(cmd, c->name))
			return c->run(argc - 1, argv + 1, c->arg);
	fprintf(stderr, "error: unknown command \"%s\"\n\nusage: %s\n", cmd, usage);
	return 2;
}
