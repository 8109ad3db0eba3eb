"""The ways an operator starts dashcache-fcgi besides its own master on a
socket it opens: as plain workers under spawn-fcgi (listening socket on fd
0), and under systemd socket activation (fd 3, LISTEN_FDS; socket_activate.py
stands in for systemd). Both serve, and their counters land in the same
/metrics as the pool's. Bad configuration stops start-up with a message that
names the variable. Ported from test_45_process_modes.sh; every process here
is started by the test and stopped through its handle or the PID its starter
reported."""
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import scrape, wait_for
import dcstack as dc

ORG = dc.DEMO_ORG
HERE = Path(__file__).resolve().parent
TIMEOUT = 10


def fcgi_get(sock: Path, path: str, token: str = "") -> tuple[int | None, dict, bytes]:
    """One GET straight to a FastCGI socket with cgi-fcgi, with the bearer token as nginx would
    pass the header (HTTP_AUTHORIZATION): (status, headers, body)."""
    env = {"REQUEST_METHOD": "GET", "DOCUMENT_URI": path}
    if token:
        env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    r = subprocess.run(["cgi-fcgi", "-bind", "-connect", str(sock)], capture_output=True, timeout=TIMEOUT,
                       env=env, stdin=subprocess.DEVNULL)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    headers = {}
    for ln in head.decode(errors="replace").splitlines():
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    status = headers.get("status", "").split(" ")[0]
    return (int(status) if status.isdigit() else None), headers, body


