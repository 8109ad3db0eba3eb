"""dashcachectl against the real stack: status (healthy, an invalidator down,
nothing listening), warm (top:N, a FILE of ids, bad lines, stopping on 503s
with PostgreSQL down, the progress bar on a terminal in tmux), invalidate
(one organization and no other, everything, Redis down), check-config (every
problem, no secret), and --help of each subcommand. The master's sd_notify
messages are in test_notify.py."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, dc, wait_for

CTL = ROOT / "build" / "dashcachectl"
COMMANDS = ("status", "warm", "invalidate", "check-config", "token")


def ctl(stack, *args, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """dashcachectl ARGS with the stack's configuration and its nginx as the pool's URL."""
    assert CTL.exists(), f"{CTL} is missing: run make all first"
    e = {**os.environ, **stack.app_env, "DASHCACHE_URL": stack.http_url, **(env or {})}
    e.pop("DASHCACHE_TOKEN", None)
    return subprocess.run([str(CTL), *args], env=e, capture_output=True, text=True, timeout=timeout)


def stats_path(org: str) -> str:
    return f"/api/dashboard/orgs/{org}/stats"


def warm_get(http, org: str):
    """The X-Cache of a stats read of org (HIT once stored)."""
    return http.get(stats_path(org)).xcache


# ------------------------------------------------------------------ --help

@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_of_each_subcommand(stack, cmd):
    r = ctl(stack, cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: dashcachectl {cmd}"), r.stdout
    assert "Exit status" in r.stdout
    top = ctl(stack, "--help")
    assert top.returncode == 0 and f"  {cmd} " in top.stdout
    bad = ctl(stack, cmd, "--no-such-flag")
    assert bad.returncode == 2


# ------------------------------------------------------------------ status

def test_status_healthy(stack, http):
    r = ctl(stack, "status")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"dashcache at {stack.http_url}: healthy" in r.stdout
    for line in ("workers", "postgresql   ok", "breaker closed", "redis        ok", "invalidator  up", "hit rate"):
        assert line in r.stdout, r.stdout
    j = json.loads(ctl(stack, "status", "--json").stdout)
    assert j["status"] == "healthy" and j["workers"] == stack.workers
    assert j["database"]["ok"] and j["redis"]["ok"] and j["invalidator"]["up"]
    assert j["database"]["breaker"] == "closed" and j["redis"]["breaker"] == "closed"
    assert 0.0 <= j["cache"]["hitRate"] <= 1.0


def test_status_invalidator_down_is_degraded(stack, outage):
    outage.stop(stack.invalidator)
    r = ctl(stack, "status")
    assert r.returncode == 1, r.stdout
    assert "degraded" in r.stdout and "invalidator  DOWN" in r.stdout
    j = json.loads(ctl(stack, "status", "--json").stdout)
    assert j["status"] == "degraded" and j["invalidator"]["up"] is False


def test_status_unreachable(stack):
    port = dc.free_port()
    r = ctl(stack, "status", "--url", f"http://127.0.0.1:{port}", "--timeout", "2000")
    assert r.returncode == 1
    assert "unreachable" in r.stdout
    j = json.loads(ctl(stack, "status", "--json", "--url", f"http://127.0.0.1:{port}").stdout)
    assert j["status"] == "unreachable"
    assert ctl(stack, "status", "--url", "ftp://x").returncode == 2


# ------------------------------------------------------------------ invalidate

def test_invalidate_one_org_and_no_other(stack, http, demo):
    mine, other = demo.ORG, demo.org(2)
    for org in (mine, other):
        http.get(stats_path(org))
        assert warm_get(http, org) == "HIT"
    r = ctl(stack, "invalidate", "--org", mine.upper())
    assert r.returncode == 0, r.stderr
    assert f"invalidated organization {mine}" in r.stdout
    assert warm_get(http, mine) == "MISS"
    assert warm_get(http, other) == "HIT"  # another tenant's answers are untouched


def test_invalidate_all(stack, http, demo):
    orgs = [demo.ORG, demo.org(2), demo.org(3)]
    for org in orgs:
        http.get(stats_path(org))
    r = ctl(stack, "invalidate", "--all", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"ok": True, "scope": "all"}
    assert [warm_get(http, org) for org in orgs] == ["MISS"] * 3


def test_invalidate_usage(stack):
    assert ctl(stack, "invalidate").returncode == 2
    assert ctl(stack, "invalidate", "--org", "x'; DROP").returncode == 2
    assert ctl(stack, "invalidate", "--all", "--org", dc.DEMO_ORG).returncode == 2


def test_invalidate_redis_down_says_not_applied(stack, outage):
    outage.stop(stack.redis)
    r = ctl(stack, "invalidate", "--org", dc.DEMO_ORG, "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["ok"] is False
    assert "NOT applied" in r.stderr


# ------------------------------------------------------------------ warm

def test_warm_top_fills_the_hottest(stack, http, sql):
    assert ctl(stack, "invalidate", "--all").returncode == 0
    r = ctl(stack, "warm", "--orgs", "top:3", "--concurrency", "2", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    j = json.loads(r.stdout)
    assert j["ok"] and j["organizations"] == 3 and j["warmed"] == 3 and j["failed"] == 0
    hottest = sql("SELECT o.id FROM organizations o LEFT JOIN LATERAL (SELECT count(*) n FROM readings r "
                  "WHERE r.org_id = o.id AND r.recorded_at > now() - interval '24 hours') h ON true "
                  "ORDER BY h.n DESC, o.id LIMIT 3").split()
    for org in hottest:
        assert warm_get(http, org) == "HIT", org
        assert http.get(f"/api/dashboard/orgs/{org}/devices/online").xcache == "HIT"


def test_warm_file_of_ids(stack, http, demo, tmp_path):
    assert ctl(stack, "invalidate", "--all").returncode == 0
    f = tmp_path / "orgs"
    f.write_text(f"# the demo\n{demo.ORG}\n\n  {demo.org(5).upper()}  # padded, upper case\n")
    r = ctl(stack, "warm", "--orgs", str(f))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warmed 2 of 2 organizations" in r.stdout
    assert warm_get(http, demo.ORG) == "HIT" and warm_get(http, demo.org(5)) == "HIT"
    assert warm_get(http, demo.org(6)) == "MISS"  # not listed: not warmed


def test_warm_file_bad_lines_named_nothing_requested(stack, http, demo, tmp_path):
    assert ctl(stack, "invalidate", "--all").returncode == 0
    f = tmp_path / "orgs"
    f.write_text(f"{demo.ORG}\nnot-an-id\n{demo.org(2)}\n../../etc\n")
    r = ctl(stack, "warm", "--orgs", str(f))
    assert r.returncode == 2
    assert f"{f}:2: not an organization id" in r.stderr and f"{f}:4: not an organization id" in r.stderr
    assert f"{f}:1:" not in r.stderr and f"{f}:3:" not in r.stderr
    assert warm_get(http, demo.ORG) == "MISS"  # nothing was requested


def test_warm_unknown_org_is_a_failure(stack, tmp_path):
    f = tmp_path / "orgs"
    f.write_text(str(uuid.UUID(int=7)) + "\n")
    r = ctl(stack, "warm", "--orgs", str(f))
    assert r.returncode == 1
    assert "404" in r.stderr


def test_warm_stops_when_the_pool_answers_503(stack, outage, demo, tmp_path):
    assert ctl(stack, "invalidate", "--all").returncode == 0
    f = tmp_path / "orgs"
    f.write_text("".join(demo.org(n) + "\n" for n in range(1, 21)))
    outage.stop(stack.postgres)
    r = ctl(stack, "warm", "--orgs", str(f), "--concurrency", "2", "--json")
    assert r.returncode == 1
    j = json.loads(r.stdout)
    assert j["stoppedEarly"] is True and j["requests"] < 100, j
    assert "stopped" in r.stderr and "503" in r.stderr


def test_warm_progress_bar_on_a_terminal(stack, tmp_path):
    """The bar (count, rate, ETA) as a terminal shows it: tmux's pane, captured."""
    tmux = shutil.which("tmux")
    assert tmux, "tmux is missing: scripts/deps.sh installs it"
    sock, done = f"dcctl-{os.getpid()}", tmp_path / "rc"
    env = {**stack.app_env, "DASHCACHE_URL": stack.http_url}
    envfile = tmp_path / "env"
    envfile.write_text("".join(f"export {k}='{v}'\n" for k, v in env.items()))
    cmd = f". {envfile}; {CTL} warm --orgs all --concurrency 2; echo $? > {done}; sleep 60"
    subprocess.run([tmux, "-L", sock, "-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "20", cmd],
                   check=True)
    try:
        assert wait_for(done.exists, 60), "warm did not finish in the tmux pane"
        pane = subprocess.run([tmux, "-L", sock, "capture-pane", "-p"], capture_output=True, text=True).stdout
    finally:
        subprocess.run([tmux, "-L", sock, "kill-server"], capture_output=True)
    assert done.read_text().strip() == "0", pane
    assert "warm [" + "#" * 30 + "] 20/20 orgs" in pane, pane
    assert "orgs/s" in pane and "ETA" in pane, pane
    assert "warmed 20 of 20 organizations" in pane, pane


def test_warm_plain_lines_without_a_terminal(stack):
    r = ctl(stack, "warm", "--orgs", "top:2")
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stdout and "\033" not in r.stdout
    assert "warm: 2/2 organizations" in r.stdout and "warmed 2 of 2" in r.stdout


# ------------------------------------------------------------------ check-config

def test_check_config_every_problem_no_secret(stack, tmp_path):
    f = tmp_path / "dashcache.env"
    f.write_text("CACHE_TTL_SECONDS=0\n"
                 "this line is not a variable\n"
                 "REDIS_URL=redis://:hunter2secret@\n"
                 "BREAKERS=maybe\n"
                 "LOG_LEVEL=loud\n"
                 "AUTH_KEYS_FILE=/nonexistent/keys\n")
    r = ctl(stack, "check-config", str(f))
    assert r.returncode == 1
    out = r.stdout
    for want in (f"{f}:2: not KEY=VALUE", "CACHE_TTL_SECONDS must be an integer between 1 and 86400",
                 "REDIS_URL is invalid", "BREAKERS must be on or off", "LOG_LEVEL", "AUTH_KEYS_FILE",
                 "6 problems"):
        assert want in out, out
    assert "hunter2secret" not in out + r.stderr
    j = json.loads(ctl(stack, "check-config", "--json", str(f)).stdout)
    assert j["ok"] is False and len(j["problems"]) == 6


def test_check_config_good_file(stack, tmp_path):
    f = tmp_path / "dashcache.env"
    f.write_text("# as shipped\nCACHE_TTL_SECONDS=120\nLOG_LEVEL=warn\n")
    r = ctl(stack, "check-config", str(f))
    assert r.returncode == 0, r.stdout
    assert r.stdout.strip() == f"configuration OK: {f}"
    assert ctl(stack, "check-config", str(tmp_path / "missing")).returncode == 1
    assert ctl(stack, "check-config", "a", "b").returncode == 2


def test_check_config_example_file_is_clean(stack):
    """The sample configuration `make install` ships passes the check."""
    r = ctl(stack, "check-config", str(ROOT / ".env.example"))
    assert r.returncode == 0, r.stdout
