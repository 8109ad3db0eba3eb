"""Cache-aside through nginx: MISS then HIT with byte-identical bodies, keys as
in fcgi-app/dc_key.h with their TTL, forceRefresh bypasses and repopulates,
audit is never cached, each query and each tenant has its own entry. Ported
from test_30_cache.sh; the tests run in file order on one flushed cache."""
import time

import pytest

from conftest import cache_key, walk
import dcstack as dc

ORG, UNIT = dc.DEMO_ORG, dc.DEMO_UNIT
TTL = int(dc.TEST_APP_ENV["CACHE_TTL_SECONDS"])
MAX_STALE = int(dc.TEST_APP_ENV["CACHE_MAX_STALE_SECONDS"])
# path, and the key its answer is stored under
CACHED = [("stats", cache_key("stats", ORG)),
          ("units/status", cache_key("units", ORG)),
          ("alerts/count", cache_key("alerts", ORG)),
          (f"alerts/count?unitId={UNIT}", cache_key("alerts", ORG, UNIT)),
          (f"units/{UNIT}/temperature/trends", cache_key("temperature", ORG, UNIT, 24)),
          ("devices/online", cache_key("devices", ORG)),
          ("compliance", cache_key("compliance", ORG))]


@pytest.fixture(scope="module", autouse=True)
def flushed(redis):
    redis("FLUSHDB")


@pytest.mark.parametrize("path,key", CACHED, ids=[p for p, _ in CACHED])
def test_miss_then_hit_with_the_same_body(http, redis, path, key):
    first = http.get(path)
    assert first.status == 200 and first.xcache == "MISS", f"first  GET .../{path}: 200 MISS; got {first}"
    second = http.get(path)
    assert second.xcache == "HIT", f"second GET .../{path}: HIT; got {second}"
    assert second.body == first.body, f"second GET .../{path}: byte-identical body"
    # the stored value is "<epoch>.<generation>@<run_id>\n<validator>\n<stored>\n<body>" with this very
    # body, its ETag and the time it was stored
    stored = (redis("GET", key) or "").split("\n", 3)
    assert len(stored) == 4 and stored[3] == first.body.decode(), \
        f"{key} holds the generation, the validator, the time and the body that was answered; got {stored!r:.160}"
    assert abs(int(stored[2]) - time.time()) < 60, f"{key}: stored now; got {stored[2]!r}"
    assert first.header("ETag") == second.header("ETag") == f'W/"{stored[1]}"', \
        f"{key}: its validator is the ETag of both answers; got {stored[1]!r}, {first.header('ETag')!r}"


@pytest.mark.parametrize("key", [k for _, k in CACHED])
def test_keys_have_a_ttl(redis, key):
    ttl = redis("TTL", key)
    # kept CACHE_MAX_STALE_SECONDS past its TTL: served stale when the database fails or while refreshed
    assert MAX_STALE < ttl <= TTL + MAX_STALE, f"{key} exists with a TTL in {MAX_STALE + 1}..{TTL + MAX_STALE}; TTL {ttl}"


def test_only_these_keys(redis):
    want = sorted(k for _, k in CACHED)
    assert sorted(redis.scan(cache_key("all"))) == want, "exactly one key per query asked, as dc_key.h spells them"


def test_force_refresh(http, redis):
    r = http.get("stats?forceRefresh=true")
    assert r.status == 200 and r.is_json(), f"stats?forceRefresh=true: 200 JSON; got {r}"
    assert r.xcache == "BYPASS", f"stats?forceRefresh=true: BYPASS; got {r}"
    again = http.get("stats")
    assert again.xcache == "HIT", f"stats after forceRefresh: HIT; got {again}"
    assert again.body == r.body, "stats after forceRefresh: the refreshed body was stored"
    assert MAX_STALE < redis("TTL", cache_key("stats", ORG)) <= TTL + MAX_STALE, "the refreshed entry has a TTL"
    r = http.get(f"units/{UNIT}/temperature/trends?forceRefresh=true")
    assert r.xcache == "BYPASS", f"trends?forceRefresh=true: BYPASS; got {r}"


def test_audit_is_never_cached(http, redis):
    for i in (1, 2, 3):
        r = http.get("audit")
        assert r.status == 200 and r.xcache == "BYPASS", f"audit GET #{i}: 200 BYPASS; got {r}"
    assert redis.scan("*audit*") == [], "no audit key in Redis"


