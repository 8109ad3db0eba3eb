"""Several prefork workers serve concurrently; a worker killed with SIGKILL
while requests run is respawned (only it) and no request fails; SIGHUP
replaces every worker, under the same master, without failing a request.
Ported from test_40_workers.sh. Signals go to PIDs that the master's handle
leads to (its children), never by name."""
import os
import signal
import threading
import time
from collections import Counter

import pytest

from conftest import rchar, wait_for
import dcstack as dc

ORG = dc.DEMO_ORG


def mixed_paths(http, n: int) -> list[str]:
    out = []
    for i in range(1, n + 1):
        org = dc.org_id(i % 20 + 1)
        out.append([http.org_url(ORG, "stats"), http.org_url(org, "units/status"),
                    http.org_url(ORG, "alerts/count?forceRefresh=true"), http.org_url(org, "devices/online")][i % 4])
    return out


def refresh_paths(http, n: int) -> list[str]:
    return [http.org_url(dc.org_id(i % 20 + 1), "stats?forceRefresh=true") if i % 2 else http.org_url(ORG, "stats")
            for i in range(1, n + 1)]


def under_load(http, paths, parallel: int, delay: float, action):
    """Runs the requests in a thread, calls action() after delay seconds, and
    returns ([(status, ended)], when action ran)."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("res", http.load(paths, parallel)))
    t.start()
    time.sleep(delay)
    at = time.monotonic()
    action()
    t.join(len(paths) * 10)
    assert not t.is_alive(), "the load finished"
    return out["res"], at


def failed(res) -> str:
    return ", ".join(f"{n}x HTTP {s}" for s, n in Counter(s for s, _ in res if s != 200).items()) or "none"


@pytest.fixture
def workers(stack, outage):
    """The master's workers, all there; outage restores the stack if a test breaks it."""
    assert wait_for(lambda: len(stack.fcgi.workers()) == stack.workers, 10), \
        f"{stack.workers} workers before the test; got {stack.fcgi.workers()}"
    return stack.fcgi.workers()


def test_workers_are_there(stack, workers):
    assert stack.fcgi.running(), "the master runs"
    assert len(workers) == stack.workers, f"{stack.workers} workers; got {workers}"


def test_concurrent_requests_spread_over_the_workers(http, workers):
    before = {p: rchar(p) for p in workers}
    res = http.load(mixed_paths(http, 200), 16)
    assert len(res) == 200 and all(s == 200 for s, _ in res), f"200 requests answered 200; failed: {failed(res)}"
    busy = [p for p in workers if rchar(p) > before[p]]
    assert len(busy) >= 2, f"more than one worker served them ({len(busy)} of {len(workers)} read requests)"


def test_worker_killed_under_load(http, stack, workers):
    master, victim = stack.fcgi.pid(), workers[0]
    res, killed_at = under_load(http, refresh_paths(http, 400), 4, 0.4, lambda: os.kill(victim, signal.SIGKILL))
    assert len(res) == 400 and all(s == 200 for s, _ in res), \
        f"400 requests during the kill: all 200; failed: {failed(res)}"
    # the kill really happened while requests ran
    assert any(t < killed_at for _, t in res) and any(t > killed_at for _, t in res), \
        "requests were answered both before and after the kill"

    def respawned():
        now = stack.fcgi.workers()
        return len(now) == stack.workers and victim not in now
    assert wait_for(respawned, 5), f"worker {victim} replaced: {stack.workers} workers again within 5 s; " \
                                   f"got {stack.fcgi.workers()}"
    now = stack.fcgi.workers()
    new = sorted(set(now) - set(workers))
    assert len(new) == 1 and stack.fcgi.pid() == master, \
        f"one new worker pid appeared ({new}) under the same master ({master} -> {stack.fcgi.pid()})"
    assert sorted(set(workers) - {victim}) == sorted(set(now) - set(new)), \
        "the other workers were left alone"
    r = http.get("stats")
    assert r.status == 200, f"GET after the respawn: 200; got {r}"


def test_sighup_restarts_every_worker_under_load(http, stack, workers):
    master = stack.fcgi.pid()
    res, hup_at = under_load(http, refresh_paths(http, 400), 4, 0.3, lambda: stack.fcgi.signal(signal.SIGHUP))
    assert len(res) == 400 and all(s == 200 for s, _ in res), \
        f"400 requests during SIGHUP: all 200; failed: {failed(res)}"
    assert any(t < hup_at for _, t in res) and any(t > hup_at for _, t in res), \
        "requests were answered both before and after the SIGHUP"

    def all_new():
        now = stack.fcgi.workers()
        return len(now) == stack.workers and not set(now) & set(workers)
    assert wait_for(all_new, 10), f"after SIGHUP: {stack.workers} workers, none of the old ones ({workers}), " \
                                  f"within 10 s; got {stack.fcgi.workers()}"
    assert stack.fcgi.pid() == master and stack.fcgi.running(), f"after SIGHUP: same master ({master})"
    r = http.get("stats")
    assert r.status == 200, f"GET after SIGHUP: 200; got {r}"
