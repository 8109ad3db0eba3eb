#!/usr/bin/env bash
# Every endpoint answers 200 with JSON through nginx, and what it says agrees
# with the database (shapes as in DESIGN.md).
. "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

flush_cache

section "every endpoint: 200, JSON, X-Cache"
for path in stats units/status alerts/count "alerts/count?unitId=$UNIT" \
	"units/$UNIT/temperature/trends" "units/$UNIT/temperature/trends?hours=1" \
	"units/$UNIT/temperature/trends?hours=168" devices/online compliance \
	audit "audit?limit=1" "audit?limit=500"; do
	get "$path"
	expect_json "GET .../$path: 200 JSON"
	expect_xcache "GET .../$path: X-Cache header" 'HIT|MISS|BYPASS'
done

section "health"
get /health
expect_json "GET /health: 200 JSON"
check "GET /health: status is healthy (all up), services listed" \
	jq -e '.status == "healthy" and (.services | type == "object")' "$BODY"

section "HEAD"
get stats -I
check "HEAD .../stats: 200 with X-Cache ($(resp))" test "$STATUS" = 200 -a -n "$(xcache)"

section "figures agree with the database"
get devices/online
want=$(sql "SELECT count(*) FILTER (WHERE last_seen_at >= now() - interval '600 seconds') || ' ' ||
                   count(*) FILTER (WHERE last_seen_at IS NULL OR last_seen_at < now() - interval '600 seconds')
            FROM devices WHERE org_id = '$ORG'")
got=$(jqv 'first(.. | objects | select(has("online") and has("offline"))) | "\(.online) \(.offline)"')
check "devices/online: online/offline = $want (got '$got')" test "$got" = "$want"

get alerts/count
want=$(sql "SELECT count(*) FROM alerts WHERE org_id = '$ORG' AND resolved_at IS NULL")
got=$(jqv 'first(.. | objects | select(has("unresolved"))) | .unresolved')
check "alerts/count: unresolved = $want (got '$got')" test "$got" = "$want"

get "alerts/count?unitId=$UNIT"
want=$(sql "SELECT count(*) FROM alerts WHERE org_id = '$ORG' AND unit_id = '$UNIT' AND resolved_at IS NULL")
got=$(jqv 'first(.. | objects | select(has("unresolved"))) | .unresolved')
check "alerts/count?unitId: unresolved = $want (got '$got')" test "$got" = "$want"

get units/status
want=$(sql "SELECT count(*) FROM units WHERE org_id = '$ORG'")
got=$(jqv 'first(.. | objects | select(has("normal") and has("too_hot") and has("too_cold"))) | .normal + .too_hot + .too_cold + (.no_data // 0)')
check "units/status: normal + too_hot + too_cold (+ no_data) = $want units (got '$got')" test "$got" = "$want"

for n in 1 3 5; do
	get "audit?limit=$n"
	got=$(jqv '[.. | arrays | length] | max')
	check "audit?limit=$n: $n entries (got '$got')" test "$got" = "$n"
done

for h in 1 6 24; do
	get "units/$UNIT/temperature/trends?hours=$h"
	got=$(jqv '[.. | arrays | select(length > 0 and (.[0] | type == "object" and has("timestamp") and has("temperature") and has("alarmState"))) | length] | max // 0')
	check "trends?hours=$h: $h or $((h + 1)) hourly points of {timestamp, temperature, alarmState} (got '$got')" \
		test "$got" -ge "$h" -a "$got" -le $((h + 1))
done

get "units/$UNIT/temperature/trends"
got=$(jqv '[.. | arrays | select(length > 0 and (.[0] | type == "object" and has("timestamp"))) | length] | max // 0')
check "trends without hours: 24 hours by default (got $got points)" test "$got" -ge 24 -a "$got" -le 25

e2e_finish
