#!/usr/bin/env bash
# dashcache benchmark (`make bench`): wrk through one nginx against six
# targets that answer the same JSON body, measured interleaved in rounds:
#   (a) nginx itself, `return 200`                 the ceiling behind nginx
#   (b) bench_const, a minimal libfcgi program      the cost of the FastCGI hop
#   (c) bench_redis, the same plus one Redis GET    the floor of a cache hit
#   (d) dashcache's hit path                        X-Cache: HIT
#   (e) dashcache's miss path, ?forceRefresh=true   X-Cache: BYPASS (Postgres)
#   (f) (d) on a second pool with METRICS=off        the cost of the metrics
# For each: requests/s, p50, p99 (median over rounds) and CPU microseconds per
# request, summed over every process that serves it (nginx, the FastCGI
# processes, redis-server, and for (e) the Postgres cluster).
#
# It starts its own PostgreSQL (demo data), Redis, dashcache-fcgi, the two
# baseline programs (compiled here) and nginx, on 127.0.0.1 in a temporary
# directory under /var/tmp, and stops all of them on exit, Ctrl-C or SIGTERM.
# A benchmark, not a test: it never fails on a number, only when something
# broke (a response other than 200, a socket error, a process that died).
#
# Environment (defaults):
#   BENCH_DURATION=5      seconds per measured run
#   BENCH_ROUNDS=3        rounds; each runs every target once, order rotated
#   BENCH_WARMUP=2        seconds of warm-up per target before the rounds
#   BENCH_CONNECTIONS=32  wrk connections
#   BENCH_THREADS=2       wrk threads
#   BENCH_WORKERS=2xcores dashcache workers, and processes of (b) and (c)
#   BENCH_PORT=18480      nginx port on 127.0.0.1
#   BENCH_TARGETS="a b c d e f"  a subset, e.g. "d" while profiling the hit path
#   BENCH_REDIS_UNIX=0    1: (c) and dashcache reach Redis over its unix socket
#   DC_FCGI_BIN           dashcache-fcgi to measure (build/dashcache-fcgi)
# Output: this report on stdout and in build/bench/last.txt; wrk's own output
# and the servers' logs in build/bench/raw/ and build/bench/logs/. While it
# runs, build/bench/pids.txt lists "name pid" of what it started (for perf).
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
BENCH_SRC=$ROOT/tests/bench
OUT=$ROOT/build/bench
LAST=$OUT/last.txt
ORG=550e8400-e29b-41d4-a716-446655440000
HIT_PATH=/api/dashboard/orgs/$ORG/units/status
MISS_PATH="$HIT_PATH?forceRefresh=true"
CACHE_KEY=dashboard:units:status:org:$ORG
TARGETS=(a b c d e f)
declare -A LABEL=(
	[a]="(a) nginx return 200"
	[b]="(b) fcgi constant"
	[c]="(c) fcgi + redis GET"
	[d]="(d) dashcache hit"
	[e]="(e) dashcache miss"
	[f]="(f) hit, METRICS=off"
)
# the processes that serve each target, by component (see component_pids)
declare -A SERVED_BY=(
	[a]="nginx"
	[b]="nginx const"
	[c]="nginx bredis redis"
	[d]="nginx dashcache redis"
	[e]="nginx dashcache redis postgres"
	[f]="nginx nometrics redis"
)
COMPONENTS=(nginx const bredis dashcache nometrics redis postgres)

