"""Workers that stay healthy (issue 12, part 4), each on a stack of its own:

- --max-requests: under concurrent load over nginx's kept connections,
  workers retire and are replaced while no request fails; a plain worker
  under spawn-fcgi just exits after its N requests.
- REQUEST_TIMEOUT_MS: a read held up by PostgreSQL (a lock another session
  holds) is answered 503 request_timeout at the limit, logged with its
  route, and the next requests succeed; a worker frozen in a request
  (SIGSTOP) is killed by the master's watchdog at twice the limit, its
  route logged, and a new worker serves.
- SIGHUP with --env-file: CACHE=off -> BYPASS, CACHE=on again without a
  restart of the stack, and a broken file is refused while the old
  configuration keeps serving.

Faults are real: a lock held by another PostgreSQL session, SIGSTOP of a
worker found through the master's handle; never a test hook in the C."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest

from conftest import STATE, Http, own_stack, scrape, wait_for
from test_process_modes import fcgi_get
import dcstack as dc

ORG = dc.DEMO_ORG
MAX_REQUESTS = 25
LIMIT_MS = 1000


def failed(res) -> str:
    return ", ".join(f"{n}x HTTP {s}" for s, n in Counter(s for s, _ in res if s != 200).items()) or "none"


def retirements(http, reason: str) -> float:
    return scrape(http).value(f'dashboard_worker_retirements_total{{reason="{reason}"}}')


# ------------------------------------------------------------------ --max-requests

@pytest.fixture(scope="module")
def maxreq():
    with own_stack("limits-maxreq", workers=3, invalidator=False,
                   fcgi_args=["--max-requests", str(MAX_REQUESTS)]) as s:
        yield s


def test_max_requests_retires_workers_without_a_failed_request(maxreq):
    http = Http(maxreq.http_url, token=maxreq.default_token)
    log0 = maxreq.fcgi.log_since_start().count("event=worker.retire")
    before, first = retirements(http, "max_requests"), set(maxreq.fcgi.workers())
    # hits and misses of 20 organizations, 8 at a time, over nginx's kept connections
    paths = [http.org_url(dc.org_id(i % 20 + 1), "stats" if i % 3 else "alerts/count?forceRefresh=true")
             for i in range(600)]
    # the replacement starts while the retiring worker still drains: more than 3 workers at times
    seen, done = [], threading.Event()

    def sample():
        while not done.is_set():
            seen.append(len(maxreq.fcgi.workers()))
            time.sleep(0.005)
    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.monotonic()
    try:
        res = http.load(paths, 8)
    finally:
        took = time.monotonic() - t0
        done.set()
        sampler.join(5)
    assert len(res) == 600 and all(s == 200 for s, _ in res), \
        f"600 requests while workers retire: all 200; failed: {failed(res)}"
    retired = maxreq.fcgi.log_since_start().count("event=worker.retire") - log0
    # 600 requests plus the scrapes, over 3 workers of 25 requests each: about 24 retirements
    assert retired >= 600 // MAX_REQUESTS // 2, \
        f"workers retired after {MAX_REQUESTS} requests each ({retired} event=worker.retire lines)"
    assert wait_for(lambda: retirements(http, "max_requests") - before >= retired, 5), \
        f"dashboard_worker_retirements_total{{reason=\"max_requests\"}} counts them " \
        f"({before} -> {retirements(http, 'max_requests')}, {retired} logged)"
    assert wait_for(lambda: len(maxreq.fcgi.workers()) == 3, 5), \
        f"3 workers again once the retired ones drained; got {maxreq.fcgi.workers()}"
    assert not set(maxreq.fcgi.workers()) & first, "none of the first workers is left"
    assert "event=master.backoff" not in maxreq.fcgi.log_since_start(), "a retirement is not a crash"
    assert max(seen) > 3, f"a replacement starts before the retiring worker has exited (workers seen: " \
                          f"{sorted(Counter(seen).items())})"
    print(f"\n600 requests in {took:.2f} s, {retired} retirements, 0 failed; workers seen "
          f"{sorted(Counter(seen).items())}")


def test_plain_worker_exits_after_max_requests(maxreq):
    """No master (spawn-fcgi): the worker drains and exits 0; spawn-fcgi starts no other."""
    d = maxreq.runtime_dir / "plain"
    d.mkdir(exist_ok=True)
    sock, pidfile = d / "sf.sock", d / "sf.pid"
    for f in (sock, pidfile):
        if f.exists():
            f.unlink()
    r = subprocess.run(["spawn-fcgi", "-s", str(sock), "-M", "0666", "-F", "1", "-P", str(pidfile), "--",
                        str(maxreq.fcgi.binary), "--max-requests", "5"], env=maxreq.app_env, capture_output=True,
                       text=True, timeout=10, stdin=subprocess.DEVNULL, cwd=d)
    pids = [int(x) for x in pidfile.read_text().split()] if pidfile.exists() else []
    try:
        assert r.returncode == 0 and len(pids) == 1, f"spawn-fcgi started a worker: {r.stdout} {r.stderr}"
        statuses = [fcgi_get(sock, f"/api/dashboard/orgs/{ORG}/units/status", maxreq.default_token)[0]
                    for _ in range(5)]
        assert statuses == [200] * 5, f"its 5 requests answered 200: {statuses}"
        # cgi-fcgi closes each connection: nothing is kept, the drain ends at once
        assert wait_for(lambda: not dc.pid_alive(pids[0]), 5), "the worker exited after its 5th request"
    finally:
        for p in pids:
            if dc.pid_alive(p):
                os.kill(p, signal.SIGTERM)


# ------------------------------------------------------------------ REQUEST_TIMEOUT_MS

@pytest.fixture(scope="module")
def slow():
    """One worker, so that the test knows which one is busy."""
    env = {**dc.test_app_env(), "REQUEST_TIMEOUT_MS": str(LIMIT_MS)}
    with own_stack("limits-timeout", workers=1, invalidator=False, app_env=env) as s:
        yield s


class Lock:
    """ACCESS EXCLUSIVE on alerts, held by another session for `hold` seconds:
    every read of the table waits (the alert count's miss)."""

    def __init__(self, stack, hold: float):
        self.stack, self.hold = stack, hold
        self.t = threading.Thread(target=lambda: stack.postgres.psql(
            f"BEGIN; LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({hold}); COMMIT;"), daemon=True)

    def held(self) -> bool:
        return self.stack.postgres.psql(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'alerts' AND l.mode = 'AccessExclusiveLock' AND l.granted") == "1"

    def __enter__(self):
        self.t.start()
        assert wait_for(self.held, 5), "the lock is taken"
        return self

    def __exit__(self, *exc):
        self.t.join(self.hold + 10)


def serves(http) -> bool:
    return all(http.get("alerts/count?forceRefresh=true").status == 200 for _ in range(3))


def test_request_over_the_limit_is_a_503(slow):
    http = Http(slow.http_url, token=slow.default_token)
    assert serves(http)
    before = scrape(http).value("dashboard_request_timeouts_total")
    with Lock(slow, 3):
        r = http.get("alerts/count?forceRefresh=true")
        assert r.is_error(503, "request_timeout") and r.header("Retry-After"), \
            f"a read that waits on a lock is answered 503 request_timeout with Retry-After; got {r}"
        assert LIMIT_MS / 1000 - 0.05 <= r.elapsed < LIMIT_MS / 1000 + 0.8, \
            f"at REQUEST_TIMEOUT_MS={LIMIT_MS}, not later ({r.elapsed:.2f} s)"
    log = slow.fcgi.log_since_start()
    line = next((ln for ln in log.splitlines() if "event=worker.request_timeout" in ln), "")
    assert f"/api/dashboard/orgs/{ORG}/alerts/count" in line and f"REQUEST_TIMEOUT_MS={LIMIT_MS}" in line, \
        f"logged with its route: {line or dc.tail(slow.fcgi.log_path)}"
    assert wait_for(lambda: serves(http), 5), "the next requests succeed once the lock is gone"
    assert scrape(http).value("dashboard_request_timeouts_total") >= before + 1, "counted"


def test_stuck_worker_is_killed_and_replaced(slow):
    http = Http(slow.http_url, token=slow.default_token)
    assert serves(http)
    worker, master = slow.fcgi.workers()[0], slow.fcgi.pid()
    before = retirements(http, "timeout")
    out = {}
    with Lock(slow, 4):
        t = threading.Thread(target=lambda: out.setdefault("r", http.get("alerts/count?forceRefresh=true")))
        t0 = time.monotonic()
        t.start()
        time.sleep(0.3)  # the worker waits for PostgreSQL, within its deadline
        os.kill(worker, signal.SIGSTOP)  # and freezes there: its deadline can no longer end the wait
        assert wait_for(lambda: not dc.pid_alive(worker), 2 * LIMIT_MS / 1000 + 2), \
            f"the master killed the frozen worker {worker} at twice REQUEST_TIMEOUT_MS"
        killed_after = time.monotonic() - t0
        t.join(15)
    r = out.get("r")
    assert r is not None and r.status in (502, 503) and r.is_json(), f"its request got a JSON 5xx; got {r}"
    log = slow.fcgi.log_since_start()
    line = next((ln for ln in log.splitlines() if "event=master.request_timeout" in ln), "")
    assert f"worker {worker}" in line and f"/api/dashboard/orgs/{ORG}/alerts/count" in line, \
        f"the master logged the worker and its route: {line or dc.tail(slow.fcgi.log_path)}"
    assert wait_for(lambda: len(slow.fcgi.workers()) == 1 and slow.fcgi.workers()[0] != worker, 5), \
        "a new worker took the slot"
    assert slow.fcgi.pid() == master
    assert wait_for(lambda: serves(http), 5), "and serves"
    assert retirements(http, "timeout") == before + 1, "dashboard_worker_retirements_total{reason=\"timeout\"}"
    print(f"\nfrozen worker killed {killed_after:.2f} s after its request began")


# ------------------------------------------------------------------ SIGHUP, CACHE off/on

@pytest.fixture(scope="module")
def reload_stack():
    d = STATE / "limits-reload"
    d.mkdir(parents=True, exist_ok=True)
    env_file = d / "dashcache.env"
    env_file.write_text("# as /etc/dashcache/dashcache.env\nCACHE=off\n")
    with own_stack("limits-reload", workers=2, fcgi_args=["--env-file", str(env_file)]) as s:
        s.env_file = env_file
        yield s


def reload(stack, text: str) -> list[int]:
    """Writes the env file, sends SIGHUP, waits for the master's verdict; the workers before it."""
    old, n = stack.fcgi.workers(), stack.fcgi.log_since_start().count("event=master.reload")
    stack.env_file.write_text(text)
    stack.fcgi.signal(signal.SIGHUP)
    assert wait_for(lambda: stack.fcgi.log_since_start().count("event=master.reload") > n, 5), \
        dc.tail(stack.fcgi.log_path)
    return old


def replaced(stack, old) -> bool:
    now = stack.fcgi.workers()
    return len(now) == stack.workers and not set(now) & set(old)


def test_cache_off_then_on_by_reload(reload_stack):
    s = reload_stack
    http = Http(s.http_url, token=s.default_token)
    for _ in range(2):
        r = http.get("units/status")
        assert r.status == 200 and r.xcache == "BYPASS", f"CACHE=off in the file: BYPASS; got {r}"
    before = retirements(http, "reload")

    out = {}
    paths = [http.org_url(dc.org_id(i % 20 + 1), "units/status") for i in range(300)]
    t = threading.Thread(target=lambda: out.setdefault("res", http.load(paths, 4)))
    t.start()
    time.sleep(0.2)
    old = reload(s, "CACHE=on\n")
    t.join(60)
    res = out["res"]
    assert all(st == 200 for st, _ in res), f"no request failed during the reload: {failed(res)}"
    assert wait_for(lambda: replaced(s, old), 10), f"new workers replaced {old}: {s.fcgi.workers()}"
    first, second = http.get("units/status"), http.get("units/status")
    assert first.status == second.status == 200 and second.xcache == "HIT", \
        f"CACHE=on after the reload, no restart: a MISS then a HIT; got {first.xcache}, {second.xcache}"
    assert retirements(http, "reload") >= before + 2, "each replaced worker counts as a reload retirement"

    old = reload(s, "CACHE=off\n")
    assert wait_for(lambda: replaced(s, old), 10)
    assert http.get("units/status").xcache == "BYPASS", "and off again"


@pytest.mark.parametrize("bad,want", [
    ("CACHE=maybe\n", 'CACHE must be on or off (got "maybe")'),
    ("CACHE=on\nREQUEST_TIMEOUT_MS=soon\n", 'REQUEST_TIMEOUT_MS must be an integer between 0 and 600000'),
    ("CACHE=on\nMAX_REQUESTS=-1\n", "MAX_REQUESTS must be an integer between 0 and 1000000000"),
    ("CACHE=on\nthis is not a line of an env file\n", "dashcache.env"),
])
def test_broken_reload_is_refused(reload_stack, bad, want):
    s = reload_stack
    http = Http(s.http_url, token=s.default_token)
    old = reload(s, "CACHE=off\n")
    assert wait_for(lambda: replaced(s, old), 10)
    workers = s.fcgi.workers()
    n = s.fcgi.log_since_start().count("event=worker.start")
    reload(s, bad)
    log = s.fcgi.log_since_start()
    refusal = [ln for ln in log.splitlines() if "event=master.reload" in ln][-1].replace('\\"', '"')
    assert want in refusal and "keeping the running configuration" in refusal, \
        f"the refusal names what is wrong: {refusal}"
    time.sleep(0.5)
    assert s.fcgi.workers() == workers and log.count("event=worker.start") == n, \
        "no worker was replaced"
    r = http.get("units/status")
    assert r.status == 200 and r.xcache == "BYPASS", f"the old configuration (CACHE=off) keeps serving; got {r}"


# ------------------------------------------------------------------ start-up

@pytest.mark.parametrize("args,env,want", [
    ([], {"REQUEST_TIMEOUT_MS": "abc"}, 'REQUEST_TIMEOUT_MS must be an integer between 0 and 600000 (got "abc")'),
    ([], {"MAX_REQUESTS": "1e3"}, "MAX_REQUESTS must be an integer between 0 and 1000000000"),
    (["--max-requests", "-4"], {}, "--max-requests must be an integer between 0 and 1000000000"),
])
def test_bad_limits_stop_start_up(maxreq, tmp_path, args, env, want):
    sock = tmp_path / "never.sock"
    r = subprocess.run([str(maxreq.fcgi.binary), "--listen", f"unix:{sock}", "--workers", "1", *args],
                       env={**maxreq.app_env, **env}, capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and want in r.stderr, f"refused naming it ({r.returncode}): {r.stderr[:300]!r}"
