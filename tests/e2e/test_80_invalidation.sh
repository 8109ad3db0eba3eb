#!/usr/bin/env bash
# Writes and invalidation through nginx, with dashcache-invalidator running:
# the write endpoints and their errors, events announced only after the
# invalidation, a consistency checker under concurrent reads and writes,
# external SQL writes invalidated through the outbox within the bound,
# pub/sub pattern messages (exact keys, no other tenant, hostile ones
# refused), and the invalidator killed during writes then restarted.
. "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

ORG2=$(org_id 2)
ORG3=$(org_id 3)
ORG5=$(org_id 5)
UNIT2=$(sql "SELECT id FROM units WHERE org_id = '$ORG2' ORDER BY name LIMIT 1")
UNIT3=$(sql "SELECT id FROM units WHERE org_id = '$ORG3' ORDER BY name LIMIT 1")
UNIT5=$(sql "SELECT id FROM units WHERE org_id = '$ORG5' ORDER BY name LIMIT 1")
DEVICE=$(sql "SELECT id FROM devices WHERE unit_id = '$UNIT2' ORDER BY serial LIMIT 1")

restore() { dc_running invalidator >/dev/null || dc_inval_start >/dev/null 2>&1; }
trap 'restore; rm -rf "$E2E_TMP"' EXIT

post() {
	local u=$1 body=$2
	shift 2
	req -X POST -H 'Content-Type: application/json' --data-binary "$body" "$@" "$u"
}
open_alerts() { sql "SELECT count(*) FROM alerts WHERE org_id = '$1' AND resolved_at IS NULL"; }
unresolved() { get "$HTTP_URL/api/dashboard/orgs/$1/alerts/count" && jqv .unresolved; }
insert_alert_sql() {
	sql "INSERT INTO alerts (id, org_id, unit_id, kind, message)
	     VALUES (gen_random_uuid(), '$1', '$2', 'external', 'written by another service')" >/dev/null
}

section "write endpoints"
post "$API/orgs/$ORG2/alerts" "{\"unitId\":\"$UNIT2\",\"kind\":\"door_open\",\"message\":\"Door open\"}"
expect_json "POST alerts: 201 JSON" 201
alert=$(jqv .id)
check "POST alerts: answers the new id ($alert)" test ${#alert} -eq 36
post "$API/orgs/$ORG2/alerts/$alert/resolve" ""
expect_json "POST resolve: 200 JSON" 200
check "POST resolve: status resolved" test "$(jqv .status)" = resolved
post "$API/orgs/$ORG2/alerts/$alert/resolve" ""
expect_error "POST resolve again: 409, nothing changed" 409 alert_already_resolved
post "$API/orgs/$ORG3/alerts/$alert/resolve" ""
expect_error "POST resolve through another tenant: 404" 404 alert_not_found
post "$API/orgs/$ORG2/devices/$DEVICE/status" '{"online":true}'
expect_json "POST device status: 200 JSON" 200
post "$API/orgs/$ORG3/devices/$DEVICE/status" '{"online":false}'
expect_error "POST device status through another tenant: 404" 404 device_not_found
post "$HTTP_URL/api/ingest/readings" "[{\"deviceId\":\"$DEVICE\",\"temperature\":4.2},{\"deviceId\":\"$DEVICE\",\"temperature\":4.4,\"recordedAt\":\"2026-01-01T00:00:00Z\"}]"
expect_json "POST ingest: 200 JSON" 200
check "POST ingest: accepted 2 ($(jqv .accepted))" test "$(jqv .accepted)" = 2
before=$(sql "SELECT count(*) FROM readings WHERE device_id = '$DEVICE'")
post "$HTTP_URL/api/ingest/readings" "[{\"deviceId\":\"$DEVICE\",\"temperature\":4.2},{\"deviceId\":\"$DEVICE\",\"temperature\":\"hot\"}]"
expect_error "POST ingest with a bad element: 400" 400 invalid_reading
check "POST ingest with a bad element: reported by index ($(jqv .error.index))" test "$(jqv .error.index)" = 1
check "POST ingest with a bad element: nothing stored" test "$(sql "SELECT count(*) FROM readings WHERE device_id = '$DEVICE'")" = "$before"
post "$API/orgs/$ORG2/alerts" '{"unitId":' 
expect_error "POST alerts with broken JSON: 400" 400 invalid_json
req -X POST -H 'Content-Type: text/plain' --data-binary '{"online":true}' "$API/orgs/$ORG2/devices/$DEVICE/status"
expect_error "POST with Content-Type text/plain: 415" 415 unsupported_media_type
get "$API/orgs/$ORG2/alerts"
expect_error "GET on a write route: 405" 405 method_not_allowed
check "GET on a write route: Allow: POST ($(header Allow))" test "$(header Allow)" = POST
head -c 20000 /dev/zero | tr '\0' 'x' >"$E2E_TMP/big"
req -X POST -H 'Content-Type: application/json' --data-binary @"$E2E_TMP/big" "$API/orgs/$ORG2/alerts"
expect_error "POST alerts with a 20 kB body: 413 JSON" 413 payload_too_large

section "invalidation before the event"
unresolved "$ORG2" >/dev/null
unresolved "$ORG2" >/dev/null
expect_xcache "alerts/count of org 2 cached" HIT
(
	timeout 10 redis-cli -h "$DC_HOST" -p "$REDIS_PORT" SUBSCRIBE dashboard:events | while IFS= read -r line; do
		case $line in
		*alertCreated*)
			curl -s --max-time 5 "$HTTP_URL/api/dashboard/orgs/$ORG2/alerts/count" >"$E2E_TMP/on_event"
			break
			;;
		esac
	done
) &
listener=$!
sleep 0.3
post "$API/orgs/$ORG2/alerts" "{\"unitId\":\"$UNIT2\",\"kind\":\"door_open\",\"message\":\"again\"}"
expect_status "POST alerts while a consumer listens: 201" 201
wait "$listener" 2>/dev/null || true
seen=$(jq -r .unresolved "$E2E_TMP/on_event" 2>/dev/null || echo none)
check "a consumer reading on the event sees the write (read $seen, database $(open_alerts "$ORG2"))" \
	test "$seen" = "$(open_alerts "$ORG2")"