mkdir -p "$OUT/raw" "$OUT/logs"
rm -f "$OUT"/raw/*.txt "$OUT"/logs/*.log
: >"$LAST"
: >"$OUT/pids.txt"

out() {
	printf '%s\n' "$*"
	printf '%s\n' "$*" >>"$LAST"
}
log() { out "bench: $*"; }
die() {
	# stderr too: die may run inside a command substitution
	printf 'bench: error: %s\n' "$*" >&2
	printf 'bench: error: %s\n' "$*" >>"$LAST"
	exit 1
}

int_env() {
	local name=$1 def=$2 min=$3 max=$4 v
	v=${!name:-$def}
	if ! [[ $v =~ ^[0-9]+$ ]] || ((10#$v < min || 10#$v > max)); then
		die "$name must be an integer between $min and $max (got '$v')"
	fi
	printf -v "$name" '%d' "$((10#$v))"
}

NCPU=$(nproc)
int_env BENCH_DURATION 5 1 3600
int_env BENCH_ROUNDS 3 1 100
int_env BENCH_WARMUP 2 0 600
int_env BENCH_CONNECTIONS 32 1 10000
int_env BENCH_THREADS 2 1 64
int_env BENCH_WORKERS $((NCPU * 2)) 1 256
BENCH_PORT_SET=${BENCH_PORT:+1}
int_env BENCH_PORT 18480 1024 65535
int_env BENCH_REDIS_UNIX 0 0 1
((BENCH_THREADS <= BENCH_CONNECTIONS)) || die "BENCH_THREADS must not exceed BENCH_CONNECTIONS"
read -r -a RUN_TARGETS <<<"${BENCH_TARGETS:-${TARGETS[*]}}"
((${#RUN_TARGETS[@]} > 0)) || die "BENCH_TARGETS is empty"
for t in "${RUN_TARGETS[@]}"; do
	[[ -n ${LABEL[$t]:-} ]] || die "BENCH_TARGETS must list some of: ${TARGETS[*]} (got '$t')"
done
DC_BIN=${DC_FCGI_BIN:-$ROOT/build/dashcache-fcgi}
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- processes

# Fields of /proc/PID/stat after the command name (which may hold spaces and
# parentheses): [0] state, [11] utime, [12] stime, [19] starttime.
proc_stat() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	read -r -a STAT <<<"$s"
}

proc_ticks() {
	proc_stat "$1" || return 1
	printf '%s\n' "$((STAT[11] + STAT[12]))"
}

children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }

# Every process this script starts is registered by name with its start time,
# so that checks and stops only ever touch that very process.
declare -A PID_OF=() START_OF=()
NAMES=()

register() {
	local name=$1 pid=$2
	proc_stat "$pid" || die "$name (pid $pid) exited right after start; see $OUT/logs/"
	[[ -n ${START_OF[$name]:-} ]] || NAMES+=("$name")
	PID_OF[$name]=$pid
	START_OF[$name]=${STAT[19]}
	printf '%s %s\n' "$name" "$pid" >>"$OUT/pids.txt"
}

alive() {
	local pid=${PID_OF[$1]:-}
	[[ -n $pid ]] && proc_stat "$pid" && [[ ${STAT[0]} != [ZX] && ${STAT[19]} == "${START_OF[$1]}" ]]
}

# stop NAME SIGNAL TIMEOUT: signal it, wait, then KILL it and its children.
stop() {
	local name=$1 sig=$2 timeout=$3 pid end kids
	pid=${PID_OF[$name]:-}
	[[ -n $pid ]] || return 0
	if alive "$name"; then
		kill -s "$sig" "$pid" 2>/dev/null || true
		end=$((SECONDS + timeout))
		while alive "$name" && ((SECONDS < end)); do sleep 0.05; done
		if alive "$name"; then
			kids=$(children "$pid")
			log "$name (pid $pid) still running ${timeout}s after SIG$sig; killing it"
			# shellcheck disable=SC2086
			kill -KILL "$pid" $kids 2>/dev/null || true
			end=$((SECONDS + 5))
			while alive "$name" && ((SECONDS < end)); do sleep 0.05; done
		fi
	fi
	wait "$pid" 2>/dev/null || true
	unset "PID_OF[$name]"
}

# A daemon in its own session (a Ctrl-C on the terminal reaches only this
# script, which then stops everything in order), cwd in the runtime dir.
launch() {
	local logname=$1
	shift
	local -a detach=()
	[[ $- != *m* ]] && detach=(setsid)
	(cd "$RT" && exec "${detach[@]}" "$@") </dev/null >>"$RT/log/$logname.log" 2>&1 &
	LAUNCHED=$!
}

WRK_PID=
RT=
cleanup() {
	local rc=$? n i
	trap - EXIT INT TERM
	set +e
	if [[ -n $WRK_PID ]]; then
		kill -TERM "$WRK_PID" 2>/dev/null
		wait "$WRK_PID" 2>/dev/null
	fi
	[[ -n ${PID_OF[nginx]:-} ]] && stop nginx QUIT 10
	for ((i = ${#NAMES[@]} - 1; i >= 0; i--)); do
		n=${NAMES[i]}
		case $n in const.* | bredis.*) stop "$n" TERM 5 ;; esac
	done
	[[ -n ${PID_OF[dashcache]:-} ]] && stop dashcache TERM 20
	[[ -n ${PID_OF[nometrics]:-} ]] && stop nometrics TERM 20
	[[ -n ${PID_OF[redis]:-} ]] && stop redis TERM 10
	if [[ -n ${PID_OF[postgres]:-} ]]; then
		# fast shutdown: the workers' connections would hold a smart one
		stop postgres INT 30
	fi
	rm -f "$OUT/pids.txt"
	if [[ -n $RT && -d $RT ]]; then
		cp -f "$RT"/log/*.log "$OUT/logs/" 2>/dev/null
		rm -rf "$RT"
	fi
	local left=
	for n in "${!PID_OF[@]}"; do alive "$n" && left+=" $n(${PID_OF[$n]})"; done
	[[ -n $left ]] && out "bench: warning: still running:$left"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- set-up

for tool in wrk nginx redis-server redis-cli spawn-fcgi cc pkg-config curl psql; do
	command -v "$tool" >/dev/null || die "$tool not found (make deps installs what the project needs)"
done
[[ -x $DC_BIN ]] || die "$DC_BIN not built (run make)"
PG_BIN=
for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV); do
	if [[ -x $d/initdb && -x $d/postgres ]]; then
		PG_BIN=$d
		break
	fi
done
[[ -n $PG_BIN ]] || die "no PostgreSQL server under /usr/lib/postgresql/*/bin"

