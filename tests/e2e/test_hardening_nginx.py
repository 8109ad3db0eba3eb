"""nginx snippet hardening (issue 9, part 3): rate limits answer a JSON 429, body
limits per location, and a read timeout that outlasts the application's own
deadlines. Requests come from 127.0.0.2: the private stack's template leaves
127.0.0.1 (the other suites, `make run`) unlimited, every other client gets the
production limits of nginx/dashcache-limits.conf."""
from __future__ import annotations

import http.client
import json
import re
import uuid

import dcstack as dc

SOURCE = ("127.0.0.2", 0)


def send(stack, method: str, path: str, body: bytes | None = None, source=SOURCE):
    port = int(stack.http_url.rsplit(":", 1)[1])
    c = http.client.HTTPConnection(dc.HOST, port, timeout=10, source_address=source)
    try:
        c.request(method, path, body=body, headers={"Content-Type": "application/json"} if body is not None else {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def is_json_429(status, headers, body) -> bool:
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    h = {k.lower(): v for k, v in headers.items()}
    return (status == 429 and h.get("content-type", "").startswith("application/json")
            and doc.get("error", {}).get("code") == "rate_limited" and h.get("retry-after") == "1")


def burst(stack, method, path, n, body=None):
    return [send(stack, method, path, body) for _ in range(n)]


def test_write_burst_gets_json_429(stack):
    # an organization that does not exist: the application answers 404 and writes nothing
    org = str(uuid.uuid4())
    body = json.dumps({"unitId": dc.DEMO_UNIT, "kind": "burst", "message": "over the limit"}).encode()
    answers = burst(stack, "POST", f"/api/dashboard/orgs/{org}/alerts", 40, body)
    statuses = [a[0] for a in answers]
    assert 404 in statuses, f"no request reached the application: {statuses}"
    limited = [a for a in answers if a[0] == 429]
    assert limited, f"40 writes at once were not limited (10 r/s, burst 20): {statuses}"
    assert all(is_json_429(*a) for a in limited), f"a 429 is not the JSON error: {limited[0]}"
    # reads of the same client are not limited by the write zone
    assert send(stack, "GET", f"/api/dashboard/orgs/{dc.DEMO_ORG}/units/status")[0] == 200


def test_force_refresh_burst_gets_json_429(stack):
    org = str(uuid.uuid4())
    answers = burst(stack, "GET", f"/api/dashboard/orgs/{org}/stats?forceRefresh=true", 12)
    statuses = [a[0] for a in answers]
    limited = [a for a in answers if a[0] == 429]
    assert limited and all(is_json_429(*a) for a in limited), statuses


def test_ingest_burst_gets_json_429(stack):
    body = json.dumps({"deviceId": str(uuid.uuid4()), "temperature": 4.0}).encode()
    answers = burst(stack, "POST", "/api/ingest/readings", 70, body)
    statuses = [a[0] for a in answers]
    limited = [a for a in answers if a[0] == 429]
    assert limited and all(is_json_429(*a) for a in limited), statuses


def test_loopback_of_the_test_stack_is_not_limited(stack):
    org = str(uuid.uuid4())
    statuses = [send(stack, "GET", f"/api/dashboard/orgs/{org}/stats?forceRefresh=true",
                     source=("127.0.0.1", 0))[0] for _ in range(12)]
    assert 429 not in statuses, statuses


def test_body_limits_and_timeouts_in_the_snippet():
    text = (dc.ROOT / "nginx/dashcache-locations.conf").read_text()
    blocks = dict(re.findall(r"^location ([^{]+?) \{(.*?)^\}", text, re.S | re.M))
    want = {"/api/dashboard/": ("16k", "40s"), "= /api/ingest/readings": ("1m", "40s"),
            "= /health": ("1k", "10s"), "= /metrics": ("1k", "10s"), "/api/admin/": ("1k", "10s")}
    for loc, (size, timeout) in want.items():
        b = blocks.get(loc, "")
        assert f"client_max_body_size {size};" in b, loc
        assert f"fastcgi_read_timeout {timeout};" in b, loc
    # 1m is the application's own limit (DC_BODY_MAX) and 40 s outlasts a worst-case stats miss
    body_h = (dc.ROOT / "fcgi-app/dc_body.h").read_text()
    assert re.search(r"#define DC_BODY_MAX\s+\(1024L \* 1024\)", body_h)
    env = dict(re.findall(r"^([A-Z_]+)=(\S+)", (dc.ROOT / ".env.example").read_text(), re.M))
    worst = (5 * (int(env["DB_STATEMENT_TIMEOUT_MS"]) + 1000) / 1000 + 2 * int(env["DB_CONNECT_TIMEOUT_SECONDS"])
             + (int(env["REDIS_CONNECT_TIMEOUT_MS"]) + 3 * int(env["REDIS_COMMAND_TIMEOUT_MS"])) / 1000)
    assert worst < 40, worst
