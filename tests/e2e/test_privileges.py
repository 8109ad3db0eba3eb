"""What a local user could use against the private stack (issue 9, part 3), on
the shared stack: as root, the master keeps root (it binds the socket and
reloads), its workers and the invalidator run as the unprivileged `dashcache`
user, and the FastCGI socket is 0660 with nginx's group, so no other local user
can talk to it; Redis requires a password, PostgreSQL takes TCP logins only with
SCRAM passwords; the passwords live in files only root can read. Bad --user /
--socket-group values stop the start with a message that names them.
"""
from __future__ import annotations

import os
import pwd
import stat
import subprocess
from pathlib import Path

import pytest

import dcstack as dc

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="privilege switching needs the tests to run as root")

BIN = dc.ROOT / "build" / "dashcache-fcgi"
INV = dc.ROOT / "build" / "dashcache-invalidator"


def uids(pid: int) -> tuple[int, int, int]:
    """Real, effective and saved uid of pid (/proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            r, e, s, _ = (int(x) for x in line.split()[1:5])
            return r, e, s
    raise AssertionError(f"no Uid line for {pid}")


def test_workers_and_invalidator_are_not_root(stack):
    user = pwd.getpwnam(dc.SERVICE_USER)
    assert uids(stack.fcgi.pid()) == (0, 0, 0), "the master stays root (socket, reload)"
    workers = stack.fcgi.workers()
    assert workers, "the master has workers"
    for w in workers:
        assert uids(w) == (user.pw_uid,) * 3, f"worker {w} runs as {dc.SERVICE_USER}, saved uid included"
    assert uids(stack.invalidator.pid()) == (user.pw_uid,) * 3, "the invalidator runs as dashcache"


def test_socket_is_only_for_nginx_group(stack):
    st = stack.fcgi.socket.stat()
    assert stat.S_IMODE(st.st_mode) == 0o660, f"socket mode {oct(stat.S_IMODE(st.st_mode))}"
    assert st.st_uid == 0
    assert st.st_gid == pwd.getpwnam(dc.nginx_user()).pw_gid, "the socket belongs to nginx's group"


@pytest.mark.parametrize("args, message", [
    (["--user", "root"], '--user: "root" is root'),
    (["--user", "no-such-user-dc"], '--user: no such user "no-such-user-dc"'),
    (["--socket-group", "no-such-group-dc"], '--socket-group: no such group "no-such-group-dc"'),
])
def test_bad_user_or_group_is_a_clear_start_error(tmp_path, args, message):
    sock = tmp_path / "s.sock"
    dc.write_key_file(tmp_path / "auth-keys")  # a good token key: the start must stop at the user or group
    env = {**dc.test_app_env(), "METRICS": "off", "AUTH_KEYS_FILE": str(tmp_path / "auth-keys")}
    r = subprocess.run([str(BIN), "--listen", f"unix:{sock}", "--workers", "1", *args], env=env,
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, f"exit {r.returncode}; stderr: {r.stderr}"
    assert message in r.stderr, r.stderr
    assert not sock.exists(), "a refused start leaves no socket behind"


def test_invalidator_bad_user_is_a_clear_start_error():
    r = subprocess.run([str(INV), "--user", "no-such-user-dc"], env={**dc.test_app_env(), "METRICS": "off"},
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, f"exit {r.returncode}; stderr: {r.stderr}"
    assert '--user: no such user "no-such-user-dc"' in r.stderr


def test_redis_requires_the_password(stack):
    anon = dc.RedisClient(dc.HOST, stack.redis.port, 2.0)
    try:
        with pytest.raises(dc.RedisError, match="NOAUTH"):
            anon("GET", "dashcache:gen:stats:org:{" + dc.DEMO_ORG + "}")
    finally:
        anon.close()
    assert stack.redis.client()("PING") == "PONG", "the stack's own clients authenticate"


@pytest.mark.parametrize("who", ["dashcache", "postgres"])
def test_postgres_refuses_tcp_logins_without_the_password(stack, who):
    url = f"postgresql://{who}@{dc.HOST}:{stack.postgres.port}/postgres"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for extra in ({}, {"PGPASSWORD": "not-the-password"}):
        r = subprocess.run(["psql", url, "-X", "-At", "-w", "-c", "SELECT 1"], env={**env, **extra},
                           capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
        assert r.returncode != 0, f"{who} logged in {'without' if not extra else 'with a wrong'} password"
        assert "password" in r.stderr, r.stderr
    assert dc.psql(stack.postgres.url, "SELECT current_user") == "dashcache", "with it, it works"


def test_secrets_are_root_only(stack):
    d = stack.runtime_dir / "secrets"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    files = list(d.iterdir())
    assert {"redis.pass", "pg-dashcache.pass", "pg-postgres.pass"} <= {f.name for f in files}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE((stack.redis.dir / "redis.conf").stat().st_mode) == 0o600, "redis.conf holds requirepass"
