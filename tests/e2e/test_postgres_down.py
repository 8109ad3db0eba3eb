"""PostgreSQL stopped: cached entries are still served (HIT, same body),
misses get a JSON 503 database_unavailable with Retry-After, quickly, and
/health is 503 unhealthy; PostgreSQL back: everything answers 200. Ported
from test_70_postgres_down.sh."""
from conftest import wait_for
import dcstack as dc

UNIT = dc.DEMO_UNIT
UNCACHED = ["compliance", "devices/online", "units/status", f"alerts/count?unitId={UNIT}", "audit"]


def test_postgres_stopped_then_started(http, redis, stack, outage):
    redis("FLUSHDB")
    http.get("stats")
    cached = http.get("stats")
    assert cached.xcache == "HIT", f"warm-up: stats HIT; got {cached}"
    http.get(f"units/{UNIT}/temperature/trends")
    cached_trends = http.get(f"units/{UNIT}/temperature/trends")
    assert cached_trends.xcache == "HIT", f"warm-up: trends HIT; got {cached_trends}"

    outage.stop(stack.postgres)
    assert not stack.postgres.running(), "postgres is stopped"
    for i in range(1, 7):
        r = http.get("stats")
        assert r.xcache == "HIT", f"cached stats #{i}: HIT; got {r}"
        assert r.status == 200 and r.body == cached.body, f"cached stats #{i}: 200, same body; got {r}"
    r = http.get(f"units/{UNIT}/temperature/trends")
    assert r.status == 200 and r.xcache == "HIT" and r.body == cached_trends.body, \
        f"cached trends: 200 HIT, same body; got {r}"
    for path in UNCACHED:
        for i in (1, 2):
            r = http.get(path)
            assert r.is_error(503, "database_unavailable"), f"uncached .../{path} #{i}: JSON 503; got {r}"
            assert r.header("Retry-After").isdigit() and r.elapsed < 5, \
                f"uncached .../{path} #{i}: Retry-After ({r.header('Retry-After')!r}), answered in < 5 s " \
                f"({r.elapsed:.3f} s)"
    r = http.get("/health")
    j = r.json() or {}
    assert r.status == 503 and j.get("status") == "unhealthy", \
        f"GET /health with PostgreSQL stopped: 503 unhealthy; got {r}"

    outage.start(stack.postgres)
    assert wait_for(lambda: http.get("compliance").status == 200, 15, 0.2), \
        "uncached compliance answers 200 again within 15 s"
    for path in ("devices/online", "audit", "stats?forceRefresh=true"):
        r = http.get(path)
        assert r.status == 200 and r.is_json(), f"GET .../{path}: 200 JSON; got {r}"
