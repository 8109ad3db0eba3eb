#!/usr/bin/env bash
# Reseed the database with deterministic demo data (`make seed SCALE=N`).
#
#   scripts/seed.sh [SCALE]      SCALE from the argument, else $SCALE, else 1
#
# SCALE=small: 300 organizations, one day of hourly readings (quick).
# SCALE=N gives 20*N organizations: 3 days of readings every 5 minutes when
# N < 10, else 5 days every 10 minutes (SCALE=1 is the demo data set, ~140k
# readings; SCALE=50 is ~5.8M readings over 1000 organizations).
#
# Which database: the stack described by $DC_STACK_ENV if set (tests), else
# the one of a running `make run` (.run/stack.env), else
# DATABASE_URL if set, else the private cluster of `make run`, started for
# the duration if it is not running. All existing rows are replaced, in one
# transaction; the dashboard keys in that stack's Redis are then deleted.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DC_ROOT"

scale=${1:-${SCALE:-1}}
read -r orgs days step < <(dc_scale_args "$scale")
[[ -n ${orgs:-} ]] || exit 1

export DC_STATE_DIR=$DC_ROOT/.run
mkdir -p "$DC_STATE_DIR/pids" "$DC_STATE_DIR/logs"
stack_env=$DC_STATE_DIR/stack.env
started_pg=0
url=
redis_url=

stop_started() {
	if ((started_pg)); then dc_pg_stop; fi
}
trap stop_started EXIT
trap 'exit 130' INT TERM

if [[ -n ${DC_STACK_ENV:-} ]]; then
	# a stack described by scripts/dcstack.py (tests): its stack.env
	[[ -r $DC_STACK_ENV ]] || dc_die "DC_STACK_ENV=$DC_STACK_ENV is not readable"
	url=$(grep -m1 '^DATABASE_URL=' "$DC_STACK_ENV" | cut -d= -f2-)
	redis_url=$(grep -m1 '^REDIS_URL=' "$DC_STACK_ENV" | cut -d= -f2-)
	dc_log "reseeding the database of the stack in $DC_STACK_ENV: $url"
elif dc_running run >/dev/null && [[ -r $stack_env ]]; then
	url=$(grep -m1 '^DATABASE_URL=' "$stack_env" | cut -d= -f2-)
	redis_url=$(grep -m1 '^REDIS_URL=' "$stack_env" | cut -d= -f2-)
	dc_log "reseeding the database of the running stack: $url"
elif [[ -n ${DATABASE_URL:-} ]]; then
	url=$DATABASE_URL
	redis_url=${REDIS_URL:-}
	dc_log "reseeding DATABASE_URL: $url"
else
	DC_RUNTIME_DIR=$(dc_runtime_dir run)
	export DC_RUNTIME_DIR
	dc_stack_defaults
	if ! dc_running postgres >/dev/null; then
		started_pg=1
		dc_pg_start
	fi
	url=$(dc_private_database_url)
	dc_log "reseeding the private cluster: $url"
fi

if ! dc_db_has_schema "$url"; then
	dc_log "loading sql/schema.sql"
	dc_db_load_schema "$url"
fi

dc_log "dc_seed($orgs, $days, $step) (SCALE=$scale)"
t0=$(date +%s.%N)
dc_db_seed "$url" "$orgs" "$days" "$step" truncate >/dev/null
t1=$(date +%s.%N)

if [[ -n $redis_url ]]; then
	# keys computed from the old rows; SCAN + UNLINK, never KEYS
	n=$(redis-cli -u "$redis_url" --scan --pattern 'dashboard:*' 2>/dev/null |
		xargs -r -n 500 redis-cli -u "$redis_url" unlink 2>/dev/null | awk '{s += $1} END {print s + 0}') || n=0
	dc_log "deleted $n cached dashboard keys from $redis_url"
fi

dc_psql "$url" -P footer=off -c "SELECT (SELECT count(*) FROM organizations) AS organizations,
       (SELECT count(*) FROM sites) AS sites, (SELECT count(*) FROM units) AS units,
       (SELECT count(*) FROM devices) AS devices, (SELECT count(*) FROM readings) AS readings,
       (SELECT count(*) FROM alerts) AS alerts, (SELECT count(*) FROM audit_log) AS audit_rows,
       pg_size_pretty(pg_database_size(current_database())) AS db_size"
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "seeded in %.1f s\n", b - a }'
