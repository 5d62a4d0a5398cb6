/* json: strict parsing of untrusted JSON on top of cJSON. Checks run cheapest first and
 * before cJSON sees the text: UTF-8 validity, no NUL bytes, and a bracket-depth scan, so
 * deep nesting never reaches cJSON's recursion. After parsing: whole input consumed and no
 * duplicate keys (checked by sorting keys, so a huge object costs n log n). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/json.h"

int json_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned c = *p;
		size_t n;
		unsigned cp;

		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;  /* continuation byte, overlong lead (c0/c1) or > U+10FFFF */
		}
		if ((size_t)(end - p) <= n)
			return 0;
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += n + 1;
	}
	return 1;
}

/* Deepest bracket nesting outside strings, stopping early once above limit. */
static int json_depth(const char *s, size_t len, int limit)
{
	int depth = 0, max = 0, in_str = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				max = depth;
			if (max > limit)
				break;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return max;
}

static int json_cmp_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Finds a duplicate key in the top `levels` levels of the tree (< 0: anywhere); returns it
 * or NULL. Recursion is bounded by the depth check done before parsing. */
static const char *json_find_dup(const cJSON *item, int levels)
{
	const char *dup = NULL;
	const char **keys = NULL;
	size_t n = 0;

	if (!cJSON_IsArray(item) && !cJSON_IsObject(item))
		goto out;
	for (const cJSON *c = item->child; c; c = c->next) {
		n++;
		if (levels != 1 && (dup = json_find_dup(c, levels - (levels > 0))))
			goto out;
	}
	if (!cJSON_IsObject(item) || n < 2)
		goto out;
	if (n <= 16) {  /* small objects: pairwise is cheaper than sorting */
		for (const cJSON *a = item->child; a; a = a->next)
			for (const cJSON *b = a->next; b; b = b->next)
				if (!strcmp(a->string, b->string)) {
					dup = a->string;
					goto out;
				}
		goto out;
	}
	keys = malloc(n * sizeof *keys);
	if (!keys)
		abort();
	n = 0;
	for (const cJSON *c = item->child; c; c = c->next)
		keys[n++] = c->string;
	qsort(keys, n, sizeof *keys, json_cmp_keys);
	for (size_t i = 1; i < n; i++)
		if (!strcmp(keys[i - 1], keys[i])) {
			dup = keys[i];
			goto out;
		}
out:
	free(keys);
	return dup;
}

/* The checks shared by both parsers; dups: refuse duplicate keys in the top `dups` levels
 * (< 0: anywhere, 0: nowhere); max_depth: nesting limit. */
static cJSON *json_parse(const char *text, size_t len, int dups, int max_depth, char *err,
                         size_t errlen)
{
	const char *end = NULL, *dup;
	cJSON *root = NULL;

	if (!text || len == 0) {
		snprintf(err, errlen, "empty JSON");
		goto out;
	}
	if (memchr(text, '\0', len)) {
		snprintf(err, errlen, "NUL byte in JSON");
		goto out;
	}
	if (!json_utf8_valid(text, len)) {
		snprintf(err, errlen, "invalid UTF-8 in JSON");
		goto out;
	}
	if (json_depth(text, len, max_depth) > max_depth) {
		snprintf(err, errlen, "JSON nested deeper than %d levels", max_depth);
		goto out;
	}
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!root) {
		snprintf(err, errlen, "invalid JSON at offset %ld",
		         end ? (long)(end - text) : 0L);
		goto out;
	}
	while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (end != text + len) {
		snprintf(err, errlen, "trailing data after JSON at offset %ld", (long)(end - text));
		goto fail;
	}
	if (dups && (dup = json_find_dup(root, dups))) {
		size_t n = strnlen(dup, 64);

		while (n > 0 && n < strlen(dup) && ((unsigned char)dup[n] & 0xc0) == 0x80)
			n--;  /* never cut a UTF-8 sequence in half */
		snprintf(err, errlen, "duplicate key \"%.*s\"", (int)n, dup);
		goto fail;
	}
	goto out;
fail:
	cJSON_Delete(root);
	root = NULL;
out:
	return root;
}

/* 1 when a string holds the escape \u0000: cJSON would cut the string there silently (a
 * name "x\u0000y" becoming "x", a secret losing its tail). */
static int json_nul_escape(const char *s, size_t len)
{
	int in_str = 0;

	for (size_t i = 0; i < len; i++) {
		if (!in_str) {
			in_str = s[i] == '"';
		} else if (s[i] == '"') {
			in_str = 0;
		} else if (s[i] == '\\') {
			if (len - i >= 6 && !memcmp(s + i + 1, "u0000", 5))
				return 1;
			i++;
		}
	}
	return 0;
}

cJSON *json_parse_strict(const char *text, size_t len, char *err, size_t errlen)
{
	if (text && json_nul_escape(text, len)) {
		snprintf(err, errlen, "\\u0000 in a JSON string");
		return NULL;
	}
	return json_parse(text, len, -1, JSON_MAX_DEPTH, err, errlen);
}

