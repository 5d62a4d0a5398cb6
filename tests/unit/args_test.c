/* Unit tests for common/args.c: option forms, env fallback, usage errors, durations, ints. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/args.h"
#include "tests/unit/unit.h"

/* Runs args_parse on a space-separated command line with stdout/stderr silenced. */
static int args_test_run(const char *line, struct arg_opt *opts, const char **pos, int maxpos,
                         int *npos)
{
	static char copy[256];  /* parsed values point into it until the next call */
	char *argv[16], *save = NULL;
	int argc = 0, rc, so, se, null = open("/dev/null", O_WRONLY);

	snprintf(copy, sizeof copy, "%s", line);
	for (char *t = strtok_r(copy, " ", &save); t && argc < 15; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	fflush(stdout);
	fflush(stderr);
	so = dup(1);
	se = dup(2);
	dup2(null, 1);
	dup2(null, 2);
	rc = args_parse(argc, argv, opts, "cmd [options]", pos, maxpos, npos);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	close(null);
	return rc;
}

UNIT_TEST(args_parse_table)
{
	static const struct {
		const char *line;
		int rc;
		const char *db, *listen, *verbose;
		int npos;
	} cases[] = {
		{ "cmd", 0, NULL, "0.0.0.0:8080", NULL, 0 },
		{ "cmd --db x", 0, "x", "0.0.0.0:8080", NULL, 0 },
		{ "cmd --db=a=b", 0, "a=b", "0.0.0.0:8080", NULL, 0 },
		{ "cmd --db= ", 0, "", "0.0.0.0:8080", NULL, 0 },
		{ "cmd --listen :1 --verbose", 0, NULL, ":1", "1", 0 },
		{ "cmd one two", 0, NULL, "0.0.0.0:8080", NULL, 2 },
		{ "cmd -- --db", 0, NULL, "0.0.0.0:8080", NULL, 1 },
		{ "cmd one two three", 2, NULL, NULL, NULL, 0 },
		{ "cmd --nope", 2, NULL, NULL, NULL, 0 },
		{ "cmd --nope=1", 2, NULL, NULL, NULL, 0 },
		{ "cmd -x", 2, NULL, NULL, NULL, 0 },
		{ "cmd --db", 2, NULL, NULL, NULL, 0 },
		{ "cmd --verbose=1", 2, NULL, NULL, NULL, 0 },
		{ "cmd --help", 1, NULL, NULL, NULL, 0 },
		{ "cmd --db x -h", 1, NULL, NULL, NULL, 0 },
	};

	unsetenv("TDGL_TEST_DB");
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct arg_opt opts[] = {
			{ "db", "TDGL_TEST_DB", "CONNINFO", "database", NULL },
			{ "listen", NULL, "HOST:PORT", "address", "0.0.0.0:8080" },
			{ "verbose", NULL, NULL, "more output", NULL },
			{ 0 },
		};
		const char *pos[2];
		int npos = -1, rc = args_test_run(cases[i].line, opts, pos, 2, &npos);

		if (rc != cases[i].rc)
			fprintf(stderr, "  case \"%s\": rc %d\n", cases[i].line, rc);
		CHECK(rc == cases[i].rc);
		if (rc != 0) {
			/* Nothing is changed when parsing fails. */
			CHECK(opts[0].value == NULL);
			CHECK_STR(opts[1].value, "0.0.0.0:8080");
			continue;
		}
		CHECK(npos == cases[i].npos);
		CHECK((cases[i].db == NULL) == (args_get(opts, "db") == NULL));
		if (cases[i].db)
			CHECK_STR(args_get(opts, "db"), cases[i].db);
		CHECK_STR(args_get(opts, "listen"), cases[i].listen);
		CHECK((cases[i].verbose == NULL) == (args_get(opts, "verbose") == NULL));
	}
}

UNIT_TEST(args_env_fallback_and_override)
{
	struct arg_opt opts[] = {
		{ "db", "TDGL_TEST_DB", "CONNINFO", "database", "default" },
		{ "flag", "TDGL_TEST_FLAG", NULL, "a flag", NULL },
		{ 0 },
	};
	int npos;

	setenv("TDGL_TEST_DB", "from-env", 1);
	setenv("TDGL_TEST_FLAG", "true", 1);
	CHECK(args_test_run("cmd", opts, NULL, 0, &npos) == 0);
	CHECK_STR(args_get(opts, "db"), "from-env");
	CHECK_STR(args_get(opts, "flag"), "1");
	CHECK(args_test_run("cmd --db cli", opts, NULL, 0, &npos) == 0);
	CHECK_STR(args_get(opts, "db"), "cli");
	setenv("TDGL_TEST_FLAG", "0", 1);
	opts[1].value = NULL;
	CHECK(args_test_run("cmd", opts, NULL, 0, &npos) == 0);
	CHECK(args_get(opts, "flag") == NULL);
	setenv("TDGL_TEST_FLAG", "maybe", 1);
	CHECK(args_test_run("cmd", opts, NULL, 0, &npos) == 2);
	unsetenv("TDGL_TEST_DB");
	unsetenv("TDGL_TEST_FLAG");
	CHECK(args_get(opts, "missing") == NULL);
}

