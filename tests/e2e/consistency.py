#!/usr/bin/env python3
"""Consistency checker: concurrent writers and readers through nginx.

Writers create alerts for one organization through the API; readers read
its unresolved-alert count. Counts only grow during the run, so a read that
started after N writes were acknowledged must show at least the initial count
plus N. Any read below that is stale. Prints one summary line and exits 1
when a read was stale or too little happened to judge.

usage: consistency.py BASE_URL ORG_ID UNIT_ID [SECONDS] [WRITERS] [READERS]
"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request

base, org, unit = sys.argv[1], sys.argv[2], sys.argv[3]
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 8.0
n_writers = int(sys.argv[5]) if len(sys.argv) > 5 else 2
n_readers = int(sys.argv[6]) if len(sys.argv) > 6 else 4

count_url = f"{base}/api/dashboard/orgs/{org}/alerts/count"
alerts_url = f"{base}/api/dashboard/orgs/{org}/alerts"

lock = threading.Lock()
acks = []          # monotonic times at which a write was acknowledged
reads = []         # (monotonic start, unresolved, x-cache)
errors = []
deadline = time.monotonic() + seconds


def get_count(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)["unresolved"], r.headers.get("X-Cache")


def writer(i):
    body = json.dumps({"unitId": unit, "kind": "consistency", "message": f"writer {i}"}).encode()
    while time.monotonic() < deadline:
        req = urllib.request.Request(alerts_url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
                if r.status != 201:
                    raise RuntimeError(f"status {r.status}")
            t = time.monotonic()
            with lock:
                acks.append(t)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            with lock:
                errors.append(f"write: {e}")
        time.sleep(0.01)


def reader():
    while time.monotonic() < deadline:
        t = time.monotonic()
        try:
            c, xc = get_count(count_url)
            with lock:
                reads.append((t, c, xc))
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(f"read: {e}")


initial, _ = get_count(count_url + "?forceRefresh=true")
threads = [threading.Thread(target=writer, args=(i,)) for i in range(n_writers)]
threads += [threading.Thread(target=reader) for _ in range(n_readers)]
for t in threads:
    t.start()
for t in threads:
    t.join()

acks.sort()
stale = []
hits = 0
for start, c, xc in reads:
    hits += xc == "HIT"
    # writes acknowledged before this read started
    lo, hi = 0, len(acks)
    while lo < hi:
        mid = (lo + hi) // 2
        if acks[mid] < start:
            lo = mid + 1
        else:
            hi = mid
    if c < initial + lo:
        stale.append((start, c, initial + lo, xc))

print(f"consistency: {len(reads)} reads ({hits} hits), {len(acks)} acknowledged writes, "
      f"{len(errors)} errors, {len(stale)} stale reads")
for s in stale[:5]:
    print(f"  stale: read {s[1]} where at least {s[2]} was acknowledged (X-Cache {s[3]})")
for e in errors[:5]:
    print(f"  error: {e}")
ok = not stale and not errors and len(reads) >= 100 and len(acks) >= 10 and hits > 0
sys.exit(0 if ok else 1)