def longest_list(doc) -> int:
    return max((len(a) for a in walk(doc) if isinstance(a, list)), default=0)


def test_each_query_has_its_own_entry(http, redis, sql):
    h24 = http.get(f"units/{UNIT}/temperature/trends?hours=24")
    n24 = longest_list(h24.json())
    h1 = http.get(f"units/{UNIT}/temperature/trends?hours=1")
    n1 = longest_list(h1.json())
    assert h1.xcache == "MISS", f"trends?hours=1 after hours=24 was cached: MISS; got {h1}"
    assert n1 <= 2 < n24, f"trends?hours=1: not the 24-hour body ({n1} points, 24h had {n24})"
    assert redis("EXISTS", cache_key("temperature", ORG, UNIT, 1)) == 1, "hours=1 has a key of its own"
    again = http.get(f"units/{UNIT}/temperature/trends?hours=24")
    assert again.xcache == "HIT" and again.body == h24.body, \
        f"trends?hours=24 again: HIT, same body as before; got {again}"
    unit2 = sql(f"SELECT id FROM units WHERE org_id = '{ORG}' AND id <> '{UNIT}' ORDER BY name LIMIT 1")
    assert len(unit2) == 36, f"the demo organization has a second unit; got {unit2!r}"
    r = http.get(f"alerts/count?unitId={unit2}")
    assert r.xcache == "MISS", f"alerts/count for another unit: MISS (not the first unit's entry); got {r}"
    assert redis("EXISTS", cache_key("alerts", ORG, unit2)) == 1, "the other unit's count has a key of its own"


def test_tenants_do_not_share_entries(http, redis):
    org2 = dc.org_id(2)
    org1 = http.get("stats")
    assert org1.xcache == "HIT", f"org 1 stats cached; got {org1}"
    r = http.get(http.org_url(org2, "stats"))
    assert r.xcache == "MISS", f"org 2 stats after org 1's was cached: MISS; got {r}"
    body = r.body.decode()
    assert org2 in body and ORG not in body, f"org 2 stats names org 2 only; got {r}"
    again = http.get(http.org_url(org2, "stats"))
    assert again.xcache == "HIT", f"org 2 stats again: HIT; got {again}"
    assert again.body != org1.body, "org 2 stats is not org 1's body"
    assert redis("EXISTS", cache_key("stats", org2)) == 1, "org 2 has its own stats key"


def test_reads_answered_as_one_batch_each_get_their_own(stack, http, sql):
    """A worker answers the reads that arrive together as one batch, their Redis
    lookups in one round trip (issue 10). Made certain here: the workers are
    stopped (SIGSTOP) while 36 reads of 12 organizations arrive on 36 kept FastCGI
    connections, then continued, so each finds many requests ready at once. Every
    answer must be its own request's: the hit of its organization and query."""
    import os
    import signal
    import fcgi_client as fc
    orgs = sql("SELECT id FROM organizations ORDER BY id LIMIT 12").split()
    paths = [f"/api/dashboard/orgs/{o}/{q}" for o in orgs for q in ("stats", "devices/online", "alerts/count")]
    expected = {}
    for p in paths:  # warm: every one a hit from now on
        r = http.get(http.url(p))
        assert r.status == 200, r
        expected[p] = r.body
    auth = {"HTTP_AUTHORIZATION": f"Bearer {stack.default_token}"}
    conns = [fc.connect(str(stack.fcgi.socket), timeout=10) for _ in paths]
    workers = stack.fcgi.workers()
    try:
        for w in workers:
            os.kill(w, signal.SIGSTOP)
        try:
            for s, p in zip(conns, paths):
                s.sendall(fc.encode_request(p, keep_conn=True, headers=auth))
        finally:
            for w in workers:
                os.kill(w, signal.SIGCONT)
        got = [fc.Reader(s).response() for s in conns]
    finally:
        for s in conns:
            s.close()
    wrong = [(p, st, h.get("x-cache"), b[:80]) for p, (st, h, b) in zip(paths, got)
             if st != 200 or h.get("x-cache") != "HIT" or b != expected[p]]
    assert not wrong, f"{len(wrong)} of {len(paths)} answers not the HIT of their own request: {wrong[:3]}"
