#!/usr/bin/env bash
# The ways an operator starts dashcache-fcgi besides its own master on a
# socket it opens: as plain workers under spawn-fcgi (listening socket on fd
# 0), and under systemd socket activation (fd 3, LISTEN_FDS). Both serve, and
# their counters land in the same /metrics as the pool's. Bad configuration
# stops start-up with a message that names the variable.
. "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

BIN=$(dc_fcgi_bin)
SF_PIDS=()
SA_PID=
cleanup_modes() {
	local p
	for p in "${SF_PIDS[@]}" $SA_PID; do kill -TERM "$p" 2>/dev/null || true; done
	rm -rf "$E2E_TMP"
}
trap cleanup_modes EXIT

# fcgi_get SOCKET PATH: one GET straight to a FastCGI socket, with the stack's token; STATUS and BODY set.
fcgi_get() {
	local out
	out=$(env -i REQUEST_METHOD=GET DOCUMENT_URI="$2" HTTP_AUTHORIZATION="Bearer ${DC_TEST_TOKEN:-}" \
		timeout 5 cgi-fcgi -bind -connect "$1" 2>/dev/null) || true
	STATUS=$(printf '%s\n' "$out" | sed -n 's/^Status: \([0-9]*\).*/\1/p' | head -n 1)
	printf '%s\n' "$out" | sed '1,/^\r*$/d' >"$BODY"
}
lookups() {
	get /metrics
	awk '/^dashboard_cache_(hit|miss)_total\{/ { s += $2 } END { printf "%d\n", s }' "$BODY"
}

section "bad configuration stops start-up, naming the variable"
bad_config() {
	local want=$1
	shift
	local out rc=0
	out=$(env "$@" timeout 10 "$BIN" --listen "unix:$E2E_TMP/never.sock" --workers 1 2>&1) || rc=$?
	check "$* exits non-zero ($rc) saying: $want" bash -c "(( $rc != 0 )) && grep -qF -- '$want' <<<'$out'"
}
bad_config "CACHE_TTL_SECONDS must be an integer between 1 and 86400" CACHE_TTL_SECONDS=abc
bad_config "CACHE_TTL_STATS_SECONDS must be an integer between 1 and 86400" CACHE_TTL_STATS_SECONDS=0
bad_config "REDIS_URL is invalid" REDIS_URL=http://127.0.0.1:6379
bad_config "REDIS_URL is invalid" REDIS_URL=redis://127.0.0.1:99999
bad_config "DATABASE_URL is invalid" "DATABASE_URL=postgresql://127.0.0.1/dashcache?nosuchoption=1"
bad_config "REDIS_COMMAND_TIMEOUT_MS must be an integer" REDIS_COMMAND_TIMEOUT_MS=-5
bad_config "LOG_LEVEL must be one of" LOG_LEVEL=loud
bad_config "METRICS must be on or off" METRICS=maybe
out=$(timeout 10 "$BIN" --workers 0 2>&1) && rc=0 || rc=$?
check "--workers 0 is refused ($rc): $(head -n 1 <<<"$out")" bash -c "(( $rc != 0 )) && grep -q -- '--workers must be' <<<'$out'"
out=$(env CACHE_TTL_SECONDS=abc timeout 10 "$(dc_inval_bin)" 2>&1) && rc=0 || rc=$?
check "the invalidator refuses it too ($rc)" bash -c "(( $rc != 0 )) && grep -q CACHE_TTL_SECONDS <<<'$out'"
[[ -e $E2E_TMP/never.sock ]] && fail "a refused start left a socket behind" || pass "a refused start opened no socket"

section "spawn-fcgi -F 2: plain workers on fd 0"
lookups_before=$(lookups)
sf_out=$(spawn-fcgi -s "$E2E_TMP/sf.sock" -M 0666 -F 2 -P "$E2E_TMP/sf.pid" -- "$BIN" 2>&1)
mapfile -t SF_PIDS <"$E2E_TMP/sf.pid"
check "spawn-fcgi started 2 workers (${SF_PIDS[*]})" test "${#SF_PIDS[@]}" -eq 2
ok=0
for i in $(seq 1 20); do
	fcgi_get "$E2E_TMP/sf.sock" "/api/dashboard/orgs/$ORG/units/status"
	[[ $STATUS == 200 ]] && ok=$((ok + 1))
done
check "20 requests to the spawn-fcgi workers: all 200 ($ok)" test "$ok" -eq 20
check "their answer is the dashboard body" jq -e ".orgId == \"$ORG\"" "$BODY"
lookups_after=$(lookups)
check "their 20 lookups are in the pool's /metrics ($lookups_before -> $lookups_after)" \
	test $((lookups_after - lookups_before)) -eq 20
for p in "${SF_PIDS[@]}"; do kill -TERM "$p"; done
wait_for 10 bash -c "! kill -0 ${SF_PIDS[0]} 2>/dev/null && ! kill -0 ${SF_PIDS[1]} 2>/dev/null"
check "SIGTERM stops them" bash -c "! kill -0 ${SF_PIDS[0]} 2>/dev/null && ! kill -0 ${SF_PIDS[1]} 2>/dev/null"
SF_PIDS=()
: "$sf_out"

section "systemd socket activation: the master on fd 3 (LISTEN_FDS)"
python3 "$E2E_DIR/socket_activate.py" "$E2E_TMP/sa.sock" "$BIN" --workers 2 >"$E2E_TMP/sa.log" 2>&1 &
SA_PID=$!
wait_for 10 bash -c "[[ \$(ps -o pid= --ppid $SA_PID | wc -l) -eq 2 ]]"
check "the activated master forked 2 workers" test "$(ps -o pid= --ppid "$SA_PID" | wc -l)" -eq 2
fcgi_get "$E2E_TMP/sa.sock" "/api/dashboard/orgs/$ORG/stats"
check "a request through the activated socket: 200 ($STATUS)" test "$STATUS" = 200
fcgi_get "$E2E_TMP/sa.sock" /health
check "its /health: 200 ($STATUS)" test "$STATUS" = 200
workers=$(ps -o pid= --ppid "$SA_PID" | tr '\n' ' ')
kill -TERM "$SA_PID"
rc=0
wait "$SA_PID" 2>/dev/null || rc=$?
check "SIGTERM stops the activated master, which exits 0 ($rc)" test "$rc" -eq 0
check "and its workers ($workers)" bash -c "for p in $workers; do ! kill -0 \$p 2>/dev/null || exit 1; done"
SA_PID=

e2e_finish
