"""Writes and invalidation through nginx, with dashcache-invalidator running:
the write endpoints and their errors, events announced only after the
invalidation, the consistency checker under concurrent reads and writes,
external SQL writes invalidated through the outbox within the bound, pub/sub
pattern messages (exact keys, no other tenant, hostile ones refused), and the
invalidator killed during writes then restarted. Ported from
test_80_invalidation.sh; the tests run in file order and share the stack."""
import json
import os
import threading
import time
import urllib.request

import pytest

import consistency
from conftest import QUERY_TYPES, cache_key, wait_for
import dcstack as dc


@pytest.fixture(scope="module")
def ids(sql):
    o2, o3, o5 = dc.org_id(2), dc.org_id(3), dc.org_id(5)
    unit = {o: sql(f"SELECT id FROM units WHERE org_id = '{o}' ORDER BY name LIMIT 1") for o in (o2, o3, o5)}
    device = sql(f"SELECT id FROM devices WHERE unit_id = '{unit[o2]}' ORDER BY serial LIMIT 1")
    assert all(unit.values()) and device, "demo organizations 2, 3, 5 have units and devices"
    return {"org2": o2, "org3": o3, "org5": o5, "unit2": unit[o2], "unit3": unit[o3], "unit5": unit[o5],
            "device": device}


@pytest.fixture(autouse=True)
def invalidator_back(stack):
    """Whatever a test did, the invalidator runs again after it."""
    yield
    if not stack.invalidator.running():
        stack.invalidator.start()


def open_alerts(sql, org) -> int:
    return int(sql(f"SELECT count(*) FROM alerts WHERE org_id = '{org}' AND resolved_at IS NULL"))


def pending(sql) -> int:
    return int(sql("SELECT count(*) FROM cache_outbox WHERE processed_at IS NULL"))


def unresolved(http, org):
    r = http.get(http.org_url(org, "alerts/count"))
    j = r.json()
    return (j.get("unresolved") if isinstance(j, dict) else None), r


def insert_alert_sql(sql, org, unit, n=1):
    sql(f"INSERT INTO alerts (id, org_id, unit_id, kind, message) "
        f"SELECT gen_random_uuid(), '{org}', '{unit}', 'external', 'written by another service' "
        f"FROM generate_series(1, {n})")


# ------------------------------------------------------------------ write endpoints

def test_create_and_resolve_alert(http, ids):
    o2, o3 = ids["org2"], ids["org3"]
    r = http.post(http.org_url(o2, "alerts"), {"unitId": ids["unit2"], "kind": "door_open", "message": "Door open"})
    assert r.status == 201 and r.is_json(), f"POST alerts: 201 JSON; got {r}"
    alert = r.json().get("id") or ""
    assert len(alert) == 36, f"POST alerts: answers the new id; got {r}"
    r = http.post(http.org_url(o2, f"alerts/{alert}/resolve"))
    assert r.status == 200 and r.is_json(), f"POST resolve: 200 JSON; got {r}"
    assert r.json().get("status") == "resolved", f"POST resolve: status resolved; got {r}"
    r = http.post(http.org_url(o2, f"alerts/{alert}/resolve"))
    assert r.is_error(409, "alert_already_resolved"), f"POST resolve again: 409, nothing changed; got {r}"
    r = http.post(http.org_url(o3, f"alerts/{alert}/resolve"))
    assert r.is_error(404, "alert_not_found"), f"POST resolve through another tenant: 404; got {r}"


def test_device_status(http, ids):
    r = http.post(http.org_url(ids["org2"], f"devices/{ids['device']}/status"), {"online": True})
    assert r.status == 200 and r.is_json(), f"POST device status: 200 JSON; got {r}"
    r = http.post(http.org_url(ids["org3"], f"devices/{ids['device']}/status"), {"online": False})
    assert r.is_error(404, "device_not_found"), f"POST device status through another tenant: 404; got {r}"


def test_ingest(http, ids):
    d = ids["device"]
    # a late reading, within READINGS_RETENTION_DAYS
    an_hour_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    r = http.post("/api/ingest/readings", [{"deviceId": d, "temperature": 4.2},
                                           {"deviceId": d, "temperature": 4.4, "recordedAt": an_hour_ago}])
    assert r.status == 200 and r.is_json(), f"POST ingest: 200 JSON; got {r}"
    assert r.json().get("accepted") == 2, f"POST ingest: accepted 2; got {r}"