UNIT_TEST(args_usage_hides_secrets)
{
	struct arg_opt opts[] = {
		{ "listen", "TDGL_LISTEN", "HOST:PORT", "address", "0.0.0.0:8080" },
		{ "admin-token", "TDGL_ADMIN_TOKEN", "TOKEN", "admin token", "s3cret" },
		{ 0 },
	};
	char text[2048] = "";
	FILE *f = fmemopen(text, sizeof text - 1, "w");

	args_usage(f, opts, "tdgl-replica serve [options]");
	fclose(f);
	CHECK(strstr(text, "usage: tdgl-replica serve [options]") != NULL);
	CHECK(strstr(text, "--listen HOST:PORT") != NULL);
	CHECK(strstr(text, "[env TDGL_LISTEN]") != NULL);
	CHECK(strstr(text, "(default: 0.0.0.0:8080)") != NULL);
	CHECK(strstr(text, "--admin-token TOKEN") != NULL);
	CHECK(strstr(text, "s3cret") == NULL);
}

UNIT_TEST(args_duration_table)
{
	static const struct { const char *in; long out; } cases[] = {
		{ "0", 0 }, { "30", 30 }, { "30s", 30 }, { "5m", 300 }, { "2h", 7200 },
		{ "7d", 604800 }, { "", -1 }, { "s", -1 }, { "-5", -1 }, { "5x", -1 },
		{ "5mm", -1 }, { " 5", -1 }, { "1.5h", -1 }, { "99999999999999999999", -1 },
		{ "999999999999999999d", -1 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		long got = args_duration(cases[i].in);
		if (got != cases[i].out)
			fprintf(stderr, "  args_duration(\"%s\") = %ld\n", cases[i].in, got);
		CHECK(got == cases[i].out);
	}
	CHECK(args_duration(NULL) == -1);
}

UNIT_TEST(args_int_table)
{
	static const struct { const char *in; long min, max; int rc; long out; } cases[] = {
		{ "100", 1, 500, 0, 100 }, { "1", 1, 500, 0, 1 }, { "500", 1, 500, 0, 500 },
		{ "0", 1, 500, -1, 0 }, { "501", 1, 500, -1, 0 }, { "-3", -5, 5, 0, -3 },
		{ "", 0, 9, -1, 0 }, { "12a", 0, 99, -1, 0 }, { " 1", 0, 9, -1, 0 },
		{ "+1", 0, 9, -1, 0 }, { "99999999999999999999", 0, 9, -1, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		long out = 0;
		int rc = args_int(cases[i].in, cases[i].min, cases[i].max, &out);
		CHECK(rc == cases[i].rc);
		if (rc == 0)
			CHECK(out == cases[i].out);
	}
	CHECK(args_int(NULL, 0, 1, NULL) == -1);
}

/* A secret never needs the command line: --NAME-file PATH and "-" (stdin) read it. */
UNIT_TEST(args_secret_from_file_or_stdin)
{
	char path[] = "/tmp/tdgl-args-XXXXXX", line[128];
	int fd = mkstemp(path), in, saved;
	struct arg_opt opts[] = {
		{ "secret", NULL, "SECRET", "a secret", NULL },
		{ "name", NULL, "NAME", "not a secret", NULL },
		{ 0 }
	};

	CHECK(fd >= 0 && write(fd, "s3cr3t-from-file\nsecond line\n", 29) == 29);
	close(fd);
	snprintf(line, sizeof line, "cmd --secret-file %s", path);
	CHECK(args_test_run(line, opts, NULL, 0, NULL) == 0);
	CHECK_STR(args_get(opts, "secret"), "s3cr3t-from-file");
	snprintf(line, sizeof line, "cmd --name-file %s", path);   /* only secrets have -file */
	CHECK(args_test_run(line, opts, NULL, 0, NULL) == 2);
	CHECK(args_test_run("cmd --secret-file /nonexistent/x", opts, NULL, 0, NULL) != 0);
	/* "-" reads one line from standard input */
	in = open(path, O_RDONLY);
	saved = dup(0);
	dup2(in, 0);
	close(in);
	CHECK(args_test_run("cmd --secret -", opts, NULL, 0, NULL) == 0);
	dup2(saved, 0);
	close(saved);
	clearerr(stdin);
	CHECK_STR(args_get(opts, "secret"), "s3cr3t-from-file");
	unlink(path);
}
