"""Conditional requests through nginx: every dashboard 200 carries a weak ETag
(the validator of its data) and Cache-Control: private, no-cache; If-None-Match
naming it (alone, in a list, weak or not, or *) is a 304 without a body that
keeps ETag and X-Cache; a write that changes the data changes the ETag, an
invalidation that changes nothing else keeps it (304 after a MISS); HEAD works
the same; errors and writes stay no-store without a validator; /metrics counts
the 304s."""
import json
import re

import pytest

from conftest import cache_key, scrape, wait_for

ETAG = re.compile(r'^W/"[0-9a-f]{16}"$')


@pytest.fixture(scope="module")
def org3(sql):
    import dcstack as dc
    o = dc.org_id(3)
    unit = sql(f"SELECT id FROM units WHERE org_id = '{o}' ORDER BY name LIMIT 1")
    return o, unit


def paths(unit):
    return ["stats", "units/status", "alerts/count", f"alerts/count?unitId={unit}",
            f"units/{unit}/temperature/trends", "devices/online", "compliance", "audit?limit=5"]


def inm(http, url, value, method="GET"):
    return http.request(method, url, headers={"If-None-Match": value})


def assert_not_modified(r, etag, xcache, what):
    assert r.status == 304, f"{what}: 304; got {r}"
    assert r.body == b"", f"{what}: no body; got {r.body[:80]!r}"
    assert r.header("ETag") == etag, f"{what}: the same ETag {etag}; got {r.header('ETag')!r}"
    assert r.xcache in xcache.split("|"), f"{what}: X-Cache {xcache}; got {r.xcache!r}"
    assert r.header("Cache-Control") == "private, no-cache", f"{what}: Cache-Control; got {r.header('Cache-Control')!r}"
    # what nginx makes of the worker's 304 (no Content-Length either): a header-only answer
    assert r.header("Content-Length") == "" and r.header("Transfer-Encoding") == "", \
        f"{what}: neither Content-Length nor chunked; got {r.headers.items()}"


def test_every_dashboard_200_has_a_validator(http, org3):
    org, unit = org3
    for p in paths(unit):
        for _ in range(2):  # MISS (or BYPASS for audit), then HIT
            r = http.get(http.org_url(org, p))
            assert r.status == 200, f"GET {p}: 200; got {r}"
            assert ETAG.match(r.header("ETag")), f"GET {p}: ETag W/\"<16 hex>\"; got {r.header('ETag')!r}"
            assert r.header("Cache-Control") == "private, no-cache", \
                f"GET {p} ({r.xcache}): Cache-Control: private, no-cache; got {r.header('Cache-Control')!r}"


def test_if_none_match_is_a_304_without_body(http, org3):
    org, unit = org3
    for p in paths(unit):
        url = http.org_url(org, p)
        first = http.get(url)
        etag, opaque = first.header("ETag"), first.header("ETag")[2:]
        for value in (etag, opaque, f'"0000000000000000", {etag}', f'W/"0000000000000000",{opaque}', "*"):
            r = inm(http, url, value)
            assert_not_modified(r, etag, "BYPASS" if p.startswith("audit") else "HIT",
                                f"GET {p} with If-None-Match: {value}")
        r = inm(http, url, 'W/"0000000000000000", "ffffffffffffffff"')
        assert r.status == 200 and r.header("ETag") == etag and r.json() is not None, \
            f"GET {p} with another validator: the full 200; got {r}"


def test_head(http, org3):
    org, unit = org3
    url = http.org_url(org, f"units/{unit}/temperature/trends")
    get = http.get(url)
    r = http.head(url)
    assert r.status == 200 and r.body == b"", f"HEAD: 200 without a body; got {r}"
    assert r.header("ETag") == get.header("ETag"), f"HEAD: the GET's ETag; got {r.header('ETag')!r}"
    assert r.header("Content-Length") == str(len(get.body)), f"HEAD: the GET's Content-Length; got {r}"
    assert_not_modified(inm(http, url, get.header("ETag"), "HEAD"), get.header("ETag"), "HIT",
                        "HEAD with If-None-Match")


def test_a_write_that_changes_the_data_changes_the_etag(http, org3):
    org, unit = org3
    url = http.org_url(org, "alerts/count")
    before = http.get(url)
    etag = before.header("ETag")
    assert_not_modified(inm(http, url, etag), etag, "HIT", "alerts/count before the write")
    w = http.post(http.org_url(org, "alerts"), {"unitId": unit, "kind": "door_open", "message": "conditional"})
    assert w.status == 201, f"POST alerts: 201; got {w}"
    assert w.header("ETag") == "" and w.header("Cache-Control") == "no-store", f"a write: no-store, no ETag; got {w}"
    after = inm(http, url, etag)
    assert after.status == 200 and after.xcache == "MISS", f"after the write: the full 200, read again; got {after}"
    assert ETAG.match(after.header("ETag")) and after.header("ETag") != etag, \
        f"after the write: another ETag than {etag}; got {after.header('ETag')!r}"
    assert after.json()["unresolved"] == before.json()["unresolved"] + 1, f"after the write: one more; got {after}"
    # HIT, or MISS once more when the write's outbox row was applied in between
    assert_not_modified(inm(http, url, after.header("ETag")), after.header("ETag"), "HIT|MISS", "the new ETag")


def test_an_invalidation_that_changes_nothing_keeps_the_etag(http, redis, org3):
    org, unit = org3
    # answers whose data does not move with the clock on its own (devices online and trends would)
    urls = [http.org_url(org, p) for p in ("units/status", "alerts/count", "compliance")]
    etags = [http.get(u).header("ETag") for u in urls]
    gen = redis("GET", cache_key("gen", org, qtype="units"))
    redis("PUBLISH", "cache:invalidate", json.dumps({"orgId": org}))
    assert wait_for(lambda: redis("GET", cache_key("gen", org, qtype="units")) != gen, 2.0), "the generation moved"
    for u, etag in zip(urls, etags):
        # read from the database again (generatedAt is new), the data is the same: 304
        assert_not_modified(inm(http, u, etag), etag, "MISS", f"{u} after an invalidation only")


def test_errors_have_no_validator(http, org3):
    org, _ = org3
    r = inm(http, http.org_url(org, "units/00000000-0000-4000-8000-000000000000/temperature/trends"), "*")
    assert r.is_error(404, "unit_not_found"), f"an unknown unit with If-None-Match: *: the 404; got {r}"
    assert r.header("ETag") == "" and r.header("Cache-Control") == "no-store", f"an error: no-store, no ETag; got {r}"
    r = inm(http, http.org_url(org, f"units/{org3[1]}/temperature/trends?hours=0"), "*")
    assert r.status == 400 and r.header("ETag") == "", f"a bad parameter with If-None-Match: the 400; got {r}"


def test_304s_are_counted(http, org3):
    org, _ = org3
    url = http.org_url(org, "devices/online")
    etag = http.get(url).header("ETag")
    series = 'dashboard_http_requests_total{route="devices",status="304"}'
    before = scrape(http).value(series)
    for _ in range(3):
        assert inm(http, url, etag).status == 304
    assert wait_for(lambda: scrape(http).value(series) >= before + 3, 2.0), \
        f"{series} counts the 304s ({before} before, {scrape(http).value(series)} after)"
