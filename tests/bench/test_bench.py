"""Checks of the benchmarks' own parts that need no stack and no npm (about a second):
`/usr/bin/python3 -m pytest tests/bench`. Not part of make test (tests/run.py runs
tests/e2e); the benchmarks themselves are exercised by running them, e.g.
`make bench BENCH_DURATION=1 BENCH_ROUNDS=1 BENCH_WARMUP=0` and
`make bench-mixed MIXED_SCALE=small MIXED_DURATION=10` (mixed.py: its workload's
sampling and its report's arithmetic below)."""
from __future__ import annotations

import math
import os
import random
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
import mixed  # noqa: E402


@pytest.fixture
def last(tmp_path, monkeypatch):
    """bench.out() writes to a file of the test's own instead of build/bench/last.txt."""
    path = tmp_path / "last.txt"
    monkeypatch.setattr(bench, "LAST", path)
    return path


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")
@pytest.mark.parametrize("keepconn", [True, False])
def test_nginx_config_is_accepted(tmp_path, keepconn):
    stack = types.SimpleNamespace(runtime_dir=tmp_path, state_dir=tmp_path, app_env={})
    socks = {n: tmp_path / f"{n}.sock" for n in ("dashcache", "nometrics", "trusted")}
    ngx = bench.BenchNginx(stack, 18480, socks, 18481, keepconn)
    ngx.body = bench.nginx_quote('{"a":"$x \'q\'"}')
    ngx.prepare()  # runs nginx -t, raises StackError with its complaint
    conf = (tmp_path / "nginx" / "nginx.conf").read_text()
    assert ("keepalive 32;" in conf) == keepconn
    assert conf.count("fastcgi_keep_conn on;") == (3 + 1 if keepconn else 0)  # d/e/i, f, j, and h
    assert "keepalive 64;" in conf and 'proxy_set_header Connection "";' in conf
    assert "fastcgi_cache_valid 200 1m;" in conf and "$upstream_cache_status" in conf


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_node_server_parses():
    subprocess.run(["node", "--check", str(bench.NODE_SRC / "server.js")], check=True)


def test_node_missing_skips_g(monkeypatch, last):
    monkeypatch.setenv("BENCH_TARGETS", "d g")
    b = bench.Bench()
    monkeypatch.setattr(bench.shutil, "which", lambda tool: None if tool == "node" else "/usr/bin/" + tool)
    why = b.install_node()
    assert why and why.startswith("node not found")
    b.skip("g", why)
    assert b.active() == ["d"] and "g" not in b.available()
    assert "(g) Fastify + ioredis: skipped, node not found" in last.read_text()


def test_g_is_set_up_only_when_asked_for(monkeypatch):
    monkeypatch.setenv("BENCH_TARGETS", "c d")
    assert "g" in bench.Bench().skipped
    monkeypatch.delenv("BENCH_TARGETS")
    b = bench.Bench()
    assert b.targets == list("abcdefghij") and not b.skipped


def test_context_switches_of_this_process():
    n = bench.ctxt_switches(os.getpid())
    assert n is not None and n > 0
    assert bench.ctxt_switches(2 ** 22 + 1) is None


def row(rps, p99, cpu, cs):
    return {"rps": rps, "p50": p99 / 2, "p99": p99, "cpu": cpu, "cs": cs, "by": {}, "cs_by": {}}


def test_report_ratios_are_medians_of_rounds(monkeypatch, last):
    monkeypatch.setenv("BENCH_TARGETS", "c d g h i")
    b = bench.Bench()
    b.skipped["i"] = "n/a (no ETag)"
    b.rounds, b.dc_workers, b.node_pid = 3, [], None
    monkeypatch.setattr(bench, "SERVED_BY", {t: [] for t in "cdgh"})
    # d/c per round: 1, 4, 1 -> 1.00, where the ratio of the medians would be 2000 / 1000 = 2.00
    res = {"d": [row(1000, 100, 10, 1), row(2000, 100, 10, 1), row(3000, 100, 10, 1)],
           "g": [row(500, 200, 20, 2), row(2000, 200, 20, 2), row(1000, 300, 20, 2)],
           "h": [row(2000, 50, 5, 1), row(8000, 50, 5, 1), row(3000, 50, 5, 1)],
           "c": [row(1000, 100, 10, 1), row(500, 100, 10, 1), row(3000, 100, 10, 1)]}
    b.report(res, {"start": [], "warm": [], "end": []})
    text = last.read_text()
    lines = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith("  d/")}
    assert lines["d/g"].split()[1:3] == ["2.00", "(1.00..3.00)"]
    assert lines["d/g"].split()[3:5] == ["0.50", "(0.33..0.50)"]  # p99 100 against 200, 200, 300
    assert lines["d/h"].split()[1:3] == ["0.50", "(0.25..1.00)"]
    assert lines["d/c"].split()[1:3] == ["1.00", "(1.00..4.00)"]
    assert "(i) 304, If-None-Match  n/a (no ETag)" in text
    assert "p99: (d) 0.100 ms against (g) 0.200 ms" in text


