/* args: long options ("--name value", "--name=value"), boolean flags, environment
 * fallbacks and usage text. Values point into argv or the environment; a secret read from a
 * file or stdin is copied into args_secrets, kept for the life of the process.
 * opts is only modified when parsing succeeds, so usage printed on an error shows the
 * declared defaults, never a value that came from the environment. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/args.h"

#define ARGS_MAX_OPTS 128
#define ARGS_SECRET_MAX 4096
#define ARGS_FILE_SUFFIX "-file"

static char *args_secrets[16];   /* secrets read from files or stdin (reachable, never freed) */
static int args_nsecrets;

static int args_find(const struct arg_opt *opts, const char *name, size_t len)
{
	for (int i = 0; opts[i].name; i++)
		if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
			return i;
	return -1;
}

/* A flag's environment value: "1" when truthy, NULL when falsy, "" when unrecognized. */
static const char *args_env_flag(const char *v)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "", "0", "false", "no", "off" };

	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
		if (!strcasecmp(v, yes[i]))
			return "1";
	for (size_t i = 0; i < sizeof no / sizeof *no; i++)
		if (!strcasecmp(v, no[i]))
			return NULL;
	return "";
}

/* Secret-looking options never show their value in usage text (limits such as
 * max-waits-per-key are settings, not secrets). */
static int args_is_secret(const char *name)
{
	if (!strncmp(name, "max-", 4))
		return 0;
	return strstr(name, "token") || strstr(name, "secret") || strstr(name, "key") ||
	       strstr(name, "password");
}

/* Reads the first line of path ("-": standard input) for option `name`; a copy, or NULL
 * with the reason printed. */
static const char *args_read_secret(const char *name, const char *path)
{
	char line[ARGS_SECRET_MAX + 2];
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	const char *out = NULL;
	size_t n;

	if (!f) {
		fprintf(stderr, "error: --%s-file %s: %s\n", name, path, strerror(errno));
		return NULL;
	}
	if (!fgets(line, sizeof line, f)) {
		fprintf(stderr, "error: --%s: nothing to read from %s\n", name,
		        strcmp(path, "-") ? path : "standard input");
		goto out;
	}
	n = strcspn(line, "\r\n");
	if (n > ARGS_SECRET_MAX) {
		fprintf(stderr, "error: --%s: longer than %d characters\n", name, ARGS_SECRET_MAX);
		goto out;
	}
	line[n] = '\0';
	if (args_nsecrets >= (int)(sizeof args_secrets / sizeof *args_secrets) ||
	    !(args_secrets[args_nsecrets] = strdup(line))) {
		fprintf(stderr, "error: --%s: too many secrets read\n", name);
		goto out;
	}
	out = args_secrets[args_nsecrets++];
out:
	explicit_bzero(line, sizeof line);
	if (f != stdin)
		fclose(f);
	return out;
}

/* Index of the secret option that "--<name>-file" names, or -1. */
static int args_find_file(const struct arg_opt *opts, const char *name, size_t len)
{
	size_t sl = strlen(ARGS_FILE_SUFFIX);
	int k;

	if (len <= sl || strncmp(name + len - sl, ARGS_FILE_SUFFIX, sl))
		return -1;
	k = args_find(opts, name, len - sl);
	return k >= 0 && opts[k].metavar && args_is_secret(opts[k].name) ? k : -1;
}