section "consistency under concurrent readers and writers"
out=$(python3 "$E2E_DIR/consistency.py" "$HTTP_URL" "$ORG2" "$UNIT2" "${E2E_CONSISTENCY_SECONDS:-6}" 2>&1)
rc=$?
echo "  $out" | head -n 8
check "no stale read after an acknowledged write" test "$rc" -eq 0

section "a write by another service (SQL) is invalidated through the outbox"
since=$(sql "SELECT clock_timestamp()")
worst=0
total=0
ok=1
for i in 1 2 3 4 5 6 7 8 9 10; do
	unresolved "$ORG3" >/dev/null
	old=$(unresolved "$ORG3")
	[[ $(xcache) == HIT ]] || ok=0
	t0=$(date +%s%N)
	insert_alert_sql "$ORG3" "$UNIT3"
	n=0
	until [[ $(unresolved "$ORG3") != "$old" ]]; do
		n=$((n + 1))
		((n > 500)) && break
		sleep 0.002
	done
	ms=$((($(date +%s%N) - t0) / 1000000))
	total=$((total + ms))
	((ms > worst)) && worst=$ms
done
check "cached before each write" test "$ok" -eq 1
check "each external write visible through the cache within 1 s (worst ${worst} ms, mean $((total / 10)) ms)" test "$worst" -lt 1000
check "outbox drained (pending: $(sql "SELECT count(*) FROM cache_outbox WHERE processed_at IS NULL"))" \
	test "$(sql "SELECT count(*) FROM cache_outbox WHERE processed_at IS NULL")" = 0
