"""Every error is JSON with the right status: bad ids and parameters (400),
unknown organizations and units (404, never cached), unknown routes (404),
wrong methods (405 with Allow), and odd input never gets a 5xx. Ported from
test_20_errors.sh."""
import pytest

from conftest import cache_key
import dcstack as dc

ORG, UNIT = dc.DEMO_ORG, dc.DEMO_UNIT
NO_ORG = "00000000-0000-4000-8000-000000000001"
NO_UNIT = "00000000-0000-4000-8000-000000000002"


@pytest.fixture(scope="module", autouse=True)
def flushed(redis):
    redis("FLUSHDB")


@pytest.fixture(scope="module")
def unit_of_org2(sql):
    u = sql(f"SELECT id FROM units WHERE org_id = '{dc.org_id(2)}' ORDER BY name LIMIT 1")
    assert len(u) == 36, f"organization 2 has a unit; got {u!r}"
    return u


# ------------------------------------------------------------------ 400

@pytest.mark.parametrize("bad", ["not-a-uuid", "550e8400-e29b-41d4-a716-44665544000",
                                 "550e8400e29b41d4a716446655440000", "550e8400-e29b-41d4-a716-44665544000g",
                                 "550e8400-e29b-41d4-a716-446655440000x", "%27%20OR%201=1--"])
def test_malformed_org_id(http, bad):
    r = http.get(http.org_url(bad, "stats"))
    assert r.is_error(400, "invalid_id"), f"org id {bad!r}: 400 invalid_id; got {r}"


@pytest.mark.parametrize("path", ["units/not-a-uuid/temperature/trends", "alerts/count?unitId=not-a-uuid",
                                  "alerts/count?unitId="])
def test_malformed_unit_id(http, path):
    r = http.get(path)
    assert r.is_error(400, "invalid_id"), f".../{path}: 400 invalid_id; got {r}"


@pytest.mark.parametrize("hours", ["0", "169", "abc", "-1", "1.5", "", "24x", "99999999999999999999"])
def test_bad_hours(http, hours):
    r = http.get(f"units/{UNIT}/temperature/trends?hours={hours}")
    assert r.is_error(400, "invalid_parameter"), f"hours={hours!r}: 400 invalid_parameter; got {r}"


@pytest.mark.parametrize("limit", ["0", "501", "abc", "-5"])
def test_bad_audit_limit(http, limit):
    r = http.get(f"audit?limit={limit}")
    assert r.is_error(400, "invalid_parameter"), f"audit limit={limit!r}: 400 invalid_parameter; got {r}"


# ------------------------------------------------------------------ 404, never cached

@pytest.mark.parametrize("path", ["stats", "units/status", "alerts/count", "devices/online", "compliance", "audit"])
def test_unknown_org(http, path):
    r = http.get(http.org_url(NO_ORG, path))
    assert r.is_error(404, "org_not_found"), f"unknown org .../{path}: 404 org_not_found; got {r}"


def test_unknown_org_is_not_cached(http, redis):
    http.get(http.org_url(NO_ORG, "stats"))
    r = http.get(http.org_url(NO_ORG, "stats"))
    assert r.is_error(404, "org_not_found"), f"unknown org, asked again: still 404; got {r}"
    assert r.xcache == "MISS", f"unknown org, asked again: not served from the cache; got {r}"
    # no key of any kind names the organization (answers and generation alike)
    assert redis.scan(f"*{NO_ORG}*") == [], "unknown org: no key in Redis"


def test_unknown_unit(http, redis, unit_of_org2):
    cases = [(f"units/{NO_UNIT}/temperature/trends", "unknown unit in trends"),
             (f"alerts/count?unitId={NO_UNIT}", "unknown unitId in alerts/count"),
             (f"units/{unit_of_org2}/temperature/trends", "another organization's unit in trends"),
             (f"alerts/count?unitId={unit_of_org2}", "another organization's unitId in alerts/count")]
    for path, what in cases:
        r = http.get(path)
        assert r.is_error(404, "unit_not_found"), f"{what}: 404 unit_not_found; got {r}"
    http.get(f"units/{NO_UNIT}/temperature/trends")
    assert redis.scan(f"*{NO_UNIT}*") == [], "unknown unit: no key in Redis"
    assert redis.scan(f"*{unit_of_org2}*") == [], "another organization's unit: no key in Redis"
    assert redis.scan(cache_key("any", ORG)) == [], "no answer of the asking organization was cached either"


