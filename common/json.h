/* json: strict parsing of untrusted JSON (cJSON): valid UTF-8, bounded nesting, no duplicate
 * object keys, no \u0000 in strings (cJSON would cut them), whole input consumed. */
#ifndef TDGL_JSON_H
#define TDGL_JSON_H
#include <stddef.h>
#include <cjson/cJSON.h>
#include "common/buf.h"

#define JSON_MAX_DEPTH 64

/* Returns the parsed tree (caller cJSON_Delete()s) or NULL with a reason in err. */
cJSON *json_parse_strict(const char *text, size_t len, char *err, size_t errlen);
/* Like json_parse_strict, but duplicate keys are allowed below the top level and nesting may
 * go as deep as cJSON allows: for documents embedding PostgreSQL json values verbatim (a json
 * column may hold duplicate keys and deep nesting), i.e. the primary's change and row pages. */
cJSON *json_parse_embedded(const char *text, size_t len, char *err, size_t errlen);
/* 1 when the bytes are valid UTF-8 (no overlongs, no surrogates). */
int json_utf8_valid(const char *s, size_t len);
/* Typed getters; NULL / default when absent or of another type. */
const char *json_get_string(const cJSON *obj, const char *key);
/* An integral number (|n| <= 2^53), else def. */
long long json_get_int(const cJSON *obj, const char *key, long long def);
/* true/false, else def. */
int json_get_bool(const cJSON *obj, const char *key, int def);
/* Prints compactly; malloc'd, caller frees. */
char *json_print(const cJSON *item);

/* Scanning without building a tree, for large documents whose parts are handed on verbatim.
 * json_scan_value: p at (whitespace before) one JSON value; returns the position just past it,
 * or NULL when the text there is not one valid value (JSON grammar, nesting at most max_depth;
 * UTF-8 is not checked here: json_utf8_valid). */
const char *json_scan_value(const char *p, const char *end, int max_depth);
const char *json_skip_ws(const char *p, const char *end);
/* Appends the UTF-8 text of the JSON string literal p[0..n) (quotes included) to out.
 * -1 when it is not one valid string literal, or holds \u0000 or a lone surrogate. */
int json_string_decode(const char *p, size_t n, struct buf *out);

#endif
