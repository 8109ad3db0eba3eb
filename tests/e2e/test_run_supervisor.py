"""`make run` is a supervisor (scripts/run.py): started detached with its own
free ports, state and runtime directories (never the user's .run/), it serves;
Redis shut down with SHUTDOWN NOSAVE → answers stay 200 with X-Cache: BYPASS,
the supervisor logs it and starts Redis again, hits resume; the invalidator
killed → restarted; `run.py stop` → nothing it started is left running.
"""
from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import time

from pathlib import Path

import pytest

from conftest import ROOT, STATE, Http, wait_for
import dcstack as dc

RUN = ["/usr/bin/python3", str(ROOT / "scripts/run.py")]
SERVICES = ("postgres", "redis", "fcgi", "invalidator", "nginx")


def recorded(state, name: str) -> int | None:
    """The pid STATE/pids/NAME.pid records, if that very process still runs."""
    try:
        pid_s, start = (state / "pids" / f"{name}.pid").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    st = dc.proc_stat(int(pid_s))
    return int(pid_s) if st and st[0] not in ("Z", "X") and st[1] == start else None


@pytest.fixture(scope="module")
def sup():
    """A detached supervisor of our own; stopped (and checked stopped) at the end."""
    state = STATE / "runsup"
    shutil.rmtree(state, ignore_errors=True)
    runtime = dc.temp_runtime_dir("runsup")
    ports = {"HTTP_PORT": dc.free_port(), "PG_PORT": dc.free_port(), "REDIS_PORT": dc.free_port()}
    env = {**dc.test_app_env(), **{k: str(v) for k, v in ports.items()}, "WORKERS": "2",
           "DC_RUN_STATE_DIR": str(state), "DC_RUN_RUNTIME_DIR": str(runtime)}
    r = subprocess.run(RUN + ["--detach"], env=env, capture_output=True, text=True, timeout=320,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"run.py --detach failed:\n{r.stdout}\n{r.stderr}"
    info = dc.read_env_file(state / "stack.env")

    class Sup:
        pass
    s = Sup()
    s.state, s.env, s.info, s.runtime, s.ports = state, env, info, runtime, ports
    s.log = state / "logs" / "run.log"
    # the supervisor's stack made a demo key in its state directory: mint with it
    kid, secret = next(iter(dc.read_key_file(Path(info["AUTH_KEYS_FILE"])).items()))
    s.http = Http(info["HTTP_URL"], token=dc.mint_token(secret, kid=kid, orgs=(dc.DEMO_ORG,)))  # a tenant key
    s.pids = {}  # every pid seen, to check at the end that none is left
    s.remember = lambda: s.pids.update({n: s.pids.get(n, set()) | ({recorded(state, n)} - {None})
                                        for n in SERVICES + ("run",)})
    s.remember()
    try:
        yield s
    finally:
        subprocess.run(RUN + ["stop"], env=env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        left = [p for ps in s.pids.values() for p in ps if dc.pid_alive(p)]
        for p in left:  # the test must not leave anything behind, even when it failed
            os.kill(p, signal.SIGKILL)
        shutil.rmtree(runtime, ignore_errors=True)


def run_log(s) -> str:
    return s.log.read_text(errors="replace")


def test_serves(sup):
    assert dc.redact_url(sup.info["REDIS_URL"]) == f"redis://default:***@127.0.0.1:{sup.ports['REDIS_PORT']}/0"
    assert stat.S_IMODE((sup.state / "stack.env").stat().st_mode) == 0o600, "stack.env holds passwords"
    r = sup.http.get("stats")
    assert r.status == 200 and r.is_json(), r
    assert wait_for(lambda: sup.http.get("stats").xcache == "HIT", 10), sup.http.get("stats")
    st = subprocess.run(RUN + ["status"], env=sup.env, capture_output=True, text=True, timeout=30)
    assert st.returncode == 0 and sup.info["HTTP_URL"] in st.stdout, st.stdout + st.stderr


def test_redis_shutdown_degrades_then_recovers(sup):
    old = recorded(sup.state, "redis")
    assert old, "no redis recorded"
    c = dc.RedisClient.from_url(sup.info["REDIS_URL"], timeout=5)
    with pytest.raises((ConnectionError, OSError)):
        c("SHUTDOWN", "NOSAVE")  # Redis closes the connection as it exits
    c.close()
    # while Redis is away (and for REDIS_RETRY_INTERVAL_MS after) the workers answer from PostgreSQL
    during = [sup.http.get("stats") for _ in range(5)]
    assert all(r.status == 200 and r.is_json() for r in during), during
    assert during[0].xcache == "BYPASS", during
    # the supervisor notices, says so, and starts it again
    assert wait_for(lambda: "redis (pid %d) exited" % old in run_log(sup), 10), run_log(sup)[-2000:]
    assert wait_for(lambda: recorded(sup.state, "redis") not in (None, old), 20), run_log(sup)[-2000:]
    assert wait_for(lambda: "redis is back" in run_log(sup), 20), run_log(sup)[-2000:]
    sup.remember()
    assert dc.RedisClient.from_url(sup.info["REDIS_URL"])("PING") == "PONG"
    line = next(ln for ln in run_log(sup).splitlines() if f"redis (pid {old}) exited" in ln)
    assert "X-Cache: BYPASS" in line and "restarting it in" in line, line
    # hits resume once the workers reconnect
    assert wait_for(lambda: sup.http.get("stats").xcache == "HIT", 15, 0.2), sup.http.get("stats")


def test_invalidator_killed_is_restarted(sup):
    old = recorded(sup.state, "invalidator")
    assert old, "no invalidator recorded"
    os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: recorded(sup.state, "invalidator") not in (None, old), 20), run_log(sup)[-2000:]
    assert wait_for(lambda: "invalidator is back" in run_log(sup), 30), run_log(sup)[-2000:]
    sup.remember()
    assert f"invalidator (pid {old}) exited (killed by SIGKILL)" in run_log(sup)
    # and it works: a database write is invalidated through the outbox
    before = sup.http.get("alerts/count")
    assert wait_for(lambda: sup.http.get("alerts/count").xcache == "HIT", 10)
    dc.psql(sup.info["DATABASE_URL"], "INSERT INTO alerts (id, org_id, unit_id, kind, message) "
            f"VALUES (gen_random_uuid(), '{dc.DEMO_ORG}', '{dc.DEMO_UNIT}', 'door_open', 'supervisor test')")
    want = before.json()["unresolved"] + 1
    assert wait_for(lambda: (sup.http.get("alerts/count").json() or {}).get("unresolved") == want, 10), \
        sup.http.get("alerts/count")


def test_fcgi_master_killed_is_restarted(sup):
    old = recorded(sup.state, "fcgi")
    assert old
    os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: recorded(sup.state, "fcgi") not in (None, old), 20), run_log(sup)[-2000:]
    assert wait_for(lambda: sup.http.get("stats").status == 200, 20), sup.http.get("stats")
    sup.remember()


def test_second_run_is_refused(sup):
    r = subprocess.run(RUN, env=sup.env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "already running" in r.stderr, r.stdout + r.stderr


def test_stop_leaves_nothing_running(sup):
    sup.remember()
    pids = {n: set(ps) for n, ps in sup.pids.items()}
    workers = set()
    for p in pids["fcgi"]:
        workers.update(dc.children(p))
    r = subprocess.run(RUN + ["stop"], env=sup.env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "dashcache stopped" in r.stdout, r.stdout + r.stderr
    time.sleep(0.2)
    left = {n: [p for p in ps if dc.pid_alive(p)] for n, ps in pids.items()}
    left = {n: ps for n, ps in left.items() if ps}
    assert not left, f"still running after stop: {left}"
    assert not [p for p in workers if dc.pid_alive(p)], "fcgi workers left running"
    for k in ("HTTP_PORT", "PG_PORT", "REDIS_PORT"):
        assert not dc.port_in_use(sup.ports[k]), f"{k} {sup.ports[k]} still accepts"
    assert not (sup.state / "stack.env").exists()
    assert "stopping" in run_log(sup) and "stopped" in run_log(sup)
