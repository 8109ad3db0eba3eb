# shellcheck shell=bash
# dashcache shell library: start and stop a private PostgreSQL, Redis,
# dashcache-fcgi and nginx on 127.0.0.1, for `make run`, `make seed` and the tests.
#
# Source it (`. scripts/lib.sh`); it is safe under `set -euo pipefail` and sets
# no shell options itself. Executed directly it offers a few entry points:
#   scripts/lib.sh nginx-check     nginx -t on the site config and on the snippet
#   scripts/lib.sh deps [PKG...]   install missing Debian packages
#   scripts/lib.sh pg-bindir       print the PostgreSQL server's bin directory
#
# A "stack" is described by these variables (callers set them, defaults below):
#   DC_STATE_DIR    pids/ and logs/ (project-local, e.g. .run; may be unreadable
#                   to other users: only root's shell writes there)
#   DC_RUNTIME_DIR  what the postgres and nginx users must reach: cluster data,
#                   sockets, nginx temp files (outside the repo, under /var/tmp)
#   PG_PORT REDIS_PORT HTTP_PORT WORKERS FCGI_SOCKET
#   DC_PG_FSYNC     "off" for throwaway test clusters only
# Every start records "PID STARTTIME" in $DC_STATE_DIR/pids/NAME.pid; every stop
# signals that process only (and, if it has to be killed, its direct children),
# after checking that the PID still belongs to the process that was started.

[[ -n ${DC_LIB_LOADED:-} ]] && return 0 2>/dev/null
DC_LIB_LOADED=1

DC_ROOT=${DC_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)}
DC_HOST=127.0.0.1
DC_PY=/usr/bin/python3
DC_STACK_PY=$DC_ROOT/scripts/dcstack.py
# DC_DEMO_ORG, DC_DEMO_UNIT: the demo ids live in scripts/dcstack.py
eval "$("$DC_PY" "$DC_STACK_PY" shell-constants)"
DC_DB_NAME=dashcache
DC_DB_USER=dashcache

dc_log() { printf 'dashcache: %s\n' "$*" >&2; }
dc_die() {
	dc_log "error: $*"
	exit 1
}

dc_is_root() { [[ $(id -u) -eq 0 ]]; }

# ---------------------------------------------------------------- set-up

dc_deps() { "$DC_ROOT/scripts/deps.sh" "$@"; }

# The server's bin directory: pg_config if it points at a server, else the
# newest /usr/lib/postgresql/*/bin. Never relies on symlinks in PATH.
dc_pg_bindir() {
	local d
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null) || d=
		if [[ -n $d && -x $d/initdb && -x $d/postgres ]]; then
			printf '%s\n' "$d"
			return 0
		fi
	fi
	while IFS= read -r d; do
		if [[ -x $d/initdb && -x $d/postgres ]]; then
			printf '%s\n' "$d"
			return 0
		fi
	done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
	return 1
}

dc_repo_hash() { printf '%s' "$DC_ROOT" | sha256sum | cut -c1-8; }

# Create (if needed) and print /var/tmp/dashcache-<hash>-PURPOSE: a directory
# outside the repo that the postgres and www-data users can traverse, because
# the repo may live under a home directory they cannot enter.
dc_runtime_dir() {
	local d
	d=${DC_RUNTIME_BASE:-/var/tmp}/dashcache-$(dc_repo_hash)-$1
	# /var/tmp is world-writable: refuse a directory (or link) someone else planted.
	if [[ -L $d ]] || { [[ -e $d ]] && ! [[ -d $d && -O $d ]]; }; then
		dc_die "$d exists but is not a directory owned by $(id -un); remove it"
	fi
	if ! mkdir -p "$d" || ! chmod 755 "$d"; then dc_die "cannot create $d"; fi
	printf '%s\n' "$d"
}

