"""Standby reads without stale reads (issue 13, part 4): a real streaming
standby of the stack's PostgreSQL (pg_basebackup -R, scripts/dcstack.py
Standby) with replay delayed by recovery_min_apply_delay, and the workers
reading misses from it (DATABASE_READ_URL).

A write raises its organization's LSN in Redis before its generations move;
a miss reads the standby only once the standby has replayed that LSN, else
the primary. So: a read right after a write answers the new data every time
(from the primary: the standby is seconds behind); once the standby has
caught up, misses go to it; with the standby stopped, reads answer 200 from
the primary."""
import pytest

from conftest import find_object, own_stack, scrape, wait_for, Http
import dcstack as dc

DELAY_MS = 3000  # the standby replays every commit this late
ORG, UNIT = dc.DEMO_ORG, dc.DEMO_UNIT

PRIMARY = 'dashboard_db_reads_total{target="primary"}'
STANDBY = 'dashboard_db_reads_total{target="standby"}'
LAG = 'dashboard_db_standby_fallbacks_total{reason="lag"}'
ERROR = 'dashboard_db_standby_fallbacks_total{reason="error"}'


@pytest.fixture(scope="module")
def rstack():
    with own_stack("replica", workers=2, standby_delay_ms=DELAY_MS) as s:
        yield s


@pytest.fixture(scope="module")
def rhttp(rstack) -> Http:
    return Http(rstack.http_url, token=rstack.default_token)


def unresolved(r) -> int:
    assert r.status == 200, f"alerts/count: 200; got {r}"
    o = find_object(r.json(), "unresolved")
    assert o is not None, f"alerts/count has unresolved; got {r}"
    return int(o["unresolved"])


def primary_count(rstack) -> int:
    return int(rstack.postgres.psql(f"SELECT count(*) FROM alerts WHERE org_id = '{ORG}' AND resolved_at IS NULL"))


def create_alert(http: Http, i: int) -> None:
    r = http.post(http.org_url(ORG, "alerts"), {"unitId": UNIT, "kind": "door_open", "message": f"replica {i}"})
    assert r.status == 201, f"alert #{i}: 201; got {r}"


def test_standby_streams_behind_the_primary(rstack):
    sb = rstack.standby
    assert sb is not None and sb.running() and sb.streaming(), "the stack's standby streams from its primary"
    assert rstack.app_env.get("DATABASE_READ_URL", "").endswith(f":{sb.port}/{dc.DB_NAME}"), \
        "the workers read misses from the standby"
    assert sb.psql("SHOW recovery_min_apply_delay", url=sb.admin_url) == f"{DELAY_MS // 1000}s"


def test_read_right_after_a_write_is_never_stale(rstack, rhttp):
    """Write, then read at once, ten times: the new count every time, never the
    standby's (which is DELAY_MS behind); the reads went to the primary."""
    base = unresolved(rhttp.get("alerts/count"))
    assert base == primary_count(rstack), "the first read agrees with the primary"
    stale, went_primary = [], 0
    for i in range(1, 11):
        create_alert(rhttp, i)
        before = scrape(rhttp)
        got = unresolved(rhttp.get("alerts/count"))
        after = scrape(rhttp)
        if got != base + i:
            stale.append((i, got, base + i))
        if after.value(PRIMARY) - before.value(PRIMARY) == 1 and after.value(LAG) - before.value(LAG) == 1:
            went_primary += 1
    assert not stale, f"reads after an acknowledged write returned older data (i, got, want): {stale}"
    assert went_primary >= 1, "a read right after a write found the delayed standby behind and read the primary"
    standby_view = int(rstack.standby.psql(
        f"SELECT count(*) FROM alerts WHERE org_id = '{ORG}' AND resolved_at IS NULL", url=rstack.standby.url))
    assert standby_view < base + 10 or went_primary == 10, \
        "the check is meaningful: the standby still showed older data while the reads answered the new"


def test_misses_go_to_the_standby_once_it_caught_up(rstack, rhttp):
    want = primary_count(rstack)
    rstack.standby.wait_caught_up()
    wrong = []

    def standby_answered() -> bool:
        before = scrape(rhttp)
        got = unresolved(rhttp.get("alerts/count?forceRefresh=true"))
        after = scrape(rhttp)
        if got != want:
            wrong.append(got)
        return after.value(STANDBY) - before.value(STANDBY) == 1

    assert wait_for(standby_answered, 30 + DELAY_MS / 1000, 0.2), \
        "a miss after the standby replayed the organization's writes reads the standby"
    assert not wrong, f"every answer was the current count {want}; got {wrong}"
    r = scrape(rhttp)
    assert r.value(STANDBY) >= 1 and r.value(PRIMARY) >= 1


def test_standby_stopped_reads_answer_from_the_primary(rstack, rhttp):
    rstack.standby.stop()
    assert not rstack.standby.running()
    base = primary_count(rstack)
    before = scrape(rhttp)
    for i in range(1, 4):
        assert unresolved(rhttp.get("alerts/count?forceRefresh=true")) == base + i - 1
        create_alert(rhttp, 100 + i)
        assert unresolved(rhttp.get("alerts/count")) == base + i, "the read after the write: the new count"
    for path in ("stats", "units/status", "devices/online", "compliance", f"units/{UNIT}/temperature/trends"):
        r = rhttp.get(path + "?forceRefresh=true")
        assert r.status == 200, f"{path} with the standby stopped: 200 from the primary; got {r}"
    after = scrape(rhttp)
    assert after.value(STANDBY) == before.value(STANDBY), "no read was answered by the stopped standby"
    assert after.value(PRIMARY) - before.value(PRIMARY) >= 11
    assert after.value(ERROR) > before.value(ERROR), "the standby's failure is counted"
