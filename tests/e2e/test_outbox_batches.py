"""Issue 7: the invalidator drains the outbox in batches of 500 rows; many
organizations written in several transactions must all be invalidated, and
no process may crash or misbehave doing it.

(a) The sanitized builds (make SAN=1 all: build/san/dashcache-fcgi and
    build/san/dashcache-invalidator) in a stack of their own with a few hundred
    organizations, under writes through SQL (transactions touching hundreds of
    organizations, so that the outbox is drained in many batches) and through
    the API: afterwards every written organization's dashboard shows the write
    (no stale HIT), and neither process printed an AddressSanitizer / UBSan
    report or exited.
(b) `make seed SCALE=small` into a running stack (several outbox batches),
    with the default and with the sanitized build, leaves it serving: invalidator alive, /health 200, dashboards answer and
    agree with the database.
"""
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT, Http, own_stack, wait_for
import dcstack as dc

SAN_ORGS = 300
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:halt_on_error=1:print_stacktrace=1",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


def org_ids(stack) -> list[str]:
    return stack.postgres.psql("SELECT id FROM organizations ORDER BY id").split()


def db_counts(stack) -> dict[str, int]:
    out = stack.postgres.psql("SELECT o.id, count(a.id) FILTER (WHERE a.resolved_at IS NULL) "
                              "FROM organizations o LEFT JOIN alerts a ON a.org_id = o.id GROUP BY o.id")
    return {ln.split("|")[0]: int(ln.split("|")[1]) for ln in out.splitlines()}


def served_counts(http: Http, orgs) -> dict[str, tuple]:
    """{org: (unresolved, X-Cache, status)} of alerts/count, 8 requests at a time."""
    def one(o):
        r = http.get(http.org_url(o, "alerts/count"))
        j = r.json()
        return o, ((j.get("unresolved") if isinstance(j, dict) else None), r.xcache, r.status)
    with ThreadPoolExecutor(8) as ex:
        return dict(ex.map(one, orgs))


def stale_orgs(stack, http, orgs) -> list[str]:
    db, served = db_counts(stack), served_counts(http, orgs)
    return [f"{o}: served {served[o][0]} ({served[o][1]}, HTTP {served[o][2]}), database {db.get(o)}"
            for o in orgs if served[o][0] != db.get(o) or served[o][2] != 200]


def pending(stack) -> int:
    return int(stack.postgres.psql("SELECT count(*) FROM cache_outbox WHERE processed_at IS NULL"))


def assert_outbox_applied(s) -> None:
    """The invalidator drained the outbox within 30 s, is still running, and no
    process of the stack printed a sanitizer report."""
    drained = wait_for(lambda: pending(s) == 0 or not s.invalidator.running(), 30, 0.2) and pending(s) == 0
    reports = s.sanitizer_reports()
    assert not reports, "a sanitizer report:\n" + "\n---\n".join(f"{k}:\n{v}" for k, v in reports.items())
    assert s.invalidator.running(), \
        f"the invalidator is still running (exit {s.invalidator.exit_status()}); " \
        f"log:\n{dc.tail(s.invalidator.log_path, 30)}"
    assert drained, f"the outbox is drained within 30 s (pending {pending(s)})"


def warm(http, orgs) -> None:
    served_counts(http, orgs)
    served_counts(http, orgs)


# ------------------------------------------------------------------ (a) sanitized builds

def fresh_invalidator(stack) -> None:
    """Start the invalidator on an empty outbox, as one that has been running since
    before the data were loaded: the seed's own outbox rows (every organization at
    once) are marked processed first, so that its batches see the writes below."""
    stack.postgres.psql("UPDATE cache_outbox SET processed_at = now() WHERE processed_at IS NULL")
    stack.start_invalidator()


@pytest.fixture(scope="module")
def san_stack():
    for b in ("dashcache-fcgi", "dashcache-invalidator"):
        if not os.access(ROOT / "build/san" / b, os.X_OK):
            pytest.fail(f"build/san/{b} is not built (make SAN=1 all)")
    with own_stack("san", build="build/san", workers=3, seed=(SAN_ORGS, 1, 60), invalidator=False,
                   app_env={**dc.test_app_env(), **SAN_ENV}) as s:
        fresh_invalidator(s)
        yield s