def test_ingest_bad_element_stores_nothing(http, sql, ids):
    d = ids["device"]
    before = sql(f"SELECT count(*) FROM readings WHERE device_id = '{d}'")
    r = http.post("/api/ingest/readings", [{"deviceId": d, "temperature": 4.2}, {"deviceId": d, "temperature": "hot"}])
    assert r.is_error(400, "invalid_reading"), f"POST ingest with a bad element: 400; got {r}"
    assert r.json()["error"].get("index") == 1, f"POST ingest with a bad element: reported by index; got {r}"
    assert sql(f"SELECT count(*) FROM readings WHERE device_id = '{d}'") == before, \
        "POST ingest with a bad element: nothing stored"


def test_bad_requests(http, ids):
    o2 = ids["org2"]
    r = http.post(http.org_url(o2, "alerts"), '{"unitId":')
    assert r.is_error(400, "invalid_json"), f"POST alerts with broken JSON: 400; got {r}"
    r = http.post(http.org_url(o2, f"devices/{ids['device']}/status"), '{"online":true}', content_type="text/plain")
    assert r.is_error(415, "unsupported_media_type"), f"POST with Content-Type text/plain: 415; got {r}"
    r = http.get(http.org_url(o2, "alerts"))
    assert r.is_error(405, "method_not_allowed"), f"GET on a write route: 405; got {r}"
    assert r.header("Allow") == "POST", f"GET on a write route: Allow: POST; got {r.header('Allow')!r}"
    r = http.post(http.org_url(o2, "alerts"), b"x" * 20000)
    assert r.is_error(413, "payload_too_large"), f"POST alerts with a 20 kB body: 413 JSON; got {r}"


# ------------------------------------------------------------------ events

def test_invalidation_comes_before_the_event(http, sql, stack, ids):
    o2 = ids["org2"]
    unresolved(http, o2)
    _, r = unresolved(http, o2)
    assert r.xcache == "HIT", f"alerts/count of org 2 cached; got {r}"
    sub = stack.redis.client(timeout=10)
    seen = {}
    subscribed = threading.Event()

    def consumer():
        sub.subscribe("dashboard:events")
        subscribed.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = sub.message(timeout=max(0.1, deadline - time.monotonic()))
            if m and "alertCreated" in m:  # re-read the dashboard at once, as a consumer would
                req = urllib.request.Request(http.org_url(o2, "alerts/count"), headers=http.auth_header())
                with urllib.request.urlopen(req, timeout=5) as resp:
                    seen["unresolved"] = json.load(resp)["unresolved"]
                return

    t = threading.Thread(target=consumer)
    t.start()
    assert subscribed.wait(10), "subscribed to dashboard:events"
    r = http.post(http.org_url(o2, "alerts"), {"unitId": ids["unit2"], "kind": "door_open", "message": "again"})
    t.join(15)
    sub.close()
    assert r.status == 201, f"POST alerts while a consumer listens: 201; got {r}"
    db = open_alerts(sql, o2)
    assert seen.get("unresolved") == db, \
        f"a consumer reading on the event sees the write (read {seen.get('unresolved', 'none')}, database {db})"


# ------------------------------------------------------------------ consistency checker

def test_no_stale_read_under_concurrent_readers_and_writers(stack, ids):
    res = consistency.check(stack.http_url, ids["org2"], ids["unit2"],
                            float(os.environ.get("E2E_CONSISTENCY_SECONDS", 6)), token=stack.default_token)
    print(res.summary())
    assert not res.stale, res.summary()
    assert not res.errors, res.summary()
    assert res.enough, f"enough reads (>= 100), acknowledged writes (>= 10) and hits to judge: {res.summary()}"


# ------------------------------------------------------------------ outbox

def test_sql_writes_are_invalidated_through_the_outbox(http, sql, ids):
    o3 = ids["org3"]
    since = sql("SELECT clock_timestamp()")
    worst, total, cached = 0.0, 0.0, []
    for _ in range(10):
        unresolved(http, o3)
        old, r = unresolved(http, o3)
        cached.append(r.xcache)
        t0 = time.monotonic()
        insert_alert_sql(sql, o3, ids["unit3"])
        for _ in range(500):
            if unresolved(http, o3)[0] != old:
                break
            time.sleep(0.002)
        ms = (time.monotonic() - t0) * 1000
        total += ms
        worst = max(worst, ms)
    assert all(x == "HIT" for x in cached), f"cached before each write; X-Cache {cached}"
    assert worst < 1000, f"each external write visible through the cache within 1 s (worst {worst:.0f} ms, " \
                         f"mean {total / 10:.0f} ms)"
    assert wait_for(lambda: pending(sql) == 0, 1.0), f"outbox drained (pending: {pending(sql)})"
    lag = sql(f"""SELECT round((percentile_cont(0.99) WITHIN GROUP
                  (ORDER BY extract(epoch FROM processed_at - created_at)) * 1000)::numeric, 2)
                  FROM cache_outbox WHERE created_at > '{since}'""")
    print(f"outbox lag (trigger to applied) p99 of these writes: {lag} ms; the wait includes psql's start-up")


