#!/usr/bin/python3
"""Consistency checker: concurrent writers and readers through nginx.

Writers create alerts for one organization through the API; readers read
its unresolved-alert count. Counts only grow during the run, so a read that
started after N writes were acknowledged must show at least the initial count
plus N. Any read below that is stale.

Used as a library by tests/e2e/test_invalidation.py (check() returns a
Result) and by tests/drill/drill.py (judge() and missed_since() on its own
writers and readers); on the command line it prints one summary line and exits 1 when a
read was stale or too little happened to judge.

usage: consistency.py BASE_URL ORG_ID UNIT_ID [SECONDS] [WRITERS] [READERS]
(the bearer token of every request: DC_TEST_TOKEN)
"""
import bisect
import json
import os
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field


@dataclass
class Result:
    reads: int = 0
    hits: int = 0
    acks: int = 0
    stale: list = field(default_factory=list)   # (start, read, at least, x-cache)
    errors: list = field(default_factory=list)

    @property
    def enough(self) -> bool:
        """Enough happened to judge: reads, acknowledged writes and cache hits."""
        return self.reads >= 100 and self.acks >= 10 and self.hits > 0

    @property
    def ok(self) -> bool:
        return not self.stale and not self.errors and self.enough

    def summary(self) -> str:
        lines = [f"consistency: {self.reads} reads ({self.hits} hits), {self.acks} acknowledged writes, "
                 f"{len(self.errors)} errors, {len(self.stale)} stale reads"]
        lines += [f"  stale: read {s[1]} where at least {s[2]} was acknowledged (X-Cache {s[3]})"
                  for s in self.stale[:5]]
        lines += [f"  error: {e}" for e in self.errors[:5]]
        return "\n".join(lines)


def check(base, org, unit, seconds=8.0, n_writers=2, n_readers=4, token=None, read_base=None) -> Result:
    """Writers through base, readers through read_base (default: base; another host's
    URL for tests/e2e/test_multihost.py)."""
    token = token if token is not None else os.environ.get("DC_TEST_TOKEN", "")
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    count_url = f"{read_base or base}/api/dashboard/orgs/{org}/alerts/count"
    alerts_url = f"{base}/api/dashboard/orgs/{org}/alerts"
    lock = threading.Lock()
    acks, reads, errors = [], [], []
    deadline = time.monotonic() + seconds

    def get_count(url):
        with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=10) as r:
            return json.load(r)["unresolved"], r.headers.get("X-Cache")

    def writer(i):
        body = json.dumps({"unitId": unit, "kind": "consistency", "message": f"writer {i}"}).encode()
        while time.monotonic() < deadline:
            req = urllib.request.Request(alerts_url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", **auth})
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
    res = Result(reads=len(reads), acks=len(acks), errors=errors)
    res.hits = sum(xc == "HIT" for _, _, xc in reads)
    res.stale = judge(initial, acks, reads)
    return res


def judge(initial: int, due: list, reads) -> list:
    """The stale reads of a count that only grows by one per write. initial: the
    count before the first write; due: sorted times from which each write must be
    visible (its acknowledgment, or later where a bound applies); reads: (start,
    count read, x-cache). A read that started after k writes were due and shows
    less than initial + k missed one: [(start, count, at least, x-cache)]."""
    stale = []
    for start, c, xc in reads:
        k = bisect.bisect_left(due, start)  # writes due before this read started
        if c < initial + k:
            stale.append((start, c, initial + k, xc))
    return stale


def missed_since(initial: int, acks: list, start: float, count: int) -> float | None:
    """For a read that started at `start` and showed `count`: seconds since the
    acknowledgment of the oldest acknowledged write it does not show (acks sorted),
    or None when it shows every write acknowledged before it started."""
    shown = count - initial  # the first `shown` acknowledgments are taken as seen
    if shown < 0:
        shown = 0
    if shown >= len(acks) or acks[shown] >= start:
        return None
    return start - acks[shown]


def main(argv):
    base, org, unit = argv[1], argv[2], argv[3]
    res = check(base, org, unit, float(argv[4]) if len(argv) > 4 else 8.0,
                int(argv[5]) if len(argv) > 5 else 2, int(argv[6]) if len(argv) > 6 else 4)
    print(res.summary())
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
