# shellcheck shell=bash
# Transitional: what the bash end-to-end suites (tests/e2e/e2e_lib.sh and the
# tests/e2e/test_*.sh not yet ported to pytest) need to look at, stop and
# restart the components of the stack tests/run.py started for them. Starting
# and stopping is scripts/dcstack.py's (`dcstack.py ctl`), on the stack that the
# exported variables describe (Stack.describe); this file goes with the last
# bash suite. make run, make seed and make bench are Python (scripts/run.py,
# scripts/seed.py, tests/bench/bench.py).
#
# Every start records "PID STARTTIME" in $DC_STATE_DIR/pids/NAME.pid; dc_running
# trusts a pid only while that very process (same start time) runs.

[[ -n ${DC_LIB_LOADED:-} ]] && return 0 2>/dev/null
DC_LIB_LOADED=1

DC_ROOT=${DC_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)}
DC_HOST=127.0.0.1
DC_PY=/usr/bin/python3
DC_STACK_PY=$DC_ROOT/scripts/dcstack.py
# DC_DEMO_ORG, DC_DEMO_UNIT: the demo ids live in scripts/dcstack.py
eval "$("$DC_PY" "$DC_STACK_PY" shell-constants)"

dc_log() { printf 'dashcache: %s\n' "$*" >&2; }

# "STATE STARTTIME" of a process from /proc/PID/stat (the comm field may hold
# spaces and parentheses, so cut after its last ')').
dc_proc_stat() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	local -a f
	read -r -a f <<<"$s"
	printf '%s %s\n' "${f[0]}" "${f[19]}"
}

dc_pid_alive() {
	local st
	st=$(dc_proc_stat "$1") || return 1
	[[ ${st%% *} != [ZX] ]]
}

# Print the PID of NAME if the process recorded for it is still that process.
dc_running() {
	local file=$DC_STATE_DIR/pids/$1.pid pid start st
	[[ -r $file ]] || return 1
	read -r pid start <"$file" || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	st=$(dc_proc_stat "$pid") || return 1
	[[ ${st%% *} != [ZX] && ${st#* } == "$start" ]] || return 1
	printf '%s\n' "$pid"
}

dc_children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }

# PIDs of the FastCGI master's workers (its direct children), one per line.
dc_fcgi_workers() {
	local pid
	pid=$(dc_running fcgi) || return 0
	dc_children "$pid"
}

# Start (ready when its socket answers) or stop (by its recorded pid) one service.
dc_ctl() { "$DC_PY" "$DC_STACK_PY" ctl "$@"; }
dc_pg_start() { dc_ctl start postgres; }
dc_pg_stop() { dc_ctl stop postgres; }
dc_redis_start() { dc_ctl start redis; }
dc_redis_stop() { dc_ctl stop redis; }
dc_fcgi_start() { dc_ctl start fcgi; }
dc_fcgi_stop() { dc_ctl stop fcgi; }

dc_fcgi_bin() { printf '%s\n' "${DC_FCGI_BIN:-$DC_ROOT/build/dashcache-fcgi}"; }
dc_inval_bin() { printf '%s\n' "${DC_INVAL_BIN:-$DC_ROOT/build/dashcache-invalidator}"; }

dc_psql() {
	local url=$1
	shift
	PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5} psql "$url" -X -q -v ON_ERROR_STOP=1 "$@"
}