# Defaults for the variables that describe a stack (see the header).
dc_stack_defaults() {
	: "${DC_STATE_DIR:=$DC_ROOT/.run}"
	: "${DC_RUNTIME_DIR:=$(dc_runtime_dir run)}"
	: "${PG_PORT:=25432}"
	: "${REDIS_PORT:=26379}"
	: "${HTTP_PORT:=8080}"
	: "${WORKERS:=$(($(nproc) * 2))}"
	: "${FCGI_SOCKET:=$DC_RUNTIME_DIR/fcgi.sock}"
	: "${DC_PG_FSYNC:=on}"
	export DC_STATE_DIR DC_RUNTIME_DIR PG_PORT REDIS_PORT HTTP_PORT WORKERS FCGI_SOCKET DC_PG_FSYNC
	mkdir -p "$DC_STATE_DIR/pids" "$DC_STATE_DIR/logs"
}

dc_private_database_url() { printf 'postgresql://%s@%s:%s/%s\n' "$DC_DB_USER" "$DC_HOST" "$PG_PORT" "$DC_DB_NAME"; }
dc_private_redis_url() { printf 'redis://%s:%s/0\n' "$DC_HOST" "$REDIS_PORT"; }

# ---------------------------------------------------------------- processes

dc_pidfile() { printf '%s/pids/%s.pid\n' "$DC_STATE_DIR" "$1"; }
dc_logfile() { printf '%s/logs/%s.log\n' "$DC_STATE_DIR" "$1"; }

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

