#!/usr/bin/python3
"""Cold keys: how many database queries, and how long readers wait, when many
readers ask for an answer nobody has cached (issue 12, part 2).

Two worker pools (two dashcache-fcgi masters, as two hosts run them, on one
Redis and one PostgreSQL) get READERS concurrent requests for one cold answer,
half on each pool, straight over FastCGI; ROUNDS times, for CACHE_LEASE=on (one
query per cold key) and CACHE_LEASE=off (every miss queries), each on a stack
of its own. It prints, per setting, the read statements the database ran per
burst (median, and in units of one miss) and the latency of one miss alone and
of the slowest reader of a burst.

  tests/bench/coalesce.py            (make bench runs it after bench.py)
Environment: COALESCE_READERS (64), COALESCE_ROUNDS (5).

tests/e2e/test_coalescing.py uses its functions for its assertions.
"""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import dcstack as dc  # noqa: E402
import fcgi_client as fc  # noqa: E402

ORG = dc.DEMO_ORG
PATH = f"/api/dashboard/orgs/{ORG}/stats"
VALUE_KEY = f"dashboard:stats:org:{{{ORG}}}"


def read_statements(sock: str) -> dict[str, float]:
    """dashboard_db_queries_total of the reads, by statement: the trust probe's and the
    invalidator's statements (outbox_*, events_*) left out."""
    st, _, body = fc.request(sock, "/metrics")
    if st != 200:
        raise RuntimeError(f"/metrics: {st} {body[:200]!r}")
    out = {}
    for ln in body.decode().splitlines():
        if ln.startswith("dashboard_db_queries_total{"):
            name = ln.split('statement="', 1)[1].split('"', 1)[0]
            if not name.startswith(("outbox_", "events_")):
                out[name] = float(ln.rsplit(" ", 1)[1])
    return out


def delta(before: dict, after: dict) -> dict:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def make_cold(stack) -> None:
    r = stack.redis.client()
    try:
        r("DEL", VALUE_KEY)
    finally:
        r.close()


@contextmanager
def two_pools(name: str, lease: str, workers: int = 4, state_dir: Path | None = None):
    """A stack (its own pool of WORKERS) and a second pool on the same Redis and
    PostgreSQL: (stack, [socket of each pool])."""
    env = {**dc.test_app_env(), "CACHE_LEASE": lease}
    with dc.Stack(name, state_dir=state_dir, workers=workers, app_env=env) as s:
        sock = s.runtime_dir / "second.sock"
        argv = [str(s.fcgi.binary), "--listen", f"unix:{sock}", "--workers", str(workers)]
        user = dc.service_user()
        if user:
            argv += ["--user", user]
        log_path = s.state_dir / "logs" / "second-pool.log"
        with open(log_path, "w") as log:
            second = subprocess.Popen(argv, env=s.app_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while not dc.unix_accepts(sock):
                if time.monotonic() > deadline or second.poll() is not None:
                    raise dc.StackError(f"the second pool did not start: {dc.tail(log_path, 20)}")
                time.sleep(0.05)
            yield s, [str(s.fcgi.socket), str(sock)]
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(10)
            except subprocess.TimeoutExpired:
                second.kill()
                second.wait(5)


def one_miss(stack, socks) -> tuple[dict, float]:
    """The statements of one miss alone, and its latency (s)."""
    hdr = {"HTTP_AUTHORIZATION": f"Bearer {stack.default_token}"}
    make_cold(stack)
    before = read_statements(socks[0])
    t0 = time.monotonic()
    st, h, _ = fc.request(socks[0], PATH, headers=hdr)
    took = time.monotonic() - t0
    if st != 200 or h.get("x-cache") != "MISS":
        raise RuntimeError(f"one miss: {st} {h.get('x-cache')}")
    return delta(before, read_statements(socks[0])), took


def cold_burst(stack, socks, readers: int, cold: bool = True) -> tuple[list, dict]:
    """READERS concurrent GETs of the cold answer, alternating pools, released together:
    ([(status, x-cache, body, seconds)], statements the database ran)."""
    hdr = {"HTTP_AUTHORIZATION": f"Bearer {stack.default_token}"}
    results: list = [None] * readers
    go = threading.Barrier(readers)

    def one(i):
        go.wait()
        t0 = time.monotonic()
        try:
            st, h, body = fc.request(socks[i % len(socks)], PATH, timeout=10, headers=hdr)
            results[i] = (st, h.get("x-cache"), body, time.monotonic() - t0)
        except OSError as e:
            results[i] = (0, None, str(e).encode(), time.monotonic() - t0)

    if cold:
        make_cold(stack)
        time.sleep(0.05)
    before = read_statements(socks[0])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, delta(before, read_statements(socks[0]))


def measure(lease: str, readers: int, rounds: int) -> dict:
    with two_pools(f"bench-coalesce-{lease}", lease, state_dir=ROOT / ".run" / "bench" / f"coalesce-{lease}") as (s, socks):
        hdr = {"HTTP_AUTHORIZATION": f"Bearer {s.default_token}"}
        for sock in socks:  # connections and statements prepared in every worker that will serve
            for _ in range(8):
                fc.request(sock, PATH, headers=hdr)
        misses, miss_s, per_burst, slowest, failed = [], [], [], [], 0
        for _ in range(rounds):
            st, took = one_miss(s, socks)
            misses.append(sum(st.values()))
            miss_s.append(took)
            results, ran = cold_burst(s, socks, readers)
            failed += sum(1 for r in results if not r or r[0] != 200)
            per_burst.append(sum(ran.values()))
            slowest.append(max(r[3] for r in results if r))
        one = statistics.median(misses)
        return {"lease": lease, "statements_per_miss": one, "burst_statements": statistics.median(per_burst),
                "burst_misses": statistics.median(per_burst) / one if one else 0.0,
                "miss_ms": statistics.median(miss_s) * 1000, "slowest_ms": statistics.median(slowest) * 1000,
                "failed": failed}


def main() -> int:
    readers = dc.int_env("COALESCE_READERS", 64, 2, 1024)
    rounds = dc.int_env("COALESCE_ROUNDS", 5, 1, 100)
    rows = [measure(lease, readers, rounds) for lease in ("on", "off")]
    print(f"\ncold key: {readers} concurrent readers of one cold answer on two pools of 4 workers, "
          f"median of {rounds} bursts")
    print("| CACHE_LEASE | statements of one miss | statements per burst | misses per burst | one miss ms "
          "| slowest reader ms | failed |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['lease']} | {r['statements_per_miss']:.0f} | {r['burst_statements']:.0f} | "
              f"{r['burst_misses']:.1f} | {r['miss_ms']:.1f} | {r['slowest_ms']:.1f} | {r['failed']} |")
    on, off = rows
    if off["burst_statements"]:
        print(f"database statements per burst with the lease: {on['burst_statements'] / off['burst_statements']:.2f}x "
              f"of without")
    return 0 if on["failed"] == 0 and off["failed"] == 0 else 1


if __name__ == "__main__":
    dc.stop_on_signals()
    sys.exit(main())
