"""Hardening of dashcache-fcgi as a process (issue 9, part 3), spoken to directly
over FastCGI (fcgi_client.py), without nginx, PostgreSQL or Redis: every request
here is one the workers answer without a dependency (/metrics, an unknown path).

- a master that is PID 1 (container ENTRYPOINT) serves and does not respawn-loop;
- a second instance on the same unix socket refuses to start and leaves the
  first one serving; a stale socket is replaced; at exit only our own socket
  is unlinked;
- --listen :port binds loopback only; FCGI_WEB_SERVER_ADDRS refuses other peers;
- idle connections (more than there are workers) cannot keep a request from
  being served, and a connection that has not sent a whole request within
  FCGI_IO_TIMEOUT_MS is dropped.
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
                 METRICS_FILE=str(tmp / f"{name}.metrics"), AUTH_KEYS_FILE=str(tmp / "auth-keys"))
        if not (tmp / "auth-keys").exists():  # a token key, as every jwt-mode start needs; no request here needs a token
            dc.write_key_file(tmp / "auth-keys")
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


# ------------------------------------------------------------------ the socket path

def test_second_instance_leaves_the_first_serving(tmp, procs):
    sock = tmp / "fcgi.sock"
    a = start(procs, tmp, "first", ["--listen", f"unix:{sock}", "--workers", "2"])
    assert wait_for(lambda: serves(str(sock)), 10), a.log()
    inode = sock.stat().st_ino
    b = start(procs, tmp, "second", ["--listen", f"unix:{sock}", "--workers", "2"])
    rc = b.wait_exit()
    assert rc != 0, "a second instance started over a live socket"
    assert str(sock) in b.log() and "in use" in b.log(), "the refusal does not name the socket:\n" + b.log()
    assert sock.is_socket() and sock.stat().st_ino == inode, "the second instance replaced the live socket"
    assert serves(str(sock)), "the first instance stopped serving"
    a.stop()
    assert not sock.exists(), "the first instance left its own socket at exit"


def test_stale_socket_is_replaced_and_only_our_own_is_unlinked(tmp, procs):
    sock = tmp / "fcgi.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))  # bound, never listening: what a killed master leaves
    stale.close()
    a = start(procs, tmp, "stale", ["--listen", f"unix:{sock}", "--workers", "1"])
    assert wait_for(lambda: serves(str(sock)), 10), "a stale socket was not replaced:\n" + a.log()
    # someone else takes the path over while we run (an overlapping restart)
    sock.unlink()
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(sock))
    other.listen(1)
    try:
        a.stop()
        assert sock.is_socket(), "the master unlinked a socket that was no longer its own"
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(str(sock))
        c.close()
    finally:
        other.close()
    f = tmp / "not-a-socket"
    f.write_text("data\n")
    b = start(procs, tmp, "file", ["--listen", f"unix:{f}", "--workers", "1"])
    assert b.wait_exit() != 0 and f.read_text() == "data\n", "a regular file was replaced"


# ------------------------------------------------------------------ TCP: loopback, allow-list

def test_port_only_binds_loopback_and_allow_list_refuses_other_peers(tmp, procs):
    port = dc.free_port()
    p = start(procs, tmp, "tcp", ["--listen", f":{port}", "--workers", "2"],
              env={"FCGI_WEB_SERVER_ADDRS": "127.0.0.1, 127.0.0.2"})
    addr = ("127.0.0.1", port)
    assert wait_for(lambda: serves(addr), 10), p.log()
    # bound to 127.0.0.1 only: another address of this host does not answer
    with pytest.raises(ConnectionRefusedError):
        fc.connect(("127.0.0.2", port), timeout=2)
    assert serves(addr, source="127.0.0.2"), "an allowed peer (127.0.0.2) was refused"
    t0 = time.monotonic()
    with pytest.raises((ConnectionError, OSError)):
        fc.request(addr, "/metrics", timeout=3, source="127.0.0.3")
    assert time.monotonic() - t0 < 2.5, "a refused peer's connection was not closed at once"
    assert wait_for(lambda: "127.0.0.3" in p.log() and "FCGI_WEB_SERVER_ADDRS" in p.log(), 3), p.log()
    assert serves(addr), "the pool stopped serving after a refused peer"


def test_bad_allow_list_is_a_configuration_error(tmp, procs):
    p = start(procs, tmp, "badallow", ["--listen", f":{dc.free_port()}", "--workers", "1"],
              env={"FCGI_WEB_SERVER_ADDRS": "127.0.0.1,nginx.example"})
    assert p.wait_exit() != 0
    assert "FCGI_WEB_SERVER_ADDRS" in p.log() and "nginx.example" in p.log(), p.log()


# ------------------------------------------------------------------ idle connections

@pytest.mark.parametrize("kind", ["tcp-silent", "unix-partial"])
def test_idle_connections_do_not_pin_the_workers(tmp, procs, kind):
    workers, idle, timeout_ms = 2, 5, 500
    if kind.startswith("tcp"):
        addr = ("127.0.0.1", dc.free_port())
        listen = f"{addr[0]}:{addr[1]}"
    else:
        addr = str(tmp / "fcgi.sock")
        listen = f"unix:{addr}"
    p = start(procs, tmp, kind, ["--listen", listen, "--workers", str(workers)],
              env={"FCGI_IO_TIMEOUT_MS": str(timeout_ms)})
    assert wait_for(lambda: serves(addr), 10), p.log()
    held = []
    try:
        for _ in range(idle):
            s = fc.connect(addr, timeout=30)
            if kind == "unix-partial":
                s.sendall(b"\x01")  # the first byte of a record header, then nothing
            held.append(s)
        time.sleep(0.1)  # the workers have taken the first ones
        t0 = time.monotonic()
        status, _, _ = fc.request(addr, "/no/such/route", timeout=20)
        took = time.monotonic() - t0
        # the workers multiplex their connections: nobody waits for a silent one's deadline
        assert status == 404 and took < timeout_ms / 1000, f"served after {took:.2f} s"
        # and the silent ones are dropped at their deadline, not kept
        assert wait_for(lambda: "event=worker.io_timeout" in p.log(), timeout_ms / 1000 + 2), p.log()
        for s in held:
            s.settimeout(2)
            assert s.recv(1) == b"", "a connection that sent no whole request was kept past its deadline"
    finally:
        for s in held:
            s.close()


# ------------------------------------------------------------------ reload re-reads --env-file

def test_sighup_rereads_the_env_file(tmp, procs):
    port = dc.free_port()
    addr = ("127.0.0.1", port)
    env_file = tmp / "dashcache.env"
    env_file.write_text("# as /etc/dashcache/dashcache.env\nFCGI_WEB_SERVER_ADDRS=127.0.0.1\n")
    p = start(procs, tmp, "reload", ["--listen", f"127.0.0.1:{port}", "--workers", "2", "--env-file", str(env_file)])
    assert wait_for(lambda: serves(addr), 10), p.log()
    assert not serves(addr, source="127.0.0.2")

    def reload_and_wait(n_reloads: int) -> None:
        os.kill(p.proc.pid, signal.SIGHUP)
        assert wait_for(lambda: p.log().count("event=master.reload") >= n_reloads, 5), p.log()

    # the file changes: a reload applies it (new workers, new allow-list)
    env_file.write_text("FCGI_WEB_SERVER_ADDRS='127.0.0.2'\n")
    reload_and_wait(2)
    assert wait_for(lambda: serves(addr, source="127.0.0.2"), 5), p.log()
    assert wait_for(lambda: not serves(addr), 5), "the reload kept the old FCGI_WEB_SERVER_ADDRS"

    # a broken file changes nothing and says why
    env_file.write_text("FCGI_WEB_SERVER_ADDRS=127.0.0.1\nFCGI_IO_TIMEOUT_MS=soon\n")
    before = p.log().count("event=worker.start")
    reload_and_wait(3)
    assert "FCGI_IO_TIMEOUT_MS must be an integer" in p.log(), p.log()
    time.sleep(0.5)
    assert p.log().count("event=worker.start") == before, "workers were restarted on a broken file"
    assert serves(addr, source="127.0.0.2") and not serves(addr)

    # a variable taken out of the file is unset again, as on a fresh start
    env_file.write_text("# nothing\n")
    reload_and_wait(5)
    assert wait_for(lambda: serves(addr), 5), "FCGI_WEB_SERVER_ADDRS removed from the file still applies"