@pytest.fixture
def started():
    """Processes the test starts ({"pids": [...], "procs": [...]}); stopped afterwards,
    SIGTERM then SIGKILL, each by its own PID or handle."""
    mine = {"pids": [], "procs": []}
    yield mine
    for p in mine["procs"]:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
    for pid in mine["pids"]:
        if dc.pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            if not wait_for(lambda: not dc.pid_alive(pid), TIMEOUT):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def workdir(stack):
    d = stack.runtime_dir / "modes"
    d.mkdir(exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    return d


# ------------------------------------------------------------------ configuration errors

BAD = [({"CACHE_TTL_SECONDS": "abc"}, 'CACHE_TTL_SECONDS must be an integer between 1 and 86400 (got "abc")'),
       ({"CACHE_TTL_STATS_SECONDS": "0"}, "CACHE_TTL_STATS_SECONDS must be an integer between 1 and 86400"),
       ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL is invalid"),
       ({"REDIS_URL": "redis://127.0.0.1:99999"}, "REDIS_URL is invalid"),
       ({"DATABASE_URL": "postgresql://127.0.0.1/dashcache?nosuchoption=1"}, "DATABASE_URL is invalid"),
       ({"REDIS_COMMAND_TIMEOUT_MS": "-5"}, "REDIS_COMMAND_TIMEOUT_MS must be an integer"),
       ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of"),
       ({"METRICS": "maybe"}, "METRICS must be on or off"),
       ({"CACHE": "maybe"}, 'CACHE must be on or off (got "maybe")')]


@pytest.mark.parametrize("bad,want", BAD, ids=[next(iter(b)) + "=" + next(iter(b.values())) for b, _ in BAD])
def test_bad_configuration_stops_start_up(stack, workdir, bad, want):
    sock = workdir / "never.sock"
    r = subprocess.run([str(stack.fcgi.binary), "--listen", f"unix:{sock}", "--workers", "1"],
                       env={**stack.app_env, **bad}, capture_output=True, text=True, timeout=TIMEOUT,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and want in r.stderr, \
        f"{bad} exits non-zero ({r.returncode}) saying on stderr: {want}; got {r.stderr.strip()[:300]!r}"
    assert not sock.exists(), "a refused start opened no socket"


def test_zero_workers_refused(stack):
    r = subprocess.run([str(stack.fcgi.binary), "--workers", "0"], env=stack.app_env, capture_output=True,
                       text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "--workers must be" in r.stderr, \
        f"--workers 0 is refused ({r.returncode}); got {r.stderr.strip()[:300]!r}"


def test_invalidator_refuses_bad_configuration(stack):
    r = subprocess.run([str(stack.invalidator.binary)], env={**stack.app_env, "CACHE_TTL_SECONDS": "abc"},
                       capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    want = "CACHE_TTL_SECONDS must be an integer between 1 and 86400"
    assert r.returncode != 0 and want in r.stderr, \
        f"the invalidator refuses it too ({r.returncode}); got {r.stderr.strip()[:300]!r}"


# ------------------------------------------------------------------ spawn-fcgi

def test_spawn_fcgi_plain_workers(http, stack, workdir, started):
    sock, pidfile = workdir / "sf.sock", workdir / "sf.pid"
    before = scrape(http).lookups()
    r = subprocess.run(["spawn-fcgi", "-s", str(sock), "-M", "0666", "-F", "2", "-P", str(pidfile), "--",
                        str(stack.fcgi.binary)], env=stack.app_env, capture_output=True, text=True,
                       timeout=TIMEOUT, stdin=subprocess.DEVNULL, cwd=workdir)
    pids = [int(x) for x in pidfile.read_text().split()] if pidfile.exists() else []
    started["pids"] += pids
    assert r.returncode == 0 and len(pids) == 2 and all(dc.pid_alive(p) for p in pids), \
        f"spawn-fcgi started 2 workers ({pids}); {r.stdout.strip()} {r.stderr.strip()}"
    answers = [fcgi_get(sock, f"/api/dashboard/orgs/{ORG}/units/status", stack.default_token) for _ in range(20)]
    ok = [a for a in answers if a[0] == 200]
    assert len(ok) == 20, f"20 requests to the spawn-fcgi workers: all 200 ({len(ok)}; statuses " \
                          f"{sorted({str(a[0]) for a in answers})})"
    bodies = [json.loads(b) for _, _, b in answers]
    assert all(b.get("orgId") == ORG for b in bodies), "each answer is the dashboard body of the organization"
    assert all(h.get("x-cache") in ("HIT", "MISS") for _, h, _ in answers), "each answer went through the cache"
    after = scrape(http).lookups()
    assert after - before == 20, f"their 20 lookups are in the pool's /metrics ({before} -> {after})"
    for p in pids:
        os.kill(p, signal.SIGTERM)
    assert wait_for(lambda: not any(dc.pid_alive(p) for p in pids), TIMEOUT), \
        f"SIGTERM stops them (alive: {[p for p in pids if dc.pid_alive(p)]})"


# ------------------------------------------------------------------ socket activation

def test_socket_activation(stack, workdir, started):
    sock = workdir / "sa.sock"
    with open(workdir / "sa.log", "wb") as log:
        master = subprocess.Popen(["/usr/bin/python3", str(HERE / "socket_activate.py"), str(sock),
                                   str(stack.fcgi.binary), "--workers", "2"], env=stack.app_env, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                  cwd=workdir)
    started["procs"].append(master)
    assert wait_for(lambda: len(dc.children(master.pid)) == 2, TIMEOUT), \
        f"the activated master forked 2 workers (got {dc.children(master.pid)}); log: {dc.tail(workdir / 'sa.log')}"
    status, _, body = fcgi_get(sock, f"/api/dashboard/orgs/{ORG}/stats", stack.default_token)
    assert status == 200 and ORG in body.decode(errors="replace"), \
        f"a request through the activated socket: 200 with the organization's stats ({status})"
    status, _, body = fcgi_get(sock, "/health")
    assert status == 200 and b'"healthy"' in body, f"its /health: 200 healthy ({status}, {body[:200]!r})"
    workers = dc.children(master.pid)
    master.terminate()
    try:
        rc = master.wait(20)
    except subprocess.TimeoutExpired:
        rc = None
    assert rc == 0, f"SIGTERM stops the activated master, which exits 0 ({rc})"
    assert wait_for(lambda: not any(dc.pid_alive(p) for p in workers), 5), f"and its workers ({workers})"
