/* Unit tests for common/log.c: both line formats, escaping, level filter. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "tests/unit/unit.h"

/* Runs log lines with stderr captured into out (NUL-terminated). */
static void log_test_capture(int json, char *out, size_t outlen)
{
	char tmpl[] = "/tmp/tdgl-log-XXXXXX";
	int fd = mkstemp(tmpl), saved = dup(2);
	ssize_t n;

	unlink(tmpl);
	dup2(fd, 2);
	log_init("tdgl-test", json);
	log_set_level(LOG_INFO);
	log_debug("hidden %d", 1);
	log_info("plain %s", "message");
	log_error("quote \" backslash \\ newline \n tab \t bad \xff utf8 \xc3\xa9");
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, out, outlen - 1);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	log_init("unit", 0);
	log_set_level(LOG_ERROR);
}

UNIT_TEST(log_text_lines)
{
	char out[4096], *second;

	log_test_capture(0, out, sizeof out);
	CHECK(strstr(out, "hidden") == NULL);
	/* 2026-11-25T05:00:00.123Z tdgl-test INFO plain message */
	CHECK(strlen(out) > 25 && out[4] == '-' && out[10] == 'T' && out[19] == '.' && out[23] == 'Z');
	CHECK(strncmp(out + 24, " tdgl-test INFO plain message\n", 30) == 0);
	second = strchr(out, '\n');
	CHECK(second && strstr(second + 1, "tdgl-test ERROR quote \" backslash \\ newline \\n tab \t "
	                                    "bad ? utf8 \xc3\xa9\n") != NULL);
	CHECK(second && strchr(second + 1, '\n') == out + strlen(out) - 1);  /* two lines */
}

UNIT_TEST(log_json_lines)
{
	char out[4096], err[128], *nl, *line;
	cJSON *j;
	int lines = 0;

	log_test_capture(1, out, sizeof out);
	for (line = out; (nl = strchr(line, '\n')); line = nl + 1, lines++) {
		j = json_parse_strict(line, (size_t)(nl - line), err, sizeof err);
		CHECK(j != NULL);
		CHECK_STR(json_get_string(j, "prog"), "tdgl-test");
		CHECK(json_get_string(j, "ts") && strlen(json_get_string(j, "ts")) == 24);
		if (lines == 0) {
			CHECK_STR(json_get_string(j, "level"), "INFO");
			CHECK_STR(json_get_string(j, "msg"), "plain message");
		} else {
			CHECK_STR(json_get_string(j, "level"), "ERROR");
			CHECK_STR(json_get_string(j, "msg"),
			          "quote \" backslash \\ newline \n tab \t bad ? utf8 \xc3\xa9");
		}
		cJSON_Delete(j);
	}
	CHECK(lines == 2);
}
