/* unit: a tiny test runner for the pure modules. Each test file defines tests with
 * UNIT_TEST(name) { ... CHECK(cond); CHECK_STR(a, b); ... }; they register themselves. */
#ifndef TDGL_UNIT_H
#define TDGL_UNIT_H
#include <stdio.h>
#include <string.h>

typedef void (*unit_fn)(int *failed);
void unit_register(const char *name, unit_fn fn);

#define UNIT_TEST(name)                                                        \
	static void name(int *unit_failed);                                        \
	__attribute__((constructor)) static void name##_reg(void)                  \
	{ unit_register(#name, name); }                                            \
	static void name(int *unit_failed)

#define CHECK(cond) do { if (!(cond)) {                                        \
	fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
	*unit_failed = 1; } } while (0)

#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b);                  \
	if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                   \
	fprintf(stderr, "  %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,         \
	        a_ ? a_ : "(null)", b_ ? b_ : "(null)"); *unit_failed = 1; } } while (0)

#endif
