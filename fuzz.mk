# fuzz.mk (included by the Makefile): libFuzzer harnesses under tests/fuzz/ and the fault
# proxy the fault tests put between replica and primary.
#   make fuzz                 runs each harness for FUZZ_SECONDS (default 30) after replaying
#                             its regression inputs (tests/fuzz/regress/<name>/)
#   make fuzz-regress         replays only the regression inputs and seed corpora
#   make fuzz-build           builds the harnesses into build-fuzz/
#   make $(BIN)/faultproxy    the fault proxy (tests/faultproxy.c)
# Seed corpora live in tests/fuzz/corpus/<name>/ and are only read: inputs found while
# fuzzing go to build-fuzz/corpus/<name>/, crashes to build-fuzz/artifacts/.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_BUILD   := build-fuzz
FUZZ_NAMES   := cursor json params files signature cron page
FUZZ_CFLAGS  := -g -O1 -std=gnu11 -I. -I/usr/include/postgresql -D_GNU_SOURCE -pthread \
                -Wall -Wextra -fno-omit-frame-pointer \
                -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_LDFLAGS := -fsanitize=fuzzer,address,undefined
FUZZ_COMMON  := $(COMMON_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_PRIMARY := $(filter-out $(FUZZ_BUILD)/primary/main.o,$(PRIMARY_SRC:%.c=$(FUZZ_BUILD)/%.o))
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)

.PHONY: fuzz fuzz-build fuzz-regress fuzz-clean fuzz-deps
all: $(BIN)/faultproxy

# libFuzzer comes with clang and its runtime
fuzz-deps:
	sh tools/deps.sh clang libclang-rt-14-dev

$(BIN)/faultproxy: tests/faultproxy.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -pthread

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/libcommon.a: $(FUZZ_COMMON)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/libprimary.a: $(FUZZ_PRIMARY)
	rm -f $@ && ar rcs $@ $^

# Harnesses that #include a module to reach its static parsers link the archives: the
# included module's own member is never pulled in, so nothing is defined twice.
$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/replica/notify.o \
                      $(FUZZ_BUILD)/replica/page.o $(FUZZ_BUILD)/libprimary.a $(FUZZ_BUILD)/libcommon.a
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $< $(FUZZ_BUILD)/replica/notify.o $(FUZZ_BUILD)/replica/page.o \
		$(FUZZ_BUILD)/libprimary.a $(FUZZ_BUILD)/libcommon.a $(LDLIBS)

fuzz-build: fuzz-deps
	$(MAKE) $(FUZZ_BINS)

# Each harness: replay regressions and seeds (a crash fails make), then explore.
fuzz: fuzz-build
	@set -e; for n in $(FUZZ_NAMES); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$n $(FUZZ_BUILD)/artifacts tests/fuzz/regress/$$n; \
	  echo "== fuzz $$n: regressions"; \
	  $(FUZZ_BUILD)/fuzz_$$n -runs=0 tests/fuzz/regress/$$n tests/fuzz/corpus/$$n >/dev/null 2>&1 || \
	    { $(FUZZ_BUILD)/fuzz_$$n -runs=0 tests/fuzz/regress/$$n tests/fuzz/corpus/$$n; exit 1; }; \
	  echo "== fuzz $$n: $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BUILD)/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) \
	    -max_len=8192 -timeout=60 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$n- -dict=tests/fuzz/$$n.dict \
	    $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n > $(FUZZ_BUILD)/fuzz_$$n.log 2>&1 || true; \
	  grep -E 'stat::number_of_executed_units|^==.*ERROR|^SUMMARY' $(FUZZ_BUILD)/fuzz_$$n.log || true; \
	  test -z "$$(ls $(FUZZ_BUILD)/artifacts/$$n-crash-* $(FUZZ_BUILD)/artifacts/$$n-leak-* \
	    $(FUZZ_BUILD)/artifacts/$$n-timeout-* $(FUZZ_BUILD)/artifacts/$$n-oom-* 2>/dev/null)" || \
	    { echo "fuzz $$n: crash, see $(FUZZ_BUILD)/artifacts/"; exit 1; }; \
	done

fuzz-regress: fuzz-build
	@set -e; for n in $(FUZZ_NAMES); do \
	  mkdir -p tests/fuzz/regress/$$n; \
	  $(FUZZ_BUILD)/fuzz_$$n -runs=0 tests/fuzz/regress/$$n tests/fuzz/corpus/$$n; done

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
