# dashcache — build, run and test.
#   make            build build/dashcache-fcgi
#   make run        install what is missing, start a private stack, serve the API
#   make test       install what is missing, build, run every test suite
#   make fuzz       run each libFuzzer target FUZZ_SECONDS (30) seconds
#   make bench      hit and miss paths against their floors (tests/bench/bench.py), then
#                   cold keys with and without the lease (tests/bench/coalesce.py)
#   make bench-mixed  hit rate and DB statements per read under a mixed workload, cache
#                   against CACHE=off (tests/bench/mixed.py; MIXED_SCALE=small
#                   MIXED_DURATION=10 for a quick run)
#   make drill      each fault scenario under steady load, one table (tests/drill/drill.py;
#                   make test runs its short variant)
# Our flags live in DC_CFLAGS; CFLAGS/LDFLAGS from the command line are added, never replaced.

PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
PKGS      = fcgi hiredis libpq json-c libjwt libsystemd
SAN      ?= 0
# the harness (tests/run.py, scripts/dcstack.py) runs on Debian's interpreter, which has python3-pytest
PY        = /usr/bin/python3

ifeq ($(SAN),1)
BUILD     = build/san
OPT       = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
SANLD     = -fsanitize=address,undefined
else
BUILD     = build
OPT       = -O2 -g
SANLD     =
endif

WARN      = -Wall -Wextra -Werror -Wstrict-prototypes -Wwrite-strings -Wshadow -Wformat=2
DC_CFLAGS = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -MMD -MP -Ifcgi-app \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DC_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

