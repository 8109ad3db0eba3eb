# shellcheck shell=bash
# Helpers for the end-to-end suites (tests/e2e/test_*.sh): requests through the
# real nginx with curl (every call bounded by --max-time), assertions with
# pass/fail counters, and the stack controls of scripts/lib.sh for the tests
# that stop and restart Redis, PostgreSQL or the FastCGI master.
#
# Each suite sources this file and ends with e2e_finish, which prints
# `N passed, M failed` (the line tests/run.py counts) and exits 1 on failure.
# A suite that stops a component starts it again before it ends.
#
# tests/run.py exports the stack's variables (scripts/dcstack.py Stack.describe). To rerun one suite by hand
# against a test stack, point DC_STACK_ENV at its stack.env.
set -uo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/lib.sh
. "$E2E_DIR/../../scripts/lib.sh"

if [[ -z ${HTTP_URL:-} && -n ${DC_STACK_ENV:-} ]]; then
	set -a
	# shellcheck disable=SC1090
	. "$DC_STACK_ENV"
	set +a
fi
for _v in HTTP_URL DATABASE_URL REDIS_URL REDIS_PORT PG_PORT DC_STATE_DIR DC_RUNTIME_DIR FCGI_SOCKET WORKERS; do
	if [[ -z ${!_v:-} ]]; then
		echo "e2e: $_v is not set; run the suites through tests/run.py"
		echo "0 passed, 1 failed"
		exit 1
	fi
done
unset _v

ORG=$DC_DEMO_ORG
UNIT=$DC_DEMO_UNIT
API=$HTTP_URL/api/dashboard
CURL_MAX_TIME=${E2E_CURL_MAX_TIME:-10}
E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dashcache-e2e.XXXXXX")
HDRS=$E2E_TMP/headers
BODY=$E2E_TMP/body
STATUS=000
TIME=0
E2E_PASSED=0
E2E_FAILED=0
E2E_SKIPPED=0
trap 'rm -rf "$E2E_TMP"' EXIT

section() { echo "== $*"; }
pass() {
	E2E_PASSED=$((E2E_PASSED + 1))
	echo "  PASS $*"
}
fail() {
	E2E_FAILED=$((E2E_FAILED + 1))
	echo "  FAIL $*"
}
skip() {
	E2E_SKIPPED=$((E2E_SKIPPED + 1))
	echo "  SKIP $*"
}

# check DESCRIPTION COMMAND...: one assertion; the command's success decides.
check() {
	local desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc"; fi
}

e2e_finish() {
	if ((E2E_SKIPPED)); then
		echo "$E2E_PASSED passed, $E2E_FAILED failed, $E2E_SKIPPED skipped"
	else
		echo "$E2E_PASSED passed, $E2E_FAILED failed"
	fi
	((E2E_FAILED == 0))
	exit
}

# ------------------------------------------------------------------ HTTP

# Every request carries the stack's default bearer token (DC_TEST_TOKEN, from
# stack.env: every scope on every organization).
AUTH_HEADER=()
[[ -n ${DC_TEST_TOKEN:-} ]] && AUTH_HEADER=(-H "Authorization: Bearer $DC_TEST_TOKEN")

