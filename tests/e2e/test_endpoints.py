"""Every endpoint answers 200 with JSON through nginx, and what it says agrees
with the database (shapes as in DESIGN.md). Ported from test_10_endpoints.sh."""
import pytest

from conftest import find_object, walk
import dcstack as dc

UNIT = dc.DEMO_UNIT
PATHS = ["stats", "units/status", "alerts/count", f"alerts/count?unitId={UNIT}",
         f"units/{UNIT}/temperature/trends", f"units/{UNIT}/temperature/trends?hours=1",
         f"units/{UNIT}/temperature/trends?hours=168", "devices/online", "compliance",
         "audit", "audit?limit=1", "audit?limit=500"]


@pytest.fixture(scope="module", autouse=True)
def flushed(redis):
    redis("FLUSHDB")


def test_demo_ids_agree_with_the_seed(sql):
    """dcstack's DEMO_ORG, DEMO_UNIT and org_id(n) are what sql/seed.sql creates."""
    assert sql(f"SELECT name FROM organizations WHERE id = '{dc.DEMO_ORG}'") == "Acme Cold Storage"
    assert sql(f"SELECT org_id FROM units WHERE id = '{dc.DEMO_UNIT}'") == dc.DEMO_ORG
    assert sql(f"SELECT name FROM organizations WHERE id = '{dc.org_id(2)}'") == "Organization 0002"
    assert sql("SELECT dc_uuid('org', 7)") == dc.org_id(7)


@pytest.mark.parametrize("path", PATHS)
def test_endpoint_answers_json_with_x_cache(http, path):
    r = http.get(path)
    assert r.status == 200 and r.is_json(), f"GET .../{path}: expected 200 with a JSON body; got {r}"
    assert r.xcache in ("HIT", "MISS", "BYPASS"), f"GET .../{path}: X-Cache header; got {r}"


def test_health(http):
    r = http.get("/health")
    assert r.status == 200 and r.is_json(), f"GET /health: 200 JSON; got {r}"
    j = r.json()
    assert j["status"] == "healthy" and isinstance(j.get("services"), dict), \
        f"GET /health: status is healthy (all up), services listed; got {r}"


def test_head(http):
    r = http.head("stats")
    assert r.status == 200 and r.xcache, f"HEAD .../stats: 200 with X-Cache; got {r}"


def test_devices_online_agrees_with_the_database(http, sql):
    r = http.get("devices/online")
    want = sql(f"""SELECT count(*) FILTER (WHERE last_seen_at >= now() - interval '600 seconds') || ' ' ||
                          count(*) FILTER (WHERE last_seen_at IS NULL OR last_seen_at < now() - interval '600 seconds')
                   FROM devices WHERE org_id = '{dc.DEMO_ORG}'""")
    o = find_object(r.json(), "online", "offline")
    got = f"{o['online']} {o['offline']}" if o else None
    assert got == want, f"devices/online: online/offline = {want}; got {got} ({r})"


@pytest.mark.parametrize("query,where", [("", ""), (f"?unitId={UNIT}", f" AND unit_id = '{UNIT}'")])
def test_alert_count_agrees_with_the_database(http, sql, query, where):
    r = http.get("alerts/count" + query)
    want = int(sql(f"SELECT count(*) FROM alerts WHERE org_id = '{dc.DEMO_ORG}'{where} AND resolved_at IS NULL"))
    o = find_object(r.json(), "unresolved")
    assert o is not None and o["unresolved"] == want, f"alerts/count{query}: unresolved = {want}; got {r}"


def test_unit_status_adds_up_to_the_units(http, sql):
    r = http.get("units/status")
    want = int(sql(f"SELECT count(*) FROM units WHERE org_id = '{dc.DEMO_ORG}'"))
    o = find_object(r.json(), "normal", "too_hot", "too_cold")
    got = o["normal"] + o["too_hot"] + o["too_cold"] + o.get("no_data", 0) if o else None
    assert got == want, f"units/status: normal + too_hot + too_cold (+ no_data) = {want} units; got {got} ({r})"


@pytest.mark.parametrize("n", [1, 3, 5])
def test_audit_limit(http, n):
    r = http.get(f"audit?limit={n}")
    got = max((len(a) for a in walk(r.json()) if isinstance(a, list)), default=None)
    assert got == n, f"audit?limit={n}: {n} entries; got {got} ({r})"


def trend_points(doc) -> int:
    return max((len(a) for a in walk(doc) if isinstance(a, list) and a and isinstance(a[0], dict)
                and {"timestamp", "temperature", "alarmState"} <= a[0].keys()), default=0)


@pytest.mark.parametrize("hours", [1, 6, 24])
def test_trends_hourly_points(http, hours):
    r = http.get(f"units/{UNIT}/temperature/trends?hours={hours}")
    got = trend_points(r.json())
    assert hours <= got <= hours + 1, \
        f"trends?hours={hours}: {hours} or {hours + 1} hourly points of {{timestamp, temperature, alarmState}}; got {got}"


def test_trends_default_24_hours(http):
    r = http.get(f"units/{UNIT}/temperature/trends")
    got = trend_points(r.json())
    assert 24 <= got <= 25, f"trends without hours: 24 hours by default; got {got} points"
