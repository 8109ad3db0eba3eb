#!/usr/bin/env bash
# Redis stopped, then hung (SIGSTOP): every GET still answers 200 from
# PostgreSQL with X-Cache: BYPASS in bounded time; Redis back: MISS then HIT.
. "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

restore() {
	local p
	if p=$(dc_running redis); then kill -CONT "$p" 2>/dev/null; else dc_redis_start >/dev/null 2>&1; fi
}
trap 'restore; rm -rf "$E2E_TMP"' EXIT

paths=(stats units/status alerts/count "alerts/count?unitId=$UNIT" "units/$UNIT/temperature/trends"
	devices/online compliance audit)

# every_path_bypasses LABEL: each endpoint, twice (so several workers see it).
every_path_bypasses() {
	local path round slow=0 worst=0
	for round in 1 2; do
		for path in "${paths[@]}"; do
			get "$path"
			expect_json "$1, round $round: GET .../$path: 200 JSON"
			expect_xcache "$1, round $round: GET .../$path: BYPASS" BYPASS
			if awk -v t="$TIME" 'BEGIN {exit !(t >= 2)}'; then slow=$((slow + 1)); fi
			worst=$(awk -v a="$worst" -v b="$TIME" 'BEGIN {print (b > a) ? b : a}')
		done
	done
	check "$1: every answer in under 2 s (slowest ${worst}s, $slow too slow)" test "$slow" -eq 0
}

# hits_resume FIRST: polls until an answer comes from the cache path again,
# expects that one to be FIRST (MISS after a restart: Redis starts empty),
# then waits out REDIS_RETRY_INTERVAL_MS (1 s) so that every worker has
# reconnected, and the invalidator's resubscription (its back-off is at most
# 2 s), after which it invalidates everything once because messages may have
# been missed; one answer fills the cache again, then only HITs.
next_not_bypass() {
	get stats
	[[ $STATUS == 200 && $(xcache) != BYPASS ]]
}
hits_resume() {
	local i
	if wait_for 10 next_not_bypass; then
		pass "the cache is used again within 10 s"
		expect_xcache "first answer through the cache: $1" "$1"
	else
		fail "the cache is used again within 10 s: $(resp)"
	fi
	sleep 2.5
	get stats
	for i in 1 2 3 4 5 6 7 8; do
		get stats
		expect_xcache "GET stats #$i after that: HIT" HIT
	done
}

flush_cache
get stats
get stats
expect_xcache "warm-up: HIT" HIT

section "Redis stopped"
dc_redis_stop 2>/dev/null
check "redis is stopped" test -z "$(dc_running redis || true)"
every_path_bypasses "Redis stopped"
get /health
expect_json "GET /health with Redis stopped: 200 JSON"
check "GET /health with Redis stopped: status degraded ($(jqv .status))" test "$(jqv .status)" = degraded

section "Redis started again"
dc_redis_start 2>/dev/null
hits_resume MISS

section "Redis hung (SIGSTOP)"
pid=$(dc_running redis)
kill -STOP "$pid"
every_path_bypasses "Redis hung"
kill -CONT "$pid"

section "Redis resumed (SIGCONT)"
hits_resume 'MISS|HIT'

e2e_finish
