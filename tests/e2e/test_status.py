"""The pool's status page (/status, php-fpm's pm.status_path) and the slow log,
against a real stack of 2 workers behind nginx.

- /status in text and JSON (?json), with a row per live worker (?full): the
  fields php-fpm operators know, the pids the master started, their RSS, the
  route each served last; restricted like /metrics in the nginx snippet.
- A worker blocked in a request shows Running with its route while the other
  answers the page; with both blocked, connections wait in the listening
  socket's queue, and the page afterwards reports what the kernel said (max
  listen queue), max active processes 2 and max children reached.
- A request slower than SLOWLOG_MS is logged once (worker.slow) with its route,
  organization, total time and its parts (FastCGI read, Redis, each PostgreSQL
  statement, render, write), and counted in /metrics and on the page.
"""
import json
import socket
import threading
import time

import pytest

from conftest import Http, own_stack, scrape, wait_for
import dcstack as dc
import fcgi_client as fc

ORG = dc.DEMO_ORG
SLOWLOG_MS = 300
FIELDS = ["pool", "process manager", "start time", "start since", "accepted conn", "listen queue",
          "max listen queue", "listen queue len", "idle processes", "active processes", "total processes",
          "max active processes", "max children reached", "slow requests"]


@pytest.fixture(scope="module")
def pool():
    env = {**dc.test_app_env(), "SLOWLOG_MS": str(SLOWLOG_MS), "REQUEST_TIMEOUT_MS": "20000"}
    with own_stack("status", workers=2, invalidator=False, app_env=env) as s:
        yield s


def status(http: Http, query: str = "json&full") -> dict:
    r = http.request("GET", http.url("/status") + ("?" + query if query else ""))
    assert r.status == 200, f"GET /status?{query}: 200; got {r}"
    return r.json()


def status_direct(stack, query: str = "json&full") -> dict:
    """/status on a new connection straight to the FastCGI socket: answered by a worker that is free (nginx
    would reuse a kept connection, perhaps to the blocked worker)."""
    st, _, body = fc.request(str(stack.fcgi.socket), "/status", query=query, timeout=10)
    assert st == 200, f"/status?{query} on the FastCGI socket: 200; got {st} {body[:300]!r}"
    return json.loads(body)


def text_fields(body: str) -> dict:
    out = {}
    for ln in body.splitlines():
        if ":" in ln and not ln.startswith("*"):
            k, v = ln.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    return out


def test_text_page_has_php_fpm_fields(pool):
    http = Http(pool.http_url, token=pool.default_token)
    r = http.request("GET", http.url("/status"))
    assert r.status == 200 and r.header("Content-Type").startswith("text/plain"), f"GET /status: text; got {r}"
    f = text_fields(r.body.decode())
    for k in FIELDS:
        assert k in f, f"/status has '{k}:' like php-fpm's; got {r.body.decode()!r}"
    assert f["pool"] == "dashcache" and f["total processes"] == "2", f"2 workers; got {f}"
    assert int(f["listen queue len"]) > 0, f"the backlog, from the kernel; got {f}"
    assert "pid:" not in r.body.decode(), "rows only with ?full"


def test_json_full_rows_are_the_masters_workers(pool):
    http = Http(pool.http_url, token=pool.default_token)
    before = status(http)["accepted conn"]
    for _ in range(10):
        assert http.get("units/status?forceRefresh=true").status == 200
    st = status(http)
    assert st["accepted conn"] >= before + 10, f"accepted conn counts answered requests; {before} → {st}"
    pids = sorted(p["pid"] for p in st["processes"])
    assert pids == sorted(pool.fcgi.workers()), f"a row per live worker: {pids} vs {pool.fcgi.workers()}"
    for p in st["processes"]:
        assert p["rss"] > 1 << 20, f"RSS in bytes, read from /proc: {p}"
        assert p["state"] in ("Idle", "Running") and p["start since"] >= 0, p
    uris = [p["request uri"] for p in st["processes"]]
    assert any(u and "units/status" in u for u in uris) or any(u and u.startswith("GET /status") for u in uris), \
        f"each row names the route in hand or the last one; got {uris}"
    running = [p for p in st["processes"] if p["state"] == "Running"]
    assert len(running) == 1 and running[0]["request uri"] == "GET /status", \
        f"the worker answering the page is the one Running; got {st['processes']}"
    assert st["active processes"] == 1 and st["idle processes"] == 1, st


def test_bad_option_is_a_json_400(pool):
    http = Http(pool.http_url, token=pool.default_token)
    r = http.request("GET", http.url("/status?full=maybe"))
    assert r.is_error(400, "invalid_parameter"), f"GET /status?full=maybe: 400 JSON; got {r}"


