"""Circuit breakers shared by the host (issue 12, part 1), on a stack of its own
with four workers. Redis hung (SIGSTOP): once its breaker opens, requests are
answered from PostgreSQL without paying a Redis timeout each, and the host
touches Redis about once per BREAKER_OPEN_MS (its one half-open probe), not
once per worker; Redis continued: the breaker closes and hits come back.
PostgreSQL hung: once its breaker opens, misses get a JSON 503 with
Retry-After at once, hits are still served; continued: it closes."""
from __future__ import annotations

import contextlib
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Http, own_stack, postgres_hung, scrape, wait_for
import dcstack as dc

OPEN_MS = 1000
REDIS_TIMEOUT_MS = 300  # a request that touches hung Redis pays this: easy to tell from one that does not
FAST_S = 0.05           # an answer that paid no timeout (nginx, FastCGI, PostgreSQL or a 503)
WATCH_S = 3.0           # how long the open breaker is watched: three OPEN_MS
CLIENTS = 4             # as many as workers: every worker serves
UNIT = dc.DEMO_UNIT
PATHS = ["stats", "units/status", "alerts/count", "devices/online", "compliance", f"units/{UNIT}/temperature/trends"]


@pytest.fixture(scope="module")
def host():
    env = {**dc.test_app_env(), "BREAKER_OPEN_MS": str(OPEN_MS), "BREAKER_FAILURES": "3",
           "REDIS_CONNECT_TIMEOUT_MS": str(REDIS_TIMEOUT_MS), "REDIS_COMMAND_TIMEOUT_MS": str(REDIS_TIMEOUT_MS),
           "DB_STATEMENT_TIMEOUT_MS": "500", "DB_CONNECT_TIMEOUT_SECONDS": "1"}
    with own_stack("breakers", workers=4, seed=(2, 1, 60), app_env=env) as s:
        yield s


@pytest.fixture
def http(host) -> Http:
    h = Http(host.http_url, token=host.default_token)
    assert wait_for(lambda: h.get("stats").status == 200, 10, 0.1), "the stack serves"
    return h


def breaker(http: Http, dep: str) -> float:
    return scrape(http).value(f'dashboard_breaker_state{{dependency="{dep}"}}')


def transitions(http: Http, dep: str, to: str) -> float:
    return scrape(http).value(f'dashboard_breaker_transitions_total{{dependency="{dep}",to="{to}"}}')


def open_by_requests(http: Http, dep: str, paths, timeout: float) -> None:
    """Requests until DEP's breaker is open (the failures that open it are paid here)."""
    def opened():
        for p in paths:
            http.get(p)
        return breaker(http, dep) == 1
    assert wait_for(opened, timeout, 0), f"the {dep} breaker opens within {timeout} s of requests"


@contextlib.contextmanager
def redis_hung(stack):
    stack.redis.signal(signal.SIGSTOP)
    try:
        assert wait_for(lambda: (dc.proc_stat(stack.redis.pid()) or ("?",))[0] == "T", 5), "Redis stopped"
        yield
    finally:
        stack.redis.signal(signal.SIGCONT)


def test_redis_hung_breaker_opens_answers_fast_probes_once_per_open_ms_closes(host, http):
    http.get("stats")
    assert wait_for(lambda: http.get("stats").xcache == "HIT", 5, 0.1), "warm-up: stats HIT"
    closed_before = transitions(http, "redis", "closed")
    with redis_hung(host):
        open_by_requests(http, "redis", PATHS, 15)
        m0, t0 = scrape(http), time.monotonic()
        answers = []

        def one(p):
            r = http.get(p)
            assert r.status == 200 and r.xcache == "BYPASS", f"Redis hung, breaker open: 200 BYPASS; got {r}"
            return r.elapsed
        # four clients, so that every worker serves (a worker alone would pay a timeout per back-off)
        with ThreadPoolExecutor(CLIENTS) as ex:
            while time.monotonic() - t0 < WATCH_S:
                answers += list(ex.map(one, PATHS * CLIENTS))
        m1 = scrape(http)
        probes = m1.value('dashboard_breaker_transitions_total{dependency="redis",to="half_open"}') - \
            m0.value('dashboard_breaker_transitions_total{dependency="redis",to="half_open"}')
        errors = m1.sum("dashboard_cache_error_total") - m0.sum("dashboard_cache_error_total")
        slow = [e for e in answers if e >= FAST_S]
        most = WATCH_S * 1000 / OPEN_MS + 1
        print(f"redis hung, breaker open {WATCH_S} s: {len(answers)} answers, {len(slow)} slow "
              f"(max {max(answers):.3f} s), {probes:.0f} probes, {errors:.0f} cache errors")
        # the host's one probe per OPEN_MS, whichever worker: not one per worker per REDIS_RETRY_INTERVAL_MS
        assert errors <= most, f"Redis touched only by the probes: {errors} Redis errors in {WATCH_S} s"
        assert 1 <= probes <= most, f"one half-open probe per {OPEN_MS} ms on the host; got {probes} in {WATCH_S} s"
        # a probe pays the timeout, and so may the requests queued behind it on its worker: a few in thousands
        assert len(slow) <= len(answers) / 100, \
            f"only probes pay the Redis timeout: {len(slow)} of {len(answers)} answers took {FAST_S} s or more " \
            f"({probes:.0f} probes)"
    assert wait_for(lambda: http.get("stats").status == 200 and breaker(http, "redis") == 0, 5, 0.1), \
        f"the redis breaker closes within {OPEN_MS} ms of Redis answering again"
    assert transitions(http, "redis", "closed") == closed_before + 1, "one transition to closed, for the host"
    assert wait_for(lambda: http.get("stats").xcache == "HIT", 10, 0.2), "hits come back"


def test_postgres_hung_breaker_opens_misses_503_at_once_hits_served_closes(host, http):
    http.get("stats")
    assert wait_for(lambda: http.get("stats").xcache == "HIT", 5, 0.1), "warm-up: stats HIT"
    with postgres_hung(host):
        open_by_requests(http, "postgres", ["audit"], 30)
        t0, answers = time.monotonic(), []

        def one(p):
            r = http.get(p)
            if p == "audit":  # never cached: always a miss
                assert r.is_error(503, "database_unavailable") and r.header("Retry-After").isdigit(), \
                    f"a miss, PostgreSQL's breaker open: JSON 503 with Retry-After; got {r}"
            else:
                assert r.status == 200 and r.xcache == "HIT", f"a hit, PostgreSQL's breaker open: 200 HIT; got {r}"
            return p, r.elapsed
        with ThreadPoolExecutor(CLIENTS) as ex:
            while time.monotonic() - t0 < WATCH_S:
                answers += list(ex.map(one, ["audit", "stats"] * 8))
        misses = sum(1 for p, _ in answers if p == "audit")
        slow = [round(e, 3) for p, e in answers if p == "audit" and e >= FAST_S]
        print(f"postgres hung, breaker open {WATCH_S} s: {misses} misses, {len(slow)} slow {slow}")
        # the one probe per OPEN_MS may be a request's (it pays the deadline, and so may the requests queued
        # behind it on its worker); every other miss is answered at once (without the breaker: 6 of 24 slow)
        assert len(slow) <= misses / 20, \
            f"misses answered 503 in under {FAST_S} s but for the probes; slow: {slow} of {misses}"
    assert wait_for(lambda: http.get("audit").status == 200 and breaker(http, "postgres") == 0, 10, 0.1), \
        "the postgres breaker closes once PostgreSQL answers again"
