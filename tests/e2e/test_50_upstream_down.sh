#!/usr/bin/env bash
# The FastCGI master stopped: nginx answers JSON 502 with Retry-After, and the
# master removed its socket; started again, the API serves.
. "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

restore() { dc_running fcgi >/dev/null || dc_fcgi_start >/dev/null 2>&1; }
trap 'restore; rm -rf "$E2E_TMP"' EXIT

section "graceful stop"
check "serving before the stop" serves stats
mapfile -t workers < <(dc_fcgi_workers)
master=$(dc_running fcgi || true)
t0=$SECONDS
dc_fcgi_stop 2>/dev/null
check "SIGTERM stopped the master within $((SECONDS - t0 + 1)) s" test -z "$(dc_running fcgi || true)"
alive=""
for p in "$master" "${workers[@]}"; do [[ -n $p ]] && dc_pid_alive "$p" && alive+="$p "; done
check "no master or worker left (alive: ${alive:-none})" test -z "$alive"
check "the socket $FCGI_SOCKET was removed" test ! -e "$FCGI_SOCKET"

section "nginx answers for the missing upstream"
for path in stats "units/$UNIT/temperature/trends" audit; do
	get "$path"
	expect_error "GET .../$path: JSON 502" 502 upstream_unavailable
	check "GET .../$path: Retry-After ($(header Retry-After))" test -n "$(header Retry-After)"
done
get /health
expect_error "GET /health: JSON 502" 502 upstream_unavailable
get /nope
expect_error "GET /nope: still nginx's JSON 404" 404 not_found

section "started again"
dc_fcgi_start 2>/dev/null
check "serving again within 10 s" wait_for 10 serves stats
get /health
expect_json "GET /health: 200 JSON"

e2e_finish
