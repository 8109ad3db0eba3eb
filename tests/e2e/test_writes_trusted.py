"""Writes that can be trusted, through the real nginx: a form post gets 415 on
every write route (resolve too) and changes nothing; a reading from a clock far
ahead gets 400 and cannot freeze its unit; a retry with an Idempotency-Key
creates one row and replays the first answer; the same key with another body
is a 422; and nginx never re-sends a POST to another worker."""
import re
import time
import uuid

import pytest

import dcstack as dc


@pytest.fixture(scope="module")
def ids(sql):
    org = dc.org_id(9)
    unit = sql(f"SELECT id FROM units WHERE org_id = '{org}' ORDER BY name LIMIT 1")
    device = sql(f"SELECT id FROM devices WHERE unit_id = '{unit}' ORDER BY serial LIMIT 1")
    alert = sql(f"SELECT id FROM alerts WHERE org_id = '{org}' ORDER BY id LIMIT 1")
    assert unit and device, "demo organization 9 has a unit and a device"
    if not alert:
        alert = sql(f"INSERT INTO alerts (id, org_id, unit_id, kind, message) VALUES "
                    f"(gen_random_uuid(), '{org}', '{unit}', 'door_open', 'e2e') RETURNING id").splitlines()[0]
    return {"org": org, "unit": unit, "device": device, "alert": alert}


def count(sql, q) -> int:
    return int(sql(q))


FORMS = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"]


def write_routes(ids):
    return ["/api/ingest/readings", f"/api/dashboard/orgs/{ids['org']}/alerts",
            f"/api/dashboard/orgs/{ids['org']}/alerts/{ids['alert']}/resolve",
            f"/api/dashboard/orgs/{ids['org']}/devices/{ids['device']}/status"]


@pytest.mark.parametrize("ctype", FORMS)
def test_form_post_is_415_on_every_write_route(http, sql, ids, ctype):
    audit = count(sql, f"SELECT count(*) FROM audit_log WHERE org_id = '{ids['org']}'")
    for path in write_routes(ids):
        r = http.post(path, b"online=true&unitId=x", content_type=ctype)
        assert r.is_error(415, "unsupported_media_type"), f"{path}: {r!r}"
    assert count(sql, f"SELECT count(*) FROM audit_log WHERE org_id = '{ids['org']}'") == audit


def test_resolve_takes_json_with_an_empty_or_empty_object_body(http, sql, ids):
    org, unit = ids["org"], ids["unit"]
    a = sql(f"INSERT INTO alerts (id, org_id, unit_id, kind, message) VALUES "
            f"(gen_random_uuid(), '{org}', '{unit}', 'door_open', 'e2e resolve') RETURNING id").splitlines()[0]
    r = http.post(f"/api/dashboard/orgs/{org}/alerts/{a}/resolve", b"{}")
    assert r.status == 200, repr(r)
    a = sql(f"INSERT INTO alerts (id, org_id, unit_id, kind, message) VALUES "
            f"(gen_random_uuid(), '{org}', '{unit}', 'door_open', 'e2e resolve') RETURNING id").splitlines()[0]
    r = http.post(f"/api/dashboard/orgs/{org}/alerts/{a}/resolve", b"")
    assert r.status == 200, repr(r)


def test_future_reading_is_400_and_does_not_freeze_the_unit(http, sql, ids):
    dev, unit = ids["device"], ids["unit"]
    sql(f"UPDATE alerts SET resolved_at = now() WHERE unit_id = '{unit}' AND resolved_at IS NULL")
    before = count(sql, f"SELECT count(*) FROM readings WHERE device_id = '{dev}'")
    for at in ("9999-01-01T00:00:00Z", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))):
        r = http.post("/api/ingest/readings", {"deviceId": dev, "temperature": 5, "recordedAt": at})
        assert r.is_error(400, "invalid_reading"), repr(r)
        assert "INGEST_MAX_FUTURE_SECONDS" in r.json()["error"]["message"]
    assert count(sql, f"SELECT count(*) FROM readings WHERE device_id = '{dev}'") == before
    # the next real reading still moves the unit and opens its alarm
    r = http.post("/api/ingest/readings", {"deviceId": dev, "temperature": 60})
    assert r.status == 200 and r.json()["alertsOpened"] == 1, repr(r)
    assert sql(f"SELECT last_temperature FROM units WHERE id = '{unit}'") == "60.00"
    sql(f"UPDATE alerts SET resolved_at = now() WHERE unit_id = '{unit}' AND resolved_at IS NULL")
    assert http.post("/api/ingest/readings", {"deviceId": dev, "temperature": 5}).status == 200


