#!/usr/bin/env bash
# Run dashcache on 127.0.0.1 with a private PostgreSQL, Redis and nginx
# (`make run` builds first, then calls this).
#
#   scripts/run.sh            start, print the URL, serve until Ctrl-C / SIGTERM
#   scripts/run.sh --detach   start in the background and return once it serves
#   scripts/run.sh stop       stop a running (or detached) instance
#   scripts/run.sh status     say whether it runs, and where
#
# DATABASE_URL / REDIS_URL set: those servers are used and none is started
# (an empty database gets the schema and demo data). Other settings, read from
# the environment, then from .env (see .env.example): HTTP_PORT (8080),
# PG_PORT (25432), REDIS_PORT (26379), WORKERS (cores x 2), and everything the
# application reads (CACHE_TTL_SECONDS, ...).
#
# State: .run/stack.env (HTTP_URL, DATABASE_URL, REDIS_URL, ...), .run/logs/,
# .run/pids/, .run/runtime -> /var/tmp/dashcache-<hash>-run (cluster data,
# sockets, nginx temp files; kept between runs, so the demo data is loaded once).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DC_ROOT"

export DC_STATE_DIR=$DC_ROOT/.run
STACK_ENV=$DC_STATE_DIR/stack.env
mkdir -p "$DC_STATE_DIR/pids" "$DC_STATE_DIR/logs"

