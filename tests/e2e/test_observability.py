"""Observability through nginx: /metrics passes `promtool check metrics` and
sums every worker (K requests spread over the workers add up to K whichever
worker answers the scrape), counters survive a killed worker, histograms are
cumulative with _count equal to the requests, /api/admin/cache/stats, and
/health answering 200 degraded without Redis (stopped or hung) and 503
without PostgreSQL, each within its bound; each statement of a miss, sent
together in one round trip, counted on its own. Ported from
test_90_observability.sh."""
import os
import signal
import subprocess
import time

import pytest

from conftest import QUERY_TYPES, rchar, scrape, wait_for
import dcstack as dc

ORG = dc.DEMO_ORG
FAMILIES = ["dashboard_cache_hit_total", "dashboard_cache_miss_total", "dashboard_cache_error_total",
            "dashboard_cache_latency_seconds", "dashboard_db_queries_total", "dashboard_db_query_duration_seconds",
            "dashboard_http_requests_total", "dashboard_http_request_duration_seconds",
            "dashboard_invalidations_total", "dashboard_invalidation_lag_seconds",
            "dashboard_cache_stale_set_refusals_total", "dashboard_worker_restarts_total", "dashboard_workers",
            "dashboard_invalidator_up",
            # the rest of the README's table
            "dashboard_db_errors_total", "dashboard_invalidation_messages_rejected_total",
            "dashboard_outbox_rows_processed_total"]
K = 400
ROUTE_COUNT = 'dashboard_http_request_duration_seconds_count{route="units"}'


# ------------------------------------------------------------------ /metrics

@pytest.fixture(scope="module")
def first(http):
    return scrape(http)


def test_metrics_answer(first):
    r = first.response
    assert r.status == 200, f"GET /metrics: 200; got {r}"
    assert r.header("Content-Type").startswith("text/plain"), \
        f"GET /metrics: Prometheus text content type; got {r.header('Content-Type')!r}"


def test_promtool_check_metrics(first):
    p = subprocess.run(["promtool", "check", "metrics"], input=first.response.body, capture_output=True,
                       timeout=30)
    assert p.returncode == 0, f"promtool check metrics on a real scrape: {(p.stdout + p.stderr).decode()[:2000]}"


@pytest.mark.parametrize("family", FAMILIES)
def test_family_has_help_and_type(first, family):
    lines = first.text.splitlines()
    assert any(ln.startswith(f"# HELP {family} ") for ln in lines), f"family {family} has HELP"
    assert any(ln.startswith(f"# TYPE {family} ") for ln in lines), f"family {family} has TYPE"


def test_every_query_type_is_there_from_the_start(first):
    # the README promises every known label value from the first scrape
    for fam in ("dashboard_cache_hit_total", "dashboard_cache_miss_total"):
        for q in QUERY_TYPES:
            assert f'{fam}{{query_type="{q}"}}' in first.series, f'{fam}{{query_type="{q}"}} is exposed'


def test_pool_gauges(http, stack):
    m = scrape(http)
    assert m.value("dashboard_workers") == stack.workers, \
        f"all {stack.workers} workers are alive ({m.value('dashboard_workers')})"
    assert m.value("dashboard_invalidator_up") == 1, "the invalidator is up"


def test_k_requests_add_up_whichever_worker_is_scraped(http):
    m = scrape(http)
    before, before_route = m.lookups(), m.value(ROUTE_COUNT)
    res = http.load([http.org_url(ORG, "units/status")] * K, 16)
    assert sum(1 for s, _ in res if s == 200) == K, f"{K} requests answered 200"
    for i in range(1, 9):
        m = scrape(http)
        assert m.lookups() - before == K, f"scrape {i}: hits + misses grew by exactly {K} ({m.lookups() - before})"
    grew = m.value(ROUTE_COUNT) - before_route
    assert grew == K, f"request duration _count of route units grew by {K} ({grew})"
    buckets = [(k, v) for k, v in m.series.items()
               if k.startswith('dashboard_http_request_duration_seconds_bucket{route="units"')]
    les = [float(k.split('le="')[1].split('"')[0]) for k, _ in buckets]
    assert les == sorted(les) and les[-1] == float("inf"), f"buckets of route units in order of le, +Inf last: {les}"
    values = [v for _, v in buckets]
    assert values == sorted(values), f"duration buckets of route units are cumulative: {values}"
    assert m.value('dashboard_http_request_duration_seconds_bucket{route="units",le="+Inf"}') == m.value(ROUTE_COUNT), \
        "+Inf bucket equals _count"


def test_counters_survive_a_killed_worker(http, stack, outage):
    # hits spread over the workers; the victim is one that served many of them
    read = {p: rchar(p) for p in stack.fcgi.workers()}
    http.load([http.org_url(ORG, "units/status")] * 200, 8)
    read = {p: rchar(p) - n for p, n in read.items()}
    m = scrape(http)
    hits, reqs, restarts = (m.sum("dashboard_cache_hit_total"), m.sum("dashboard_http_requests_total"),
                            m.value("dashboard_worker_restarts_total"))
    counters = m.counters()
    master, victim = stack.fcgi.pid(), max(read, key=read.get)
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: not dc.pid_alive(victim), 5), f"worker {victim} is gone"

    def replaced():
        now = stack.fcgi.workers()
        return len(now) == stack.workers and victim not in now
    # scrape only once the successor runs: it is the one that takes over the dead worker's slot
    assert wait_for(replaced, 5) and stack.fcgi.pid() == master, \
        f"{stack.workers} workers again under the same master; got {stack.fcgi.workers()}"
    time.sleep(0.2)  # the successor claims its metrics slot first thing, before it accepts
    res = http.load([http.org_url(ORG, "units/status")] * 40, 8)
    assert all(st == 200 for st, _ in res), "serving after the kill"
    for i in range(1, 7):
        m = scrape(http)
        assert m.sum("dashboard_cache_hit_total") >= hits, \
            f"scrape {i} after the kill: hits never went down ({hits} -> {m.sum('dashboard_cache_hit_total')})"
        assert m.sum("dashboard_http_requests_total") >= reqs, f"scrape {i} after the kill: requests never went down"
        # a dead worker's slot stays in the sum: no series of any counter family goes down
        now = m.counters()
        down = {k: (v, now.get(k)) for k, v in counters.items() if now.get(k, -1) < v}
        assert not down, f"scrape {i} after the kill: every counter series kept its value; went down: {down}"
    assert m.value("dashboard_worker_restarts_total") == restarts + 1, \
        f"the restart is counted ({restarts} -> {m.value('dashboard_worker_restarts_total')})"