int args_parse(int argc, char **argv, struct arg_opt *opts, const char *usage,
               const char **pos, int maxpos, int *npos)
{
	const char *vals[ARGS_MAX_OPTS];
	int nopts = 0, np = 0, rc = 2, only_pos = 0;

	while (opts[nopts].name)
		nopts++;
	if (nopts > ARGS_MAX_OPTS) {
		fprintf(stderr, "error: too many options declared\n");
		goto out;
	}
	for (int i = 0; i < nopts; i++) {
		const char *env = opts[i].env ? getenv(opts[i].env) : NULL;

		vals[i] = opts[i].value;
		if (env && opts[i].metavar && *env)
			vals[i] = env;
		else if (env && !opts[i].metavar) {
			const char *f = args_env_flag(env);
			if (f && !*f) {
				fprintf(stderr, "error: %s must be 1 or 0, got \"%s\"\n", opts[i].env, env);
				goto usage;
			}
			vals[i] = f;
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *name;
		size_t nlen;
		int k;

		if (only_pos || a[0] != '-' || !strcmp(a, "-")) {
			if (np >= maxpos) {
				fprintf(stderr, "error: unexpected argument \"%s\"\n", a);
				goto usage;
			}
			pos[np++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			only_pos = 1;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			args_usage(stdout, opts, usage);
			rc = 1;
			goto out;
		}
		if (a[1] != '-') {
			fprintf(stderr, "error: unknown option %s\n", a);
			goto usage;
		}
		name = a + 2;
		eq = strchr(name, '=');
		nlen = eq ? (size_t)(eq - name) : strlen(name);
		k = args_find(opts, name, nlen);
		if (k < 0 && (k = args_find_file(opts, name, nlen)) >= 0) {
			const char *path = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;

			if (!path) {
				fprintf(stderr, "error: option --%.*s needs a value (PATH)\n", (int)nlen,
				        name);
				goto usage;
			}
			if (!(vals[k] = args_read_secret(opts[k].name, path)))
				goto out;
			continue;
		}
		if (k < 0) {
			fprintf(stderr, "error: unknown option --%.*s\n", (int)nlen, name);
			goto usage;
		}
		if (!opts[k].metavar) {
			if (eq) {
				fprintf(stderr, "error: option --%s takes no value\n", opts[k].name);
				goto usage;
			}
			vals[k] = "1";
		} else if (eq) {
			vals[k] = eq + 1;
		} else if (i + 1 < argc) {
			vals[k] = argv[++i];
		} else {
			fprintf(stderr, "error: option --%s needs a value (%s)\n", opts[k].name,
			        opts[k].metavar);
			goto usage;
		}
	}
	for (int i = 0; i < nopts; i++)
		if (vals[i] && !strcmp(vals[i], "-") && opts[i].metavar &&
		    args_is_secret(opts[i].name) && !(vals[i] = args_read_secret(opts[i].name, "-")))
			goto out;
	for (int i = 0; i < nopts; i++)
		opts[i].value = vals[i];
	if (npos)
		*npos = np;
	rc = 0;
	goto out;
usage:
	args_usage(stderr, opts, usage);
out:
	return rc;
}

const char *args_get(const struct arg_opt *opts, const char *name)
{
	int k = args_find(opts, name, strlen(name));

	return k < 0 ? NULL : opts[k].value;
}

void args_usage(void *f, const struct arg_opt *opts, const char *usage)
{
	FILE *out = f;

	fprintf(out, "usage: %s\n", usage ? usage : "");
	fprintf(out, "\noptions:\n");
	for (int i = 0; opts[i].name; i++) {
		char left[96];
		const struct arg_opt *o = &opts[i];

		snprintf(left, sizeof left, "--%s%s%s", o->name, o->metavar ? " " : "",
		         o->metavar ? o->metavar : "");
		fprintf(out, "  %-24s %s", left, o->help ? o->help : "");
		if (o->env)
			fprintf(out, " [env %s]", o->env);
		if (o->metavar && o->value && *o->value && !args_is_secret(o->name))
			fprintf(out, " (default: %s)", o->value);
		fputc('\n', out);
		if (o->metavar && args_is_secret(o->name)) {
			snprintf(left, sizeof left, "--%s%s PATH", o->name, ARGS_FILE_SUFFIX);
			fprintf(out, "  %-24s %s\n", left, "read it from the first line of PATH "
			        "(or give \"-\" for it: read from stdin)");
		}
	}
	fprintf(out, "  %-24s %s\n", "-h, --help", "show this help");
}

long args_duration(const char *s)
{
	static const struct { char unit; long mult; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	long n, mult = 1;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (errno)
		return -1;
	if (*end) {
		size_t i;
		for (i = 0; i < sizeof units / sizeof *units; i++)
			if (*end == units[i].unit)
				break;
		if (i == sizeof units / sizeof *units || end[1])
			return -1;
		mult = units[i].mult;
	}
	if (n > LONG_MAX / mult)
		return -1;
	return n * mult;
}

int args_int(const char *s, long min, long max, long *out)
{
	long n;
	char *end;

	if (!s || !*s || !(*s == '-' || (*s >= '0' && *s <= '9')))
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || *end || end == s || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}