# ------------------------------------------------------------------ scoped invalidation

def scoped_reads(ids):
    """Every cached answer of org 2, by name, with its query type."""
    u = ids["unit2"]
    return {"stats": ("stats", "stats"), "units": ("units/status", "units"),
            "alerts": ("alerts/count", "alerts"), "alerts_unit": (f"alerts/count?unitId={u}", "alerts"),
            "temperature": (f"units/{u}/temperature/trends?hours=6", "temperature"),
            "devices": ("devices/online", "devices"), "compliance": ("compliance", "compliance")}


def warm_all(http, ids):
    org = ids["org2"]
    for name, (path, _) in scoped_reads(ids).items():
        assert wait_for(lambda p=path: http.get(http.org_url(org, p)).xcache == "HIT", 2.0), \
            f"{name} of org 2 is cached"


def after_outbox(sql):
    """Wait until the invalidator applied every outbox row: both invalidations of a write are done."""
    assert wait_for(lambda: pending(sql) == 0, 2.0), f"outbox drained (pending: {pending(sql)})"


def expect_moved(http, ids, moved: set, what: str):
    """One read of each answer of org 2: MISS for the query types in moved, HIT for the others."""
    got = {name: http.get(http.org_url(ids["org2"], path)).xcache for name, (path, _) in scoped_reads(ids).items()}
    want = {name: "MISS" if qtype in moved else "HIT" for name, (_, qtype) in scoped_reads(ids).items()}
    assert got == want, f"after {what}: X-Cache {got}, want {want}"


READINGS_READERS = {"stats", "units", "temperature", "compliance"}


def test_ingest_leaves_alert_counts_cached(http, sql, ids):
    mid = sql(f"SELECT round((min_temp + max_temp) / 2, 1) FROM units WHERE id = '{ids['unit2']}'")
    after_outbox(sql)
    warm_all(http, ids)
    r = http.post("/api/ingest/readings", {"deviceId": ids["device"], "temperature": float(mid)})
    assert r.status == 200 and r.json().get("alertsOpened") == 0, f"POST ingest in range: 200, no alert; got {r}"
    after_outbox(sql)
    expect_moved(http, ids, READINGS_READERS | {"devices"}, "an ingest in range")


def test_alert_create_leaves_trends_cached(http, sql, ids):
    after_outbox(sql)
    warm_all(http, ids)
    r = http.post(http.org_url(ids["org2"], "alerts"), {"unitId": ids["unit2"], "kind": "door_open", "message": "x"})
    assert r.status == 201, f"POST alerts: 201; got {r}"
    after_outbox(sql)
    expect_moved(http, ids, {"alerts", "stats"}, "an alert created")


def test_device_status_moves_devices_online_only(http, sql, ids):
    after_outbox(sql)
    warm_all(http, ids)
    r = http.post(http.org_url(ids["org2"], f"devices/{ids['device']}/status"), {"online": True})
    assert r.status == 200, f"POST device status: 200; got {r}"
    after_outbox(sql)
    expect_moved(http, ids, {"devices", "stats"}, "a device status")


def test_sql_outside_the_mapping_invalidates_every_type(http, sql, ids):
    after_outbox(sql)
    warm_all(http, ids)
    sql(f"UPDATE sites SET name = name WHERE org_id = '{ids['org2']}'")
    after_outbox(sql)
    expect_moved(http, ids, {"stats", "units", "alerts", "temperature", "devices", "compliance"},
                 "a site updated by SQL")


def test_pattern_of_one_query_type_moves_only_its_generation(http, redis, sql, ids):
    after_outbox(sql)
    warm_all(http, ids)
    gens = {q: redis("GET", cache_key("gen", ids["org2"], qtype=q)) for q in QUERY_TYPES}
    redis("PUBLISH", "cache:invalidate", json.dumps({"pattern": f"dashboard:temperature:*:org:{ids['org2']}"}))
    assert wait_for(lambda: redis("GET", cache_key("gen", ids["org2"], qtype="temperature")) != gens["temperature"],
                    2.0), "the temperature generation of org 2 moved"
    moved = {q for q in QUERY_TYPES if redis("GET", cache_key("gen", ids["org2"], qtype=q)) != gens[q]}
    assert moved == {"temperature"}, f"only the temperature generation moved; moved: {moved}"
    expect_moved(http, ids, {"temperature"}, "a pattern of temperature keys")