def insert_alerts_sql(stack, slices, tag) -> None:
    """One transaction; per (offset, limit) slice of the organizations (by id) one
    INSERT of an alert on each one's first unit: one outbox row per organization."""
    stmts = [f"""INSERT INTO alerts (id, org_id, unit_id, kind, message)
        SELECT gen_random_uuid(), u.org_id, u.id, 'external', '{tag}'
        FROM (SELECT DISTINCT ON (org_id) org_id, id FROM units ORDER BY org_id, name) u
        WHERE u.org_id IN (SELECT id FROM organizations ORDER BY id OFFSET {lo} LIMIT {n})"""
             for lo, n in slices]
    stack.postgres.psql(None, args=[a for st in stmts for a in ("-c", st)], single_tx=True)


def test_sanitized_workers_and_invalidator_under_many_org_writes(san_stack):
    s, http = san_stack, Http(san_stack.http_url)
    orgs = org_ids(s)
    assert len(orgs) == SAN_ORGS, f"the sanitized stack holds {SAN_ORGS} organizations"
    warm(http, orgs)
    hits = sum(x[1] == "HIT" for x in served_counts(http, orgs).values())
    assert hits == len(orgs), f"every organization's alerts/count is cached before the writes ({hits} HIT)"

    # SQL: eight transactions over moving, overlapping slices of the organizations,
    # each drained on its own (a pause between them), then one that writes
    # ~1,000 outbox rows at once (drained in batches of 500)
    for k in range(8):
        insert_alerts_sql(s, [((k * 37 + j * 23) % 240, 60) for j in range(3)], f"tx {k}")
        time.sleep(0.3)
    insert_alerts_sql(s, [(0, 300), (150, 150), (40, 300), (270, 30), (5, 250)], "big tx")
    # the API: one alert for every tenth organization
    units = dict(ln.split("|") for ln in s.postgres.psql(
        "SELECT DISTINCT ON (org_id) org_id, id FROM units ORDER BY org_id, name").splitlines())
    api = [http.post(http.org_url(o, "alerts"), {"unitId": units[o], "kind": "door_open", "message": "san e2e"})
           for o in orgs[::10]]
    bad = [repr(r) for r in api if r.status != 201]
    assert not bad, f"API writes acknowledged: {bad[:3]}"

    assert_outbox_applied(s)
    stale = stale_orgs(s, http, orgs)
    assert not stale, f"{len(stale)} of {len(orgs)} organizations stale after the writes: {stale[:5]}"
    assert s.fcgi.running() and len(s.fcgi.workers()) == 3, "the sanitized master and its 3 workers are running"
    assert not s.sanitizer_reports(), "no sanitizer report after the reads either"


# ------------------------------------------------------------------ (b) make seed into a running stack

@pytest.fixture(params=["build", "build/san"])
def seed_stack(request):
    env = dc.test_app_env() if request.param == "build" else {**dc.test_app_env(), **SAN_ENV}
    if not os.access(ROOT / request.param / "dashcache-invalidator", os.X_OK):
        pytest.fail(f"{request.param}/dashcache-invalidator is not built")
    # as `make run`: the invalidator starts after the demo data were loaded and drains their rows
    with own_stack("seed-" + request.param.replace("/", "-"), build=request.param, workers=2, app_env=env) as s:
        yield s


def test_make_seed_small_into_a_running_stack(seed_stack):
    s, http = seed_stack, Http(seed_stack.http_url)
    warm(http, org_ids(s))
    t0 = time.monotonic()
    r = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "seed", "SCALE=small"],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "DC_STACK_ENV": str(s.state_dir / "stack.env")})
    assert r.returncode == 0, f"make seed SCALE=small: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    orgs = org_ids(s)
    rows = int(s.postgres.psql("SELECT count(*) FROM cache_outbox WHERE created_at > now() - "
                               f"interval '{time.monotonic() - t0 + 5:.0f} seconds'"))
    assert len(orgs) > 20 and rows > 1000, \
        f"the seed replaced the demo data and wrote several outbox batches ({len(orgs)} orgs, {rows} outbox rows)"
    assert_outbox_applied(s)
    h = http.get("/health")
    assert h.status == 200 and h.json().get("status") == "healthy", f"/health after the seed; got {h}"
    warm(http, orgs)
    stale = stale_orgs(s, http, orgs)
    assert not stale, f"{len(stale)} of {len(orgs)} organizations answer other than the database: {stale[:5]}"
    r = http.get(http.org_url(dc.DEMO_ORG, "stats"))
    assert r.status == 200 and r.is_json(), f"the demo organization's stats answer; got {r}"