def test_nginx_restricts_status_like_metrics():
    conf = (dc.ROOT / "nginx" / "dashcache-locations.conf").read_text()
    block = conf[conf.index("location = /status {"):]
    block = block[:block.index("\n}\n")]
    assert "allow 127.0.0.1;" in block and "deny all;" in block, f"/status is restricted: {block}"


class Lock:
    """ACCESS EXCLUSIVE on alerts held by another session for `hold` s: the alert count's miss waits."""

    def __init__(self, stack, hold: float):
        self.stack, self.hold = stack, hold
        self.t = threading.Thread(target=lambda: stack.postgres.psql(
            f"BEGIN; LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({hold}); COMMIT;"), daemon=True)

    def waiting(self) -> int:
        return int(self.stack.postgres.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%alerts%'"))

    def __enter__(self):
        self.t.start()
        assert wait_for(lambda: self.stack.postgres.psql(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'alerts' "
            "AND l.mode = 'AccessExclusiveLock' AND l.granted") == "1", 5), "the lock is taken"
        return self

    def __exit__(self, *exc):
        self.t.join(self.hold + 10)


def blocked_read(stack, results: list):
    """alerts/count with forceRefresh straight to the FastCGI socket, on a connection of its own."""
    def run():
        t0 = time.monotonic()
        st, _, body = fc.request(str(stack.fcgi.socket), f"/api/dashboard/orgs/{ORG}/alerts/count",
                                 query="forceRefresh=true", timeout=30,
                                 headers={"HTTP_AUTHORIZATION": f"Bearer {stack.default_token}"})
        results.append((st, time.monotonic() - t0))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_busy_worker_queue_and_slow_log(pool):
    http = Http(pool.http_url, token=pool.default_token)
    results, queued = [], []
    slow0 = scrape(http).value("dashboard_slow_requests_total")
    with Lock(pool, 4) as lock:
        t1 = blocked_read(pool, results)
        assert wait_for(lambda: lock.waiting() >= 1, 5), "the first read waits on the lock"
        st = status_direct(pool)  # the other worker answers
        running = [p for p in st["processes"] if p["state"] == "Running" and "alerts/count" in (p["request uri"] or "")]
        assert len(running) == 1 and running[0]["request duration"] > 0, \
            f"the blocked worker shows Running with its route; got {st['processes']}"
        t2 = blocked_read(pool, results)
        assert wait_for(lambda: lock.waiting() >= 2, 5), "the second read, on the other worker, waits too"
        for _ in range(3):  # nobody accepts these: they wait in the listening socket's queue
            queued.append(fc.connect(str(pool.fcgi.socket)))
        time.sleep(1.5)  # the master samples the queue every second
    t1.join(30)
    t2.join(30)
    for s in queued:
        s.close()
    assert [r[0] for r in results] == [200, 200], f"both reads answered once the lock went; got {results}"
    st = status(http)
    assert st["max listen queue"] >= 3, f"the kernel's accept queue, sampled while both were busy; got {st}"
    assert st["max active processes"] == 2, st
    assert st["max children reached"] >= 1, st

    log = pool.fcgi.log_since_start()
    lines = [ln for ln in log.splitlines() if "event=worker.slow" in ln and "alerts/count" in ln]
    assert len(lines) == 2, f"each slow read logged once; got {lines or dc.tail(pool.fcgi.log_path)}"
    for ln in lines:
        for part in (f"org={ORG}", "status=200", "total_ms=", "fcgi_read_ms=", "redis_ms=", "pg_ms=", "pg=[",
                     "render_ms=", "write_ms=", f"SLOWLOG_MS={SLOWLOG_MS}"):
            assert part in ln, f"the slow log line has {part!r}: {ln}"
        total = float(ln.split("total_ms=")[1].split()[0])
        pg = float(ln.split("pg_ms=")[1].split()[0])
        assert total >= SLOWLOG_MS and pg >= SLOWLOG_MS * 0.8, f"the time went to PostgreSQL: {ln}"
        assert "alert" in ln.split("pg=[")[1], f"the statement that waited is named: {ln}"
    m = scrape(http)
    assert m.value("dashboard_slow_requests_total") >= slow0 + 2, "counted in /metrics"
    assert m.value("dashboard_pool_listen_queue_max") >= 3 and m.value("dashboard_pool_max_active_processes") == 2
    assert status(http)["slow requests"] >= 2


def test_fast_requests_are_not_logged(pool):
    http = Http(pool.http_url, token=pool.default_token)
    n0 = pool.fcgi.log_since_start().count("event=worker.slow")
    for _ in range(20):
        assert http.get("units/status").status == 200
    assert pool.fcgi.log_since_start().count("event=worker.slow") == n0, "only requests over SLOWLOG_MS"
