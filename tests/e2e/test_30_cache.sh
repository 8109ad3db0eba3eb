#!/usr/bin/env bash
# Cache-aside through nginx: MISS then HIT with byte-identical bodies, keys as
# in DESIGN.md with a TTL, forceRefresh bypasses and repopulates, audit is
# never cached, one organization's entry never answers for another.
. "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

flush_cache

section "MISS, then HIT with the same body"
for path in stats units/status alerts/count "alerts/count?unitId=$UNIT" \
	"units/$UNIT/temperature/trends" devices/online compliance; do
	get "$path"
	expect_xcache "first  GET .../$path: MISS" MISS
	keep first
	get "$path"
	expect_xcache "second GET .../$path: HIT" HIT
	check "second GET .../$path: byte-identical body" cmp -s "$(kept first)" "$BODY"
done

section "keys and TTL"
for key in "dashboard:stats:org:$ORG" "dashboard:units:status:org:$ORG" "dashboard:alerts:count:org:$ORG" \
	"dashboard:alerts:count:org:$ORG:unit:$UNIT" "dashboard:devices:online:org:$ORG" "dashboard:compliance:org:$ORG"; do
	ttl=$(rcli TTL "$key")
	check "$key exists with a TTL in 1..60 (TTL $ttl)" test "$ttl" -ge 1 -a "$ttl" -le 60
done
keys=$(cache_keys "dashboard:temperature:trends:org:$ORG:unit:$UNIT*" | tr '\n' ' ')
check "trends key dashboard:temperature:trends:org:$ORG:unit:$UNIT... exists (found: ${keys:-none})" test -n "$keys"

section "forceRefresh"
get "stats?forceRefresh=true"
expect_json "stats?forceRefresh=true: 200 JSON"
expect_xcache "stats?forceRefresh=true: BYPASS" BYPASS
keep refreshed
get stats
expect_xcache "stats after forceRefresh: HIT" HIT
check "stats after forceRefresh: the refreshed body was stored" cmp -s "$(kept refreshed)" "$BODY"
get "units/$UNIT/temperature/trends?forceRefresh=true"
expect_xcache "trends?forceRefresh=true: BYPASS" BYPASS

section "audit is never cached"
for i in 1 2 3; do
	get audit
	expect_xcache "audit GET #$i: BYPASS" BYPASS
done
keys=$(cache_keys "*audit*" | tr '\n' ' ')
check "no audit key in Redis (found: ${keys:-none})" test -z "$keys"

section "each query has its own entry"
get "units/$UNIT/temperature/trends?hours=24"
keep h24
n24=$(jqv '[.. | arrays | length] | max')
get "units/$UNIT/temperature/trends?hours=1"
n1=$(jqv '[.. | arrays | length] | max')
check "trends?hours=1 after hours=24 was cached: not the 24-hour body ($n1 points, 24h had $n24)" \
	test "$n1" -le 2
get "units/$UNIT/temperature/trends?hours=24"
check "trends?hours=24 again: same body as before" cmp -s "$(kept h24)" "$BODY"
UNIT2=$(sql "SELECT id FROM units WHERE org_id = '$ORG' AND id <> '$UNIT' ORDER BY name LIMIT 1")
get "alerts/count?unitId=$UNIT2"
expect_xcache "alerts/count for another unit: MISS (not the first unit's entry)" MISS

section "tenants do not share entries"
ORG2=$(org_id 2)
get stats
keep org1
get "$API/orgs/$ORG2/stats"
expect_xcache "org 2 stats after org 1's was cached: MISS" MISS
check "org 2 stats names org 2 only" bash -c "grep -q '$ORG2' '$BODY' && ! grep -q '$ORG' '$BODY'"
get "$API/orgs/$ORG2/stats"
expect_xcache "org 2 stats again: HIT" HIT
check "org 2 stats is not org 1's body" bash -c "! cmp -s '$(kept org1)' '$BODY'"

e2e_finish