dc_record_pid() {
	local name=$1 pid=$2 st start=0
	if st=$(dc_proc_stat "$pid"); then start=${st#* }; fi
	printf '%s %s\n' "$pid" "$start" >"$(dc_pidfile "$name")"
}

# Print the PID of NAME if the process recorded for it is still that process.
dc_running() {
	local file pid start st
	file=$(dc_pidfile "$1")
	[[ -r $file ]] || return 1
	read -r pid start <"$file" || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	st=$(dc_proc_stat "$pid") || return 1
	[[ ${st%% *} != [ZX] && ${st#* } == "$start" ]] || return 1
	printf '%s\n' "$pid"
}

dc_children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }

# dc_stop NAME SIGNAL TIMEOUT: signal the recorded process, wait, then KILL it
# and its direct children (their parent can no longer stop them).
dc_stop() {
	local name=$1 sig=$2 timeout=$3 pid end kids
	if ! pid=$(dc_running "$name"); then
		rm -f "$(dc_pidfile "$name")"
		return 0
	fi
	kill -s "$sig" "$pid" 2>/dev/null || true
	end=$((SECONDS + timeout))
	while dc_pid_alive "$pid" && ((SECONDS < end)); do sleep 0.1; done
	if dc_pid_alive "$pid"; then
		kids=$(dc_children "$pid")
		dc_log "$name (pid $pid) did not stop within ${timeout}s after SIG$sig; killing it"
		# shellcheck disable=SC2086
		kill -KILL "$pid" $kids 2>/dev/null || true
		end=$((SECONDS + 5))
		while dc_pid_alive "$pid" && ((SECONDS < end)); do sleep 0.1; done
	fi
	wait "$pid" 2>/dev/null || true
	rm -f "$(dc_pidfile "$name")"
}

# Launch a daemon in the background in its own session, so that a Ctrl-C on
# the terminal reaches only the script, which then stops everything in order.
# stdin/stdout/stderr never stay attached to the caller's pipes.
dc_launch() {
	local name=$1
	shift
	local -a detach=()
	if [[ $- != *m* ]] && command -v setsid >/dev/null 2>&1; then detach=(setsid); fi
	(
		# no lock files or pipes of the caller's may outlive it in a daemon
		for fd in /proc/"$BASHPID"/fd/*; do
			fd=${fd##*/}
			if ((fd > 2 && fd != 255)); then eval "exec $fd>&-" 2>/dev/null || true; fi
		done
		cd "$DC_RUNTIME_DIR" && exec "${detach[@]}" "$@"
	) </dev/null >>"$(dc_logfile "$name")" 2>&1 &
	dc_record_pid "$name" "$!"
}

dc_port_in_use() { timeout 2 bash -c ": <>/dev/tcp/$DC_HOST/$1" 2>/dev/null; }

dc_require_port_free() {
	if dc_port_in_use "$1"; then
		dc_die "port $1 on $DC_HOST is already in use (it is the $2 port; set $3 to another one)"
	fi
}

# dc_wait_tcp HOST PORT TIMEOUT [NAME]: wait until a TCP connect succeeds; with
# NAME, give up as soon as that component's process has died.
dc_wait_tcp() {
	local host=$1 port=$2 timeout=$3 name=${4:-} end=$((SECONDS + $3))
	while ((SECONDS <= end)); do
		if timeout 2 bash -c ": <>/dev/tcp/$host/$port" 2>/dev/null; then return 0; fi
		if [[ -n $name ]] && ! dc_running "$name" >/dev/null; then return 1; fi
		sleep 0.1
	done
	return 1
}

dc_fail_start() {
	local name=$1 msg=$2 log
	log=$(dc_logfile "$name")
	dc_log "$msg; last lines of $log:"
	tail -n 20 "$log" >&2 2>/dev/null || true
	dc_stop "$name" TERM 5
	return 1
}

# ---------------------------------------------------------------- PostgreSQL

# Command prefix that runs the cluster's processes as an unprivileged user
# (initdb and postgres refuse root); empty when we are not root.
dc_pg_as_owner() {
	DC_AS_PG=()
	if dc_is_root; then
		local u=${DC_PG_OS_USER:-postgres}
		id "$u" >/dev/null 2>&1 || dc_die "user $u does not exist (install postgresql: scripts/deps.sh)"
		DC_AS_PG=(setpriv "--reuid=$u" "--regid=$u" --init-groups env "HOME=$DC_RUNTIME_DIR" "USER=$u")
	fi
}

# initdb and the cluster's settings: scripts/dcstack.py (Postgres.initdb).
dc_pg_initdb() {
	local r
	r=$("$DC_PY" "$DC_STACK_PY" pg-init "$DC_RUNTIME_DIR" "$(dc_logfile postgres)") || dc_die "initdb failed (see $(dc_logfile postgres))"
	[[ $r == created ]]
}

# Start the private cluster in $DC_RUNTIME_DIR/pgdata (initdb on first use).
# Sets DC_PG_FRESH=1 when the cluster was created now.
dc_pg_start() {
	local bindir data=$DC_RUNTIME_DIR/pgdata sock=$DC_RUNTIME_DIR/pgsock end pid
	local -a opts
	DC_PG_FRESH=0
	bindir=$(dc_pg_bindir) || dc_die "no PostgreSQL server found (scripts/deps.sh installs it)"
	if pid=$(dc_running postgres); then
		dc_log "postgres already running (pid $pid)"
		return 0
	fi
	dc_require_port_free "$PG_PORT" PostgreSQL PG_PORT
	dc_pg_as_owner
	if dc_pg_initdb; then DC_PG_FRESH=1; fi
	mkdir -p "$sock"
	dc_is_root && chown "${DC_PG_OS_USER:-postgres}:" "$sock"
	opts=(-D "$data" -p "$PG_PORT" -k "$sock" -c "listen_addresses=$DC_HOST")
	if [[ $DC_PG_FSYNC == off ]]; then
		# throwaway test clusters only: a crash may corrupt them
		opts+=(-c fsync=off -c synchronous_commit=off -c full_page_writes=off)
	fi
	dc_launch postgres "${DC_AS_PG[@]}" "$bindir/postgres" "${opts[@]}"
	end=$((SECONDS + 60))
	until "$bindir/pg_isready" -q -h "$DC_HOST" -p "$PG_PORT" -d postgres -U postgres; do
		if ! dc_running postgres >/dev/null; then
			dc_fail_start postgres "postgres exited during start-up"
			return 1
		fi
		if ((SECONDS > end)); then
			dc_fail_start postgres "postgres did not accept connections within 60s"
			return 1
		fi
		sleep 0.1
	done
	if ((DC_PG_FRESH)); then
		dc_psql "postgresql://postgres@$DC_HOST:$PG_PORT/postgres" \
			-c "CREATE ROLE $DC_DB_USER LOGIN" -c "CREATE DATABASE $DC_DB_NAME OWNER $DC_DB_USER" >/dev/null ||
			dc_die "could not create role and database $DC_DB_NAME"
	fi
	dc_log "postgres listening on $DC_HOST:$PG_PORT (pid $(dc_running postgres))"
}

# Fast shutdown (SIGINT): the default smart one would wait for the workers'
# persistent connections forever. Then immediate (QUIT), then KILL.
dc_pg_stop() {
	local pid
	pid=$(dc_running postgres) || {
		rm -f "$(dc_pidfile postgres)"
		return 0
	}
	kill -INT "$pid" 2>/dev/null || true
	local end=$((SECONDS + 30))
	while dc_pid_alive "$pid" && ((SECONDS < end)); do sleep 0.1; done
	dc_stop postgres QUIT 10
}

dc_psql() {
	local url=$1 bindir
	shift
	bindir=$(dc_pg_bindir 2>/dev/null) || bindir=
	local psql=psql
	[[ -n $bindir && -x $bindir/psql ]] && psql=$bindir/psql
	PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5} "$psql" "$url" -X -q -v ON_ERROR_STOP=1 "$@"
}

dc_db_has_schema() {
	local r
	r=$(dc_psql "$1" -At -c "SELECT to_regclass('public.organizations') IS NOT NULL") || return 2
	[[ $r == t ]]
}

dc_db_load_schema() {
	dc_psql "$1" -f "$DC_ROOT/sql/schema.sql" -f "$DC_ROOT/sql/seed.sql"
}

# dc_scale_args N: "ORGS DAYS STEP" for `make seed SCALE=N` (SCALE=1 is the demo;
# SCALE=small is 300 organizations with one day of hourly readings: quick, and
# enough outbox rows for several of the invalidator's batches of 500).
dc_scale_args() {
	local n=$1
	if [[ $n == small ]]; then
		echo "300 1 60"
		return 0
	fi
	[[ $n =~ ^[1-9][0-9]*$ ]] || dc_die "SCALE must be a positive integer or 'small', got '$n'"
	if ((n < 10)); then
		printf '%s 3 5\n' "$((20 * n))"
	else
		printf '%s 5 10\n' "$((20 * n))"
	fi
}

# dc_db_seed URL ORGS DAYS STEP [truncate]: (re)fill the database with dc_seed in
# one transaction (readers see the old data until it commits), then VACUUM
# ANALYZE so that the planner has statistics and index-only scans work.
dc_db_seed() {
	local url=$1 orgs=$2 days=$3 step=$4 truncate=${5:-}
	local -a pre=()
	if [[ -n $truncate ]]; then
		pre=(-c "TRUNCATE organizations, sites, units, devices, readings, alerts, audit_log RESTART IDENTITY CASCADE")
	fi
	dc_psql "$url" -1 -f "$DC_ROOT/sql/seed.sql" "${pre[@]}" \
		-c "SELECT * FROM dc_seed($orgs, $days, $step)" -P footer=off || return 1
	dc_psql "$url" -c "SET client_min_messages = error" -c "VACUUM ANALYZE"
}

# Load schema and demo data into a database that has no schema yet.
dc_db_prepare() {
	local url=$1 rc=0
	dc_db_has_schema "$url" || rc=$?
	case $rc in
	0) return 0 ;;
	2) dc_die "cannot query $url" ;;
	esac
	dc_log "loading schema and demo data into $url"
	dc_db_load_schema "$url" || dc_die "loading sql/schema.sql failed"
	dc_db_seed "$url" 20 3 5 >/dev/null || dc_die "demo seed failed"
}