# req [CURL_OPTION...] URL: one request. Sets STATUS (000 when there was no
# answer) and TIME (seconds); headers and body are kept in $HDRS and $BODY.
req() {
	local out
	: >"$HDRS"
	: >"$BODY"
	out=$(curl -s -o "$BODY" -D "$HDRS" -w '%{http_code} %{time_total}' --max-time "$CURL_MAX_TIME" \
		"${AUTH_HEADER[@]}" "$@" 2>/dev/null) || true
	STATUS=${out%% *}
	TIME=${out#* }
	[[ $STATUS =~ ^[0-9]{3}$ ]] || STATUS=000
	[[ $TIME =~ ^[0-9.]+$ ]] || TIME=0
}

# get PATH_OR_URL [CURL_OPTION...]: GET; a path starting with / is on $HTTP_URL,
# anything else is relative to the organization API of $ORG.
get() {
	local u=$1
	shift
	case $u in
	http*) ;;
	/*) u=$HTTP_URL$u ;;
	*) u=$API/orgs/$ORG/$u ;;
	esac
	req "$@" "$u"
}

header() { grep -i "^$1:" "$HDRS" | tail -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//; s/ *$//'; }
xcache() { header X-Cache; }
keep() { cp "$BODY" "$E2E_TMP/$1"; }
kept() { printf '%s\n' "$E2E_TMP/$1"; }

# What the last response was, for failure messages.
resp() {
	local b
	b=$(head -c 240 "$BODY" | tr -d '\r\n')
	printf 'HTTP %s in %ss, X-Cache: %s, Content-Type: %s, body: %s' "$STATUS" "$TIME" \
		"$(xcache)" "$(header Content-Type)" "${b:-<empty>}"
}

is_json_body() { jq -e . "$BODY" >/dev/null 2>&1; }
json_type() { [[ $(header Content-Type) == application/json* ]]; }

# expect_json DESC [STATUS]: the last response has STATUS (200), a JSON
# Content-Type and a body that parses as JSON.
expect_json() {
	local desc=$1 want=${2:-200}
	if [[ $STATUS == "$want" ]] && json_type && is_json_body; then
		pass "$desc"
	else
		fail "$desc: expected $want with a JSON body; got $(resp)"
	fi
}

# expect_error DESC STATUS CODE_REGEX: a JSON error {"error":{"code","message"}}.
expect_error() {
	local desc=$1 want=$2 codes=$3 code
	code=$(jq -r '.error.code // empty' "$BODY" 2>/dev/null || true)
	if [[ $STATUS == "$want" ]] && json_type && [[ $code =~ ^($codes)$ ]] &&
		jq -e '.error.message | type == "string" and length > 0' "$BODY" >/dev/null 2>&1; then
		pass "$desc"
	else
		fail "$desc: expected $want with error code ($codes); got $(resp)"
	fi
}

expect_xcache() {
	local desc=$1 want=$2
	if [[ $(xcache) =~ ^($want)$ ]]; then
		pass "$desc"
	else
		fail "$desc: expected X-Cache $want; got $(resp)"
	fi
}

expect_status() {
	local desc=$1 want=$2
	if [[ $STATUS =~ ^($want)$ ]]; then
		pass "$desc"
	else
		fail "$desc: expected HTTP $want; got $(resp)"
	fi
}

# jqv FILTER: evaluate a jq filter on the last body (empty on error).
jqv() { jq -r "$1" "$BODY" 2>/dev/null || true; }

# ------------------------------------------------------------------ stack

rcli() { timeout 5 redis-cli -h "$DC_HOST" -p "$REDIS_PORT" "$@"; }
flush_cache() { rcli FLUSHDB >/dev/null; }
cache_keys() { rcli --scan --pattern "$1" 2>/dev/null | sort; }
sql() { dc_psql "$DATABASE_URL" -At -c "$1"; }

# Demo organization N (dc_seed's numbering; 1 is the fixed demo org).
org_id() {
	local h
	if [[ $1 == 1 ]]; then
		printf '%s\n' "$DC_DEMO_ORG"
		return
	fi
	h=$(printf 'org:%s' "$1" | md5sum | cut -c1-32)
	printf '%s-%s-%s-%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:12:4}" "${h:16:4}" "${h:20:12}"
}

# wait_for TIMEOUT COMMAND...: poll every 0.2 s until the command succeeds.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	while ! "$@"; do
		((SECONDS >= end)) && return 1
		sleep 0.2
	done
}

# load URLS_FILE PARALLEL OUT_FILE: one GET per line, PARALLEL at a time; each
# result line is "HTTP_CODE TIME".
load() {
	xargs -d '\n' -P "$2" -n 1 curl -s -o /dev/null -w '%{http_code} %{time_total}\n' \
		--max-time "$CURL_MAX_TIME" "${AUTH_HEADER[@]}" <"$1" >"$3" 2>/dev/null || true
}

# A response that says the service can serve (used after restarts).
serves() {
	get "$1"
	[[ $STATUS == 200 ]]
}
