"""Access control through the real nginx (issue 9, part 1): no token is a 401
with WWW-Authenticate on every read, write and admin route; a token of another
organization (or without the scope) is a 403 on reads, writes, forceRefresh and
admin; expired, tampered, alg none and wrong-kid tokens are 401; /health needs
no token."""
import pytest

import dcstack as dc

UNIT = dc.DEMO_UNIT
ANY = "00000000-0000-4000-8000-000000000000"
READS = ["stats", "units/status", "alerts/count", f"units/{UNIT}/temperature/trends", "devices/online",
         "compliance", "audit"]
WRITES = [("alerts", {"unitId": UNIT, "kind": "door_open", "message": "x"}),
          (f"alerts/{ANY}/resolve", {}), (f"devices/{ANY}/status", {"online": True})]
ADMIN = "/api/admin/cache/stats"
INGEST = "/api/ingest/readings"


def expect(r, status, code, what):
    assert r.is_error(status, code), f"{what}: expected {status} {code}; got {r}"
    if status in (401, 403):
        assert r.header("WWW-Authenticate").startswith('Bearer realm="dashcache"'), \
            f"{what}: WWW-Authenticate: Bearer ...; got {r.header('WWW-Authenticate')!r}"


@pytest.fixture(scope="module")
def other(stack):
    """A token with every scope but admin, on organization 2 only."""
    return stack.token(sub="mallory", orgs=[dc.org_id(2)], scope="read write ingest refresh")


def test_no_token_is_401_on_every_route(http):
    for p in READS:
        expect(http.get(p, token=None), 401, "missing_token", f"GET {p} without a token")
    for p, body in WRITES:
        expect(http.post(p, body, token=None), 401, "missing_token", f"POST {p} without a token")
    expect(http.post(INGEST, {"deviceId": ANY, "temperature": 4}, token=None), 401, "missing_token",
           "POST ingest without a token")
    expect(http.get(ADMIN, token=None), 401, "missing_token", "GET admin stats without a token")
    r = http.get("stats", token=None)
    assert r.header("WWW-Authenticate") == 'Bearer realm="dashcache"', f"no error code without a token; got {r}"


def test_health_needs_no_token(http):
    r = http.get("/health", token=None)
    assert r.status == 200 and r.is_json(), f"GET /health without a token: 200; got {r}"


def test_other_org_is_403_on_reads_writes_refresh_and_admin(http, other):
    for p in READS:
        expect(http.get(p, token=other), 403, "forbidden_organization", f"GET {p} with org 2's token")
        expect(http.get(p + "?forceRefresh=true", token=other), 403, "forbidden_organization",
               f"GET {p}?forceRefresh=true with org 2's token")
    for p, body in WRITES:
        expect(http.post(p, body, token=other), 403, "forbidden_organization", f"POST {p} with org 2's token")
    expect(http.get(ADMIN, token=other), 403, "insufficient_scope", "admin stats without the admin scope")
    # the same token is good for its own organization
    r = http.get(http.org_url(dc.org_id(2), "stats"), token=other)
    assert r.status == 200, f"org 2's token on org 2: 200; got {r}"


def test_missing_scope_is_403(http, stack):
    reader = stack.token(sub="reader", orgs=[dc.DEMO_ORG], scope="read")
    assert http.get("stats", token=reader).status == 200
    expect(http.get("stats?forceRefresh=true", token=reader), 403, "insufficient_scope", "forceRefresh without refresh")
    expect(http.post(*WRITES[0], token=reader), 403, "insufficient_scope", "a write without write")
    expect(http.post(INGEST, {"deviceId": ANY, "temperature": 4}, token=reader), 403, "insufficient_scope",
           "ingest without ingest")


def test_ingest_with_a_foreign_device_stores_nothing(http, stack, sql):
    mine = sql(f"SELECT id FROM devices WHERE org_id = '{dc.DEMO_ORG}' ORDER BY id LIMIT 1")
    theirs = sql(f"SELECT id FROM devices WHERE org_id = '{dc.org_id(2)}' ORDER BY id LIMIT 1")
    count = f"SELECT count(*) FROM readings WHERE device_id IN ('{mine}', '{theirs}')"
    before = sql(count)
    gateway = stack.token(sub="gateway", orgs=[dc.DEMO_ORG], scope="ingest")
    r = http.post(INGEST, [{"deviceId": mine, "temperature": 4}, {"deviceId": theirs, "temperature": 4}],
                  token=gateway)
    expect(r, 403, "forbidden_organization", "ingest with a device of another organization")
    assert sql(count) == before, "nothing of the refused batch is stored"


@pytest.mark.parametrize("case", ["expired", "not_yet", "tampered_payload", "tampered_signature", "alg_none",
                                  "alg_none_signed", "hs512", "wrong_kid", "wrong_key", "garbage"])
def test_bad_tokens_are_401(http, stack, case):
    good = stack.token(orgs=[dc.DEMO_ORG], scope="read")
    h, p, s = good.split(".")
    tokens = {
        "expired": stack.token(orgs=[dc.DEMO_ORG], scope="read", ttl=-3600),
        "not_yet": stack.token(orgs=[dc.DEMO_ORG], scope="read", claims={"nbf": 2 ** 40}),
        "tampered_payload": ".".join([h, stack.token(orgs=["*"], scope=dc.ALL_SCOPES).split(".")[1], s]),
        "tampered_signature": ".".join([h, p, s[:5] + ("A" if s[5] != "A" else "B") + s[6:]]),
        "alg_none": stack.token(orgs=[dc.DEMO_ORG], scope="read", alg="none"),
        "alg_none_signed": ".".join([dc.b64url(b'{"alg":"none","kid":"%s"}' % stack.auth_kid.encode()), p, s]),
        "hs512": stack.token(orgs=[dc.DEMO_ORG], scope="read", alg="HS512"),
        "wrong_kid": stack.token(orgs=[dc.DEMO_ORG], scope="read", kid="nope"),
        "wrong_key": dc.mint_token(b"k" * 32, kid=stack.auth_kid, orgs=[dc.DEMO_ORG], scope="read"),
        "garbage": "not-a-token",
    }
    r = http.get("stats", token=tokens[case])
    expect(r, 401, "invalid_token", f"a {case} token")
    assert 'error="invalid_token"' in r.header("WWW-Authenticate"), f"{case}: error=invalid_token; got {r}"
    assert http.get("stats", token=good).status == 200, "the untampered token is good"


def test_client_cannot_claim_a_trusted_identity(http):
    """The trusted-mode params come from nginx's fastcgi_param only: a client header is HTTP_*."""
    r = http.get("stats", token=None, headers={"Dashcache-Auth-Sub": "root", "Dashcache-Auth-Orgs": "*",
                                               "Dashcache-Auth-Scope": "read"})
    expect(r, 401, "missing_token", "a client sending DASHCACHE_AUTH_* headers")
