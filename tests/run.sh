#!/usr/bin/env bash
# dashcache test runner (`make test` builds everything, then calls this).
#
#   tests/run.sh [--only SUITE]...     SUITE: nginx monitoring unit integration e2e san valgrind
#
# Default: nginx-check, unit (build/tests/test_*), integration
# (build/tests/integration_*), end-to-end (tests/e2e/test_*.sh through the real
# nginx), then unit and integration again from build/san/ (ASan + UBSan).
# valgrind runs only when asked for.
#
# A throwaway PostgreSQL (demo data), Redis, dashcache-fcgi (4 workers) and nginx
# run on 127.0.0.1 from a temporary directory; a trap stops them and removes it
# on any exit. Ports: TEST_PG_PORT (15432), TEST_REDIS_PORT (16379),
# TEST_HTTP_PORT (18080). Timeouts per binary/suite: UNIT_TIMEOUT (60 s),
# INTEGRATION_TIMEOUT (120 s), E2E_TIMEOUT (240 s), each multiplied by
# TIMEOUT_MULTIPLIER (1), and for sanitizer / valgrind runs by
# SAN_TIMEOUT_MULTIPLIER (3) / VALGRIND_TIMEOUT_MULTIPLIER (10) as well.
#
# Counting: TAP lines of each cmocka binary (`ok N`, `not ok N`; `# SKIP`
# counted apart), the closing `N passed, M failed` line of each e2e suite. A
# binary or suite that exits non-zero, times out, crashes or prints a
# sanitizer report without a failed test counts as one failure more; one that
# runs no test at all counts as a failure. The last line is
# `N passed, M failed` (`, K skipped` when some were); exit 1 if M > 0 or N == 0.
# Logs: .run/test/ (kept after the run).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$DC_ROOT"

ONLY=()
while (($#)); do
	case $1 in
	--only)
		[[ $# -ge 2 ]] || dc_die "--only needs a suite name"
		ONLY+=("$2")
		shift 2
		;;
	--only=*)
		ONLY+=("${1#--only=}")
		shift
		;;
	-h | --help)
		sed -n '2,26p' "$0"
		exit 0
		;;
	*) dc_die "unknown argument: $1 (see --help)" ;;
	esac
done
for s in "${ONLY[@]}"; do
	[[ $s =~ ^(nginx|monitoring|unit|integration|e2e|san|valgrind)$ ]] || dc_die "unknown suite '$s'"
done

want() {
	local s
	if ((${#ONLY[@]} == 0)); then
		[[ $1 != valgrind ]]
		return
	fi
	for s in "${ONLY[@]}"; do [[ $s == "$1" ]] && return 0; done
	return 1
}

PASSED=0
FAILED=0
SKIPPED=0
FAILURES=()
MULT=${TIMEOUT_MULTIPLIER:-1}

export DC_STATE_DIR=$DC_ROOT/.run/test
RESULTS=$DC_STATE_DIR/results
mkdir -p "$DC_STATE_DIR/pids" "$DC_STATE_DIR/logs"

# ------------------------------------------------------------------ counting

record() { # record PASSED FAILED SKIPPED LABEL
	PASSED=$((PASSED + $1))
	FAILED=$((FAILED + $2))
	SKIPPED=$((SKIPPED + $3))
	if (($2 > 0)); then FAILURES+=("$4"); fi
}

exit_reason() {
	case $1 in
	124) echo "timed out" ;;
	137) echo "killed after timing out" ;;
	*) if (($1 > 128)); then echo "killed by signal $(($1 - 128)) ($(kill -l $(($1 - 128)) 2>/dev/null || echo '?'))"; else echo "exit $1"; fi ;;
	esac
}

sanitizer_report() {
	grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)|ERROR SUMMARY: [1-9]' "$1"
}

