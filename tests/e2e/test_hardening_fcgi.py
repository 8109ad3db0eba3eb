"""Hardening of dashcache-fcgi as a process (issue 9, part 3), spoken to directly
over FastCGI (fcgi_client.py), without nginx, PostgreSQL or Redis: every request
here is one the workers answer without a dependency (/metrics, an unknown path).

- a master that is PID 1 (container ENTRYPOINT) serves and does not respawn-loop;
- a second instance on the same unix socket refuses to start and leaves the
  first one serving; a stale socket is replaced; at exit only our own socket
  is unlinked;
- --listen :port binds loopback only; FCGI_WEB_SERVER_ADDRS refuses other peers;
- idle connections (more than there are workers) cannot keep a request from
  being served: every connection is read under FCGI_IO_TIMEOUT_MS.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import dcstack as dc
import fcgi_client as fc

BIN = Path(os.environ.get("DC_FCGI_BIN") or dc.ROOT / "build" / "dashcache-fcgi")


class Fcgi:
    """One dashcache-fcgi process of the test's own, stopped by its pid."""

    def __init__(self, tmp: Path, name: str, args: list[str], env: dict | None = None, prefix=()):
        self.log_path = tmp / f"{name}.log"
        e = dc.test_app_env()
        # nothing listens there: a request that needed them would fail, none does
        e.update(DATABASE_URL="postgresql://dashcache@127.0.0.1:9/dashcache", REDIS_URL="redis://127.0.0.1:9/0",
                 METRICS_FILE=str(tmp / f"{name}.metrics"))
        e.update(env or {})
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*prefix, str(BIN), *args], stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=e, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_exit(self, timeout: float = 10) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, pid: int | None = None) -> None:
        """SIGTERM to pid (default: ours), then wait for ours; SIGKILL if it lingers."""
        if self.proc.poll() is None:
            try:
                os.kill(pid or self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


@pytest.fixture
def tmp():
    d = Path(tempfile.mkdtemp(prefix="dashcache-harden.", dir="/var/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def procs():
    started: list[Fcgi] = []
    yield started
    for p in reversed(started):
        p.stop()


def start(procs, *a, **kw) -> Fcgi:
    p = Fcgi(*a, **kw)
    procs.append(p)
    return p


def wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def serves(addr, **kw) -> bool:
    try:
        return fc.request(addr, "/no/such/route", timeout=3, **kw)[0] == 404
    except OSError:
        return False


def metric(addr, name: str) -> int:
    _, _, body = fc.request(addr, "/metrics", timeout=5)
    m = re.search(rf"^{name} (\d+)$", body.decode(), re.M)
    assert m, f"{name} not in /metrics"
    return int(m.group(1))


# ------------------------------------------------------------------ PID 1

@pytest.mark.skipif(not dc.is_root() or shutil.which("unshare") is None,
                    reason="needs root and util-linux unshare for a PID namespace")
def test_master_as_pid1_serves_without_respawning(tmp, procs):
    sock = tmp / "fcgi.sock"
    p = start(procs, tmp, "pid1", ["--listen", f"unix:{sock}", "--workers", "2"],
              prefix=["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM"])
    assert wait_for(lambda: serves(str(sock)), 10), "the PID-1 master never served:\n" + p.log()
    assert re.search(r"pid=1 event=master.start", p.log()), "the master is not PID 1:\n" + p.log()
    first = metric(str(sock), "dashboard_worker_restarts_total")
    time.sleep(3)
    assert serves(str(sock))
    exits = re.findall(r"event=master.worker_exit.*", p.log())
    assert metric(str(sock), "dashboard_worker_restarts_total") == first == 0 and not exits, \
        f"workers respawned under a PID-1 master: {exits[:5]}"
    # the master inside the namespace is unshare's child: stop it by its pid
    kids = dc.children(p.proc.pid)
    assert kids, "no master under unshare"
    p.stop(kids[0])
    assert p.proc.returncode == 0 or p.proc.returncode == -signal.SIGTERM
    assert "event=master.exit" in p.log()