def test_strict_json_names_the_field(http, ids):
    r = http.post(f"/api/dashboard/orgs/{ids['org']}/devices/{ids['device']}/status",
                  b'{"online":false,"online":true}')
    assert r.is_error(400, "invalid_json") and 'duplicate key \\"online\\"' in r.body.decode(), repr(r)
    r = http.post("/api/ingest/readings",
                  f'[{{"deviceId":"{ids["device"]}","temperature":1,}}]'.encode())
    assert r.is_error(400, "invalid_json") and "readings[0]" in r.json()["error"]["message"], repr(r)


def test_idempotency_key_retry_creates_one_row(http, sql, ids):
    key = f"e2e-{uuid.uuid4()}"
    body = {"unitId": ids["unit"], "kind": "door_open", "message": key}
    path = f"/api/dashboard/orgs/{ids['org']}/alerts"
    first = http.request("POST", path, data=dc_json(body), headers={"Content-Type": "application/json",
                                                                    "Idempotency-Key": key})
    assert first.status == 201 and not first.header("Idempotency-Replayed"), repr(first)
    again = http.request("POST", path, data=dc_json(body), headers={"Content-Type": "application/json",
                                                                    "Idempotency-Key": key})
    assert again.status == 201 and again.header("Idempotency-Replayed") == "true", repr(again)
    assert again.body == first.body
    assert count(sql, f"SELECT count(*) FROM alerts WHERE message = '{key}'") == 1

    # ingest the same way: one reading however often it is sent
    dev = ids["device"]
    before = count(sql, f"SELECT count(*) FROM readings WHERE device_id = '{dev}'")
    for _ in range(3):
        r = http.request("POST", "/api/ingest/readings", data=dc_json({"deviceId": dev, "temperature": 4.5}),
                         headers={"Content-Type": "application/json", "Idempotency-Key": key})
        assert r.status == 200, repr(r)
    assert count(sql, f"SELECT count(*) FROM readings WHERE device_id = '{dev}'") == before + 1


def test_idempotency_key_with_another_body_is_422(http, sql, ids):
    key = f"e2e-{uuid.uuid4()}"
    path = f"/api/dashboard/orgs/{ids['org']}/alerts"
    h = {"Content-Type": "application/json", "Idempotency-Key": key}
    r = http.request("POST", path, data=dc_json({"unitId": ids["unit"], "kind": "door_open", "message": key}),
                     headers=h)
    assert r.status == 201, repr(r)
    r = http.request("POST", path, data=dc_json({"unitId": ids["unit"], "kind": "door_open", "message": "x"}),
                     headers=h)
    assert r.is_error(422, "idempotency_key_reused"), repr(r)
    r = http.request("POST", path, data=dc_json({"unitId": ids["unit"], "kind": "door_open", "message": key}),
                     headers={"Content-Type": "application/json", "Idempotency-Key": "bad key"})
    assert r.is_error(400, "invalid_idempotency_key"), repr(r)
    assert count(sql, f"SELECT count(*) FROM alerts WHERE message = '{key}'") == 1


def test_nginx_never_resends_a_post():
    """fastcgi_next_upstream without non_idempotent: a POST that reached a worker is
    never passed to another one after an error or a timeout (it may have committed)."""
    conf = "\n".join(p.read_text() for p in (dc.ROOT / "nginx").glob("*.conf*"))
    conf = re.sub(r"#.*", "", conf)
    assert "fastcgi_next_upstream" in conf
    assert "non_idempotent" not in conf


def dc_json(v) -> bytes:
    import json
    return json.dumps(v).encode()