# ------------------------------------------------------------------ mixed.py

def test_zipf_shares_follow_the_exponent():
    z = mixed.Zipf(1000, 1.1)
    assert z.cdf[-1] == 1.0 and all(a < b for a, b in zip(z.cdf, z.cdf[1:]))
    assert math.isclose(sum(z.share(r) for r in range(1000)), 1.0)
    assert math.isclose(z.share(0) / z.share(1), 2 ** 1.1) and math.isclose(z.share(9) / z.share(99), 10 ** 1.1)
    rng = random.Random(7)
    draws = [z.pick(rng) for _ in range(50000)]
    assert min(draws) == 0 and max(draws) < 1000
    assert abs(draws.count(0) / len(draws) - z.share(0)) < 0.01, "rank 1 drawn as often as its share"
    top10 = sum(1 for d in draws if d < 10) / len(draws)
    assert abs(top10 - z.cdf[9]) < 0.01
    assert all(math.isclose(mixed.Zipf(5, 0.0).share(r), 0.2) for r in range(5)), "s = 0 is uniform"


def test_mix_weights_and_paths():
    assert sum(w for _, w in mixed.MIX) == 100
    w = mixed.Weighted([w for _, w in mixed.MIX])
    rng = random.Random(3)
    got = [mixed.KINDS[w.pick(rng)] for _ in range(40000)]
    for kind, weight in mixed.MIX:
        assert abs(got.count(kind) / len(got) - weight / 100) < 0.01, kind
    org, unit = "o" * 36, "u" * 36
    paths = {k: mixed.dashboard_path(k, org, unit) for k in mixed.KINDS}
    assert paths["stats"] == f"/api/dashboard/orgs/{org}/stats"
    assert paths["alerts_unit"] == f"/api/dashboard/orgs/{org}/alerts/count?unitId={unit}"
    assert paths["temperature"] == f"/api/dashboard/orgs/{org}/units/{unit}/temperature/trends?hours=24"
    assert paths["alerts"].endswith("/alerts/count") and paths["units"].endswith("/units/status")
    # each dashboard is one of the routes whose requests the report counts as reads
    assert {k.replace("_unit", "") for k in mixed.KINDS} == set(mixed.READ_ROUTES)


def test_same_seed_same_workload():
    orgs = [f"org{i:04d}" for i in range(300)]
    ranked = mixed.rank_orgs(orgs, 1)
    assert sorted(ranked) == orgs and ranked != orgs
    assert mixed.rank_orgs(reversed(orgs), 1) == ranked, "the ranking does not depend on the order read"
    assert mixed.rank_orgs(orgs, 2) != ranked
    units = {o: [f"{o}-u{j}" for j in range(1 + i % 4)] for i, o in enumerate(orgs)}
    z, w = mixed.Zipf(len(ranked), 1.1), mixed.Weighted([w for _, w in mixed.MIX])

    def reads(seed, n=500):
        rng = random.Random(f"{seed}:read:0")
        return [mixed.next_read(rng, ranked, units, z, w) for _ in range(n)]
    first = reads(1)
    assert first == reads(1) and first != reads(2)
    for kind, path in first:
        org = path.split("/")[4]
        if kind in mixed.NEEDS_UNIT:
            assert any(u in path for u in units[org]), f"{path}: a unit of its own organization"


def test_check_ranks():
    assert mixed.check_ranks(1000, 3) == [0, 9, 99]
    assert mixed.check_ranks(50, 3) == [0, 9]
    assert mixed.check_ranks(1000, 0) == []


def test_percentile_and_reduction():
    v = [float(x) for x in range(1, 101)]
    assert mixed.percentile(v, 50) == 50 and mixed.percentile(v, 99) == 99 and mixed.percentile(v, 100) == 100
    assert mixed.percentile([3.0], 99) == 3.0 and math.isnan(mixed.percentile([], 50))
    # nearest rank: the smallest value with at least q % of the values at or below it
    assert mixed.percentile([1.0, 2.0, 3.0], 50) == 2.0 and mixed.percentile(v[:10], 99) == 10.0
    assert math.isclose(mixed.reduction(0.15, 3.0), 95.0)
    assert mixed.reduction(3.0, 3.0) == 0.0
    assert math.isnan(mixed.reduction(1.0, 0.0)) and math.isnan(mixed.reduction(math.nan, 1.0))


