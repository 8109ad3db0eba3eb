#!/usr/bin/env bash
# Install the Debian packages dashcache needs to build, run and test, and only
# those that are missing: nothing is fetched when everything is there.
#
#   scripts/deps.sh [--check] [EXTRA_PACKAGE...]
#
# --check only lists what is missing (exit 1 if anything is).
# Extra packages (e.g. valgrind, clang-format) are installed the same way.
# The packaged nginx, Redis and PostgreSQL services are never used: the project
# runs its own instances on its own ports, so while installing we ask
# invoke-rc.d not to start them (policy-rc.d), unless a policy is already set.
set -euo pipefail

check_only=0
if [[ ${1:-} == --check ]]; then
	check_only=1
	shift
fi

# Each entry is "package" or "package|alternative|..."; an entry is satisfied
# when any of its packages is installed, and the first one is installed if none is.
required=(
	make gcc libc6-dev pkg-config
	libfcgi-dev libfcgi-bin spawn-fcgi
	libhiredis-dev libjson-c-dev libcmocka-dev libpq-dev libjwt-dev
	"nginx-light|nginx|nginx-core|nginx-full|nginx-extras"
	redis-server redis-tools
	curl jq procps util-linux coreutils wrk python3 python3-pytest prometheus
	systemd libsystemd-dev # sd_notify: the master tells systemd it is ready (Type=notify)
	tmux # the progress bar of dashcachectl warm is tested on a terminal
	iproute2 # ip netns and veth: the multi-host tests (scripts/dcnet.py)
	clang-14 libclang-rt-14-dev # the libFuzzer targets (make fuzz, and make test)
)

installed() {
	local status
	status=$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) || return 1
	[[ $status == installed ]]
}

have_pg_server() {
	local b
	for b in /usr/lib/postgresql/*/bin/postgres; do
		[[ -x $b ]] && return 0
	done
	return 1
}

missing=()
for entry in "${required[@]}" "$@"; do
	IFS='|' read -r -a alts <<<"$entry"
	ok=0
	for p in "${alts[@]}"; do
		if installed "$p"; then ok=1; break; fi
	done
	((ok)) || missing+=("${alts[0]}")
done
# Any major version of the server will do; the metapackage pulls the distribution's.
have_pg_server || missing+=(postgresql)

if ((${#missing[@]} == 0)); then
	exit 0
fi
if ((check_only)); then
	echo "missing: ${missing[*]}"
	exit 1
fi

echo "deps: installing missing packages: ${missing[*]}" >&2
if [[ $(id -u) -ne 0 ]]; then
	echo "deps: not root; run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
	exit 1
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
	if ((created_policy)); then rm -f "$policy"; fi
}
trap cleanup EXIT
if [[ ! -e $policy ]]; then
	# 101 = "action not allowed": package scripts then leave the services stopped.
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	created_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}"
echo "deps: done" >&2