port_in_use() { timeout 1 bash -c ": <>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
free_port() {
	local p=$1
	while port_in_use "$p"; do
		p=$((p + 1))
		((p < $1 + 200)) || die "no free port in $1..$p"
	done
	printf '%s\n' "$p"
}
# Below Linux's ephemeral range (32768-60999), where outgoing connections
# would take the port; a port taken anyway moves on (start_with_retry).
if [[ -n $BENCH_PORT_SET ]]; then
	! port_in_use "$BENCH_PORT" || die "BENCH_PORT $BENCH_PORT is in use on 127.0.0.1"
else
	BENCH_PORT=$(free_port "$BENCH_PORT")
fi
PG_PORT=$(free_port 25480)
REDIS_PORT=$(free_port 26480)

# start_with_retry NAME PORT_VAR FIXED FN: FN launches NAME on ${!PORT_VAR}
# and waits until it serves (status 0) or has exited (1). A port that another
# program took between our check and the server's bind moves to the next free
# one, unless FIXED is 1 (the user chose it).
start_with_retry() {
	local name=$1 var=$2 fixed=$3 fn=$4 logf=$RT/log/$1.log attempt lines
	touch "$logf"
	for attempt in 1 2 3 4 5; do
		lines=$(wc -l <"$logf")
		"$fn" && return 0
		stop "$name" TERM 5
		if [[ $fixed != 1 ]] && tail -n +"$((lines + 1))" "$logf" | grep -q 'already in use'; then
			log "$name: port ${!var} was taken meanwhile (attempt $attempt); trying the next free one"
			printf -v "$var" '%s' "$(free_port $((${!var} + 1)))"
			continue
		fi
		break
	done
	die "$name exited during start-up (see $OUT/logs/$name.log)"
}

log "compiling bench_const and bench_redis"
CFLAGS_BENCH=(-std=c11 -O2 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wwrite-strings)
read -r -a PKG_CFLAGS <<<"$(pkg-config --cflags fcgi hiredis)"
read -r -a PKG_LIBS <<<"$(pkg-config --libs fcgi hiredis)"
read -r -a USER_CFLAGS <<<"${CFLAGS:-}"
for prog in bench_const bench_redis; do
	cc "${CFLAGS_BENCH[@]}" "${PKG_CFLAGS[@]}" "${USER_CFLAGS[@]}" -o "$OUT/$prog" \
		"$BENCH_SRC/$prog.c" "${PKG_LIBS[@]}" || die "compiling tests/bench/$prog.c failed"
done

# The postgres and nginx users must reach the runtime dir (the repo may live
# under a home directory they cannot enter).
RT=$(mktemp -d /var/tmp/dashcache-bench.XXXXXX)
chmod 755 "$RT"
mkdir -p "$RT/log" "$RT/pg" "$RT/redis" "$RT/nginx/tmp"

AS_PG=()
if [[ $(id -u) -eq 0 ]]; then
	id postgres >/dev/null 2>&1 || die "user postgres does not exist (install postgresql)"
	chown postgres: "$RT/pg"
	AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups env "HOME=$RT/pg")
fi

log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
(cd "$RT" && exec "${AS_PG[@]}" "$PG_BIN/initdb" -D "$RT/pg/data" -A trust -U postgres -E UTF8 \
	--locale=C --no-sync) >>"$RT/log/postgres.log" 2>&1 || die "initdb failed (see $OUT/logs/postgres.log)"
try_postgres() {
	launch postgres "${AS_PG[@]}" "$PG_BIN/postgres" -D "$RT/pg/data" -p "$PG_PORT" -k "$RT/pg" \
		-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
		-c max_connections=100 -c shared_buffers=128MB -c log_min_messages=warning
	register postgres "$LAUNCHED"
	local end=$((SECONDS + 60))
	until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d postgres -U postgres; do
		alive postgres || return 1
		((SECONDS < end)) || die "postgres did not start within 60s"
		sleep 0.1
	done
}
start_with_retry postgres PG_PORT 0 try_postgres
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
"${PSQL[@]}" "postgresql://postgres@127.0.0.1:$PG_PORT/postgres" \
	-c "CREATE ROLE dashcache LOGIN" -c "CREATE DATABASE dashcache OWNER dashcache" \
	>>"$RT/log/seed.log" 2>&1 || die "creating role and database failed"
DATABASE_URL=postgresql://dashcache@127.0.0.1:$PG_PORT/dashcache
log "loading sql/schema.sql and demo data"
"${PSQL[@]}" "$DATABASE_URL" -f "$ROOT/sql/schema.sql" -f "$ROOT/sql/seed.sql" \
	-c 'SELECT * FROM dc_seed(20)' -c 'VACUUM ANALYZE' >>"$RT/log/seed.log" 2>&1 ||
	die "loading schema and seed failed (see $OUT/logs/seed.log)"

