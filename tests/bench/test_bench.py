"""Checks of make bench's own parts that need no stack and no npm (about a second):
`/usr/bin/python3 -m pytest tests/bench`. Not part of make test (tests/run.py runs
tests/e2e); the bench itself is exercised by running it, e.g.
`make bench BENCH_DURATION=1 BENCH_ROUNDS=1 BENCH_WARMUP=0`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


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
