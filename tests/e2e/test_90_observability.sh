#!/usr/bin/env bash
# Observability through nginx: /metrics passes promtool and sums every worker
# (K requests spread over the workers add up to K whichever worker answers the
# scrape), counters survive a killed worker, histograms are cumulative with
# _count equal to the requests, /api/admin/cache/stats, and /health answering
# 200 degraded without Redis and 503 without PostgreSQL, each within its bound.
. "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

restore() {
	if p=$(dc_running redis); then kill -CONT "$p" 2>/dev/null; else dc_redis_start >/dev/null 2>&1; fi
	dc_running postgres >/dev/null || dc_pg_start >/dev/null 2>&1
}
trap 'restore; rm -rf "$E2E_TMP"' EXIT

# scrape: GET /metrics into $E2E_TMP/metrics (one worker answers for all).
scrape() {
	get /metrics
	cp "$BODY" "$E2E_TMP/metrics"
}
# metric SERIES: the value of one exact series line of the last scrape (0 if absent).
metric() { awk -v s="$1" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }' "$E2E_TMP/metrics"; }
sum_family() { awk -v f="$1" 'index($1, f "{") == 1 { s += $2 } END { printf "%d\n", s }' "$E2E_TMP/metrics"; }

section "/metrics"
scrape
expect_status "GET /metrics: 200" 200
check "GET /metrics: Prometheus text content type ($(header Content-Type))" \
	bash -c "[[ '$(header Content-Type)' == text/plain* ]]"
if out=$(promtool check metrics <"$E2E_TMP/metrics" 2>&1); then
	pass "promtool check metrics on a real scrape"
else
	fail "promtool check metrics: $out"
fi
for f in dashboard_cache_hit_total dashboard_cache_miss_total dashboard_cache_error_total \
	dashboard_cache_latency_seconds dashboard_db_queries_total dashboard_db_query_duration_seconds \
	dashboard_http_requests_total dashboard_http_request_duration_seconds dashboard_invalidations_total \
	dashboard_invalidation_lag_seconds dashboard_cache_stale_set_refusals_total dashboard_worker_restarts_total \
	dashboard_workers dashboard_invalidator_up; do
	check "family $f has HELP and TYPE" grep -q "^# TYPE $f " "$E2E_TMP/metrics"
done
check "all $WORKERS workers are alive ($(metric dashboard_workers))" test "$(metric dashboard_workers)" = "$WORKERS"
check "the invalidator is up" test "$(metric dashboard_invalidator_up)" = 1

section "K requests over all workers add up to K, whichever worker is scraped"
K=400
scrape
before=$(($(sum_family dashboard_cache_hit_total) + $(sum_family dashboard_cache_miss_total)))
before_route=$(metric 'dashboard_http_request_duration_seconds_count{route="units"}')
for i in $(seq 1 "$K"); do echo "$API/orgs/$ORG/units/status"; done >"$E2E_TMP/urls"
load "$E2E_TMP/urls" 16 "$E2E_TMP/codes"
check "$K requests answered 200" test "$(grep -c '^200 ' "$E2E_TMP/codes")" = "$K"
pids_seen=""
for i in 1 2 3 4 5 6 7 8; do
	scrape
	after=$(($(sum_family dashboard_cache_hit_total) + $(sum_family dashboard_cache_miss_total)))
	check "scrape $i: hits + misses grew by exactly $K ($((after - before)))" test $((after - before)) -eq "$K"
done
route_count=$(metric 'dashboard_http_request_duration_seconds_count{route="units"}')
check "request duration _count of route units grew by $K ($((${route_count%.*} - ${before_route%.*})))" \
	test $((${route_count%.*} - ${before_route%.*})) -eq "$K"
awk -F'[{}]' '/^dashboard_http_request_duration_seconds_bucket\{route="units"/ { print $3 }' "$E2E_TMP/metrics" >"$E2E_TMP/buckets"
check "duration buckets of route units are cumulative" bash -c "sort -n -c '$E2E_TMP/buckets'"
check "+Inf bucket equals _count" test "$(metric 'dashboard_http_request_duration_seconds_bucket{route="units",le="+Inf"}')" = "$route_count"