# run_binary LABEL TIMEOUT COMMAND...: a cmocka binary printing TAP.
run_binary() {
	local label=$1 t=$2 log ok nok skip rc=0 extra=0 why=
	shift 2
	log=$RESULTS/${label//[\/ ]/_}.log
	CMOCKA_MESSAGE_OUTPUT=TAP timeout -k 5 "$t" "$@" >"$log" 2>&1 || rc=$?
	# cmocka 1.1 reports a skip as "not ok N # SKIP"; count skips apart either way
	ok=$(grep -E '^ok [0-9]+' "$log" | grep -cvE '# *SKIP' || true)
	nok=$(grep -E '^not ok [0-9]+' "$log" | grep -cvE '# *SKIP' || true)
	skip=$(grep -cE '^(not )?ok [0-9]+.*# *SKIP' "$log" || true)
	if ((rc != 0 && nok == 0)); then
		extra=1
		why=$(exit_reason "$rc")
	elif sanitizer_report "$log" && ((nok == 0)); then
		extra=1
		why="sanitizer report"
	elif ((ok + nok + skip == 0)); then
		extra=1
		why="no test ran"
	fi
	report "$label" "$ok" "$nok" "$skip" "$extra" "$why" "$log" '^not ok [0-9]+' 4
}

# report LABEL PASSED FAILED SKIPPED EXTRA WHY LOG FAIL_REGEX CONTEXT: records
# the counts (EXTRA: one more failure, for WHY) and prints the PASS/FAIL line,
# with the log's failing lines and, for EXTRA, its tail.
report() {
	local label=$1 np=$2 nf=$3 ns=$4 extra=$5 why=$6 log=$7 re=$8 ctx=$9
	record "$np" $((nf + extra)) "$ns" "$label"
	if ((nf + extra == 0)); then
		printf 'PASS %-44s %3d passed%s\n' "$label" "$np" "$( ((ns)) && echo ", $ns skipped")"
	else
		printf 'FAIL %-44s %3d passed, %d failed%s (log: %s)\n' "$label" "$np" "$((nf + extra))" \
			"${why:+ - $why}" "${log#"$DC_ROOT"/}"
		grep -E -A"$ctx" "$re" "$log" | head -n 40 | sed 's/^ */     /' || true
		if ((extra)); then tail -n 25 "$log" | sed 's/^/     | /'; fi
	fi
}

# run_suite LABEL TIMEOUT SCRIPT: an e2e suite ending with `N passed, M failed`.
run_suite() {
	local label=$1 t=$2 script=$3 log line np=0 nf=0 ns=0 rc=0 extra=0 why=
	log=$RESULTS/${label//[\/ ]/_}.log
	timeout -k 5 "$t" bash "$script" >"$log" 2>&1 </dev/null || rc=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
	if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)? ]]; then
		np=${BASH_REMATCH[1]}
		nf=${BASH_REMATCH[2]}
		ns=${BASH_REMATCH[4]:-0}
	fi
	if [[ -z $line ]]; then
		extra=1
		why="no summary line ($(exit_reason "$rc"))"
	elif ((rc != 0 && nf == 0)); then
		extra=1
		why=$(exit_reason "$rc")
	elif ((np + nf == 0)); then
		extra=1
		why="no test ran"
	fi
	report "$label" "$np" "$nf" "$ns" "$extra" "$why" "$log" '^ *FAIL ' 0
}

binaries() { # binaries DIR PREFIX: executables DIR/PREFIX*, sorted
	local f
	for f in "$1/$2"*; do
		[[ -f $f && -x $f && $f != *.d && $f != *.o ]] && printf '%s\n' "$f"
	done
	return 0
}

run_binaries() { # run_binaries KIND DIR PREFIX TIMEOUT [WRAPPER...]
	local kind=$1 dir=$2 prefix=$3 t=$4 b found=0
	shift 4
	while IFS= read -r b; do
		[[ -n $b ]] || continue
		found=1
		if [[ $prefix == test_ ]]; then
			# unit tests need no network: prove it by giving them no servers
			run_binary "$kind ${b##*/}" "$t" env -u DATABASE_URL -u REDIS_URL "$@" "$b"
		else
			run_binary "$kind ${b##*/}" "$t" "$@" "$b"
		fi
	done < <(binaries "$dir" "$prefix")
	if ((!found)); then
		echo "FAIL $kind: no $dir/$prefix* binaries (build them first: make $([[ $prefix == test_ ]] && echo unit-bins || echo integration-bins)$([[ $dir == build/san/* ]] && echo ' SAN=1'))"
		record 0 1 0 "$kind (no binaries)"
	fi
}

# ------------------------------------------------------------------ the stack

TMP=
STACK_UP=0

cleanup() {
	local rc=$?
	trap '' INT TERM
	if ((STACK_UP)) || [[ -n $TMP ]]; then
		dc_stop_all
	fi
	[[ -n $TMP && -d $TMP ]] && rm -rf "$TMP"
	exit "$rc"
}

