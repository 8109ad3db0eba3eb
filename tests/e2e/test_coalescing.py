"""One database query per cold key across workers and hosts (issue 12, part 2).

Two worker pools (two dashcache-fcgi masters of 4 workers each, as two hosts
would run them, on one Redis and one PostgreSQL) get 64 concurrent requests for
the same cold answer, 32 each, straight over FastCGI. With the lease
(CACHE_LEASE=on, the default) the database runs the statements of exactly one
miss, and every reader gets the same answer; with CACHE_LEASE=off (the same
scenario without the protection) it runs many.
"""
import signal
import subprocess
import threading
import time

import pytest

import fcgi_client as fc
from conftest import own_stack, wait_for
import dcstack as dc

ORG = dc.DEMO_ORG
PATH = f"/api/dashboard/orgs/{ORG}/stats"
READERS = 64


def statements(stack) -> dict[str, float]:
    """dashboard_db_queries_total of the reads, by statement (the probes' and the invalidator's left out)."""
    st, _, body = fc.request(str(stack.fcgi.socket), "/metrics")
    assert st == 200, body[:300]
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
        r("DEL", f"dashboard:stats:org:{ORG}")
    finally:
        r.close()


@pytest.fixture(scope="module", params=["on", "off"])
def pools(request):
    env = {**dc.test_app_env(), "CACHE_LEASE": request.param}
    with own_stack(f"coalesce-{request.param}", workers=4, app_env=env) as s:
        sock = s.runtime_dir / "second.sock"
        argv = [str(s.fcgi.binary), "--listen", f"unix:{sock}", "--workers", "4"]
        user = dc.service_user()
        if user:
            argv += ["--user", user]
        log_path = s.state_dir / "logs" / "second-pool.log"
        log = open(log_path, "w")
        second = subprocess.Popen(argv, env=s.app_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            assert wait_for(lambda: dc.unix_accepts(sock), 10), dc.tail(log_path, 20)
            yield request.param, s, [str(s.fcgi.socket), str(sock)]
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(10)
            except subprocess.TimeoutExpired:
                second.kill()
                second.wait(5)
            log.close()


def cold_burst(stack, socks) -> list:
    """64 concurrent GETs of the cold answer, half on each pool: [(status, x-cache, body, seconds)]."""
    token = stack.default_token
    results = [None] * READERS
    go = threading.Barrier(READERS)

    def one(i):
        go.wait()
        t0 = time.monotonic()
        st, h, body = fc.request(socks[i % 2], PATH, timeout=10,
                                 headers={"HTTP_AUTHORIZATION": f"Bearer {token}"})
        results[i] = (st, h.get("x-cache"), body, time.monotonic() - t0)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(READERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_one_query_per_cold_key_across_two_pools(pools):
    lease, stack, socks = pools
    token = stack.default_token
    hdr = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    # warm both pools' connections, then measure one miss alone
    for sock in socks:
        assert fc.request(sock, PATH, headers=hdr)[0] == 200
    make_cold(stack)
    before = statements(stack)
    t0 = time.monotonic()
    st, h, one_body = fc.request(socks[0], PATH, headers=hdr)
    one_miss_s = time.monotonic() - t0
    assert st == 200 and h.get("x-cache") == "MISS", (st, h)
    one_miss = delta(before, statements(stack))
    assert one_miss, "a miss runs statements"

    make_cold(stack)
    time.sleep(0.3)
    before = statements(stack)
    results = cold_burst(stack, socks)
    burst = delta(before, statements(stack))
    assert all(r and r[0] == 200 for r in results), [r[:2] for r in results if not r or r[0] != 200][:5]
    bodies = {r[2] for r in results}
    waits = sorted(r[3] for r in results)
    print(f"\nCACHE_LEASE={lease}: one miss {one_miss} in {one_miss_s * 1000:.1f} ms; 64 cold readers on two "
          f"pools ran {burst}; X-Cache {sorted({r[1] for r in results})}; slowest reader {waits[-1] * 1000:.1f} ms")
    if lease == "on":
        assert burst == one_miss, f"the statements of exactly one miss: {burst} vs {one_miss}"
        assert len(bodies) == 1, "every reader got the one answer"
        assert waits[-1] <= 2 * max(one_miss_s, 0.005) + 0.25, \
            f"waiters within about twice the miss ({waits[-1] * 1000:.1f} ms vs {one_miss_s * 1000:.1f} ms)"
    else:
        n = sum(burst.values()) / max(sum(one_miss.values()), 1)
        assert n > 1.5, f"without the lease, several readers query the database ({n:.1f} misses' worth)"