section "counters survive a killed worker"
scrape
hits_before=$(sum_family dashboard_cache_hit_total)
reqs_before=$(sum_family dashboard_http_requests_total)
victim=$(dc_fcgi_workers | head -n 1)
kill -KILL "$victim"
wait_for 5 bash -c "! kill -0 $victim 2>/dev/null"
wait_for 5 serves units/status
for i in 1 2 3 4 5 6; do
	scrape
	check "scrape $i after the kill: hits never went down ($hits_before -> $(sum_family dashboard_cache_hit_total))" \
		test "$(sum_family dashboard_cache_hit_total)" -ge "$hits_before"
	check "scrape $i after the kill: requests never went down" test "$(sum_family dashboard_http_requests_total)" -ge "$reqs_before"
done
check "the restart is counted ($(metric dashboard_worker_restarts_total))" test "$(metric dashboard_worker_restarts_total)" -ge 1
wait_for 5 bash -c "[[ \$(ps -o pid= --ppid $(dc_running fcgi) | wc -l) -eq $WORKERS ]]"

section "/api/admin/cache/stats"
get /api/admin/cache/stats
expect_json "GET /api/admin/cache/stats: 200 JSON"
check "hit rate overall is a number in 0..1 ($(jqv .hitRate))" jq -e '.hitRate >= 0 and .hitRate <= 1' "$BODY"
check "per query type: units has hits and keys ($(jqv .queryTypes.units.keys) keys)" \
	jq -e '.queryTypes.units.hits > 0 and .queryTypes.units.keys >= 1' "$BODY"
check "Redis memory used is reported ($(jqv .redis.usedMemoryBytes) bytes)" jq -e '.redis.usedMemoryBytes > 0' "$BODY"
check "invalidations by source are reported" jq -e '.invalidations | has("write") and has("outbox") and has("pubsub")' "$BODY"

section "/health"
get /health
expect_json "GET /health: 200 JSON"
check "GET /health: healthy ($(jqv .status))" test "$(jqv .status)" = healthy
check "GET /health: every service has ok and latencyMs" \
	jq -e '[.services.database, .services.redis, .services.cache] | all(has("ok") and has("latencyMs"))' "$BODY"

kill -STOP "$(dc_running redis)"
get /health
expect_json "GET /health with Redis hung (SIGSTOP): 200 JSON"
check "GET /health with Redis hung: degraded ($(jqv .status))" test "$(jqv .status)" = degraded
check "GET /health with Redis hung: answered within 2 s (${TIME} s)" awk -v t="$TIME" 'BEGIN { exit !(t < 2) }'
kill -CONT "$(dc_running redis)"

dc_redis_stop 2>/dev/null
get /health
expect_json "GET /health with Redis stopped: 200 JSON"
check "GET /health with Redis stopped: degraded, redis not ok" \
	jq -e '.status == "degraded" and .services.redis.ok == false and .services.database.ok == true' "$BODY"
check "GET /health with Redis stopped: answered within 2 s (${TIME} s)" awk -v t="$TIME" 'BEGIN { exit !(t < 2) }'
dc_redis_start 2>/dev/null

dc_pg_stop 2>/dev/null
get /health
expect_status "GET /health with PostgreSQL stopped: 503" 503
check "GET /health with PostgreSQL stopped: unhealthy, database not ok" \
	jq -e '.status == "unhealthy" and .services.database.ok == false' "$BODY"
check "GET /health with PostgreSQL stopped: answered within 4 s (${TIME} s)" awk -v t="$TIME" 'BEGIN { exit !(t < 4) }'
check "GET /health with PostgreSQL stopped: Retry-After ($(header Retry-After))" test -n "$(header Retry-After)"
dc_pg_start 2>/dev/null
wait_for 10 serves /health
check "GET /health after PostgreSQL is back: 200" test "$STATUS" = 200

e2e_finish