start_stack() {
	local p
	for p in "$TEST_PG_PORT" "$TEST_REDIS_PORT" "$TEST_HTTP_PORT"; do
		if dc_port_in_use "$p"; then
			echo "FAIL stack: port $p on $DC_HOST is already in use (set TEST_PG_PORT / TEST_REDIS_PORT / TEST_HTTP_PORT)"
			return 1
		fi
	done
	TMP=$(mktemp -d "${DC_RUNTIME_BASE:-/var/tmp}/dashcache-$(dc_repo_hash)-test.XXXXXX")
	chmod 755 "$TMP"
	export DC_RUNTIME_DIR=$TMP
	export PG_PORT=$TEST_PG_PORT REDIS_PORT=$TEST_REDIS_PORT HTTP_PORT=$TEST_HTTP_PORT
	export WORKERS=${TEST_WORKERS:-4} FCGI_SOCKET=$TMP/fcgi.sock DC_PG_FSYNC=off
	# the pool's shared counters live and die with the test stack
	export METRICS_FILE=$TMP/metrics
	export NGINX_ACCESS_LOG=$DC_STATE_DIR/logs/nginx-access.log
	dc_stack_defaults
	export DATABASE_URL REDIS_URL HTTP_URL
	DATABASE_URL=$(dc_private_database_url)
	REDIS_URL=$(dc_private_redis_url)
	HTTP_URL=http://$DC_HOST:$HTTP_PORT
	STACK_UP=1
	# a subshell, so that a dc_die in there fails the start, not the runner
	(
		dc_pg_start || exit 1
		dc_db_prepare "$DATABASE_URL" || exit 1
		dc_redis_start || exit 1
		if [[ -x $(dc_fcgi_bin) ]]; then
			dc_fcgi_start || exit 1
			dc_nginx_start || exit 1
		fi
	) || return 1
	dc_write_stack_env "$DC_STATE_DIR/stack.env"
	export DC_STACK_ENV=$DC_STATE_DIR/stack.env
}

# Bring back whatever a destructive test left stopped; that is a failure.
restore_stack() {
	local n missing=()
	for n in postgres redis fcgi invalidator nginx; do
		dc_running "$n" >/dev/null || missing+=("$n")
	done
	((${#missing[@]} == 0)) && return 0
	echo "FAIL stack: ${missing[*]} not running after the e2e suites; restarting"
	record 0 1 0 "stack left stopped: ${missing[*]}"
	dc_pg_start && dc_redis_start && dc_fcgi_start && dc_inval_start && dc_nginx_start
}

# The application's configuration for the tests: fixed, whatever the caller's
# environment or .env say.
test_config() {
	local v
	for v in $(compgen -e); do
		case $v in
		CACHE_TTL_* | REDIS_*_MS | DB_*_SECONDS | DB_*_MS | DEVICE_ONLINE_SECONDS | RETRY_AFTER_SECONDS) unset "$v" ;;
		esac
	done
	unset DATABASE_URL REDIS_URL HTTP_URL
	export CACHE_TTL_SECONDS=60 REDIS_CONNECT_TIMEOUT_MS=100 REDIS_COMMAND_TIMEOUT_MS=100
	export REDIS_RETRY_INTERVAL_MS=1000 DB_CONNECT_TIMEOUT_SECONDS=2 DB_STATEMENT_TIMEOUT_MS=5000
	export LOG_LEVEL=${LOG_LEVEL:-info}
}

# ------------------------------------------------------------------ main

exec 8>"$DC_STATE_DIR/lock"
flock -n 8 || dc_die "another tests/run.sh of this checkout is running"

dc_deps
want valgrind && dc_deps valgrind

# A runner killed outright leaves its servers and runtime directory behind.
dc_stop_leftovers
rm -rf "${DC_RUNTIME_BASE:-/var/tmp}/dashcache-$(dc_repo_hash)-test."*
rm -rf "$RESULTS" "$DC_STATE_DIR/logs" "$DC_STATE_DIR/stack.env"
mkdir -p "$RESULTS" "$DC_STATE_DIR/logs"

trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

TEST_PG_PORT=${TEST_PG_PORT:-15432}
TEST_REDIS_PORT=${TEST_REDIS_PORT:-16379}
TEST_HTTP_PORT=${TEST_HTTP_PORT:-18080}
test_config
started_at=$SECONDS

if want nginx; then
	out=$(dc_nginx_check 2>&1) || true
	while IFS= read -r line; do
		case $line in
		*" ok") record 1 0 0 "" && echo "PASS $line" ;;
		*FAILED) record 0 1 0 "$line" && echo "FAIL $line" ;;
		*) echo "     $line" ;;
		esac
	done <<<"$out"
fi

