"""The consistency sampler of dashcache-invalidator (fcgi-app/dc_sampler.h), on a
stack of its own with CONSISTENCY_SAMPLE_PER_S high enough to judge in seconds:

- control: with the triggers on, writes through the API and through SQL are
  invalidated, and the sampler finds only consistent answers (and skips the
  ones a write invalidated while it looked);
- a write that bypasses the triggers (ALTER TABLE alerts DISABLE TRIGGER
  dc_outbox_ins, then a plain INSERT) leaves a stale answer in the cache: the
  sampler counts it inconsistent, logs its key once, invalidates it, and the
  next read is a MISS with the new count;
- the rate: the database statements the sampler adds stay within
  CONSISTENCY_SAMPLE_PER_S recomputations a second;
- a bad CONSISTENCY_SAMPLE_PER_S stops the invalidator with a message naming it.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from conftest import ROOT, Http, cache_key, own_stack, scrape, wait_for
import dcstack as dc

RATE = 50
CHECKS = "dashboard_consistency_checks_total"
OLDEST = "dashboard_consistency_oldest_inconsistency_seconds"
RECHECK_S = 2.0  # DC_SAMPLER_RECHECK_MS: a difference counts only if it is still there this much later


def checks(m, result: str) -> float:
    return m.value(f'{CHECKS}{{result="{result}"}}')


# the invalidator under ASan + UBSan, leaks included: its exit after SIGTERM reports them
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:halt_on_error=1:print_stacktrace=1",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


@pytest.fixture(scope="module", params=["build", "build/san"])
def sampled(request):
    env = {**dc.test_app_env(), "CONSISTENCY_SAMPLE_PER_S": str(RATE)}
    if request.param == "build/san":
        env.update(SAN_ENV)
    if not os.access(ROOT / request.param / "dashcache-invalidator", os.X_OK):
        pytest.fail(f"{request.param}/dashcache-invalidator is not built")
    with own_stack("sampler-" + request.param.replace("/", "-"), build=request.param, workers=2,
                   app_env=env) as s:
        yield s, Http(s.http_url, token=s.default_token)
    reports = s.sanitizer_reports()
    assert not reports, f"sanitizer reports of {request.param}: {reports}"


def sql(stack, q: str) -> str:
    return stack.postgres.psql(q)


def unit_of(stack, org: str) -> str:
    return sql(stack, f"SELECT id FROM units WHERE org_id = '{org}' ORDER BY id LIMIT 1")


def warm(http: Http, org: str, path: str) -> dict:
    """GET twice: the first a MISS (or a HIT left by an earlier test), the second a HIT. The body."""
    http.get(http.org_url(org, path))
    r = http.get(http.org_url(org, path))
    assert r.status == 200 and r.xcache == "HIT", f"{path} of {org} is cached; got {r}"
    return r.json()


def mismatch_lines(stack) -> list[str]:
    """The invalidator's mismatch lines since it started (its log file outlives a run)."""
    return [ln for ln in stack.invalidator.log_since_start().splitlines() if "event=consistency.mismatch" in ln]


def test_control_only_consistent_with_the_triggers_on(sampled):
    s, http = sampled
    org, unit = dc.DEMO_ORG, dc.DEMO_UNIT
    for path in ("stats", "units/status", "alerts/count", f"alerts/count?unitId={unit}"):
        warm(http, org, path)
    before = scrape(http)
    # writes that are invalidated: one through the API, one through SQL with the triggers on
    r = http.post(http.org_url(org, "alerts"), {"unitId": unit, "kind": "door_open", "message": "control"})
    assert r.status == 201, f"POST alerts: 201; got {r}"
    sql(s, f"INSERT INTO alerts (id, org_id, unit_id, kind, message) "
           f"VALUES (gen_random_uuid(), '{org}', '{unit}', 'external', 'control, by SQL')")
    assert wait_for(lambda: int(sql(s, "SELECT count(*) FROM cache_outbox WHERE processed_at IS NULL")) == 0, 10), \
        "the outbox row of the SQL write was applied"
    for path in ("stats", "units/status", "alerts/count", f"alerts/count?unitId={unit}"):
        warm(http, org, path)
    # long enough for any suspect to have been rechecked, and for many checks
    time.sleep(RECHECK_S + 2)
    after = scrape(http)
    grew = {k: checks(after, k) - checks(before, k) for k in ("consistent", "inconsistent", "skipped", "error")}
    assert grew["consistent"] >= 20, f"the sampler compared cached answers ({grew})"
    assert grew["inconsistent"] == 0 and grew["error"] == 0, \
        f"with the triggers on, nothing is inconsistent and nothing fails ({grew})"
    assert not mismatch_lines(s), f"no mismatch is logged: {mismatch_lines(s)}"
    assert after.value(OLDEST) == 0, f"no inconsistency, no age ({after.value(OLDEST)})"
    assert after.response.status == 200 and f'{CHECKS}{{result="skipped"}}' in after.series


