"""The master's sd_notify protocol (Type=notify), against a real notify socket:
a unix datagram socket of the test's own is NOTIFY_SOCKET for a dashcache-fcgi
master on the stack's configuration. READY=1 comes once the workers serve
(with a STATUS= of workers and requests), STATUS= again periodically,
RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from conftest import ROOT, wait_for

FCGI = ROOT / "build" / "dashcache-fcgi"
RECV_TIMEOUT = float(os.environ.get("E2E_NOTIFY_TIMEOUT", 20))


class Notify:
    """The service manager's end: every datagram the master sends, as {key: value} dicts."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.got: list[dict] = []

    def next(self) -> dict:
        self.sock.settimeout(RECV_TIMEOUT)
        data = self.sock.recv(4096).decode()
        msg = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
        self.got.append(msg)
        return msg

    def until(self, key: str) -> list[dict]:
        """Messages up to and including the first that has key; a failure when it has not come
        within RECV_TIMEOUT (STATUS= keeps coming meanwhile)."""
        seen, deadline = [], time.monotonic() + RECV_TIMEOUT
        while True:
            assert time.monotonic() < deadline, f"no {key}= within {RECV_TIMEOUT} s; got {seen}"
            m = self.next()
            seen.append(m)
            if key in m:
                return seen

    def close(self):
        self.sock.close()


def test_notify_ready_status_reload_stopping(stack, tmp_path):
    assert FCGI.exists(), f"{FCGI} is missing: run make all first"
    n = Notify(tmp_path / "notify.sock")
    envfile = tmp_path / "dashcache.env"
    envfile.write_text("LOG_LEVEL=info\n")
    sock = tmp_path / "fcgi.sock"
    env = {**os.environ, **stack.app_env, "NOTIFY_SOCKET": n.path, "METRICS_FILE": str(tmp_path / "metrics")}
    log = open(tmp_path / "fcgi.log", "w")
    p = subprocess.Popen([str(FCGI), "--listen", f"unix:{sock}", "--workers", "2", "--env-file", str(envfile)],
                         env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        first = n.until("READY")
        ready = first[-1]
        assert ready["READY"] == "1"
        assert ready["STATUS"].startswith("2 workers, "), ready
        assert "requests served" in ready["STATUS"]
        assert sock.exists()
        # the socket serves once READY was said
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(str(sock))

        status = n.next()  # the periodic one
        assert set(status) == {"STATUS"} and status["STATUS"].startswith("2 workers"), status

        p.send_signal(signal.SIGHUP)
        reloading = n.until("RELOADING")[-1]
        assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
        again = n.until("READY")[-1]
        assert again["READY"] == "1"

        p.send_signal(signal.SIGTERM)
        stopping = n.until("STOPPING")[-1]
        assert stopping["STOPPING"] == "1"
        assert p.wait(timeout=40) == 0
        keys = [k for m in n.got for k in m if k in ("READY", "RELOADING", "STOPPING")]
        assert keys == ["READY", "RELOADING", "READY", "STOPPING"], n.got
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()
        n.close()


def test_no_notify_socket_is_a_no_op(stack, tmp_path):
    """Without NOTIFY_SOCKET the master runs as before (nothing to send to)."""
    sock = tmp_path / "fcgi.sock"
    env = {**os.environ, **stack.app_env, "METRICS_FILE": str(tmp_path / "metrics")}
    env.pop("NOTIFY_SOCKET", None)
    p = subprocess.Popen([str(FCGI), "--listen", f"unix:{sock}", "--workers", "1"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(sock.exists, 10)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=40) == 0
        assert "notify" not in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