# ---------------------------------------------------------------- Redis

dc_redis_start() {
	local dir=$DC_RUNTIME_DIR/redis conf pid end
	if pid=$(dc_running redis); then
		dc_log "redis already running (pid $pid)"
		return 0
	fi
	command -v redis-server >/dev/null || dc_die "redis-server not found (scripts/deps.sh installs it)"
	dc_require_port_free "$REDIS_PORT" Redis REDIS_PORT
	mkdir -p "$dir"
	conf=$dir/redis.conf
	# one template for every stack: scripts/dcstack.py (redis_conf)
	"$DC_PY" "$DC_STACK_PY" redis-conf "$dir" "$REDIS_PORT" >"$conf" || dc_die "cannot write $conf"
	dc_launch redis redis-server "$conf"
	end=$((SECONDS + 20))
	until [[ $(redis-cli -h "$DC_HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; do
		if ! dc_running redis >/dev/null; then
			dc_fail_start redis "redis-server exited during start-up"
			return 1
		fi
		if ((SECONDS > end)); then
			dc_fail_start redis "redis-server did not answer PING within 20s"
			return 1
		fi
		sleep 0.1
	done
	dc_log "redis listening on $DC_HOST:$REDIS_PORT (pid $(dc_running redis))"
}

dc_redis_stop() { dc_stop redis TERM 10; }

# ---------------------------------------------------------------- dashcache-fcgi

dc_fcgi_bin() { printf '%s\n' "${DC_FCGI_BIN:-$DC_ROOT/build/dashcache-fcgi}"; }

# Start the prefork master on $FCGI_SOCKET with $WORKERS workers. It inherits
# the environment: DATABASE_URL and REDIS_URL must be exported.
dc_fcgi_start() {
	local bin pid end
	bin=$(dc_fcgi_bin)
	[[ -x $bin ]] || dc_die "$bin not built (run make)"
	[[ -n ${DATABASE_URL:-} && -n ${REDIS_URL:-} ]] || dc_die "DATABASE_URL and REDIS_URL must be set"
	export DATABASE_URL REDIS_URL
	if pid=$(dc_running fcgi); then
		dc_log "dashcache-fcgi already running (pid $pid)"
		return 0
	fi
	# a socket left by a master that was killed; nobody listens on it
	[[ -S $FCGI_SOCKET ]] && rm -f "$FCGI_SOCKET"
	dc_launch fcgi "$bin" --listen "unix:$FCGI_SOCKET" --workers "$WORKERS" --socket-mode 0666
	end=$((SECONDS + 20))
	until [[ -S $FCGI_SOCKET && -n $(dc_fcgi_workers) ]]; do
		if ! dc_running fcgi >/dev/null; then
			dc_fail_start fcgi "dashcache-fcgi exited during start-up"
			return 1
		fi
		if ((SECONDS > end)); then
			dc_fail_start fcgi "dashcache-fcgi did not open $FCGI_SOCKET within 20s"
			return 1
		fi
		sleep 0.1
	done
	dc_log "dashcache-fcgi on unix:$FCGI_SOCKET, $WORKERS workers (master pid $(dc_running fcgi))"
}

# PIDs of the master's workers (its direct children), one per line.
dc_fcgi_workers() {
	local pid
	pid=$(dc_running fcgi) || return 0
	dc_children "$pid"
}

# SIGTERM is a graceful stop: in-flight requests finish first.
dc_fcgi_stop() { dc_stop fcgi TERM "${FCGI_STOP_TIMEOUT:-20}"; }

# ---------------------------------------------------------------- dashcache-invalidator

dc_inval_bin() { printf '%s\n' "${DC_INVAL_BIN:-$DC_ROOT/build/dashcache-invalidator}"; }

# Start the invalidator (Redis cache:invalidate + the database outbox). It
# inherits DATABASE_URL and REDIS_URL; ready once it has subscribed.
dc_inval_start() {
	local bin pid end log
	bin=$(dc_inval_bin)
	[[ -x $bin ]] || dc_die "$bin not built (run make)"
	export DATABASE_URL REDIS_URL
	if pid=$(dc_running invalidator); then
		dc_log "dashcache-invalidator already running (pid $pid)"
		return 0
	fi
	log=$(dc_logfile invalidator)
	: >>"$log"
	local before
	before=$(grep -c 'event=invalidate.all' "$log" || true)
	dc_launch invalidator "$bin"
	# ready: subscribed and through its first resync
	end=$((SECONDS + 20))
	until (($(grep -c 'event=invalidate.all' "$log" || true) > before)); do
		if ! dc_running invalidator >/dev/null; then
			dc_fail_start invalidator "dashcache-invalidator exited during start-up"
			return 1
		fi
		if ((SECONDS > end)); then
			dc_fail_start invalidator "dashcache-invalidator did not subscribe within 20s"
			return 1
		fi
		sleep 0.05
	done
	dc_log "dashcache-invalidator running (pid $(dc_running invalidator))"
}

dc_inval_stop() { dc_stop invalidator TERM 10; }

# ---------------------------------------------------------------- nginx

dc_nginx_user_line() {
	if ! dc_is_root; then
		echo "# not root: workers run as the invoking user"
	elif id www-data >/dev/null 2>&1; then
		echo "user www-data;"
	else
		echo "user nobody;"
	fi
}

# dc_nginx_render OUT DIR LISTEN SOCKET [ACCESS_LOG]: render the site template.
dc_nginx_render() {
	local out=$1 dir=$2 listen=$3 sock=$4 access=${5:-off}
	mkdir -p "$dir/tmp"
	sed -e "s|@NGINX_USER@|$(dc_nginx_user_line)|" \
		-e "s|@NGINX_WORKERS@|${NGINX_WORKERS:-auto}|" \
		-e "s|@NGINX_DIR@|$dir|g" \
		-e "s|@LISTEN@|$listen|g" \
		-e "s|@FCGI_SOCKET@|$sock|g" \
		-e "s|@ACCESS_LOG@|$access|g" \
		-e "s|@LOCATIONS_CONF@|$DC_ROOT/nginx/dashcache-locations.conf|g" \
		-e "s|@LIMITS_CONF@|$DC_ROOT/nginx/dashcache-limits.conf|g" \
		"$DC_ROOT/nginx/dashcache.conf.template" >"$out"
}

dc_nginx_start() {
	local dir=$DC_RUNTIME_DIR/nginx conf pid access=off
	if pid=$(dc_running nginx); then
		dc_log "nginx already running (pid $pid)"
		return 0
	fi
	command -v nginx >/dev/null || dc_die "nginx not found (scripts/deps.sh installs it)"
	dc_require_port_free "$HTTP_PORT" HTTP HTTP_PORT
	conf=$dir/nginx.conf
	if [[ -n ${NGINX_ACCESS_LOG:-} ]]; then access="$NGINX_ACCESS_LOG dashcache"; fi
	dc_nginx_render "$conf" "$dir" "$DC_HOST:$HTTP_PORT" "$FCGI_SOCKET" "$access"
	if ! nginx -q -t -p "$dir/" -c "$conf" -e stderr >>"$(dc_logfile nginx)" 2>&1; then
		tail -n 20 "$(dc_logfile nginx)" >&2
		dc_die "nginx rejected $conf"
	fi
	dc_launch nginx nginx -p "$dir/" -c "$conf" -e stderr
	if ! dc_wait_tcp "$DC_HOST" "$HTTP_PORT" 20 nginx; then
		dc_fail_start nginx "nginx did not listen on $DC_HOST:$HTTP_PORT"
		return 1
	fi
	dc_log "nginx listening on http://$DC_HOST:$HTTP_PORT (pid $(dc_running nginx))"
}

dc_nginx_stop() { dc_stop nginx TERM 10; }

# ---------------------------------------------------------------- whole stack

# Write the stack's description as export-able KEY=value lines.
dc_write_stack_env() {
	local file=$1 k
	{
		echo "# written by dashcache scripts; source it: set -a; . $file; set +a"
		for k in HTTP_URL DATABASE_URL REDIS_URL HTTP_PORT PG_PORT REDIS_PORT WORKERS \
			FCGI_SOCKET DC_STATE_DIR DC_RUNTIME_DIR; do
			printf '%s=%q\n' "$k" "${!k:-}"
		done
	} >"$file.tmp" && mv "$file.tmp" "$file"
}

# Stop what a previous, killed run of this stack left behind (only processes
# whose recorded PID and start time still match).
dc_stop_leftovers() {
	local n pid
	for n in nginx invalidator fcgi redis postgres; do
		if pid=$(dc_running "$n"); then
			dc_log "stopping $n (pid $pid) left running by an earlier run"
		fi
		case $n in
		postgres) dc_pg_stop ;;
		fcgi) dc_fcgi_stop ;;
		*) dc_stop "$n" TERM 10 ;;
		esac
	done
}

dc_stop_all() {
	dc_nginx_stop
	dc_inval_stop
	dc_fcgi_stop
	dc_redis_stop
	dc_pg_stop
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -euo pipefail
	case ${1:-} in
	nginx-check) "$DC_PY" "$DC_STACK_PY" nginx-check ;;
	deps)
		shift
		dc_deps "$@"
		;;
	pg-bindir) dc_pg_bindir ;;
	*)
		echo "usage: $0 nginx-check | deps [PKG...] | pg-bindir" >&2
		exit 2
		;;
	esac
fi
