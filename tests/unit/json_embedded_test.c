/* json_parse_embedded: documents that embed PostgreSQL json values verbatim (a json column
 * may hold duplicate keys and deep nesting) parse; the strict parser still refuses them. */
#include <stdlib.h>
#include "common/json.h"
#include "tests/unit/unit.h"

UNIT_TEST(json_embedded_allows_duplicate_keys_in_values)
{
	static const char page[] =
		"{\"changes\":[{\"id\":1,\"row\":{\"id\":1,\"js\":{\"dup\":1,\"dup\":2}}}],"
		"\"cursor\":\"x\",\"more\":false}";
	char err[128];
	cJSON *j = json_parse_embedded(page, sizeof page - 1, err, sizeof err);

	CHECK(j != NULL);
	CHECK(json_parse_strict(page, sizeof page - 1, err, sizeof err) == NULL);
	cJSON_Delete(j);
	/* but never at the top level: cJSON and PostgreSQL would read different values */
	{
		static const char two[] = "{\"cursor\":\"a\",\"cursor\":\"b\"}";
		CHECK(json_parse_embedded(two, sizeof two - 1, err, sizeof err) == NULL);
	}
}

UNIT_TEST(json_embedded_allows_deep_values_but_stays_bounded)
{
	char *deep = malloc(2 * 2000 + 1), err[128];
	cJSON *j;

	for (int i = 0; i < 2000; i++) {
		deep[i] = '[';
		deep[2000 + i] = ']';
	}
	deep[4000] = '\0';
	CHECK(json_parse_embedded(deep, 4000, err, sizeof err) == NULL);   /* past cJSON's limit */
	j = json_parse_embedded(deep + 1000, 2000, err, sizeof err);       /* 1000 deep */
	CHECK(j == NULL);
	j = json_parse_embedded(deep + 1500, 1000, err, sizeof err);       /* 500 deep */
	CHECK(j != NULL);
	cJSON_Delete(j);
	CHECK(json_parse_embedded("{\"a\":1} x", 9, err, sizeof err) == NULL);
	CHECK(json_parse_embedded("\"\xff\"", 3, err, sizeof err) == NULL);
	free(deep);
}

UNIT_TEST(json_strict_refuses_nul_escapes_embedded_keeps_them)
{
	static const char nul[] = "{\"name\":\"x\\u0000y\"}";
	static const char escaped_backslash[] = "{\"name\":\"x\\\\u0000y\"}";
	char err[128];
	cJSON *j;

	CHECK(json_parse_strict(nul, sizeof nul - 1, err, sizeof err) == NULL);
	j = json_parse_strict(escaped_backslash, sizeof escaped_backslash - 1, err, sizeof err);
	CHECK(j != NULL);
	CHECK_STR(json_get_string(j, "name"), "x\\u0000y");
	cJSON_Delete(j);
	j = json_parse_embedded(nul, sizeof nul - 1, err, sizeof err);
	CHECK(j != NULL);
	cJSON_Delete(j);
}