# ------------------------------------------------------------------ pub/sub

def warm_tenant(http, org):
    for p in ("stats", "units/status", "compliance"):
        http.get(http.org_url(org, p))


def test_pattern_message_deletes_exactly_the_matching_keys(http, redis, ids):
    o2, o3 = ids["org2"], ids["org3"]
    redis("FLUSHDB")
    warm_tenant(http, o2)
    warm_tenant(http, o3)
    redis("PUBLISH", "cache:invalidate", json.dumps({"pattern": f"dashboard:units:*:org:{o2}"}))
    gone = wait_for(lambda: not redis.scan(cache_key("units", o2)), 2.0)
    assert gone, "the matching key of org 2 is gone"
    assert len(redis.scan(cache_key("any", o2))) == 2, "the other keys of org 2 are still there"
    assert len(redis.scan(cache_key("any", o3))) == 3, "org 3 keeps its 3 keys"
    r = http.get(http.org_url(o3, "stats"))
    assert r.xcache == "HIT", f"org 3 still answers from the cache; got {r}"
    r = http.get(http.org_url(o2, "units/status"))
    assert r.xcache == "MISS", f"org 2 units/status is read again; got {r}"
    r = http.get(http.org_url(o2, "compliance"))
    assert r.xcache == "HIT", f"org 2 compliance, another query type, is still a hit; got {r}"


def test_hostile_messages_change_nothing(http, redis, stack, ids):
    o2, o3 = ids["org2"], ids["org3"]
    warm_tenant(http, o2)
    warm_tenant(http, o3)

    def gens():
        return {k: redis("GET", k) for k in redis.scan(cache_key("gen"))}

    def rejected():
        log = stack.invalidator.log_path
        return log.read_text(errors="replace").count("event=invalidate.rejected") if log.exists() else 0

    keys_before, gens_before, rejected_before = redis.scan(cache_key("all")), gens(), rejected()
    hostile = ['not json', '{"pattern":"dashboard:*"}', '{"pattern":"dashboard:*:org:*"}',
               '{"pattern":"dashboard:*:org:a*"}', f'{{"pattern":"dashboard:*:org:{o2[:8]}*"}}',
               '{"pattern":"dashboard:*:org:[0-9a-f]*"}', '{"pattern":"dashboard:*:org:a[c]me"}', '{"pattern":"*"}',
               json.dumps({"pattern": cache_key("gen", o2)}), '{"orgId":"*"}', '{"orgId":42}',
               f'{{"orgId":"{o2}","pattern":"dashboard:*:org:{o3}"}}', '{"orgId":', '[]',
               json.dumps({"orgId": o2, "x": "a" * 100000})]
    for m in hostile:
        redis("PUBLISH", "cache:invalidate", m)
    wait_for(lambda: rejected() - rejected_before >= len(hostile), 2.0)
    time.sleep(0.2)  # anything beyond the expected count would show now
    n = rejected() - rejected_before
    assert n == len(hostile), f"every hostile message was rejected and logged ({n} of {len(hostile)})"
    assert redis.scan(cache_key("all")) == keys_before, "no key was deleted"
    assert gens() == gens_before, "no generation moved"
    assert stack.invalidator.running(), "the invalidator is still running"
    r = http.get(http.org_url(o3, "compliance"))
    assert r.xcache == "HIT", f"cached answers are still served; got {r}"


# ------------------------------------------------------------------ invalidator crash

def test_invalidator_killed_during_writes_then_restarted(http, sql, stack, ids):
    o5 = ids["org5"]
    unresolved(http, o5)
    _, r = unresolved(http, o5)
    assert r.xcache == "HIT", f"org 5 alerts/count cached; got {r}"
    stack.invalidator.kill()
    insert_alert_sql(sql, o5, ids["unit5"], 5)
    stale, _ = unresolved(http, o5)
    db = open_alerts(sql, o5)
    assert stale != db, f"with the invalidator down the cache still holds the old count ({stale}, database {db})"
    t0 = time.monotonic()
    stack.invalidator.start()

    def fresh():
        return unresolved(http, o5)[0] == open_alerts(sql, o5)
    wait_for(fresh, 5.0, 0.2)
    assert fresh(), f"after the restart the write is visible ({(time.monotonic() - t0) * 1000:.0f} ms after start)"
    assert pending(sql) == 0, "no outbox row left pending"
