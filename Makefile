# tdgl-streaming build. `make` builds bin/tdgl-primary and bin/tdgl-replica;
# `make test` runs the whole suite; `make SANITIZE=1 test` runs it under ASan+UBSan.
CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
PYTHON  ?= /usr/bin/python3
# Integration tests mostly wait on servers, so they run in parallel workers (pytest-xdist);
# tests marked xdist_group (one browser for tests/test_console.py) stay on one worker.
TEST_JOBS ?= 4
# What `make test` runs: a file (TESTS=tests/test_cli.py) or more pytest arguments
# (PYTEST_ARGS='-k interrupted').
TESTS   ?= tests
BUILD   := build$(if $(SANITIZE),-san)
BIN     := bin$(if $(SANITIZE),-san)

WARN    := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wshadow
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) -I. -I/usr/include/postgresql -D_GNU_SOURCE -pthread
LDLIBS  := -lmicrohttpd -lcurl -lcjson -lpq -lssl -lcrypto -lm -pthread
ifdef SANITIZE
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

COMMON_SRC  := $(wildcard common/*.c)
PRIMARY_SRC := $(wildcard primary/*.c)
REPLICA_SRC := $(wildcard replica/*.c)
UNIT_SRC    := $(wildcard tests/unit/*.c)
COMMON_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/%.o)
PRIMARY_OBJ := $(PRIMARY_SRC:%.c=$(BUILD)/%.o) $(BUILD)/sql/primary_sql.o
REPLICA_OBJ := $(REPLICA_SRC:%.c=$(BUILD)/%.o) $(BUILD)/sql/replica_sql.o
# The web console's files (console/*.html, .css, .js), embedded like the SQL.
CONSOLE_SRC := $(wildcard console/*.html console/*.css console/*.js)
CONSOLE_OBJ := $(CONSOLE_SRC:%=$(BUILD)/%.o)

.PHONY: all deps test unit integration clean install demo demo-stop bench fuzz
all: $(BIN)/tdgl-primary $(BIN)/tdgl-replica

$(BIN)/tdgl-primary: $(PRIMARY_OBJ) $(COMMON_OBJ) $(CONSOLE_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/tdgl-replica: $(REPLICA_OBJ) $(COMMON_OBJ) $(CONSOLE_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/unit-tests: $(UNIT_SRC:%.c=$(BUILD)/%.o) $(COMMON_OBJ) $(BUILD)/replica/page.o $(BUILD)/replica/fkorder.o $(BUILD)/sql/primary_sql.o $(BUILD)/sql/replica_sql.o $(CONSOLE_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# SQL files are embedded in the binaries as NUL-terminated strings.
# Each role's script ends with what both roles share (sql/verify.sql: how rows are hashed;
# sql/site.sql: the site's identity). The replica's script is sql/replica/*.sql concatenated
# in name order (files by concern: schema, local edits, apply, copy, conflicts, dry run,
# retention, verify, version stamp).
SQL_SHARED  := sql/verify.sql sql/site.sql
REPLICA_SQL := $(sort $(wildcard sql/replica/*.sql))
$(BUILD)/sql/%_sql.c: sql/%.sql $(SQL_SHARED) tools/embed.sh
	@mkdir -p $(@D)
	cat $< $(SQL_SHARED) > $(@D)/$*.sql
	sh tools/embed.sh $(@D)/$*.sql sql_$* > $@

$(BUILD)/sql/replica_sql.c: $(REPLICA_SQL) $(SQL_SHARED) tools/embed.sh
	@mkdir -p $(@D)
	cat $(REPLICA_SQL) $(SQL_SHARED) > $(@D)/replica.sql
	sh tools/embed.sh $(@D)/replica.sql sql_replica > $@

$(BUILD)/sql/%_sql.o: $(BUILD)/sql/%_sql.c
	$(CC) $(CFLAGS) -c -o $@ $<

# console/replica.js -> const char console_replica_js[] (common/console.c serves them).
$(BUILD)/console/%.c: console/% tools/embed.sh
	@mkdir -p $(@D)
	sh tools/embed.sh $< console_$(subst .,_,$*) > $@

$(BUILD)/console/%.o: $(BUILD)/console/%.c
	$(CC) $(CFLAGS) -c -o $@ $<

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

deps:
	sh tools/deps.sh

unit: $(BIN)/unit-tests
	$(BIN)/unit-tests

integration: all
	TDGL_BIN=$(CURDIR)/$(BIN) $(PYTHON) -m pytest -q -x -p no:cacheprovider $(TESTS) $(PYTEST_ARGS)

test: deps all unit
	TDGL_BIN=$(CURDIR)/$(BIN) TDGL_SANITIZE=$(SANITIZE) $(PYTHON) -m pytest -q -p no:cacheprovider -n $(TEST_JOBS) --dist loadgroup $(TESTS) $(PYTEST_ARGS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN)/tdgl-primary $(BIN)/tdgl-replica $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0644 deploy/tdgl-primary.service deploy/tdgl-replica.service $(DESTDIR)$(PREFIX)/lib/systemd/system/

demo: deps all
	TWO_WAY=$(TWO_WAY) bash tools/demo.sh start

demo-stop:
	bash tools/demo.sh stop

bench: deps all
	$(PYTHON) bench/run.py

clean:
	rm -rf build build-san bin bin-san
-include fuzz.mk
