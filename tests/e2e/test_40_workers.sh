#!/usr/bin/env bash
# Several prefork workers serve concurrently; a worker killed with SIGKILL
# while requests run is respawned and no request fails; SIGHUP replaces every
# worker without failing a request.
. "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

master=$(dc_running fcgi || true)
mapfile -t workers < <(dc_fcgi_workers)

# rchar of each worker (bytes read by syscalls): it grows only while a worker serves.
io_reads() {
	local p
	for p in "$@"; do
		awk -v p="$p" '/^rchar:/ {print p, $2}' "/proc/$p/io" 2>/dev/null || echo "$p 0"
	done
}

section "workers"
check "master runs (pid ${master:-none})" test -n "$master"
check "$WORKERS workers (got ${#workers[@]}: ${workers[*]})" test "${#workers[@]}" -eq "$WORKERS"

section "200 concurrent requests, all 200, spread over the workers"
before=$(io_reads "${workers[@]}")
urls=$E2E_TMP/urls
for i in $(seq 1 200); do
	case $((i % 4)) in
	0) echo "$API/orgs/$ORG/stats" ;;
	1) echo "$API/orgs/$(org_id $((i % 20 + 1)))/units/status" ;;
	2) echo "$API/orgs/$ORG/alerts/count?forceRefresh=true" ;;
	3) echo "$API/orgs/$(org_id $((i % 20 + 1)))/devices/online" ;;
	esac
done >"$urls"
load "$urls" 16 "$E2E_TMP/codes"
total=$(wc -l <"$E2E_TMP/codes")
ok=$(grep -c '^200 ' "$E2E_TMP/codes")
check "200 requests answered 200 (got $ok of $total; others: $(grep -v '^200 ' "$E2E_TMP/codes" | cut -d' ' -f1 | sort | uniq -c | tr '\n' ' '))" \
	test "$ok" -eq 200
after=$(io_reads "${workers[@]}")
busy=$(join <(sort <<<"$before") <(sort <<<"$after") | awk '$3 > $2 {n++} END {print n + 0}')
check "more than one worker served them ($busy of ${#workers[@]} read requests)" test "$busy" -ge 2

section "a worker killed with SIGKILL under load"
for i in $(seq 1 400); do
	if ((i % 2)); then echo "$API/orgs/$(org_id $((i % 20 + 1)))/stats?forceRefresh=true"; else echo "$API/orgs/$ORG/stats"; fi
done >"$urls"
load "$urls" 4 "$E2E_TMP/codes" &
loader=$!
sleep 0.4
victim=${workers[0]}
kill -KILL "$victim" 2>/dev/null
wait "$loader"
total=$(wc -l <"$E2E_TMP/codes")
bad=$(grep -vc '^200 ' "$E2E_TMP/codes")
check "400 requests during the kill: all 200 (failed: $bad of $total: $(grep -v '^200 ' "$E2E_TMP/codes" | cut -d' ' -f1 | sort | uniq -c | tr '\n' ' '))" \
	test "$bad" -eq 0 -a "$total" -eq 400
respawned() {
	mapfile -t now < <(dc_fcgi_workers)
	[[ ${#now[@]} -eq $WORKERS ]] && ! printf '%s\n' "${now[@]}" | grep -qx "$victim"
}
check "worker $victim replaced: $WORKERS workers again within 5 s" wait_for 5 respawned
mapfile -t now < <(dc_fcgi_workers)
new=$(comm -13 <(printf '%s\n' "${workers[@]}" | sort) <(printf '%s\n' "${now[@]}" | sort) | tr '\n' ' ')
check "a new worker pid appeared (${new:-none}; master $(dc_running fcgi || echo gone))" test -n "$new" -a "$(dc_running fcgi || true)" = "$master"
check "GET after the respawn: 200" serves stats

section "SIGHUP: graceful restart of every worker under load"
mapfile -t workers < <(dc_fcgi_workers)
load "$urls" 4 "$E2E_TMP/codes" &
loader=$!
sleep 0.3
kill -HUP "$master"
wait "$loader"
bad=$(grep -vc '^200 ' "$E2E_TMP/codes")
check "400 requests during SIGHUP: all 200 (failed: $bad: $(grep -v '^200 ' "$E2E_TMP/codes" | cut -d' ' -f1 | sort | uniq -c | tr '\n' ' '))" \
	test "$bad" -eq 0
all_new() {
	mapfile -t now < <(dc_fcgi_workers)
	[[ ${#now[@]} -eq $WORKERS ]] && [[ -z $(comm -12 <(printf '%s\n' "${workers[@]}" | sort) <(printf '%s\n' "${now[@]}" | sort)) ]]
}
check "after SIGHUP: $WORKERS workers, none of the old ones, within 10 s" wait_for 10 all_new
check "after SIGHUP: same master ($master)" test "$(dc_running fcgi || true)" = "$master"
check "GET after SIGHUP: 200" serves stats

e2e_finish