lag=$(sql "SELECT round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - created_at)) * 1000)::numeric, 2)
           FROM cache_outbox WHERE created_at > '$since'")
echo "  outbox lag (trigger to applied) p99 of these writes: ${lag} ms; the wait above includes psql's start-up"

section "pub/sub pattern messages"
flush_cache
warm_tenant() {
	local o=$1 p
	for p in stats units/status compliance; do get "$HTTP_URL/api/dashboard/orgs/$o/$p"; done
}
warm_tenant "$ORG2"
warm_tenant "$ORG3"
rcli PUBLISH cache:invalidate "{\"pattern\":\"dashboard:units:*:org:$ORG2\"}" >/dev/null
sleep 0.3
check "the matching key of org 2 is gone" test -z "$(cache_keys "dashboard:units:status:org:$ORG2")"
check "the other keys of org 2 are still there" test "$(cache_keys "dashboard:*:org:$ORG2" | wc -l)" -eq 2
check "org 3 keeps its 3 keys" test "$(cache_keys "dashboard:*:org:$ORG3" | wc -l)" -eq 3
get "$HTTP_URL/api/dashboard/orgs/$ORG3/stats"
expect_xcache "org 3 still answers from the cache" HIT
get "$HTTP_URL/api/dashboard/orgs/$ORG2/units/status"
expect_xcache "org 2 units/status is read again" MISS

section "malformed and hostile messages change nothing"
warm_tenant "$ORG2"
warm_tenant "$ORG3"
keys_before=$(cache_keys "dashboard:*")
gens_before=$(for k in $(cache_keys "dashcache:gen:*"); do echo "$k $(rcli GET "$k")"; done)
rejected_before=$(grep -c 'event=invalidate.rejected' "$(dc_logfile invalidator)" || true)
hostile=(
	'not json'
	'{"pattern":"dashboard:*"}'
	'{"pattern":"dashboard:*:org:*"}'
	'{"pattern":"dashboard:*:org:a*"}'
	"{\"pattern\":\"dashboard:*:org:${ORG2:0:8}*\"}"
	'{"pattern":"dashboard:*:org:[0-9a-f]*"}'
	'{"pattern":"dashboard:*:org:a[c]me"}'
	'{"pattern":"*"}'
	"{\"pattern\":\"dashcache:gen:org:$ORG2\"}"
	'{"orgId":"*"}'
	'{"orgId":42}'
	"{\"orgId\":\"$ORG2\",\"pattern\":\"dashboard:*:org:$ORG3\"}"
	'{"orgId":'
	'[]'
)
for m in "${hostile[@]}"; do rcli PUBLISH cache:invalidate "$m" >/dev/null; done
head -c 100000 /dev/zero | tr '\0' 'a' >"$E2E_TMP/huge"
printf '{"orgId":"%s","x":"%s"}' "$ORG2" "$(cat "$E2E_TMP/huge")" | rcli -x PUBLISH cache:invalidate >/dev/null
sleep 0.5
expected=$((${#hostile[@]} + 1))
rejected=$(($(grep -c 'event=invalidate.rejected' "$(dc_logfile invalidator)" || true) - rejected_before))
check "every hostile message was rejected and logged ($rejected of $expected)" test "$rejected" -eq "$expected"
check "no key was deleted" test "$(cache_keys "dashboard:*")" = "$keys_before"
gens_after=$(for k in $(cache_keys "dashcache:gen:*"); do echo "$k $(rcli GET "$k")"; done)
check "no generation moved" test "$gens_after" = "$gens_before"
check "the invalidator is still running" test -n "$(dc_running invalidator)"
get "$HTTP_URL/api/dashboard/orgs/$ORG3/compliance"
expect_xcache "cached answers are still served" HIT

section "invalidator killed during writes, then restarted"
unresolved "$ORG5" >/dev/null
unresolved "$ORG5" >/dev/null
expect_xcache "org 5 alerts/count cached" HIT
kill -KILL "$(dc_running invalidator)"
wait_for 5 bash -c "! kill -0 $(dc_running invalidator 2>/dev/null || echo 0) 2>/dev/null" || true
for i in 1 2 3 4 5; do insert_alert_sql "$ORG5" "$UNIT5"; done
stale=$(unresolved "$ORG5")
check "with the invalidator down the cache still holds the old count ($stale, database $(open_alerts "$ORG5"))" \
	test "$stale" != "$(open_alerts "$ORG5")"
t0=$(date +%s%N)
dc_inval_start >/dev/null 2>&1
fresh_within() {
	[[ $(unresolved "$ORG5") == "$(open_alerts "$ORG5")" ]]
}
wait_for 5 fresh_within
ms=$((($(date +%s%N) - t0) / 1000000))
check "after the restart the write is visible (${ms} ms after start)" fresh_within
check "no outbox row left pending" test "$(sql "SELECT count(*) FROM cache_outbox WHERE processed_at IS NULL")" = 0

e2e_finish