def test_a_write_that_bypasses_the_triggers_is_found_and_invalidated(sampled):
    s, http = sampled
    org = dc.org_id(3)
    unit = unit_of(s, org)
    key = cache_key("alerts", org=org)
    before_count = warm(http, org, "alerts/count")["unresolved"]
    before = scrape(http)
    assert not mismatch_lines(s), "no mismatch before the bypassing write"
    try:
        sql(s, "ALTER TABLE alerts DISABLE TRIGGER dc_outbox_ins")
        sql(s, f"INSERT INTO alerts (id, org_id, unit_id, kind, message) "
               f"VALUES (gen_random_uuid(), '{org}', '{unit}', 'external', 'bypassing the triggers')")
        t0 = time.monotonic()
        # the cache does not know: still a HIT with the old count
        r = http.get(http.org_url(org, "alerts/count"))
        assert r.xcache == "HIT" and r.json()["unresolved"] == before_count, \
            f"without its trigger the write is not invalidated: a HIT with the old count; got {r}"
        found = wait_for(lambda: checks(scrape(http), "inconsistent") > checks(before, "inconsistent"), 15, 0.2)
        took = time.monotonic() - t0
    finally:
        sql(s, "ALTER TABLE alerts ENABLE TRIGGER dc_outbox_ins")
    assert found, "the sampler counted an inconsistency within 15 s (" + \
        ", ".join(f"{k} {checks(scrape(http), k):g}" for k in ("consistent", "inconsistent", "skipped", "error")) + ")"
    print(f"\nsampler: inconsistency found {took:.1f} s after the bypassing write "
          f"(rate {RATE}/s, recheck {RECHECK_S:g} s)")
    after = scrape(http)
    assert checks(after, "inconsistent") - checks(before, "inconsistent") == 1, "counted once"
    assert after.value('dashboard_invalidations_total{source="sampler"}') - \
        before.value('dashboard_invalidations_total{source="sampler"}') == 1, "and invalidated once"
    assert RECHECK_S <= after.value(OLDEST) <= 60, \
        f"the stale answer's age: at least the recheck delay, at most the TTL ({after.value(OLDEST)})"
    lines = mismatch_lines(s)
    assert len(lines) == 1 and key in lines[0], f"one line with the key {key}: {lines}"
    assert "level=warn" in lines[0] and "password" not in lines[0]
    r = http.get(http.org_url(org, "alerts/count"))
    assert r.xcache == "MISS" and r.json()["unresolved"] == before_count + 1, \
        f"the next read is a MISS with the new count {before_count + 1}; got {r}"
    time.sleep(RECHECK_S + 1)
    assert len(mismatch_lines(s)) == 1, f"logged once: {mismatch_lines(s)}"


def test_the_rate_bounds_the_database_work(sampled):
    s, http = sampled
    org = dc.DEMO_ORG
    warm(http, org, "alerts/count")
    warm(http, org, "units/status")
    # every recomputation runs org_exists once; nothing else does while no one reads
    series = 'dashboard_db_queries_total{statement="org_exists"}'
    m0, t0 = scrape(http), time.monotonic()
    time.sleep(3)
    m1, t1 = scrape(http), time.monotonic()
    per_s = (m1.value(series) - m0.value(series)) / (t1 - t0)
    c_per_s = (checks(m1, "consistent") - checks(m0, "consistent")) / (t1 - t0)
    print(f"\nsampler at CONSISTENCY_SAMPLE_PER_S={RATE}: {per_s:.1f} recomputations/s "
          f"({c_per_s:.1f} consistent/s)")
    assert 0.5 * RATE <= per_s <= RATE * 1.05, f"recomputations per second within the rate ({per_s:.1f})"


@pytest.mark.parametrize("value", ["101", "-1", "two"])
def test_a_bad_rate_stops_the_invalidator(value):
    binary = ROOT / "build" / "dashcache-invalidator"
    env = {**dc.test_app_env(), "CONSISTENCY_SAMPLE_PER_S": value}
    r = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0, f"exit status {r.returncode}"
    assert "CONSISTENCY_SAMPLE_PER_S must be an integer between 0 and 100" in r.stderr, r.stderr