# ------------------------------------------------------------------ unknown routes

@pytest.mark.parametrize("path", ["/api/dashboard/", "/api/dashboard/orgs", f"/api/dashboard/orgs/{ORG}",
                                  f"/api/dashboard/orgs/{ORG}/nope", f"/api/dashboard/orgs/{ORG}/stats/extra",
                                  f"/api/dashboard/orgs/{ORG}/units/{UNIT}", "/api/dashboard/nope"])
def test_unknown_route_application(http, path):
    r = http.get(path)
    assert r.is_error(404, "not_found"), f"GET {path} (application): 404 not_found; got {r}"


@pytest.mark.parametrize("path", ["/", "/index.html", "/api", "/api/other", "/healthz", "/favicon.ico"])
def test_unknown_route_nginx(http, path):
    r = http.get(path)
    assert r.is_error(404, "not_found"), f"GET {path} (nginx): 404 not_found; got {r}"


# ------------------------------------------------------------------ 405

@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_methods_other_than_get_and_head(http, method):
    r = http.request(method, "stats", data=b"{}", headers={"Content-Type": "application/json"})
    assert r.is_error(405, "method_not_allowed"), f"{method} .../stats: 405 method_not_allowed; got {r}"
    assert r.header("Allow") == "GET, HEAD", f"{method} .../stats: Allow: GET, HEAD; got {r.header('Allow')!r}"


@pytest.mark.parametrize("method,path", [("POST", "audit"), ("DELETE", f"units/{UNIT}/temperature/trends")])
def test_method_not_allowed_elsewhere(http, method, path):
    r = http.request(method, path)
    assert r.is_error(405, "method_not_allowed"), f"{method} .../{path}: 405 method_not_allowed; got {r}"


def test_post_health(http):
    r = http.request("POST", "/health", data=b"")
    assert r.is_error(405, "method_not_allowed"), f"POST /health: 405 method_not_allowed; got {r}"
    assert r.header("Allow") == "GET, HEAD", f"POST /health: Allow: GET, HEAD; got {r.header('Allow')!r}"


# ------------------------------------------------------------------ odd input

def test_encoded_nul_is_refused_by_nginx(http):
    r = http.get("/api/dashboard/orgs/%00/stats")
    assert r.status == 400, f"GET /api/dashboard/orgs/%00/stats: nginx's own 400; got {r}"


# Each odd request has the answer it must get, and none is a 5xx.
ODD = [
    (f"/api/dashboard/orgs/{ORG}/stats?forceRefresh=%ff", 400, "invalid_parameter"),
    (f"/api/dashboard/orgs/{ORG}/stats?{'a' * 3000}=1", 200, None),
    (f"/api/dashboard/orgs/{ORG}/units/{UNIT}/temperature/trends?hours=1&hours=500", 400, "invalid_parameter"),
    ("/api/dashboard/orgs/../../etc/passwd", 404, "not_found"),
    (f"/api/dashboard//orgs//{ORG}//stats", 200, None),
    (f"/api/dashboard/orgs/{ORG}/stats?unitId={UNIT}&limit=5&x=%22%3Cscript%3E", 200, None),
]


@pytest.mark.parametrize("path,status,code", ODD, ids=[p[:60] for p, _, _ in ODD])
def test_odd_input_never_gets_a_5xx(http, path, status, code):
    r = http.get(path)
    assert 200 <= r.status < 500, f"GET {path[:90]}: answered, not 5xx; got {r}"
    if code:
        assert r.is_error(status, code), f"GET {path[:90]}: {status} {code}; got {r}"
    else:
        assert r.status == 200 and r.is_json(), f"GET {path[:90]}: 200 JSON; got {r}"
