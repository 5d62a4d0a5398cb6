/* Runs every registered unit test; prints "N passed, N failed" and exits non-zero on failure. */
#include <stdlib.h>
#include "tests/unit/unit.h"
#include "common/log.h"

#define UNIT_MAX 1024

static struct { const char *name; unit_fn fn; } unit_tests[UNIT_MAX];
static int unit_count;

void unit_register(const char *name, unit_fn fn)
{
	if (unit_count < UNIT_MAX) {
		unit_tests[unit_count].name = name;
		unit_tests[unit_count].fn = fn;
		unit_count++;
	}
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0;
	const char *only = argc > 1 ? argv[1] : NULL;

	log_init("unit", 0);
	log_set_level(LOG_ERROR);
	for (int i = 0; i < unit_count; i++) {
		int f = 0;
		if (only && !strstr(unit_tests[i].name, only))
			continue;
		unit_tests[i].fn(&f);
		printf("%s %s\n", f ? "FAIL" : "ok  ", unit_tests[i].name);
		if (f)
			failed++;
		else
			passed++;
	}
	printf("unit: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