cJSON *json_parse_embedded(const char *text, size_t len, char *err, size_t errlen)
{
	/* cJSON refuses deeper documents itself; checked first so its recursion stays bounded.
	 * The top level (a page's changes/cursor/more) must be unambiguous: cJSON reads the
	 * first of two equal keys, PostgreSQL's json operators the last. */
	return json_parse(text, len, 1, CJSON_NESTING_LIMIT - 1, err, errlen);
}

const char *json_get_string(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

char *json_print(const cJSON *item)
{
	return cJSON_PrintUnformatted(item);
}

long long json_get_int(const cJSON *obj, const char *key, long long def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	double d;

	if (!cJSON_IsNumber(v))
		return def;
	d = v->valuedouble;
	/* Only exactly representable integers: 2^53 bounds doubles that hold every integer. */
	if (d != d || d < -9007199254740992.0 || d > 9007199254740992.0 || d != (double)(long long)d)
		return def;
	return (long long)d;
}

int json_get_bool(const cJSON *obj, const char *key, int def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* ---- scanning without a tree: spans into the text ---- */

const char *json_skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int json_hex4(const char *p, const char *end, unsigned *out)
{
	unsigned v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* p at the opening quote; returns past the closing quote, or NULL. */
static const char *json_scan_string(const char *p, const char *end)
{
	unsigned u;

	for (p++; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c != '\\')
			continue;
		if (++p >= end)
			return NULL;
		switch (*p) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			break;
		case 'u':
			if (json_hex4(p + 1, end, &u) < 0)
				return NULL;
			p += 4;
			break;
		default:
			return NULL;
		}
	}
	return NULL;
}

static const char *json_scan_digits(const char *p, const char *end)
{
	const char *s = p;

	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p > s ? p : NULL;
}

static const char *json_scan_number(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (!(p = json_scan_digits(p, end)))
		return NULL;
	if (p < end && *p == '.' && !(p = json_scan_digits(p + 1, end)))
		return NULL;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!(p = json_scan_digits(p, end)))
			return NULL;
	}
	return p;
}

const char *json_scan_value(const char *p, const char *end, int max_depth)
{
	static const char *const words[] = { "true", "false", "null" };
	char close;

	p = json_skip_ws(p, end);
	if (p >= end)
		return NULL;
	if (*p == '"')
		return json_scan_string(p, end);
	if (*p == '-' || (*p >= '0' && *p <= '9'))
		return json_scan_number(p, end);
	for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
		size_t n = strlen(words[i]);

		if ((size_t)(end - p) >= n && !memcmp(p, words[i], n))
			return p + n;
	}
	if ((*p != '{' && *p != '[') || max_depth <= 0)
		return NULL;
	close = *p == '{' ? '}' : ']';
	p = json_skip_ws(p + 1, end);
	if (p < end && *p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			if (p >= end || *p != '"' || !(p = json_scan_string(p, end)))
				return NULL;
			p = json_skip_ws(p, end);
			if (p >= end || *p != ':')
				return NULL;
			p++;
		}
		if (!(p = json_scan_value(p, end, max_depth - 1)))
			return NULL;
		p = json_skip_ws(p, end);
		if (p < end && *p == close)
			return p + 1;
		if (p >= end || *p != ',')
			return NULL;
		p = json_skip_ws(p + 1, end);
	}
}

static void json_put_utf8(struct buf *out, unsigned cp)
{
	unsigned char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | (cp >> 6));
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (cp >> 12));
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (cp >> 18));
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(out, b, n);
}

int json_string_decode(const char *p, size_t n, struct buf *out)
{
	const char *end = p + n;
	static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";

	if (n < 2 || p[0] != '"' || json_scan_string(p, end) != end)
		return -1;
	for (p++, end--; p < end; p++) {
		const char *run = p, *e;
		unsigned cp, lo;

		while (p < end && *p != '\\')
			p++;
		buf_append(out, run, (size_t)(p - run));
		if (p >= end)
			break;
		p++;                                      /* the escape letter */
		if (*p != 'u') {
			e = strchr(esc_in, *p);
			buf_append(out, esc_out + (e - esc_in), 1);
			continue;
		}
		json_hex4(p + 1, end, &cp);               /* checked by json_scan_string */
		p += 4;
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return -1;                            /* a lone low surrogate */
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (end - p < 7 || p[1] != '\\' || p[2] != 'u' || json_hex4(p + 3, end, &lo) < 0 ||
			    lo < 0xdc00 || lo > 0xdfff)
				return -1;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			p += 6;
		}
		if (cp == 0)
			return -1;                            /* text cannot hold NUL */
		json_put_utf8(out, cp);
	}
	if (!out->data)
		buf_append(out, "", 0);
	return 0;
}