MAINS     = fcgi-app/dc_main.c fcgi-app/dc_invalidator_main.c fcgi-app/dc_ctl_main.c
# dashcachectl's subcommands (dc_ctl_<name>.c): linked into it alone
CTL_SRCS  = $(filter-out $(MAINS),$(wildcard fcgi-app/dc_ctl_*.c))
CTL_OBJS  = $(patsubst fcgi-app/%.c,$(BUILD)/obj/%.o,$(CTL_SRCS))
APP_SRCS  = $(filter-out $(MAINS) $(CTL_SRCS),$(wildcard fcgi-app/*.c))
APP_OBJS  = $(patsubst fcgi-app/%.c,$(BUILD)/obj/%.o,$(APP_SRCS))
MAIN_OBJ  = $(BUILD)/obj/dc_main.o
BIN       = $(BUILD)/dashcache-fcgi
INV_BIN   = $(BUILD)/dashcache-invalidator
CTL_BIN   = $(BUILD)/dashcachectl

UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
INT_SRCS  = $(wildcard tests/integration/integration_*.c)
INT_BINS  = $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(INT_SRCS))
TEST_SUPPORT = $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJS = $(patsubst tests/support/%.c,$(BUILD)/obj/support_%.o,$(TEST_SUPPORT))

.PHONY: all run stop status seed test check unit integration e2e unit-bins integration-bins asan ubsan san \
        valgrind bench bench-mixed drill format format-check lint install uninstall clean distclean deps nginx-check fuzz fuzz-bins

all: $(BIN) $(INV_BIN) $(CTL_BIN)

V        ?= 0
ifeq ($(V),0)
Q         = @
SAY       = @printf '  %-6s %s\n'
else
Q         =
SAY       = @true
endif

$(BUILD)/obj/%.o: fcgi-app/%.c | $(BUILD)/obj
	$(SAY) CC $@
	$(Q)$(CC) $(DC_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/support_%.o: tests/support/%.c | $(BUILD)/obj
	$(SAY) CC $@
	$(Q)$(CC) $(DC_CFLAGS) -Itests/support $(CFLAGS) -c -o $@ $<

$(BIN): $(APP_OBJS) $(MAIN_OBJ)
	$(SAY) LD $@
	$(Q)$(CC) $(SANLD) $(LDFLAGS) -o $@ $^ $(DC_LIBS)

$(INV_BIN): $(APP_OBJS) $(BUILD)/obj/dc_invalidator_main.o
	$(SAY) LD $@
	$(Q)$(CC) $(SANLD) $(LDFLAGS) -o $@ $^ $(DC_LIBS)

$(CTL_BIN): $(APP_OBJS) $(CTL_OBJS) $(BUILD)/obj/dc_ctl_main.o
	$(SAY) LD $@
	$(Q)$(CC) $(SANLD) $(LDFLAGS) -o $@ $^ $(DC_LIBS)

# Link-time fakes: a unit binary may wrap library calls with a variable of
# its own, WRAP_<binary> = -Wl,--wrap=<symbol>,... (see the fault tests).
comma    := ,
wrap      = -Wl$(subst $(eval) ,,$(patsubst %,$(comma)--wrap=%,$(1)))
WRAP_test_dc_cache_faults = $(call wrap,redisConnectWithTimeout redisConnectUnixWithTimeout \
            redisSetTimeout redisCommand redisvCommand redisCommandArgv redisFree \
            redisAppendCommand redisAppendFormattedCommand redisGetReply)
WRAP_test_dc_trust = $(call wrap,dc_cache_probe dc_outbox_watermark)
WRAP_test_dc_db_faults = $(call wrap,PQconnectStartParams PQconnectPoll PQstatus PQerrorMessage PQfinish \
            PQsetnonblocking PQsendPrepare PQsendQueryPrepared PQsendQueryParams PQsendQuery \
            PQenterPipelineMode PQpipelineSync PQexitPipelineMode PQflush \
            PQisBusy PQsocket PQconsumeInput PQgetResult PQresultStatus PQresStatus PQresultErrorField \
            PQresultErrorMessage PQclear poll dc_now_ms dc_metrics_db_query)

$(BUILD)/tests/%: tests/unit/%.c $(APP_OBJS) | $(BUILD)/tests
	$(SAY) CCLD $@
	$(Q)$(CC) $(DC_CFLAGS) -Itests/support $(CFLAGS) $(SANLD) $(LDFLAGS) $(WRAP_$*) -o $@ $< $(APP_OBJS) $(DC_LIBS) $(TEST_LIBS)

$(BUILD)/tests/integration_%: tests/integration/integration_%.c $(APP_OBJS) $(TEST_SUPPORT_OBJS) | $(BUILD)/tests
	$(SAY) CCLD $@
	$(Q)$(CC) $(DC_CFLAGS) -Itests/support $(CFLAGS) $(SANLD) $(LDFLAGS) -o $@ $< $(APP_OBJS) $(TEST_SUPPORT_OBJS) $(DC_LIBS) $(TEST_LIBS)

$(BUILD)/obj $(BUILD)/tests:
	$(Q)mkdir -p $@

# libFuzzer targets (tests/fuzz/fuzz_<name>.c), built by clang in their own
# directory: the application objects again, instrumented for the fuzzer
# with ASan + UBSan, minus the mains.
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 30
FUZZ_DIR      = build/fuzz
FUZZ_TARGETS  = router ids body inval config_url metrics json token fcgi key slots status
FUZZ_SAN      = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) $(WARN) -MMD -MP -Ifcgi-app \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_OBJS     = $(patsubst fcgi-app/%.c,$(FUZZ_DIR)/obj/%.o,$(APP_SRCS))
FUZZ_BINS     = $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_TARGETS))

$(FUZZ_DIR)/obj/%.o: fcgi-app/%.c | $(FUZZ_DIR)/obj
	$(SAY) FUZZCC $@
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJS) | $(FUZZ_DIR)/obj
	$(SAY) FUZZLD $@
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_OBJS) $(DC_LIBS)

$(FUZZ_DIR)/obj:
	$(Q)mkdir -p $@

.SECONDARY: $(FUZZ_OBJS)

fuzz-bins: $(FUZZ_BINS)

# Each target for FUZZ_SECONDS, one after the other; executions and findings per target.
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-bins
	@$(PY) tests/run.py --only fuzz --fuzz-seconds $(FUZZ_SECONDS)

unit-bins: $(UNIT_BINS)
integration-bins: $(INT_BINS)

deps:
	@bash scripts/deps.sh

# make run: a supervisor (scripts/run.py); RUN_ARGS=--detach returns once it serves
run: deps
	@$(MAKE) --no-print-directory all
	@$(PY) scripts/run.py $(RUN_ARGS)

stop:
	@$(PY) scripts/run.py stop

status:
	@$(PY) scripts/run.py status

seed: deps
	@$(PY) scripts/seed.py $(SCALE)

# The whole suite: unit, integration and end-to-end, then unit and
# integration again under AddressSanitizer + UndefinedBehaviorSanitizer,
# then each fuzz target for a few seconds from its committed corpus.
test: deps
	@$(MAKE) --no-print-directory all unit-bins integration-bins
	@$(MAKE) --no-print-directory SAN=1 all unit-bins integration-bins
	@$(MAKE) --no-print-directory fuzz-bins
	@$(PY) tests/run.py

check: test

unit: deps
	@$(MAKE) --no-print-directory unit-bins
	@$(PY) tests/run.py --only unit

integration: deps
	@$(MAKE) --no-print-directory all integration-bins
	@$(PY) tests/run.py --only integration

e2e: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SAN=1 all
	@$(PY) tests/run.py --only e2e

asan ubsan san: deps
	@$(MAKE) --no-print-directory SAN=1 all unit-bins integration-bins
	@$(PY) tests/run.py --only san

valgrind: deps
	@$(MAKE) --no-print-directory all unit-bins integration-bins
	@$(PY) tests/run.py --only valgrind

# target (g) of the bench runs on Node: nodejs and npm, when missing and (g) is wanted, from
# Debian through scripts/deps.sh (as root); otherwise bench.py skips (g) and says why
bench: deps
	@case " $${BENCH_TARGETS:-g} " in *" g "*) \
	    command -v node >/dev/null && command -v npm >/dev/null || bash scripts/deps.sh nodejs npm || \
	    echo "bench: nodejs and npm could not be installed: target (g) will be skipped" >&2;; \
	esac
	@$(MAKE) --no-print-directory all
	@$(PY) tests/bench/bench.py
	@$(PY) tests/bench/coalesce.py

# the same workload twice on one large data set: with the cache, then CACHE=off
bench-mixed: deps
	@$(MAKE) --no-print-directory all
	@$(PY) tests/bench/mixed.py

# Redis, PostgreSQL, the invalidator and a worker failing one at a time under
# steady load, full length; DRILL_ARGS=--short is the variant make test runs
drill: deps
	@$(MAKE) --no-print-directory all
	@$(PY) tests/drill/drill.py $(DRILL_ARGS)

nginx-check: deps
	@$(PY) tests/run.py --only nginx-check

format:
	clang-format -i fcgi-app/*.c fcgi-app/*.h tests/unit/*.c tests/integration/*.c tests/support/*.[ch] tests/fuzz/*.[ch]

format-check:
	clang-format --dry-run --Werror fcgi-app/*.c fcgi-app/*.h tests/unit/*.c tests/integration/*.c tests/support/*.[ch] tests/fuzz/*.[ch]

lint: all
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --suppress=missingIncludeSystem -Ifcgi-app fcgi-app
	bear --output build/compile_commands.json -- $(MAKE) -B --no-print-directory all >/dev/null
	clang-tidy -p build --quiet fcgi-app/*.c

# make install [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc] [SYSTEMD_UNIT_DIR=/lib/systemd/system]:
# the binaries, dashcachectl, the SQL and the nginx snippets under PREFIX, the
# systemd units (their paths rewritten for PREFIX and SYSCONFDIR) and the sample
# configuration SYSCONFDIR/dashcache/dashcache.env.example (never over a real
# dashcache.env). make uninstall removes exactly these.
SYSCONFDIR       ?= /etc
SYSTEMD_UNIT_DIR ?= /lib/systemd/system
UNITS     = $(notdir $(wildcard systemd/*.service systemd/*.socket))
INSTALLED = $(addprefix $(DESTDIR)$(PREFIX)/bin/,dashcache-fcgi dashcache-invalidator dashcachectl) \
            $(addprefix $(DESTDIR)$(SYSTEMD_UNIT_DIR)/,$(UNITS)) \
            $(DESTDIR)$(SYSCONFDIR)/dashcache/dashcache.env.example

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/dashcache/sql $(DESTDIR)$(PREFIX)/share/dashcache/nginx \
	    $(DESTDIR)$(SYSTEMD_UNIT_DIR) $(DESTDIR)$(SYSCONFDIR)/dashcache
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/dashcache-fcgi
	install -m 0755 $(INV_BIN) $(DESTDIR)$(PREFIX)/bin/dashcache-invalidator
	install -m 0755 $(CTL_BIN) $(DESTDIR)$(PREFIX)/bin/dashcachectl
	install -m 0644 sql/*.sql $(DESTDIR)$(PREFIX)/share/dashcache/sql/
	install -m 0644 nginx/*.conf $(DESTDIR)$(PREFIX)/share/dashcache/nginx/
	for u in $(UNITS); do \
	    sed -e 's|/usr/local/bin/|$(PREFIX)/bin/|g' -e 's|/etc/dashcache/|$(SYSCONFDIR)/dashcache/|g' \
	        systemd/$$u > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/$$u && chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/$$u || exit 1; \
	done
	install -m 0644 .env.example $(DESTDIR)$(SYSCONFDIR)/dashcache/dashcache.env.example

uninstall:
	rm -f $(INSTALLED)
	rm -rf $(DESTDIR)$(PREFIX)/share/dashcache
	-rmdir $(DESTDIR)$(SYSCONFDIR)/dashcache 2>/dev/null

clean:
	rm -rf build

distclean: clean
	rm -rf .run

-include $(wildcard build/obj/*.d build/san/obj/*.d build/tests/*.d build/san/tests/*.d build/fuzz/obj/*.d build/fuzz/*.d)
