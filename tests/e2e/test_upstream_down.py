"""The FastCGI master stopped with SIGTERM: it exits by itself, promptly and
with status 0, its workers go with it and its socket is removed; nginx answers
JSON 502 with Retry-After; started again, the API serves. Ported from
test_50_upstream_down.sh."""
import signal
import time

from conftest import wait_for
import dcstack as dc

UNIT = dc.DEMO_UNIT


def test_master_stopped_then_started(http, stack, outage):
    fcgi = stack.fcgi
    r = http.get("stats")
    assert r.status == 200, f"serving before the stop; got {r}"
    master, workers = fcgi.pid(), fcgi.workers()
    assert master and workers, "a master with workers"
    # SIGTERM through the handle and nothing after it (no SIGKILL escalation as
    # in Service.stop), so that a master that hangs on SIGTERM fails here
    t0 = time.monotonic()
    outage.send(fcgi, signal.SIGTERM)
    assert wait_for(lambda: fcgi.exit_status() is not None, 10), "SIGTERM stopped the master within 10 s"
    took = time.monotonic() - t0
    assert fcgi.exit_status() == 0, f"the master exited 0 after SIGTERM (status {fcgi.exit_status()}, {took:.1f} s)"

    def alive():
        return [p for p in [master] + workers if dc.pid_alive(p)]
    assert wait_for(lambda: not alive(), 5), f"no master or worker left (alive: {alive()})"
    assert not fcgi.socket.exists(), f"the socket {fcgi.socket} was removed"

    for path in ("stats", f"units/{UNIT}/temperature/trends", "audit"):
        r = http.get(path)
        assert r.is_error(502, "upstream_unavailable"), f"GET .../{path}: JSON 502; got {r}"
        assert r.header("Retry-After").isdigit() and int(r.header("Retry-After")) > 0, \
            f"GET .../{path}: Retry-After in seconds; got {r.header('Retry-After')!r}"
    r = http.get("/health")
    assert r.is_error(502, "upstream_unavailable"), f"GET /health: JSON 502; got {r}"
    r = http.get("/nope")
    assert r.is_error(404, "not_found"), f"GET /nope: still nginx's JSON 404; got {r}"

    outage.start(fcgi)
    assert wait_for(lambda: http.get("stats").status == 200, 10, 0.2), "serving again within 10 s"
    r = http.get("/health")
    assert r.status == 200 and r.is_json(), f"GET /health: 200 JSON; got {r}"
    assert r.json().get("status") == "healthy", f"GET /health: healthy again; got {r}"