# Read KEY=value lines from .env; the environment wins over the file.
load_dotenv() {
	local line key val
	[[ -r $DC_ROOT/.env ]] || return 0
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line%$'\r'}
		[[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Z_][A-Z0-9_]*)=(.*)$ ]] || continue
		key=${BASH_REMATCH[2]}
		val=${BASH_REMATCH[3]}
		if [[ $val =~ ^\"(.*)\"$ || $val =~ ^\'(.*)\'$ ]]; then val=${BASH_REMATCH[1]}; fi
		[[ -z $val || -n ${!key:-} ]] && continue
		export "$key=$val"
	done <"$DC_ROOT/.env"
}

stack_value() {
	local v
	[[ -r $STACK_ENV ]] || return 1
	v=$(grep -m1 "^$1=" "$STACK_ENV") || return 1
	printf '%s\n' "${v#*=}"
}

print_banner() {
	local url org=$DC_DEMO_ORG unit=$DC_DEMO_UNIT
	url=$(stack_value HTTP_URL)
	local api="$url/api/dashboard/orgs/$org" token="" h=""
	if [[ ${AUTH_MODE:-jwt} == jwt ]]; then
		# a day's token for the demo organizations, minted with the stack's key file
		token=$(AUTH_KEYS_FILE=${AUTH_KEYS_FILE:-${DC_STATE_DIR:-$DC_ROOT/.run}/auth-keys} \
			"$(dirname "$(dc_fcgi_bin)")/dashcachectl" token --org "$org,$DC_DEMO_ORG2" \
			--scope read,write,ingest,refresh --ttl 1d --sub demo) || token=""
		h="-H \"Authorization: Bearer \$TOKEN\" "
	fi
	cat <<EOF

dashcache is running at $url
  database   $(stack_value DATABASE_URL)
  redis      $(stack_value REDIS_URL)
  workers    $(stack_value WORKERS) (dashcache-fcgi on unix:$(stack_value FCGI_SOCKET))
  logs       .run/logs/    endpoints: .run/stack.env

Try (a demo token: read, write, ingest and refresh on the first two demo
organizations for a day; mint others with build/dashcachectl token --help):
  export TOKEN=$token
  curl -i $h$api/stats
  curl -s $h$api/units/status
  curl -s $h'$api/alerts/count?unitId=$unit'
  curl -s $h'$api/units/$unit/temperature/trends?hours=6'
  curl -s $h$api/devices/online
  curl -s $h$api/compliance
  curl -s $h'$api/audit?limit=5'
  curl -s -o /dev/null -D - $h'$api/stats?forceRefresh=true'    # X-Cache: BYPASS
  curl -i $api/stats                                          # no token: 401
  curl -s $url/health
  curl -s -X POST $h-H 'Content-Type: application/json' \\
       -d '{"unitId":"$unit","kind":"door_open","message":"Door left open"}' $api/alerts

EOF
}

cmd_status() {
	local pid
	if pid=$(dc_running run); then
		echo "dashcache is running (pid $pid) at $(stack_value HTTP_URL || echo '?')"
		return 0
	fi
	echo "dashcache is not running"
	return 3
}

cmd_stop() {
	local pid end
	if pid=$(dc_running run); then
		kill -TERM "$pid"
		end=$((SECONDS + 90))
		while dc_pid_alive "$pid" && ((SECONDS < end)); do sleep 0.2; done
		if dc_pid_alive "$pid"; then
			dc_log "run.sh (pid $pid) did not stop within 90s"
			return 1
		fi
		echo "dashcache stopped"
	else
		echo "dashcache is not running"
	fi
	# components whose run.sh was killed outright
	DC_RUNTIME_DIR=$(dc_runtime_dir run)
	export DC_RUNTIME_DIR
	dc_stop_leftovers
	rm -f "$(dc_pidfile run)"
}

cmd_detach() {
	local pid end log=$DC_STATE_DIR/logs/run.log
	if pid=$(dc_running run); then
		echo "dashcache is already running (pid $pid) at $(stack_value HTTP_URL || echo '?')" >&2
		exit 1
	fi
	rm -f "$STACK_ENV"
	setsid bash "$DC_ROOT/scripts/run.sh" </dev/null >>"$log" 2>&1 &
	pid=$!
	end=$((SECONDS + 300))
	until [[ -s $STACK_ENV ]]; do
		if ! dc_pid_alive "$pid" || ((SECONDS > end)); then
			tail -n 30 "$log" >&2
			dc_die "dashcache did not start (log: $log)"
		fi
		sleep 0.2
	done
	print_banner
	echo "running in the background (pid $pid); stop it with: make stop"
}

# ------------------------------------------------------------------ main

STARTED=()
SLEEP_PID=

cleanup() {
	local rc=$?
	trap '' INT TERM
	[[ -n $SLEEP_PID ]] && kill "$SLEEP_PID" 2>/dev/null
	if ((${#STARTED[@]})); then
		dc_log "stopping"
		dc_nginx_stop
		dc_inval_stop
		dc_fcgi_stop
		dc_redis_stop
		dc_pg_stop
		dc_log "stopped"
	fi
	rm -f "$STACK_ENV"
	rm -f "$(dc_pidfile run)"
	exit "$rc"
}

on_signal() {
	echo >&2
	exit 0
}

# Claim this checkout's run slot, or say who has it.
claim() {
	local pid
	exec 9>"$DC_STATE_DIR/run.lock"
	flock -w 10 9 || dc_die "could not lock $DC_STATE_DIR/run.lock"
	if pid=$(dc_running run); then
		echo "dashcache is already running (pid $pid) at $(stack_value HTTP_URL || echo "http://$DC_HOST:${HTTP_PORT:-8080}")" >&2
		echo "stop it with: make stop (or Ctrl-C where it runs)" >&2
		exit 1
	fi
	dc_record_pid run "$$"
	exec 9>&-
}

main() {
	local own_pg=0 own_redis=0 n pid health

	dc_deps
	load_dotenv
	claim
	trap cleanup EXIT
	trap on_signal INT TERM

	DC_RUNTIME_DIR=$(dc_runtime_dir run)
	export DC_RUNTIME_DIR
	dc_stack_defaults
	# workers, master and invalidator share their counters through this file
	export METRICS_FILE=${METRICS_FILE:-$DC_RUNTIME_DIR/metrics}
	ln -sfn "$DC_RUNTIME_DIR" "$DC_STATE_DIR/runtime"
	dc_stop_leftovers
	rm -f "$STACK_ENV"

	[[ -x $(dc_fcgi_bin) ]] || dc_die "$(dc_fcgi_bin) is missing: start with 'make run', which builds it"
	[[ -z ${DATABASE_URL:-} ]] && own_pg=1
	[[ -z ${REDIS_URL:-} ]] && own_redis=1
	# every port checked before anything starts
	dc_require_port_free "$HTTP_PORT" HTTP HTTP_PORT
	((own_pg)) && dc_require_port_free "$PG_PORT" PostgreSQL PG_PORT
	((own_redis)) && dc_require_port_free "$REDIS_PORT" Redis REDIS_PORT

	if ((own_pg)); then
		STARTED+=(postgres)
		dc_pg_start
		DATABASE_URL=$(dc_private_database_url)
	else
		dc_log "using DATABASE_URL from the environment (no private PostgreSQL)"
	fi
	dc_db_prepare "$DATABASE_URL"

	if ((own_redis)); then
		STARTED+=(redis)
		dc_redis_start
		REDIS_URL=$(dc_private_redis_url)
	else
		dc_log "using REDIS_URL from the environment (no private Redis)"
		redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 ||
			dc_log "warning: $REDIS_URL does not answer; serving from PostgreSQL until it does"
	fi
	export DATABASE_URL REDIS_URL

	# token keys: AUTH_KEYS_FILE when configured, else a demo key of this
	# checkout (mode 0600 in the git-ignored state directory, kept across runs
	# so that printed tokens stay good)
	if [[ ${AUTH_MODE:-jwt} == jwt && -z ${AUTH_KEYS_FILE:-} ]]; then
		AUTH_KEYS_FILE=$DC_STATE_DIR/auth-keys
		if [[ ! -s $AUTH_KEYS_FILE ]]; then
			(umask 077 && printf 'demo HS256 %s\n' "$(head -c 32 /dev/urandom | basenc --base64url | tr -d =)" \
				>"$AUTH_KEYS_FILE")
			dc_log "created the demo token key $AUTH_KEYS_FILE"
		fi
		export AUTH_KEYS_FILE
	fi

	STARTED+=(fcgi)
	dc_fcgi_start
	STARTED+=(invalidator)
	dc_inval_start
	STARTED+=(nginx)
	dc_nginx_start

	HTTP_URL=http://$DC_HOST:$HTTP_PORT
	health=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$HTTP_URL/health" || true)
	[[ $health == 200 ]] || dc_log "warning: GET /health answered ${health:-nothing} (see .run/logs/fcgi.log)"
	dc_write_stack_env "$STACK_ENV"
	print_banner
	echo "Ctrl-C (or 'make stop' elsewhere) stops it."

	while :; do
		for n in "${STARTED[@]}"; do
			if ! pid=$(dc_running "$n"); then
				dc_log "$n exited unexpectedly (log: .run/logs/$n.log); stopping the rest"
				tail -n 10 "$(dc_logfile "$n")" >&2 || true
				exit 1
			fi
		done
		sleep 1 &
		SLEEP_PID=$!
		wait "$SLEEP_PID" || true
		SLEEP_PID=
	done
}

case ${1:-} in
"") main ;;
--detach | -d) cmd_detach ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
	echo "usage: $0 [--detach | stop | status]" >&2
	exit 2
	;;
esac
