#!/usr/bin/env bash
# Every error is JSON with the right status: bad ids and parameters (400),
# unknown organizations and units (404, never cached), unknown routes (404),
# wrong methods (405 with Allow).
. "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

flush_cache
ORG2=$(org_id 2)
UNIT_OF_ORG2=$(sql "SELECT id FROM units WHERE org_id = '$ORG2' ORDER BY name LIMIT 1")
NO_ORG=00000000-0000-4000-8000-000000000001
NO_UNIT=00000000-0000-4000-8000-000000000002

section "400: malformed ids"
for bad in not-a-uuid 550e8400-e29b-41d4-a716-44665544000 550e8400e29b41d4a716446655440000 \
	550e8400-e29b-41d4-a716-44665544000g "550e8400-e29b-41d4-a716-446655440000x" "%27%20OR%201=1--"; do
	get "$API/orgs/$bad/stats"
	expect_error "org id '$bad'" 400 invalid_id
done
get "units/not-a-uuid/temperature/trends"
expect_error "unit id in the path 'not-a-uuid'" 400 invalid_id
get "alerts/count?unitId=not-a-uuid"
expect_error "unitId query 'not-a-uuid'" 400 'invalid_id|invalid_parameter'
get "alerts/count?unitId="
expect_error "unitId query empty" 400 'invalid_id|invalid_parameter'

section "400: bad query values"
for h in 0 169 abc -1 1.5 "" 24x 99999999999999999999; do
	get "units/$UNIT/temperature/trends?hours=$h"
	expect_error "hours='$h'" 400 invalid_parameter
done
for l in 0 501 abc -5; do
	get "audit?limit=$l"
	expect_error "audit limit='$l'" 400 invalid_parameter
done

section "404: unknown organization and unit, not cached"
for path in stats units/status alerts/count devices/online compliance audit; do
	get "$API/orgs/$NO_ORG/$path"
	expect_error "unknown org: .../$path" 404 org_not_found
done
get "$API/orgs/$NO_ORG/stats"
expect_error "unknown org, asked again: still 404" 404 org_not_found
check "unknown org, asked again: not served from the cache (X-Cache: $(xcache))" test "$(xcache)" != HIT
keys=$(cache_keys "dashboard:*$NO_ORG*")
check "unknown org: no key in Redis (found: ${keys:-none})" test -z "$keys"

get "units/$NO_UNIT/temperature/trends"
expect_error "unknown unit in trends" 404 unit_not_found
get "alerts/count?unitId=$NO_UNIT"
expect_error "unknown unitId in alerts/count" 404 unit_not_found
get "units/$UNIT_OF_ORG2/temperature/trends"
expect_error "another organization's unit in trends" 404 unit_not_found
get "alerts/count?unitId=$UNIT_OF_ORG2"
expect_error "another organization's unitId in alerts/count" 404 unit_not_found
get "units/$NO_UNIT/temperature/trends"
keys=$(cache_keys "dashboard:*$NO_UNIT*")
check "unknown unit: no key in Redis (found: ${keys:-none})" test -z "$keys"

section "404: unknown routes"
for path in /api/dashboard/ /api/dashboard/orgs "/api/dashboard/orgs/$ORG" "/api/dashboard/orgs/$ORG/nope" \
	"/api/dashboard/orgs/$ORG/stats/extra" "/api/dashboard/orgs/$ORG/units/$UNIT" /api/dashboard/nope; do
	get "$path"
	expect_error "GET $path (application)" 404 not_found
done
for path in / /index.html /api /api/other /healthz /favicon.ico; do
	get "$path"
	expect_error "GET $path (nginx)" 404 not_found
done

section "405: methods other than GET and HEAD"
for m in POST PUT DELETE PATCH; do
	get stats -X "$m" -d '{}' -H 'Content-Type: application/json'
	expect_error "$m .../stats" 405 method_not_allowed
	allow=$(header Allow)
	check "$m .../stats: Allow: GET, HEAD (got '$allow')" test "$allow" = "GET, HEAD"
done
get audit -X POST
expect_error "POST .../audit" 405 method_not_allowed
get "units/$UNIT/temperature/trends" -X DELETE
expect_error "DELETE .../trends" 405 method_not_allowed
get /health -X POST
expect_status "POST /health: 405" 405

section "odd input never gets a 5xx"
# nginx itself rejects an encoded NUL in the path (its own 400 page)
get "/api/dashboard/orgs/%00/stats"
check "GET /api/dashboard/orgs/%00/stats: 400 (HTTP $STATUS)" test "$STATUS" = 400
for path in "/api/dashboard/orgs/$ORG/stats?forceRefresh=%ff" \
	"/api/dashboard/orgs/$ORG/stats?$(printf 'a%.0s' {1..3000})=1" \
	"/api/dashboard/orgs/$ORG/units/$UNIT/temperature/trends?hours=1&hours=500" \
	"/api/dashboard/orgs/../../etc/passwd" "/api/dashboard//orgs//$ORG//stats" \
	"/api/dashboard/orgs/$ORG/stats?unitId=$UNIT&limit=5&x=%22%3Cscript%3E"; do
	get "$path"
	check "GET ${path:0:90}: answered, not 5xx (HTTP $STATUS)" test "$STATUS" -ge 200 -a "$STATUS" -lt 500
	if [[ $STATUS != 200 ]]; then
		check "GET ${path:0:90}: JSON error body" jq -e '.error.code | type == "string"' "$BODY"
	fi
done

e2e_finish
