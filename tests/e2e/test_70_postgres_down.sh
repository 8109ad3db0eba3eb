#!/usr/bin/env bash
# PostgreSQL stopped: cached entries are still served (HIT), misses get a JSON
# 503 with Retry-After, quickly; PostgreSQL back: everything answers 200.
. "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

restore() { dc_running postgres >/dev/null || dc_pg_start >/dev/null 2>&1; }
trap 'restore; rm -rf "$E2E_TMP"' EXIT

flush_cache
get stats
get stats
expect_xcache "warm-up: stats HIT" HIT
keep cached
get "units/$UNIT/temperature/trends"
get "units/$UNIT/temperature/trends"
keep cached_trends

section "PostgreSQL stopped"
dc_pg_stop 2>/dev/null
check "postgres is stopped" test -z "$(dc_running postgres || true)"
for i in 1 2 3 4 5 6; do
	get stats
	expect_xcache "cached stats #$i: HIT" HIT
	check "cached stats #$i: 200, same body" bash -c "test '$STATUS' = 200 && cmp -s '$(kept cached)' '$BODY'"
done
get "units/$UNIT/temperature/trends"
check "cached trends: 200 HIT, same body" bash -c "test '$STATUS' = 200 && test '$(xcache)' = HIT && cmp -s '$(kept cached_trends)' '$BODY'"
for path in compliance devices/online units/status "alerts/count?unitId=$UNIT" audit; do
	for i in 1 2; do
		get "$path"
		expect_error "uncached .../$path #$i: JSON 503" 503 '[a-z_]+'
		check "uncached .../$path #$i: Retry-After ($(header Retry-After)), answered in ${TIME}s (< 5 s)" \
			bash -c "test -n '$(header Retry-After)' && awk 'BEGIN {exit !($TIME < 5)}'"
	done
done
get /health
check "GET /health with PostgreSQL stopped: JSON, status not healthy ($STATUS, $(jqv .status))" \
	bash -c "jq -e '.status == \"degraded\" or .status == \"unhealthy\"' '$BODY' >/dev/null"

section "PostgreSQL started again"
dc_pg_start 2>/dev/null
check "uncached compliance answers 200 again within 15 s" wait_for 15 serves compliance
for path in devices/online audit "stats?forceRefresh=true"; do
	get "$path"
	expect_json "GET .../$path: 200 JSON"
done

e2e_finish