log "starting Redis on 127.0.0.1:$REDIS_PORT"
try_redis() {
	cat >"$RT/redis/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize no
logfile ""
loglevel warning
dir $RT/redis
save ""
appendonly no
maxmemory 256mb
maxmemory-policy allkeys-lru
EOF
	if ((BENCH_REDIS_UNIX)); then
		printf 'unixsocket %s\nunixsocketperm 700\n' "$RT/redis/redis.sock" >>"$RT/redis/redis.conf"
	fi
	launch redis redis-server "$RT/redis/redis.conf"
	register redis "$LAUNCHED"
	local end=$((SECONDS + 20))
	until [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; do
		alive redis || return 1
		((SECONDS < end)) || die "redis-server did not answer within 20s"
		sleep 0.1
	done
}
start_with_retry redis REDIS_PORT 0 try_redis
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
BREDIS_HOST=127.0.0.1
if ((BENCH_REDIS_UNIX)); then
	REDIS_URL=unix://$RT/redis/redis.sock
	BREDIS_HOST=$RT/redis/redis.sock
fi

# Every request carries a bearer token, as a dashboard's would: the hit path
# includes its verification (after the first request, the worker's cache of
# verified tokens). The same header goes to every target, so that the bytes
# on the wire are the same.
AUTH_KEYS=$RT/auth-keys
(umask 077 && printf 'bench HS256 %s\n' "$(head -c 32 /dev/urandom | basenc --base64url | tr -d =)" >"$AUTH_KEYS")
BENCH_TOKEN=$(AUTH_KEYS_FILE=$AUTH_KEYS "$(dirname "$DC_BIN")/dashcachectl" token --org "$ORG" --scope read,refresh \
	--ttl 1d --sub bench) || die "dashcachectl token failed"
AUTH_H="Authorization: Bearer $BENCH_TOKEN"

log "starting dashcache-fcgi with $BENCH_WORKERS workers"
DC_SOCK=$RT/dashcache.sock
# TTL: the key must outlive the whole run, or (c) would find it gone
launch dashcache env DATABASE_URL="$DATABASE_URL" REDIS_URL="$REDIS_URL" CACHE_TTL_SECONDS=86400 METRICS_FILE="$RT/metrics" \
	AUTH_KEYS_FILE="$AUTH_KEYS" \
	LOG_LEVEL=warn "$DC_BIN" --listen "unix:$DC_SOCK" --workers "$BENCH_WORKERS" --socket-mode 0666
register dashcache "$LAUNCHED"
end=$((SECONDS + 20))
while :; do
	mapfile -t DC_WORKERS < <(children "${PID_OF[dashcache]}")
	[[ -S $DC_SOCK && ${#DC_WORKERS[@]} -ge $BENCH_WORKERS ]] && break
	alive dashcache || die "dashcache-fcgi exited during start-up (see $OUT/logs/dashcache.log)"
	((SECONDS < end)) || die "dashcache-fcgi did not start $BENCH_WORKERS workers within 20s"
	sleep 0.1
done
for i in "${!DC_WORKERS[@]}"; do register "dcworker.$i" "${DC_WORKERS[i]}"; done

# (f): the same binary and hit path with METRICS=off, so that the cost of the
# shared-memory counters is measured side by side with (d)
log "starting a second dashcache-fcgi with METRICS=off"
DC_SOCK_OFF=$RT/dashcache-nometrics.sock
launch nometrics env DATABASE_URL="$DATABASE_URL" REDIS_URL="$REDIS_URL" CACHE_TTL_SECONDS=86400 AUTH_KEYS_FILE="$AUTH_KEYS" \
	LOG_LEVEL=warn METRICS=off "$DC_BIN" --listen "unix:$DC_SOCK_OFF" --workers "$BENCH_WORKERS" --socket-mode 0666
register nometrics "$LAUNCHED"
end=$((SECONDS + 20))
until [[ -S $DC_SOCK_OFF && $(children "${PID_OF[nometrics]}" | wc -l) -ge $BENCH_WORKERS ]]; do
	alive nometrics || die "dashcache-fcgi (METRICS=off) exited during start-up (see $OUT/logs/nometrics.log)"
	((SECONDS < end)) || die "dashcache-fcgi (METRICS=off) did not start within 20s"
	sleep 0.1
done

# nginx: (a) answers the hit body itself, so it is written into the config
# once the body is known; until then (a) is a placeholder.
write_fcgi_params() {
	cat >"$RT/nginx/fastcgi_min.conf" <<'EOF'
fastcgi_keep_conn off;
fastcgi_param REQUEST_METHOD $request_method;
fastcgi_param DOCUMENT_URI   $document_uri;
fastcgi_param QUERY_STRING   $query_string;
fastcgi_param REQUEST_URI    $request_uri;
EOF
}

# The body as an nginx single-quoted string: escape \ and ', and spell $ as a
# variable, because `return` text is a template.
nginx_quote() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\'/\\\'}
	s=${s//\$/\$\{dollar\}}
	printf "'%s'" "$s"
}

write_nginx_conf() {
	local body_quoted=$1 user_line=
	[[ $(id -u) -eq 0 ]] && user_line="user www-data;"
	cat >"$RT/nginx/nginx.conf" <<EOF
$user_line
worker_processes auto;
daemon off;
pid $RT/nginx/nginx.pid;
error_log $RT/log/nginx.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $RT/nginx/tmp/client_body;
    fastcgi_temp_path $RT/nginx/tmp/fastcgi;
    proxy_temp_path $RT/nginx/tmp/proxy;
    uwsgi_temp_path $RT/nginx/tmp/uwsgi;
    scgi_temp_path $RT/nginx/tmp/scgi;
    geo \$dollar { default "\$"; }
    server {
        listen 127.0.0.1:$BENCH_PORT;
        location = /a {
            default_type application/json;
            return 200 $body_quoted;
        }
        location = /b {
            fastcgi_pass unix:$RT/const.sock;
            include $RT/nginx/fastcgi_min.conf;
        }
        location = /c {
            fastcgi_pass unix:$RT/bredis.sock;
            include $RT/nginx/fastcgi_min.conf;
        }
        location /api/dashboard/ {
            fastcgi_pass unix:$DC_SOCK;
            include $RT/nginx/fastcgi_min.conf;
        }
        location /nometrics/ {
            rewrite ^/nometrics(/.*)\$ \$1 break;
            fastcgi_pass unix:$DC_SOCK_OFF;
            include $RT/nginx/fastcgi_min.conf;
        }
    }
}
EOF
	nginx -q -t -p "$RT/nginx/" -c "$RT/nginx/nginx.conf" -e stderr >>"$RT/log/nginx.log" 2>&1 ||
		die "nginx rejected its config (see $OUT/logs/nginx.log)"
}

# (re)write the config for $BENCH_PORT, with $NGINX_BODY for (a), and start nginx
try_nginx() {
	write_nginx_conf "$NGINX_BODY"
	launch nginx nginx -p "$RT/nginx/" -c "$RT/nginx/nginx.conf" -e stderr
	register nginx "$LAUNCHED"
	local end=$((SECONDS + 20))
	until curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$BENCH_PORT/a"; do
		alive nginx || return 1
		((SECONDS < end)) || die "nginx did not listen on 127.0.0.1:$BENCH_PORT within 20s"
		sleep 0.1
	done
}
start_nginx() {
	NGINX_BODY=$1
	start_with_retry nginx BENCH_PORT "${BENCH_PORT_SET:-0}" try_nginx
	BASE=http://127.0.0.1:$BENCH_PORT
	URL=([a]=$BASE/a [b]=$BASE/b [c]=$BASE/c [d]=$BASE$HIT_PATH [e]=$BASE$MISS_PATH [f]=$BASE/nometrics$HIT_PATH)
}

log "starting nginx on 127.0.0.1:$BENCH_PORT"
write_fcgi_params
declare -A URL=()
start_nginx "'placeholder'"
declare -A X_CACHE=([d]=HIT [e]=BYPASS [f]=HIT)

# fetch URL: HTTP status in CODE, body in $RT/fetch.body, X-Cache in XC.
fetch() {
	: >"$RT/fetch.head"
	CODE=$(curl -s --max-time 10 -H "$AUTH_H" -o "$RT/fetch.body" -D "$RT/fetch.head" -w '%{http_code}' "$1") ||
		CODE=000
	XC=$(tr -d '\r' <"$RT/fetch.head" | awk -F': ' 'tolower($1) == "x-cache" { print $2 }') || XC=
}

fetch "${URL[d]}"
[[ $CODE == 200 ]] || die "first request to the hit URL answered $CODE: $(head -c 300 "$RT/fetch.body")"
[[ $XC == MISS ]] || log "warning: first request to the hit URL says X-Cache: ${XC:-none}, expected MISS"
fetch "${URL[d]}"
[[ $CODE == 200 && $XC == HIT ]] || die "second request to the hit URL: status $CODE, X-Cache: ${XC:-none}"
cp "$RT/fetch.body" "$RT/body.json"
chmod 644 "$RT/body.json"
BODY_BYTES=$(stat -c %s "$RT/body.json")
# (c) answers the key's value; dashcache may store it tagged "<generation>\n<body>"
CACHED=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" GET "$CACHE_KEY")
BODY=$(cat "$RT/body.json")
if [[ $CACHED == "$BODY" ]]; then
	BREDIS_OPT=()
elif [[ $CACHED == *$'\n'* && ${CACHED#*$'\n'} == "$BODY" ]]; then
	BREDIS_OPT=(-g)
	log "the cache holds \"<generation>\\n<body>\": (c) answers what follows the generation"
else
	die "Redis key $CACHE_KEY does not hold the hit body: $(head -c 200 <<<"$CACHED")"
fi
log "hit body: $BODY_BYTES bytes: $(head -c 160 "$RT/body.json")$( ((BODY_BYTES > 160)) && echo ...)"

# the baselines, with as many processes as dashcache has workers
start_spawned() {
	local name=$1 sock=$2
	shift 2
	local pids
	launch "$name" spawn-fcgi -s "$sock" -M 0666 -F "$BENCH_WORKERS" -P "$RT/$name.pids" -- "$@"
	wait "$LAUNCHED" || die "spawn-fcgi for $name failed (see $OUT/logs/$name.log)"
	read -r -d '' -a pids <"$RT/$name.pids" || true
	((${#pids[@]} == BENCH_WORKERS)) || die "spawn-fcgi started ${#pids[@]} of $BENCH_WORKERS $name processes"
	for i in "${!pids[@]}"; do register "$name.$i" "${pids[i]}"; done
}
log "starting bench_const and bench_redis, $BENCH_WORKERS processes each"
start_spawned const "$RT/const.sock" "$OUT/bench_const" "$RT/body.json"
start_spawned bredis "$RT/bredis.sock" "$OUT/bench_redis" "${BREDIS_OPT[@]}" "$BREDIS_HOST" "$REDIS_PORT" "$CACHE_KEY"

stop nginx QUIT 10
start_nginx "$(nginx_quote "$BODY")"

BROKEN=0
broke() {
	out "bench: BROKEN: $*"
	BROKEN=1
}

# Every target answers 200 and the expected X-Cache. (a) and (b) answer the
# body captured at start; (c) and (d) whatever the cache holds now, which each
# run of (e) rewrites with a fresh generatedAt: the same for both, and as long.
check_targets() {
	local when=$1 t
	for t in "${TARGETS[@]}"; do
		fetch "${URL[$t]}"
		if [[ $CODE != 200 ]]; then
			broke "$when: ${LABEL[$t]} answered $CODE: $(head -c 200 "$RT/fetch.body")"
		elif [[ -n ${X_CACHE[$t]:-} && $XC != "${X_CACHE[$t]}" ]]; then
			broke "$when: ${LABEL[$t]} says X-Cache: ${XC:-none}, expected ${X_CACHE[$t]}"
		elif [[ $(stat -c %s "$RT/fetch.body") != "$BODY_BYTES" ]]; then
			broke "$when: ${LABEL[$t]} answered a body of another size: $(head -c 200 "$RT/fetch.body")"
		elif [[ $t == [ab] ]] && ! cmp -s "$RT/fetch.body" "$RT/body.json"; then
			broke "$when: ${LABEL[$t]} answered another body: $(head -c 200 "$RT/fetch.body")"
		elif [[ $t == d ]] && ! cmp -s "$RT/fetch.body" "$RT/c.body"; then
			broke "$when: ${LABEL[$t]} and ${LABEL[c]} answered different bodies"
		elif [[ $t == f ]] && ! cmp -s "$RT/fetch.body" "$RT/e.body"; then
			broke "$when: ${LABEL[$t]} and ${LABEL[c]} answered different bodies"
		fi
		[[ $t == c ]] && cp "$RT/fetch.body" "$RT/c.body"
		# (e) stored a fresh body: (f) reads the same key after it
		[[ $t == e ]] && cp "$RT/fetch.body" "$RT/e.body"
	done
	return 0
}

declare -A DEAD_REPORTED=()
check_alive() {
	local n
	for n in "${NAMES[@]}"; do
		[[ -z ${DEAD_REPORTED[$n]:-} ]] || continue
		if ! alive "$n"; then
			broke "$n (pid ${PID_OF[$n]}) died"
			DEAD_REPORTED[$n]=1
		fi
	done
}

# ---------------------------------------------------------------- measuring

# PIDs of a component now (children are listed afresh: respawned workers and
# new Postgres backends count too).
component_pids() {
	local n
	case $1 in
	nginx) [[ -n ${PID_OF[nginx]:-} ]] && echo "${PID_OF[nginx]}" && children "${PID_OF[nginx]}" ;;
	dashcache) echo "${PID_OF[dashcache]}" && children "${PID_OF[dashcache]}" ;;
	nometrics) echo "${PID_OF[nometrics]}" && children "${PID_OF[nometrics]}" ;;
	postgres) echo "${PID_OF[postgres]}" && children "${PID_OF[postgres]}" ;;
	redis) echo "${PID_OF[redis]}" ;;
	const | bredis)
		for n in "${NAMES[@]}"; do [[ $n == "$1".* ]] && echo "${PID_OF[$n]}"; done
		;;
	esac
	return 0
}

declare -A TICKS0=()
cpu_snapshot() {
	local c p t
	TICKS0=()
	for c in "${COMPONENTS[@]}"; do
		for p in $(component_pids "$c"); do
			t=$(proc_ticks "$p") && TICKS0[$p]=$t
		done
	done
}

# CPU_TICKS[component] since cpu_snapshot
declare -A CPU_TICKS=()
cpu_delta() {
	local c p t sum
	for c in "${COMPONENTS[@]}"; do
		sum=0
		for p in $(component_pids "$c"); do
			t=$(proc_ticks "$p") || continue
			sum=$((sum + t - ${TICKS0[$p]:-0}))
		done
		CPU_TICKS[$c]=$sum
	done
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo -; }
RSS_START=() RSS_WARM=() RSS_END=()
rss_record() {
	local -n into=$1
	local i
	# shellcheck disable=SC2034 # into is a nameref: this fills the caller's array
	for i in "${!DC_WORKERS[@]}"; do into[i]=$(rss_kb "${DC_WORKERS[i]}"); done
}

# run_wrk TARGET SECONDS RAWFILE: sets W_* from the lua summary line.
run_wrk() {
	local t=$1 secs=$2 raw=$3 line kv
	timeout -k 5 $((secs + 30)) wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"${secs}s" --timeout 5s \
		-H "$AUTH_H" --latency -s "$BENCH_SRC/stats.lua" "${URL[$t]}" >"$raw" 2>&1 &
	WRK_PID=$!
	wait "$WRK_PID" || true
	WRK_PID=
	line=$(grep '^BENCH ' "$raw" | tail -n 1) || true
	W_requests=0 W_rps=0 W_p50_us=0 W_p99_us=0
	W_status=0 W_connect=0 W_read=0 W_write=0 W_timeout=0
	if [[ -z $line ]]; then
		broke "wrk on ${LABEL[$t]} printed no summary (see $raw)"
		return 0
	fi
	for kv in ${line#BENCH }; do
		printf -v "W_${kv%%=*}" '%s' "${kv#*=}"
	done
	local errs=$((W_status + W_connect + W_read + W_write + W_timeout))
	if ((errs > 0)); then
		broke "${LABEL[$t]}: $W_status responses >= 400, socket errors: connect $W_connect," \
			"read $W_read, write $W_write, timeout $W_timeout (see $raw)"
	fi
	((W_requests > 0)) || broke "${LABEL[$t]}: no request completed"
}

fmt_ms() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

check_targets "before the runs"
((BROKEN == 0)) || die "a target does not answer as expected; not measuring"

out ""
out "dashcache benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
read -r LOAD1 _ </proc/loadavg
out "host: $(uname -srm), $NCPU cores, load average before the runs $LOAD1$(
	awk -v l="$LOAD1" -v n="$NCPU" 'BEGIN { if (l > n / 2) print " (busy: other work skews the figures)" }')"
out "dashcache: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(
	[[ -n $(git -C "$ROOT" status --porcelain -- fcgi-app 2>/dev/null) ]] && echo ' + uncommitted changes in fcgi-app/')," \
	"$DC_BIN, $BENCH_WORKERS workers; nginx on 127.0.0.1:$BENCH_PORT; Redis over $( ((BENCH_REDIS_UNIX)) && echo 'its unix socket' || echo 'TCP')"
out "wrk: $BENCH_THREADS threads, $BENCH_CONNECTIONS connections, $BENCH_ROUNDS rounds x ${BENCH_DURATION}s per target," \
	"${BENCH_WARMUP}s warm-up; body $BODY_BYTES bytes; nginx $(nginx -v 2>&1 | sed 's/.*nginx\///')," \
	"worker_processes auto, fastcgi_keep_conn off"
out ""

rss_record RSS_START
if ((BENCH_WARMUP > 0)); then
	log "warm-up: ${BENCH_WARMUP}s per target"
	for t in "${RUN_TARGETS[@]}"; do run_wrk "$t" "$BENCH_WARMUP" "$OUT/raw/warmup-$t.txt"; done
	check_alive
fi
rss_record RSS_WARM

declare -A RPS=() P50=() P99=() CPU=() CPUC=()
out "$(printf '%-5s %-22s %10s %9s %9s %11s  %s' round target req/s 'p50 ms' 'p99 ms' 'CPU us/req' 'CPU us/req by process')"
for ((r = 0; r < BENCH_ROUNDS; r++)); do
	for ((k = 0; k < ${#RUN_TARGETS[@]}; k++)); do
		t=${RUN_TARGETS[(k + r) % ${#RUN_TARGETS[@]}]}
		cpu_snapshot
		run_wrk "$t" "$BENCH_DURATION" "$OUT/raw/round$((r + 1))-$t.txt"
		cpu_delta
		check_alive
		total=0 parts=
		for c in ${SERVED_BY[$t]}; do
			total=$((total + CPU_TICKS[$c]))
			us=$(awk -v tk="${CPU_TICKS[$c]}" -v hz="$CLK_TCK" -v n="$W_requests" \
				'BEGIN { printf "%.1f", n ? tk * 1e6 / hz / n : 0 }')
			CPUC[$t,$c,$r]=$us
			parts+=" $c $us"
		done
		RPS[$t,$r]=$W_rps
		P50[$t,$r]=$W_p50_us
		P99[$t,$r]=$W_p99_us
		CPU[$t,$r]=$(awk -v tk="$total" -v hz="$CLK_TCK" -v n="$W_requests" \
			'BEGIN { printf "%.1f", n ? tk * 1e6 / hz / n : 0 }')
		out "$(printf '%-5s %-22s %10.0f %9s %9s %11s %s' "$((r + 1))" "${LABEL[$t]}" "$W_rps" \
			"$(fmt_ms "$W_p50_us")" "$(fmt_ms "$W_p99_us")" "${CPU[$t,$r]}" "$parts")"
	done
done
rss_record RSS_END
check_targets "after the runs"
check_alive

# ---------------------------------------------------------------- report

declare -A M_RPS=() M_P50=() M_P99=() M_CPU=()
for t in "${RUN_TARGETS[@]}"; do
	v=() w=() x=() y=()
	for ((r = 0; r < BENCH_ROUNDS; r++)); do
		v+=("${RPS[$t,$r]}") w+=("${P50[$t,$r]}") x+=("${P99[$t,$r]}") y+=("${CPU[$t,$r]}")
	done
	M_RPS[$t]=$(median "${v[@]}")
	M_P50[$t]=$(median "${w[@]}")
	M_P99[$t]=$(median "${x[@]}")
	M_CPU[$t]=$(median "${y[@]}")
done

out ""
out "median of $BENCH_ROUNDS rounds ($BENCH_CONNECTIONS connections, $BENCH_WORKERS FastCGI processes per app):"
out "$(printf '%-22s %10s %9s %9s %11s' target req/s 'p50 ms' 'p99 ms' 'CPU us/req')"
for t in "${RUN_TARGETS[@]}"; do
	out "$(printf '%-22s %10.0f %9s %9s %11.1f' "${LABEL[$t]}" "${M_RPS[$t]}" "$(fmt_ms "${M_P50[$t]}")" \
		"$(fmt_ms "${M_P99[$t]}")" "${M_CPU[$t]}")"
done
out ""
out "CPU us/req by process (median):"
for t in "${RUN_TARGETS[@]}"; do
	line=
	for c in ${SERVED_BY[$t]}; do
		v=()
		for ((r = 0; r < BENCH_ROUNDS; r++)); do v+=("${CPUC[$t,$c,$r]}"); done
		line+=$(printf ' %s %.1f' "$c" "$(median "${v[@]}")")
	done
	out "$(printf '%-22s%s' "${LABEL[$t]}" "$line")"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
ratios() {
	[[ -n ${M_RPS[$1]:-} && -n ${M_RPS[$2]:-} ]] || return 0
	out "$1/$2: req/s $(ratio "${M_RPS[$1]}" "${M_RPS[$2]}"), p99 $(ratio "${M_P99[$1]}" "${M_P99[$2]}")," \
		"CPU/req $(ratio "${M_CPU[$1]}" "${M_CPU[$2]}")"
}
out ""
ratios d c
ratios d b
if [[ -n ${M_RPS[d]:-} && -n ${M_RPS[f]:-} ]]; then
	cost=$(awk -v on="${M_RPS[d]}" -v off="${M_RPS[f]}" -v con="${M_CPU[d]}" -v coff="${M_CPU[f]}" 'BEGIN {
		printf "req/s %+.1f%%, CPU/req %+.1f%%", 100 * (on - off) / off, 100 * (con - coff) / coff }')
	out "cost of metrics, (d) against (f): $cost (goal: under 3%) [information only]"
fi
if [[ -n ${M_RPS[c]:-} && -n ${M_RPS[d]:-} ]]; then
	goal=$(awk -v dr="${M_RPS[d]}" -v cr="${M_RPS[c]}" -v dp="${M_P99[d]}" -v cp="${M_P99[c]}" 'BEGIN {
		ok = (dr >= 0.9 * cr && dp <= 1.2 * cp) ? "met" : "not met"
		pr = (cr > 0) ? 100 * dr / cr : 0
		pp = (cp > 0) ? dp / cp : 0
		printf "%s (req/s %.0f%% of (c), needs >= 90%%; p99 %.2fx (c), needs <= 1.2x)", ok, pr, pp }')
	out "goal, hit path vs (c): $goal [information only]"
fi

out ""
out "dashcache worker RSS (kB): at start, after warm-up, after the last round"
for i in "${!DC_WORKERS[@]}"; do
	if [[ ${RSS_END[i]} == - || ${RSS_WARM[i]} == - ]]; then
		growth="(died)"
	else
		growth=$(printf '(%+d since warm-up)' "$((RSS_END[i] - RSS_WARM[i]))")
	fi
	out "$(printf '  worker pid %-8s %8s %8s %8s  %s' "${DC_WORKERS[i]}" "${RSS_START[i]}" "${RSS_WARM[i]}" \
		"${RSS_END[i]}" "$growth")"
done

out ""
if ((BROKEN)); then
	out "bench: something broke during the run (see BROKEN lines above); wrk output in $OUT/raw/"
	exit 1
fi
out "bench: done; report saved to build/bench/last.txt"
