/* fuzz_json: json_parse_strict (and json_parse_embedded, for change pages) reads every untrusted JSON body and parameter (change pages
 * on the replica, pk/after/filter on the primary, admin bodies). It must never crash, never
 * recurse past its depth limit, and what it accepts must print and re-parse. The page checks
 * mirror what the replica's pull reads from a change page (changes array, cursor, more). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/cursor.h"
#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[128];
	cJSON *j = json_parse_strict((const char *)data, size, err, sizeof err);
	cJSON *e = json_parse_embedded((const char *)data, size, err, sizeof err);

	/* the embedded parser (change pages) accepts everything the strict one does */
	if (j && !e)
		abort();
	cJSON_Delete(e);
	if (!j) {
		if (!memchr(err, '\0', sizeof err) || !json_utf8_valid(err, strlen(err)))
			abort();   /* error text goes into JSON replies: must be valid UTF-8 */
		return 0;
	}
	if (!json_utf8_valid((const char *)data, size))
		abort();
	{
		char *text = json_print(j);
		cJSON *k;
		if (!text)
			abort();
		k = json_parse_strict(text, strlen(text), err, sizeof err);
		if (!k)
			abort();
		cJSON_Delete(k);
		free(text);
	}
	{
		const cJSON *changes = cJSON_GetObjectItemCaseSensitive(j, "changes");
		const char *next = json_get_string(j, "cursor");
		struct cursor c;
		(void)json_get_bool(j, "more", 0);
		(void)json_get_int(j, "head", -1);
		if (cJSON_IsArray(changes))
			for (const cJSON *ch = changes->child; ch; ch = ch->next) {
				(void)json_get_int(ch, "id", 0);
				(void)json_get_string(ch, "table");
				(void)json_get_string(ch, "op");
			}
		if (next && cursor_decode(next, &c, err, sizeof err) == 0)
			cursor_free(&c);
	}
	cJSON_Delete(j);
	return 0;
}
