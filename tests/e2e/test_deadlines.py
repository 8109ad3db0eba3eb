"""Deadlines that hold (issue 11, part 5), on a stack of its own with one
worker, so that /health and the request after it share one database
connection. PostgreSQL hung (SIGSTOP to the postmaster and every backend):
/health answers 503 unhealthy within HEALTH_TIMEOUT_MS, whether the worker's
connection is still there or must be made again (the connect is bounded by
the same budget, never DB_CONNECT_TIMEOUT_SECONDS, twice). A health check
that ran out of time, waiting for an answer or for a connect, does not
close the database for DB_RETRY_INTERVAL_MS: once PostgreSQL answers again,
the next miss is answered at once."""
from __future__ import annotations

import time

import pytest

from conftest import Http, own_stack, postgres_hung, wait_for
import dcstack as dc

HEALTH_MS = 600
RETRY_MS = 30000  # far longer than any test here: a back-off armed by /health would show as a 503
MARGIN_S = 0.4    # nginx, FastCGI and Python around the budget


@pytest.fixture(scope="module")
def one():
    env = {**dc.test_app_env(), "HEALTH_TIMEOUT_MS": str(HEALTH_MS), "DB_RETRY_INTERVAL_MS": str(RETRY_MS),
           "DB_CONNECT_TIMEOUT_SECONDS": "2"}
    with own_stack("deadlines", workers=1, seed=(1, 1, 60), invalidator=False, app_env=env) as s:
        yield s


def assert_unhealthy_in_time(http: Http, what: str):
    r = http.get("/health")
    j = r.json() or {}
    assert r.status == 503 and j.get("status") == "unhealthy", f"GET /health, {what}: 503 unhealthy; got {r}"
    assert r.elapsed < HEALTH_MS / 1000 + MARGIN_S, \
        f"GET /health, {what}: within HEALTH_TIMEOUT_MS {HEALTH_MS} ms + {MARGIN_S} s; took {r.elapsed:.3f} s"
    return r


def test_health_bounded_with_postgres_hung(one):
    http = Http(one.http_url, token=one.default_token)
    assert http.get("/health").status == 200, "the stack is healthy to begin with"
    with postgres_hung(one):
        assert_unhealthy_in_time(http, "PostgreSQL hung, connection open")
        assert_unhealthy_in_time(http, "PostgreSQL hung, the last ping still unanswered")
    assert wait_for(lambda: http.get("/health").status == 200, 5, 0.1), "/health is 200 again"

    # the worker's connection dies with the server: /health must connect again, within its budget
    one.postgres.stop()
    one.postgres.start()
    with postgres_hung(one):
        assert_unhealthy_in_time(http, "PostgreSQL hung, connection to make again")
        assert_unhealthy_in_time(http, "PostgreSQL hung, connect again")
    # a probe's connect that ran out of time closes the database for probes only: a request connects at once
    r = http.get("audit")
    assert r.status == 200 and r.elapsed < 1, f"the first miss after PostgreSQL answers again: 200 at once; got {r}"
    assert http.get("/health").status == 200, "/health is 200 again"


def test_slow_health_does_not_close_the_database(one):
    """Hung a little longer than HEALTH_TIMEOUT_MS, far shorter than DB_RETRY_INTERVAL_MS."""
    http = Http(one.http_url, token=one.default_token)
    assert http.get("audit").status == 200 and http.get("/health").status == 200, "the stack serves to begin with"
    with postgres_hung(one):
        t0 = time.monotonic()
        assert_unhealthy_in_time(http, "PostgreSQL hung")
        time.sleep(max(0.0, HEALTH_MS / 1000 + 0.2 - (time.monotonic() - t0)))
    r = http.get("audit")  # never cached: a query every time
    assert r.status == 200 and r.is_json(), \
        f"the first miss after PostgreSQL answers again: 200 at once (no back-off from /health); got {r}"
    assert r.elapsed < 1, f"... and quickly ({r.elapsed:.3f} s)"
    r = http.get("/health")
    db = ((r.json() or {}).get("services") or {}).get("database") or {}
    assert r.status == 200 and db.get("ok") is True, f"/health: 200, the database ok; got {r}"
