/* Unit tests for common/json.c: strict parsing of hostile input. */
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "tests/unit/unit.h"

UNIT_TEST(json_utf8_table)
{
	static const struct { const char *s; int ok; } cases[] = {
		{ "", 1 }, { "plain", 1 }, { "\xc3\xa9", 1 }, { "\xe2\x82\xac", 1 },
		{ "\xf0\x9f\x99\x82", 1 }, { "\xf4\x8f\xbf\xbf", 1 },
		{ "\xc3", 0 }, { "\xc0\xaf", 0 }, { "\xe0\x80\xaf", 0 }, { "\xed\xa0\x80", 0 },
		{ "\xf4\x90\x80\x80", 0 }, { "\xf8\x88\x80\x80\x80", 0 }, { "\x80", 0 },
		{ "\xff", 0 }, { "a\xe2\x82", 0 }, { "\xf0\x80\x80\xaf", 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		if (json_utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
			fprintf(stderr, "  utf8 case %zu\n", i);
		CHECK(json_utf8_valid(cases[i].s, strlen(cases[i].s)) == cases[i].ok);
	}
}

UNIT_TEST(json_parse_strict_table)
{
	static const struct { const char *in; const char *err; } cases[] = {
		{ "{\"a\":1}", NULL },
		{ " [1, 2, {\"b\": [true, null, \"x\"]}] \n", NULL },
		{ "\"\\ud83d\\ude42\"", NULL },
		{ "{\"a\":{\"a\":1},\"b\":{\"a\":2}}", NULL },  /* same key in sibling objects */
		{ "12345678901234567890123456789012345678901234567890", NULL },
		{ "", "empty JSON" },
		{ "{\"a\":1", "invalid JSON" },
		{ "{\"a\":1}x", "trailing data" },
		{ "{\"a\":1} {}", "trailing data" },
		{ "{\"a\":1,\"a\":2}", "duplicate key \"a\"" },
		{ "[{\"k\":1,\"x\":0,\"k\":2}]", "duplicate key \"k\"" },
		{ "\"\xc3\x28\"", "invalid UTF-8" },
		{ "\"\\ud800\"", "invalid JSON" },
		{ "{'a':1}", "invalid JSON" },
		{ "[1,]", "invalid JSON" },
		{ "nul", "invalid JSON" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char err[128] = "";
		cJSON *j = json_parse_strict(cases[i].in, strlen(cases[i].in), err, sizeof err);

		if (!cases[i].err) {
			if (!j)
				fprintf(stderr, "  refused \"%s\": %s\n", cases[i].in, err);
			CHECK(j != NULL);
		} else {
			CHECK(j == NULL);
			if (!strstr(err, cases[i].err))
				fprintf(stderr, "  \"%s\": got \"%s\", want \"%s\"\n", cases[i].in, err,
				        cases[i].err);
			CHECK(strstr(err, cases[i].err) != NULL);
		}
		cJSON_Delete(j);
	}
}

UNIT_TEST(json_parse_refuses_nul_and_deep_nesting)
{
	char err[128];
	size_t n = 10000;
	char *deep = malloc(2 * n + 1);
	cJSON *j;

	CHECK(json_parse_strict("{\"a\":1}\0", 8, err, sizeof err) == NULL);
	CHECK(strstr(err, "NUL") != NULL);
	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\0';
	CHECK(json_parse_strict(deep, 2 * n, err, sizeof err) == NULL);
	CHECK(strstr(err, "nested deeper") != NULL);
	/* Exactly JSON_MAX_DEPTH levels is accepted; brackets inside strings do not count. */
	memset(deep, '[', JSON_MAX_DEPTH);
	memset(deep + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
	j = json_parse_strict(deep, 2 * JSON_MAX_DEPTH, err, sizeof err);
	CHECK(j != NULL);
	cJSON_Delete(j);
	memset(deep, '[', 100);
	deep[0] = '[';
	deep[1] = '"';
	memcpy(deep + 98, "\\\"\"]", 4);  /* ["[[[...[\""] : 96 brackets inside a string */
	j = json_parse_strict(deep, 102, err, sizeof err);
	CHECK(j != NULL);
	cJSON_Delete(j);
	free(deep);
}

UNIT_TEST(json_duplicate_in_large_object)
{
	char err[128];
	char *text = malloc(200000);
	size_t o = 0;
	cJSON *j;

	o += (size_t)sprintf(text + o, "{");
	for (int i = 0; i < 10000; i++)
		o += (size_t)sprintf(text + o, "%s\"k%d\":%d", i ? "," : "", i, i);
	o += (size_t)sprintf(text + o, "}");
	j = json_parse_strict(text, o, err, sizeof err);
	CHECK(j != NULL);
	cJSON_Delete(j);
	text[o - 1] = '\0';
	o--;
	o += (size_t)sprintf(text + o, ",\"k5000\":1}");
	j = json_parse_strict(text, o, err, sizeof err);
	CHECK(j == NULL);
	CHECK_STR(err, "duplicate key \"k5000\"");
	free(text);
}

UNIT_TEST(json_getters)
{
	char err[128];
	const char *in = "{\"s\":\"x\",\"n\":42,\"f\":1.5,\"b\":true,\"big\":1e300,\"neg\":-7}";
	cJSON *j = json_parse_strict(in, strlen(in), err, sizeof err);
	char *p;

	CHECK(j != NULL);
	CHECK_STR(json_get_string(j, "s"), "x");
	CHECK(json_get_string(j, "n") == NULL);
	CHECK(json_get_string(j, "missing") == NULL);
	CHECK(json_get_int(j, "n", -1) == 42);
	CHECK(json_get_int(j, "neg", 0) == -7);
	CHECK(json_get_int(j, "f", -1) == -1);
	CHECK(json_get_int(j, "big", -1) == -1);
	CHECK(json_get_int(j, "s", -1) == -1);
	CHECK(json_get_bool(j, "b", 0) == 1);
	CHECK(json_get_bool(j, "n", 5) == 5);
	p = json_print(j);
	CHECK(p && strncmp(p, "{\"s\":\"x\",\"n\":42", 15) == 0);
	free(p);
	cJSON_Delete(j);
}