# a stats miss sends these in one round trip (the organization check and the four aggregates)
STATS_STATEMENTS = ("org_exists", "units_status", "alerts_org", "devices_online", "compliance")


def test_each_statement_of_a_miss_is_counted(http):
    n = 40
    series = lambda s: (f'dashboard_db_queries_total{{statement="{s}"}}',  # noqa: E731
                        f'dashboard_db_errors_total{{statement="{s}"}}',
                        f'dashboard_db_query_duration_seconds_count{{statement="{s}"}}')
    m = scrape(http)
    before = {s: [m.value(k) for k in series(s)] for s in STATS_STATEMENTS}
    res = http.load([http.org_url(ORG, "stats?forceRefresh=true")] * n, 4)
    assert all(st == 200 for st, _ in res), f"{n} stats misses answered 200: {[st for st, _ in res]}"
    m = scrape(http)
    for s in STATS_STATEMENTS:
        grew = [m.value(k) - b for k, b in zip(series(s), before[s])]
        assert grew == [n, 0, n], \
            f"statement {s}: queries, errors and duration count grew by {n}, 0 and {n}; got {grew}"


# ------------------------------------------------------------------ admin stats

def test_admin_cache_stats(http):
    http.get(http.org_url(ORG, "units/status"))
    http.get(http.org_url(ORG, "units/status"))
    r = http.get("/api/admin/cache/stats")
    assert r.status == 200 and r.is_json(), f"GET /api/admin/cache/stats: 200 JSON; got {r}"
    j = r.json()
    assert isinstance(j.get("hitRate"), (int, float)) and 0 <= j["hitRate"] <= 1, \
        f"hit rate overall is a number in 0..1 ({j.get('hitRate')})"
    u = j.get("queryTypes", {}).get("units", {})
    assert u.get("hits", 0) > 0 and u.get("keys", 0) >= 1, f"per query type: units has hits and keys ({u})"
    assert j.get("redis", {}).get("usedMemoryBytes", 0) > 0, f"Redis memory used is reported ({j.get('redis')})"
    inv = j.get("invalidations", {})
    assert {"write", "outbox", "pubsub"} <= inv.keys(), f"invalidations by source are reported ({inv})"


# ------------------------------------------------------------------ /health

def health_services(r) -> dict:
    j = r.json()
    return j.get("services", {}) if isinstance(j, dict) else {}


def test_health_healthy(http):
    r = http.get("/health")
    assert r.status == 200 and r.is_json(), f"GET /health: 200 JSON; got {r}"
    assert r.json().get("status") == "healthy", f"GET /health: healthy; got {r}"
    s = health_services(r)
    assert all(isinstance(s.get(k), dict) and {"ok", "latencyMs"} <= s[k].keys()
               for k in ("database", "redis", "cache")), f"GET /health: every service has ok and latencyMs; got {r}"
    assert all(s[k]["ok"] is True for k in ("database", "redis", "cache")), f"and every one is ok; got {r}"


def test_health_redis_hung(http, stack, outage):
    outage.pause(stack.redis)
    r = http.get("/health")
    assert r.status == 200 and r.is_json(), f"GET /health with Redis hung (SIGSTOP): 200 JSON; got {r}"
    assert r.json().get("status") == "degraded", f"GET /health with Redis hung: degraded; got {r}"
    assert r.elapsed < 2, f"GET /health with Redis hung: answered within 2 s ({r.elapsed:.3f} s)"


def test_health_redis_stopped(http, stack, outage):
    outage.stop(stack.redis)
    r = http.get("/health")
    assert r.status == 200 and r.is_json(), f"GET /health with Redis stopped: 200 JSON; got {r}"
    s = health_services(r)
    assert r.json().get("status") == "degraded" and s["redis"]["ok"] is False and s["database"]["ok"] is True, \
        f"GET /health with Redis stopped: degraded, redis not ok; got {r}"
    assert r.elapsed < 2, f"GET /health with Redis stopped: answered within 2 s ({r.elapsed:.3f} s)"


def test_health_postgres_stopped(http, stack, outage):
    outage.stop(stack.postgres)
    r = http.get("/health")
    assert r.status == 503, f"GET /health with PostgreSQL stopped: 503; got {r}"
    j = r.json() or {}
    assert j.get("status") == "unhealthy" and health_services(r)["database"]["ok"] is False, \
        f"GET /health with PostgreSQL stopped: unhealthy, database not ok; got {r}"
    assert r.elapsed < 4, f"GET /health with PostgreSQL stopped: answered within 4 s ({r.elapsed:.3f} s)"
    assert r.header("Retry-After").isdigit(), f"GET /health with PostgreSQL stopped: Retry-After; got {r}"
    outage.start(stack.postgres)
    assert wait_for(lambda: http.get("/health").status == 200, 10, 0.2), "GET /health after PostgreSQL is back: 200"
