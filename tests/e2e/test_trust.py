"""The cache stops serving hits host-wide when Redis does not take writes, and
resumes by itself (issue 11, part 1): Redis refusing writes (maxmemory under
noeviction), a read-only replica (REPLICAOF), writes paused (CLIENT PAUSE
WRITE). And everything at once is one write of the epoch (part 4).

Each test runs on a stack of its own (these states are Redis-wide), with the
defaults of .env.example: TRUST_PROBE_INTERVAL_MS=250, so hits stop within
1 s of a refusal on a host that saw none of it, at once on a host that did.
"""
import json
import threading
import time

import pytest

from conftest import Http, own_stack, scrape, wait_for
import dcstack as dc

ORG, UNIT = dc.DEMO_ORG, dc.DEMO_UNIT
STOP_BOUND = 1.0  # seconds: (1 + 3) probe intervals of 250 ms


@pytest.fixture(scope="module")
def stack():
    with own_stack("trust", workers=3) as s:
        yield s


@pytest.fixture
def http(stack) -> Http:
    return Http(stack.http_url, token=stack.default_token)


@pytest.fixture
def redis(stack):
    c = stack.redis.client()
    yield c
    # whatever the test did to Redis is undone, and the cache serves again
    c("CONFIG", "SET", "maxmemory", "0")
    c("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    c("REPLICAOF", "NO", "ONE")
    c("CLIENT", "UNPAUSE")
    c.close()


def unresolved(http: Http) -> tuple[int, object]:
    r = http.get("alerts/count")
    assert r.status == 200, r
    return r.json()["unresolved"], r


def database_unresolved(stack) -> int:
    out = dc.psql(stack.database_url, "SELECT count(*) FROM alerts WHERE org_id = '%s' AND resolved_at IS NULL"
                  % ORG)
    return int(out.strip())


def warm(http: Http) -> None:
    assert wait_for(lambda: unresolved(http)[1].xcache == "HIT", 10, 0.05), \
        f"alerts/count is a HIT before the fault; got {unresolved(http)[1]}"


def hits_stop_within(http: Http, bound: float) -> float:
    """Seconds until a read is no HIT (every read in between counted)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < bound + 2:
        r = http.get("stats")
        assert r.status == 200, r
        if r.xcache == "BYPASS":
            return time.monotonic() - t0
        time.sleep(0.02)
    pytest.fail(f"hits did not stop within {bound + 2} s")


def hits_resume(http: Http, within: float = 10) -> None:
    http.get("stats")
    assert wait_for(lambda: http.get("stats").xcache == "HIT", within, 0.05), \
        f"hits resume within {within} s; last: {http.get('stats')}"


def test_refused_write_stops_hits_before_it_is_acknowledged(stack, http, redis):
    """maxmemory under noeviction: the write's invalidation is refused, yet no read
    that starts after its acknowledgment is stale, on any worker; the event waits
    until the invalidation is applied; hits resume once Redis takes writes."""
    warm(http)
    before, _ = unresolved(http)
    sub = stack.redis.client(timeout=15)
    events, subscribed = [], threading.Event()

    def consumer():
        sub.subscribe("dashboard:events")
        subscribed.set()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not events:
            m = sub.message(timeout=max(0.1, deadline - time.monotonic()))
            if m and "alertCreated" in m:
                events.append((time.monotonic(), m))

    t = threading.Thread(target=consumer)
    t.start()
    assert subscribed.wait(10)
    redis("CONFIG", "SET", "maxmemory-policy", "noeviction")
    redis("CONFIG", "SET", "maxmemory", "1")
    w = http.post("alerts", {"unitId": UNIT, "kind": "door_open", "message": "refused invalidation"})
    assert w.status == 201, w
    # every read from now on, whichever worker answers it, sees the write
    for i in range(12):
        n, r = unresolved(http)
        assert n == before + 1, f"read #{i} after the acknowledgment: {n} unresolved, want {before + 1}; {r}"
        assert r.xcache == "BYPASS", f"read #{i}: hits stopped; got {r}"
    h = http.get("/health").json()
    assert h["services"]["cache"]["ok"] is False, h
    time.sleep(0.5)
    assert not events, f"the event waits for its invalidation: {events}"
    m = scrape(http)
    assert m.value("dashboard_cache_hits_allowed") == 0, m.text[:2000]
    redis("CONFIG", "SET", "maxmemory", "0")
    redis("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    t_back = time.monotonic()
    hits_resume(http)
    unresolved(http)
    n, r = unresolved(http)
    assert n == before + 1 and r.xcache == "HIT", r
    t.join(15)
    sub.close()
    assert events, "the deferred event was published once the invalidation was applied"
    assert events[0][0] >= t_back - 0.05, "published only after Redis took writes again"
    assert database_unresolved(stack) == before + 1


@pytest.mark.parametrize("fault", ["readonly", "paused"])
def test_host_that_only_reads_stops_hits_within_the_bound(stack, http, redis, fault):
    """No write through this host at all: its write probe finds out."""
    warm(http)
    if fault == "readonly":
        redis("REPLICAOF", dc.HOST, str(dc.free_port()))  # a primary that is not there: read-only
    else:
        redis("CLIENT", "PAUSE", "3000", "WRITE")
    took = hits_stop_within(http, STOP_BOUND)
    assert took <= STOP_BOUND + 0.3, f"{fault}: hits stopped after {took:.2f} s, bound {STOP_BOUND} s"
    if fault == "readonly":
        redis("REPLICAOF", "NO", "ONE")
    else:
        redis("CLIENT", "UNPAUSE")
    hits_resume(http)


def test_plain_sql_write_with_the_invalidator_away_stops_hits(stack, http, redis):
    """The outbox part of the probe: a write that only the invalidator can apply
    (plain SQL), while it is stopped, holds hits back until it is applied."""
    warm(http)
    before, _ = unresolved(http)
    stack.invalidator.stop()
    try:
        dc.psql(stack.database_url, "INSERT INTO alerts (id, org_id, unit_id, kind, message) VALUES "
                f"(gen_random_uuid(), '{ORG}', '{UNIT}', 'door_open', 'plain sql')")
        took = hits_stop_within(http, STOP_BOUND)
        assert took <= STOP_BOUND + 0.3, f"hits stopped after {took:.2f} s"
        n, r = unresolved(http)
        assert n == before + 1 and r.xcache == "BYPASS", r
    finally:
        stack.start_invalidator()
    hits_resume(http)
    n, r = unresolved(http)
    assert n == before + 1, r


def test_everything_at_once_is_one_write_of_the_epoch(stack, http, redis):
    """{"pattern":"dashboard:*","scope":"all"}: every answer is a miss next, and the
    keys were not scanned away (the epoch moved; the values are left to expire)."""
    warm(http)
    epoch = redis("GET", "dashcache:epoch")
    keys = redis("DBSIZE")
    redis("PUBLISH", "cache:invalidate", json.dumps({"pattern": "dashboard:*", "scope": "all"}))
    assert wait_for(lambda: redis("GET", "dashcache:epoch") != epoch, 5), "the epoch moved"
    assert redis("DBSIZE") >= keys - 1, "nothing was scanned away"
    r = http.get("alerts/count")
    assert r.xcache == "MISS", r