SCRAPE = """# HELP dashboard_http_requests_total Requests answered, by route and status.
# TYPE dashboard_http_requests_total counter
dashboard_http_requests_total{{route="stats",status="200"}} {stats}
dashboard_http_requests_total{{route="temperature",status="404"}} {temp404}
dashboard_http_requests_total{{route="audit",status="200"}} 7
dashboard_http_requests_total{{route="ingest",status="200"}} {ingest}
dashboard_cache_hit_total{{query_type="stats"}} {hits}
dashboard_cache_miss_total{{query_type="stats"}} {misses}
dashboard_db_queries_total{{statement="org_exists"}} {org_exists}
dashboard_db_queries_total{{statement="compliance"}} {compliance}
dashboard_db_queries_total{{statement="ingest"}} {ingest}
dashboard_db_queries_total{{statement="outbox_pending"}} 3
dashboard_db_query_duration_seconds_bucket{{statement="compliance",le="0.005"}} 99
"""


def test_server_deltas_count_reads_and_their_statements():
    before = mixed.parse_metrics(SCRAPE.format(stats=10, temp404=1, ingest=5, hits=4, misses=6, org_exists=6,
                                               compliance=6))
    after = mixed.parse_metrics(SCRAPE.format(stats=110, temp404=3, ingest=9, hits=84, misses=26, org_exists=28,
                                              compliance=26))
    d = mixed.server_deltas(before, after)
    assert d["reads"] == 102, "stats and temperature, any status; not audit, not ingest"
    assert (d["hits"], d["misses"]) == (80, 20)
    assert d["read_statements"] == 42 and d["statements"] == 46, "org_exists + compliance; + ingest"
    assert d["by_statement"] == {"org_exists": 22, "compliance": 20, "ingest": 4}


def test_phase_report_rows(monkeypatch):
    for k in [k for k in os.environ if k.startswith("MIXED_")]:
        monkeypatch.delenv(k)
    m = mixed.Mixed()
    lat = {k: [] for k in mixed.KINDS}
    lat["stats"] = [0.001 * i for i in range(1, 101)]
    xc = {k: mixed.Counter() for k in mixed.KINDS}
    xc["stats"].update({"HIT": 75, "MISS": 25, "MISS first": 10})
    res = {"name": "CACHE=on", "seconds": 10.0, "lat": lat, "xcache": xc, "errors": 0, "behind": 0.0,
           "writes": mixed.Counter({"readings": 2000, "ingest posts": 100, "alerts created": 5}),
           "server": {"reads": 100.0, "hits": 75, "misses": 25, "read_statements": 30.0, "statements": 40.0,
                      "by_statement": {}},
           "pg": {"xact": 50.0, "tup_returned": 900.0, "tup_fetched": 100.0, "tup_written": 0.0,
                  "blks_hit": 200.0, "blks_read": 0.0},
           "cpu": {c: 0.05 for c in mixed.COMPONENTS + ("load generator",)},
           "check": {"orgs": 3, "reads": 900, "hits": 100, "acks": 30, "stale": 0, "errors": 0, "judged": 3}}
    rows = m.phase_rows(res)
    assert rows["reads measured"] == "100" and rows["reads/s"] == "10"
    assert rows["p50 ms"] == "50.00" and rows["p99 ms"] == "99.00"
    assert rows["hit rate (HIT / reads)"] == "75.0 %" and rows["X-Cache HIT / MISS / BYPASS"] == "75 / 25 / 0"
    assert rows["MISS on a key's first read / later"] == "10 / 15"
    assert rows["read statements / read"] == "0.300" and rows["all statements / read (writes incl.)"] == "0.400"
    assert rows["pg tuples returned+fetched / read"] == "10.0"
    assert rows["CPU ms / read: postgres"] == "0.500"
    assert rows["readings ingested (posts)"] == "2,000 (100)" and rows["readings/s achieved"] == "200"
    assert rows["alerts created / resolved"] == "5 / 0"
    assert rows["stale reads (consistency checker)"] == "0 in 900 reads, 3/3 orgs judged"


def test_mixed_refuses_bad_settings(monkeypatch):
    monkeypatch.setenv("MIXED_SCALE", "huge")
    with pytest.raises(mixed.dc.StackError, match="MIXED_SCALE must be"):
        mixed.Mixed()
    monkeypatch.setenv("MIXED_SCALE", "small")
    monkeypatch.setenv("MIXED_ZIPF_S", "steep")
    with pytest.raises(mixed.dc.StackError, match="MIXED_ZIPF_S must be"):
        mixed.Mixed()
    monkeypatch.setenv("MIXED_ZIPF_S", "1.1")
    monkeypatch.setenv("MIXED_DURATION", "0")
    with pytest.raises(mixed.dc.StackError, match="MIXED_DURATION must be"):
        mixed.Mixed()
