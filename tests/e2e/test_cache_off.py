"""CACHE=off (issue 10): a pool that answers every dashboard read from
PostgreSQL, the baseline of `make bench-mixed`. On a stack of its own (the
shared one caches): every read answers X-Cache: BYPASS, twice in a row, and
the workers send Redis no command for it, so no key is written; writes still
invalidate and are seen by the next read."""
from __future__ import annotations

import pytest

from conftest import Http, own_stack
import dcstack as dc

ORG, UNIT = dc.DEMO_ORG, dc.DEMO_UNIT
READS = ["stats", "units/status", "alerts/count", f"alerts/count?unitId={UNIT}",
         f"units/{UNIT}/temperature/trends", "devices/online", "compliance"]
# what the test itself sends to Redis while it watches
OWN = {"info", "scan", "dbsize", "auth", "ping"}


@pytest.fixture(scope="module")
def off():
    """Two organizations, two workers, CACHE=off; no invalidator, so that every
    command Redis counts meanwhile comes from the workers or from the test."""
    with own_stack("cache-off", workers=2, seed=(2, 1, 60), invalidator=False,
                   app_env={**dc.test_app_env(), "CACHE": "off"}) as s:
        yield s


def commands(redis) -> dict[str, int]:
    """calls per command since Redis started (INFO commandstats), ours left out."""
    out = {}
    for ln in redis("INFO", "commandstats").splitlines():
        if ln.startswith("cmdstat_"):
            name, _, rest = ln[len("cmdstat_"):].partition(":")
            if name not in OWN:
                out[name] = int(rest.split("calls=", 1)[1].split(",", 1)[0])
    return out


def test_cache_off_reads_bypass_redis(off):
    http, redis = Http(off.http_url, token=off.default_token), off.redis.client()
    try:
        keys, before = redis.scan("*"), commands(redis)
        for path in READS:
            first, second = http.get(path), http.get(path)
            for r in (first, second):
                assert r.status == 200 and r.is_json() and r.xcache == "BYPASS", \
                    f"CACHE=off: GET .../{path} answers 200 BYPASS, twice; got {r}"
        assert redis.scan("*") == keys, \
            f"CACHE=off writes no Redis key; new: {sorted(set(redis.scan('*')) - set(keys))[:5]}"
        after = commands(redis)
        assert after == before, \
            f"CACHE=off reads send Redis no command; counts moved: " \
            f"{ {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} }"
    finally:
        redis.close()


def test_cache_off_writes_are_read_at_once(off):
    http = Http(off.http_url, token=off.default_token)
    n = http.get("alerts/count").json()["unresolved"]
    w = http.post("alerts", {"unitId": UNIT, "kind": "cache_off", "message": "seen by the next read"})
    assert w.status == 201, f"a write with CACHE=off is acknowledged; got {w}"
    r = http.get("alerts/count")
    assert r.xcache == "BYPASS" and r.json()["unresolved"] == n + 1, \
        f"the next read shows it ({n} + 1 unresolved, BYPASS); got {r}"