if want monitoring; then
	for f in monitoring/*-alerts.yml; do
		if out=$(promtool check rules "$f" 2>&1); then
			record 1 0 0 "" && echo "PASS monitoring: promtool check rules $f"
		else
			record 0 1 0 "promtool check rules $f" && echo "FAIL monitoring: promtool check rules $f" && echo "$out" | sed 's/^/     | /'
		fi
	done
	for f in monitoring/*.test.yml; do
		if out=$(cd monitoring && promtool test rules "${f##*/}" 2>&1); then
			record 1 0 0 "" && echo "PASS monitoring: promtool test rules $f"
		else
			record 0 1 0 "promtool test rules $f" && echo "FAIL monitoring: promtool test rules $f" && echo "$out" | sed 's/^/     | /'
		fi
	done
	if jq -e '.panels | length > 0' monitoring/dashcache-grafana.json >/dev/null 2>&1; then
		record 1 0 0 "" && echo "PASS monitoring: Grafana dashboard is JSON with panels"
	else
		record 0 1 0 "grafana json" && echo "FAIL monitoring: monitoring/dashcache-grafana.json"
	fi
fi

if want unit; then
	run_binaries unit build/tests test_ $((${UNIT_TIMEOUT:-60} * MULT))
fi

need_stack=0
for s in integration e2e san valgrind; do want "$s" && need_stack=1; done
stack_ok=0
if ((need_stack)); then
	if start_stack >"$RESULTS/stack.log" 2>&1; then
		stack_ok=1
		echo "---- stack: postgres :$PG_PORT, redis :$REDIS_PORT, nginx $HTTP_URL, $WORKERS workers ($TMP)"
	else
		echo "FAIL stack: could not start the test stack (log: ${RESULTS#"$DC_ROOT"/}/stack.log)"
		sed 's/^/     | /' "$RESULTS/stack.log" | tail -n 25
		record 0 1 0 "stack start"
	fi
fi

if want integration && ((stack_ok)); then
	run_binaries integration build/tests integration_ $((${INTEGRATION_TIMEOUT:-120} * MULT))
fi

if want e2e && ((stack_ok)); then
	if ! dc_running fcgi >/dev/null; then
		echo "FAIL e2e: $(dc_fcgi_bin) is not built (make all)"
		record 0 1 0 "e2e (no binary)"
	else
		# the invalidator runs for the end-to-end suites only: its asynchronous
		# invalidations would make the integration tests' HIT/MISS expectations racy
		if ! dc_inval_start >>"$RESULTS/stack.log" 2>&1; then
			echo "FAIL e2e: dashcache-invalidator did not start (log: .run/logs/invalidator.log)"
			record 0 1 0 "invalidator start"
		fi
		found=0
		for f in tests/e2e/test_*.sh; do
			[[ -f $f ]] || continue
			found=1
			run_suite "e2e ${f##*/}" $((${E2E_TIMEOUT:-240} * MULT)) "$f"
		done
		((found)) || {
			echo "FAIL e2e: no tests/e2e/test_*.sh"
			record 0 1 0 "e2e (none)"
		}
		restore_stack || true
		dc_inval_stop
	fi
fi

if want san; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1:print_stacktrace=1
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	san_mult=$((MULT * ${SAN_TIMEOUT_MULTIPLIER:-3}))
	run_binaries "san unit" build/san/tests test_ $((${UNIT_TIMEOUT:-60} * san_mult))
	if ((stack_ok)); then
		run_binaries "san integration" build/san/tests integration_ $((${INTEGRATION_TIMEOUT:-120} * san_mult))
	fi
	unset ASAN_OPTIONS UBSAN_OPTIONS
fi

if want valgrind; then
	vg=(valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
		--show-leak-kinds=definite --track-fds=no)
	vg_mult=$((MULT * ${VALGRIND_TIMEOUT_MULTIPLIER:-10}))
	run_binaries "valgrind unit" build/tests test_ $((${UNIT_TIMEOUT:-60} * vg_mult)) "${vg[@]}"
	if ((stack_ok)); then
		run_binaries "valgrind integration" build/tests integration_ $((${INTEGRATION_TIMEOUT:-120} * vg_mult)) "${vg[@]}"
	fi
fi

echo "---- $((SECONDS - started_at)) s; logs in ${DC_STATE_DIR#"$DC_ROOT"/}/"
if ((${#FAILURES[@]})); then
	echo "failed:"
	printf '  %s\n' "${FAILURES[@]}"
fi
if ((SKIPPED)); then
	echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
else
	echo "$PASSED passed, $FAILED failed"
fi
((FAILED == 0 && PASSED > 0))
