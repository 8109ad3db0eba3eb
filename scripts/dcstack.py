#!/usr/bin/python3
"""dashcache's stack as process objects: PostgreSQL, Redis, dashcache-fcgi,
dashcache-invalidator and nginx on 127.0.0.1, for `make test` (tests/run.py,
the e2e fixtures in tests/e2e/conftest.py), `make run` (scripts/run.py, the
supervisor; run_stack() is its configuration), `make seed` (scripts/seed.py)
and `make bench` (tests/bench/bench.py). Standard library only.

Each service is a `Service`: started with subprocess.Popen in its own session
(a Ctrl-C on the terminal reaches only the harness), output appended to
STATE_DIR/logs/NAME.log, ready when its socket accepts (PostgreSQL: the
start-up handshake is answered; Redis: PING; nginx: TCP connect;
dashcache-fcgi: its unix socket accepts and it has workers; the invalidator,
which listens on nothing, when it logs its first `event=invalidate.all`),
every wait bounded by a deadline. `stop()` signals the process through its
handle (SIGTERM, or PostgreSQL's fast then immediate shutdown), waits, then
SIGKILLs it and its direct children. Nothing is ever signalled by name.

A `Stack` composes them, in start order, as a context manager; it stops only
what it started, in reverse order, also from an atexit hook and on SIGTERM.
Test stacks take free loopback ports (bound to port 0) unless told otherwise,
so several stacks can run at once.

Every start also records "PID STARTTIME" in STATE_DIR/pids/NAME.pid, so that
`make stop` finds the services of a supervisor that was killed; a service
whose own process is gone adopts the process recorded there for the same stack.

The demo ids live here (DEMO_ORG, DEMO_UNIT, org_id(n)); sql/seed.sql is
their source of truth and tests/e2e checks that both agree.

Command line:
  dcstack.py nginx-check              nginx -t on the site config and snippet
"""
from __future__ import annotations

import atexit
import grp
import hashlib
import os
import pwd
import secrets
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DB_NAME = "dashcache"
DB_USER = "dashcache"

# Demo data (sql/seed.sql, dc_seed): organization 1 and its first unit.
DEMO_ORG = "550e8400-e29b-41d4-a716-446655440000"
DEMO_UNIT = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
DEMO_SEED = (20, 3, 5)  # dc_seed(orgs, days, step minutes) of `make run` and the tests


def org_id(n: int) -> str:
    """Organization n of dc_seed: dc_uuid('org', n) = md5('org:n')::uuid; 1 is DEMO_ORG."""
    if n == 1:
        return DEMO_ORG
    h = hashlib.md5(f"org:{n}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# The application's configuration for tests: fixed, whatever the caller's
# environment says.
TEST_APP_ENV = {
    "CACHE_TTL_SECONDS": "60",
    "REDIS_CONNECT_TIMEOUT_MS": "100",
    "REDIS_COMMAND_TIMEOUT_MS": "100",
    "REDIS_RETRY_INTERVAL_MS": "1000",
    "DB_CONNECT_TIMEOUT_SECONDS": "2",
    "DB_STATEMENT_TIMEOUT_MS": "5000",
    # the sampler's statements would add to the statement counts tests compare
    # exactly; tests/e2e/test_consistency_sampler.py runs a stack with it on
    "CONSISTENCY_SAMPLE_PER_S": "0",
    "TRUST_PROBE_INTERVAL_MS": "250",
    "CACHE_MAX_STALE_SECONDS": "300",
    "CACHE_LEASE": "on",
    "CACHE_LEASE_MS": "2000",
}
_APP_VARS = re.compile(r"^(CACHE|CACHE_TTL_.*|CACHE_MAX_STALE_SECONDS|CACHE_LEASE|CACHE_LEASE_MS|REDIS_.*_MS|DB_.*_SECONDS|DB_.*_MS|DEVICE_ONLINE_SECONDS|"
                       r"RETRY_AFTER_SECONDS|DATABASE_URL|REDIS_URL|HTTP_URL|METRICS_FILE|METRICS|AUTH_.*|"
                       r"CONSISTENCY_SAMPLE_PER_S|TRUST_PROBE_INTERVAL_MS|BREAKERS|BREAKER_.*|REQUEST_TIMEOUT_MS|MAX_REQUESTS)$")


def test_app_env(base: dict | None = None) -> dict:
    env = {k: v for k, v in (os.environ if base is None else base).items() if not _APP_VARS.match(k)}
    env.update(TEST_APP_ENV)
    env.setdefault("LOG_LEVEL", "info")
    return env


# ------------------------------------------------------------------ tokens
# Bearer tokens as dashcache verifies them (fcgi-app/dc_auth.h): compact JWS,
# HS256 with a key of AUTH_KEYS_FILE named by kid. The stacks write a key file
# of their own; tests mint with it here (and forge what must be refused).

TEST_KID = "test1"
ALL_SCOPES = "read write ingest refresh admin"


def b64url(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_key_file(path: Path, kid: str = TEST_KID, all_orgs: bool = False) -> bytes:
    """A key file with one fresh HS256 key (mode 0600, as dashcache requires); returns the
    secret. all_orgs: the key may sign tokens for every organization (orgs ["*"])."""
    secret = os.urandom(32)
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"# written by scripts/dcstack.py: kid alg base64url-secret [all-orgs]\n"
                f"{kid} HS256 {b64url(secret)}{' all-orgs' if all_orgs else ''}\n")
    os.chmod(path, 0o600)
    return secret


def read_key_file(path: Path) -> dict:
    """{kid: secret} of the HS256 lines of a key file."""
    import base64
    keys = {}
    for line in Path(path).read_text().splitlines():
        f = line.split("#", 1)[0].split()
        if len(f) in (3, 4) and f[1] == "HS256":
            keys[f[0]] = base64.urlsafe_b64decode(f[2] + "=" * (-len(f[2]) % 4))
    return keys


def mint_token(secret: bytes, *, kid: str | None = TEST_KID, sub: str = "e2e", orgs=("*",),
               scope: str = ALL_SCOPES, ttl: int = 3600, alg: str = "HS256", header: dict | None = None,
               claims: dict | None = None, now: int | None = None) -> str:
    """A compact JWS. alg HS256/HS384/HS512 sign with secret; "none" leaves the signature empty;
    header and claims override or add members (for forgeries)."""
    import hmac
    import json
    now = int(time.time()) if now is None else now
    h = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        h["kid"] = kid
    h.update(header or {})
    c = {"sub": sub, "orgs": list(orgs), "scope": scope, "iat": now, "exp": now + ttl}
    c.update(claims or {})
    signing = f"{b64url(json.dumps(h).encode())}.{b64url(json.dumps(c).encode())}"
    digest = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}.get(alg)
    sig = b64url(hmac.new(secret, signing.encode(), digest).digest()) if digest else ""
    return f"{signing}.{sig}"


class StackError(RuntimeError):
    """A service could not be started or stopped; the message says why."""


LOG_STREAM = None  # where the harness's own messages go (None: stderr)


def log(msg: str) -> None:
    print(f"dashcache: {msg}", file=LOG_STREAM or sys.stderr, flush=True)


# ------------------------------------------------------------------ helpers

def is_root() -> bool:
    return os.geteuid() == 0


def repo_hash() -> str:
    return hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]


def runtime_dir(purpose: str) -> Path:
    """/var/tmp/dashcache-<hash>-PURPOSE (make run's: kept between runs): outside
    the repo, because the postgres and nginx users may not enter a home directory."""
    d = Path(os.environ.get("DC_RUNTIME_BASE", "/var/tmp")) / f"dashcache-{repo_hash()}-{purpose}"
    if d.is_symlink() or (d.exists() and not (d.is_dir() and d.stat().st_uid == os.geteuid())):
        raise StackError(f"{d} exists but is not a directory owned by uid {os.geteuid()}; remove it")
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    return d


def temp_runtime_dir(purpose: str) -> Path:
    """A fresh runtime directory for a throwaway stack; it records its owner's pid,
    so that leftovers of killed harnesses can be told from live ones."""
    base = Path(os.environ.get("DC_RUNTIME_BASE", "/var/tmp"))
    prefix = f"dashcache-{repo_hash()}-{purpose}."
    for old in base.glob(prefix + "*"):
        try:
            owner = int((old / "owner.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            owner = 0
        if old.is_dir() and not old.is_symlink() and old.stat().st_uid == os.geteuid() \
                and not pid_alive(owner):
            shutil.rmtree(old, ignore_errors=True)
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    d.chmod(0o755)
    (d / "owner.pid").write_text(f"{os.getpid()}\n")
    return d


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cluster_port() -> int:
    """A free port a Redis Cluster node can take: at most 55535, and its bus port
    (the port + 10000) free too."""
    import random
    for _ in range(1000):
        port = random.randint(20000, 55535)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as a, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as b:
                a.bind((HOST, port))
                b.bind((HOST, port + 10000))
                return port
        except OSError:
            continue
    raise StackError("no free port pair for a Redis Cluster node")


def port_in_use(port: int) -> bool:
    return tcp_accepts(HOST, port, 1.0)


def tcp_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unix_accepts(path: Path, timeout: float = 0.5) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            return True
    except OSError:
        return False


def proc_stat(pid: int) -> tuple[str, str, int] | None:
    """(state, starttime, ppid) of a process, or None."""
    try:
        s = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    f = s[s.rindex(")") + 2:].split()
    return f[0], f[19], int(f[1])


def pid_alive(pid: int) -> bool:
    st = proc_stat(pid) if pid > 0 else None
    return st is not None and st[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            st = proc_stat(int(p.name))
            if st and st[2] == pid and st[0] not in ("Z", "X"):
                out.append(int(p.name))
    return sorted(out)


def tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def pg_bindir() -> Path:
    """The server's bin directory: pg_config if it points at a server, else the newest
    /usr/lib/postgresql/*/bin."""
    try:
        d = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                timeout=10).stdout.strip())
        if (d / "initdb").exists() and (d / "postgres").exists():
            return d
    except (OSError, subprocess.SubprocessError):
        pass
    cands = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0], reverse=True)
    for d in cands:
        if (d / "initdb").exists() and (d / "postgres").exists():
            return d
    raise StackError("no PostgreSQL server found (scripts/deps.sh installs it)")


SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|"
                              r"SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)|"
                              r"ERROR SUMMARY: [1-9]")


# ------------------------------------------------------------------ Redis client

class RedisError(Exception):
    pass


class RedisClient:
    """A minimal RESP2 client over TCP, every call bounded by `timeout`."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.addr, self.timeout = (host, port), timeout
        self.sock: socket.socket | None = None
        self.buf = b""
        self.on_connect: list[tuple] = []

    def _connect(self) -> socket.socket:
        if self.sock is None:
            if str(self.addr[0]).startswith("/"):  # a unix socket path
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(self.timeout)
                try:
                    s.connect(self.addr[0])
                except OSError:
                    s.close()
                    raise
                self.sock = s
            else:
                self.sock = socket.create_connection(self.addr, timeout=self.timeout)
            self.buf = b""
            for cmd in self.on_connect:
                self.send(*cmd)
                self._reply()
        return self.sock

    @classmethod
    def from_url(cls, url: str, timeout: float = 5.0) -> "RedisClient":
        """redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]."""
        from urllib.parse import parse_qs, unquote, urlsplit
        u = urlsplit(url)
        if u.scheme == "unix":
            c = cls(u.path, 0, timeout)
            db = (parse_qs(u.query).get("db") or ["0"])[0]
        elif u.scheme in ("redis", ""):
            c = cls(u.hostname or HOST, u.port or 6379, timeout)
            db = u.path.strip("/") or "0"
        else:
            raise RedisError(f"unsupported Redis URL {url!r}")
        if u.password is not None:
            auth = ("AUTH", unquote(u.username), unquote(u.password)) if u.username else ("AUTH", unquote(u.password))
            c.on_connect.append(auth)
        if db != "0":
            c.on_connect.append(("SELECT", db))
        return c

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError(f"bad reply {line[:40]!r}")

    def send(self, *args) -> None:
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            parts += [f"${len(b)}\r\n".encode(), b, b"\r\n"]
        self._connect().sendall(b"".join(parts))

    def __call__(self, *args):
        try:
            self.send(*args)
            return self._reply()
        except (OSError, ConnectionError):
            self.close()
            raise

    def scan(self, pattern: str) -> list[str]:
        cursor, keys = "0", set()
        for _ in range(100000):
            cursor, batch = self("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            keys.update(batch)
            if cursor == "0":
                break
        return sorted(keys)

    def subscribe(self, channel: str) -> None:
        self.send("SUBSCRIBE", channel)
        self._reply()

    def message(self, timeout: float):
        """The next pub/sub message's data, or None after timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            while True:
                r = self._reply()
                if isinstance(r, list) and r and r[0] == "message":
                    return r[2]
        except (socket.timeout, TimeoutError):
            return None
        finally:
            if self.sock is not None:
                self.sock.settimeout(self.timeout)


# ------------------------------------------------------------------ services

class Service:
    """One server process of a stack, owned by its Popen handle."""

    name = "service"
    stop_plan: tuple = ((signal.SIGTERM, 10.0),)
    start_timeout = 20.0

    def __init__(self, stack: "Stack"):
        self.stack = stack
        self.proc: subprocess.Popen | None = None
        self.log_path = stack.state_dir / "logs" / f"{self.name}.log"
        self.pid_path = stack.state_dir / "pids" / f"{self.name}.pid"

    # ---- what runs
    def pid(self) -> int | None:
        """The running process: ours, or the one recorded in this stack's pidfile."""
        if self.proc is not None and self.proc.poll() is None:
            return self.proc.pid
        try:
            pid_s, start = self.pid_path.read_text().split()[:2]
            st = proc_stat(int(pid_s))
        except (OSError, ValueError):
            return None
        if st and st[0] not in ("Z", "X") and st[1] == start:
            return int(pid_s)
        return None

    def running(self) -> bool:
        return self.pid() is not None

    def exit_status(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    # ---- start
    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict:
        return dict(self.stack.app_env)

    def popen_extra(self) -> dict:
        return {}

    def prepare(self) -> None:
        pass

    def ready(self) -> bool:
        raise NotImplementedError

    def after_start(self) -> None:
        pass

    def launch(self) -> None:
        """Start the process (prepare, Popen, pidfile) without waiting for it to be ready."""
        if self.running():
            raise StackError(f"{self.name} is already running (pid {self.pid()})")
        self.prepare()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as logf:
            self.log_offset = logf.tell()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, cwd=self.stack.runtime_dir,
                                         env=self.env(), start_new_session=True, close_fds=True,
                                         **self.popen_extra())
        st = proc_stat(self.proc.pid)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.write_text(f"{self.proc.pid} {st[1] if st else 0}\n")

    def start(self) -> "Service":
        self.launch()
        self.wait_until(self.ready, self.start_timeout, "become ready")
        self.after_start()
        log(f"{self.name} ready (pid {self.proc.pid}){self.describe()}")
        return self

    def describe(self) -> str:
        return ""

    def wait_until(self, pred, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                rc = self.exit_status()
                msg = f"{self.name} exited (status {rc}) before it could {what}; last lines of {self.log_path}:\n" \
                      + tail(self.log_path)
                self.stop()
                raise StackError(msg)
            if pred():
                return
            if time.monotonic() > deadline:
                msg = f"{self.name} did not {what} within {timeout:.0f} s; last lines of {self.log_path}:\n" \
                      + tail(self.log_path)
                self.stop()
                raise StackError(msg)
            time.sleep(0.05)

    def log_since_start(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(getattr(self, "log_offset", 0))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # ---- stop
    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.pid == pid:
                try:
                    self.proc.wait(timeout=0.05)
                    return True
                except subprocess.TimeoutExpired:
                    continue
            if not pid_alive(pid):
                return True
            time.sleep(0.05)
        return not pid_alive(pid)

    def signal(self, sig: int) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, sig)
        return True

    def stop(self) -> None:
        """Stop the process by its handle: the stop plan, then SIGKILL of it and its children."""
        pid = self.pid()
        if pid is not None:
            for sig, timeout in self.stop_plan:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                if self._wait_gone(pid, timeout):
                    break
            else:
                kids = children(pid)
                log(f"{self.name} (pid {pid}) did not stop; killing it and its children {kids}")
                for p in [pid] + kids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self._wait_gone(pid, 5)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        try:
            self.pid_path.unlink()
        except FileNotFoundError:
            pass

    def kill(self) -> None:
        """SIGKILL, by handle, and reap: a crash as the tests need it."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, 5)

    def restart(self) -> None:
        self.stop()
        self.start()


class Postgres(Service):
    """The private cluster in RUNTIME_DIR/pgdata: initdb once per data directory,
    run as the postgres user when we are root (initdb and postgres refuse root)."""

    name = "postgres"
    # fast shutdown (the default smart one waits for the workers' connections), then immediate
    stop_plan = ((signal.SIGINT, 30.0), (signal.SIGQUIT, 10.0))
    start_timeout = 60.0
    CONF = """# dashcache private cluster
max_connections = 200
shared_buffers = 256MB
work_mem = 16MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
log_min_messages = warning
log_line_prefix = '%m [%p] '
"""

    def __init__(self, stack: "Stack", port: int, fsync: bool = True):
        super().__init__(stack)
        self.port, self.fsync = port, fsync
        self.data = stack.runtime_dir / "pgdata"
        self.sock = stack.runtime_dir / "pgsock"
        self.bindir = pg_bindir()
        self.fresh = False
        self.password = secret(stack.runtime_dir, "pg-dashcache.pass")
        self.admin_password = secret(stack.runtime_dir, "pg-postgres.pass")

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}:{self.password}@{HOST}:{self.port}/{DB_NAME}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres:{self.admin_password}@{HOST}:{self.port}/postgres"

    HBA_MARK = "# dashcache: scram on TCP"
    HBA = HBA_MARK + """ (scripts/dcstack.py); the unix socket for the cluster's owner only
local   all   {owner}   peer
host    all   all       127.0.0.1/32   scram-sha-256
"""

    def secure(self) -> None:
        """Password (SCRAM) authentication on TCP instead of initdb's trust: set the
        passwords of postgres and dashcache (RUNTIME/secrets), then switch pg_hba.conf.
        Runs on a cluster made with trust (a new one, or one of an earlier version),
        while trust still holds; the reload makes the new rules take effect."""
        hba = self.data / "pg_hba.conf"
        if self.HBA_MARK in hba.read_text(errors="replace"):
            return
        sql = self.stack.runtime_dir / "secrets" / "roles.sql"
        fd = os.open(sql, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:  # passwords in a file of root's, never in argv
            f.write(f"ALTER ROLE postgres PASSWORD '{self.admin_password}';\n"
                    f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{DB_USER}') THEN "
                    f"CREATE ROLE {DB_USER} LOGIN; END IF; END $$;\n"
                    f"ALTER ROLE {DB_USER} LOGIN PASSWORD '{self.password}';\n")
        trust_url = f"postgresql://postgres@{HOST}:{self.port}/postgres"
        try:
            psql(trust_url, files=[sql])
        finally:
            sql.unlink(missing_ok=True)
        tmp = hba.with_suffix(".new")
        tmp.write_text(self.HBA.format(owner=self.os_user()))
        if is_root():
            pw = pwd.getpwnam(self.os_user())
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        tmp.chmod(0o600)
        tmp.replace(hba)
        psql(trust_url, "SELECT pg_reload_conf()")
        log("postgres: password (SCRAM) authentication on TCP")

    @staticmethod
    def os_user() -> str:
        return os.environ.get("DC_PG_OS_USER", "postgres")

    @classmethod
    def as_owner(cls, home: Path) -> tuple[dict, dict]:
        """Popen arguments and environment additions to run as the cluster's owner."""
        if not is_root():
            return {}, {}
        u = cls.os_user()
        try:
            pw = pwd.getpwnam(u)
        except KeyError:
            raise StackError(f"user {u} does not exist (install postgresql: scripts/deps.sh)") from None
        return ({"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": os.getgrouplist(u, pw.pw_gid)},
                {"HOME": str(home), "USER": u})

    @classmethod
    def initdb(cls, runtime: Path, log_path: Path) -> bool:
        """initdb RUNTIME/pgdata unless it holds a cluster; True when created now."""
        data = runtime / "pgdata"
        if (data / "PG_VERSION").is_file() and (data / "PG_VERSION").stat().st_size > 0:
            return False
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        data.chmod(0o700)
        if is_root():
            pw = pwd.getpwnam(cls.os_user())
            os.chown(data, pw.pw_uid, pw.pw_gid)
        extra, env_add = cls.as_owner(runtime)
        log(f"initdb {data}")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as logf:
            rc = subprocess.run([str(pg_bindir() / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                 "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, cwd=runtime,
                                env={**os.environ, **env_add}, timeout=300, **extra).returncode
        if rc != 0:
            raise StackError(f"initdb failed; last lines of {log_path}:\n{tail(log_path)}")
        conf = cls.CONF
        # a small /dev/shm (containers) cannot hold parallel-query segments
        try:
            st = os.statvfs("/dev/shm")
            if st.f_blocks * st.f_frsize < 1 << 30:
                conf += "dynamic_shared_memory_type = mmap\n"
        except OSError:
            conf += "dynamic_shared_memory_type = mmap\n"
        with open(data / "postgresql.conf", "a") as f:
            f.write(conf)
        return True

    def prepare(self) -> None:
        if port_in_use(self.port):
            raise StackError(f"port {self.port} on {HOST} is already in use (the PostgreSQL port)")
        self.fresh = self.initdb(self.stack.runtime_dir, self.log_path)
        self.sock.mkdir(parents=True, exist_ok=True)
        if is_root():
            pw = pwd.getpwnam(self.os_user())
            os.chown(self.sock, pw.pw_uid, pw.pw_gid)

    def argv(self) -> list[str]:
        also = self.stack.also_listen
        a = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.sock),
             "-c", f"listen_addresses={HOST}" + (f",{also[0]}" if also else "")]
        if not self.fsync:  # throwaway test clusters only: a crash may corrupt them
            a += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        return a

    def env(self) -> dict:
        return {**os.environ, **self.as_owner(self.stack.runtime_dir)[1]}

    def popen_extra(self) -> dict:
        return self.as_owner(self.stack.runtime_dir)[0]

    NET_MARK = "# dashcache: test network"

    def allow_network(self, cidr: str) -> None:
        """Password (SCRAM) logins from the hosts of a test network (scripts/dcnet.py) too:
        one pg_hba.conf line for that network only, then a reload."""
        hba = self.data / "pg_hba.conf"
        line = f"host    all   all       {cidr}   scram-sha-256   {self.NET_MARK}\n"
        text = hba.read_text(errors="replace")
        if line in text:
            return
        text = "".join(ln for ln in text.splitlines(keepends=True) if self.NET_MARK not in ln)
        tmp = hba.with_suffix(".net")
        tmp.write_text(text + line)
        if is_root():
            pw = pwd.getpwnam(self.os_user())
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        tmp.chmod(0o600)
        tmp.replace(hba)
        self.psql("SELECT pg_reload_conf()", url=self.admin_url)

    def freeze(self) -> list[int]:
        """SIGSTOP the postmaster and every backend (PostgreSQL hung, sockets open): their pids,
        for thaw(). A backend that ended since it was listed is skipped."""
        pm = self.pid()
        pids = [pm, *children(pm)] if pm else []
        for p in pids:
            try:
                os.kill(p, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        return pids

    @staticmethod
    def frozen(pids: list[int]) -> bool:
        """Whether every process of freeze() has stopped (one that ended meanwhile counts)."""
        return all((proc_stat(p) or ("T",))[0] in "TZX" for p in pids)

    @staticmethod
    def thaw(pids: list[int]) -> None:
        for p in pids:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def ready(self) -> bool:
        """The server answers a start-up message with authentication (not 'starting up')."""
        try:
            with socket.create_connection((HOST, self.port), timeout=1.0) as s:
                body = struct.pack("!I", 196608) + b"user\0postgres\0database\0postgres\0\0"
                s.sendall(struct.pack("!I", len(body) + 4) + body)
                ok = s.recv(1) == b"R"
                if ok:
                    s.sendall(b"X\0\0\0\4")
                return ok
        except OSError:
            return False

    def after_start(self) -> None:
        self.secure()
        if self.fresh:
            self.psql(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}", url=self.admin_url)

    def describe(self) -> str:
        return f", {HOST}:{self.port}"

    def psql(self, sql: str | None = None, *, url: str | None = None, **kw) -> str:
        return psql(url or self.url, sql, **kw)

    def has_schema(self) -> bool:
        return db_has_schema(self.url)

    def load_schema(self) -> None:
        db_load_schema(self.url)

    def seed(self, orgs: int, days: int, step: int, truncate: bool = False) -> None:
        db_seed(self.url, orgs, days, step, truncate)

    def prepare_db(self, seed=DEMO_SEED) -> None:
        db_prepare(self.url, seed)


class Standby(Postgres):
    """A streaming standby of the stack's PostgreSQL (issue 13: standby reads):
    pg_basebackup -R of the running primary into RUNTIME/pgstandby, its own port,
    hot standby, replay delayed by delay_ms (recovery_min_apply_delay) when
    asked; ready once its WAL receiver streams. Replication connects as postgres
    over loopback with the password of a pgpass file (never in argv); the
    primary's pg_hba.conf gets one replication line for 127.0.0.1."""

    name = "postgres-standby"
    REPL_MARK = "# dashcache: replication (scripts/dcstack.py Standby)"

    def __init__(self, stack: "Stack", port: int, primary: Postgres, delay_ms: int = 0):
        Service.__init__(self, stack)
        self.port, self.fsync, self.primary, self.delay_ms = port, primary.fsync, primary, delay_ms
        self.data = stack.runtime_dir / "pgstandby"
        self.sock = stack.runtime_dir / "pgstandby-sock"
        self.pgpass = stack.runtime_dir / "pgstandby.pgpass"
        self.bindir = pg_bindir()
        self.fresh = False
        self.password, self.admin_password = primary.password, primary.admin_password

    def _own(self, path: Path) -> None:
        if is_root():
            pw = pwd.getpwnam(self.os_user())
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def allow_replication(self) -> None:
        hba = self.primary.data / "pg_hba.conf"
        text = hba.read_text(errors="replace")
        if self.REPL_MARK in text:
            return
        tmp = hba.with_suffix(".repl")
        tmp.write_text(text + f"{self.REPL_MARK}\nhost    replication   postgres   {HOST}/32   scram-sha-256\n")
        self._own(tmp)
        tmp.chmod(0o600)
        tmp.replace(hba)
        psql(self.primary.admin_url, "SELECT pg_reload_conf()")

    def prepare(self) -> None:
        if port_in_use(self.port):
            raise StackError(f"port {self.port} on {HOST} is already in use (the standby's port)")
        if not self.primary.running():
            raise StackError("the standby needs the stack's PostgreSQL running")
        self.allow_replication()
        fd = os.open(self.pgpass, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{HOST}:{self.primary.port}:*:postgres:{self.admin_password}\n")
        self._own(self.pgpass)
        shutil.rmtree(self.data, ignore_errors=True)
        for d in (self.data, self.sock):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)
            self._own(d)
        extra, env_add = self.as_owner(self.stack.runtime_dir)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log(f"pg_basebackup of {HOST}:{self.primary.port} into {self.data}")
        with open(self.log_path, "ab") as logf:
            rc = subprocess.run([str(self.bindir / "pg_basebackup"), "-D", str(self.data), "-R", "-X", "stream",
                                 "-c", "fast", "--no-sync", "-d",
                                 f"host={HOST} port={self.primary.port} user=postgres"],
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                cwd=self.stack.runtime_dir, timeout=300,
                                env={**os.environ, **env_add, "PGPASSFILE": str(self.pgpass)}, **extra).returncode
        if rc != 0:
            raise StackError(f"pg_basebackup failed; last lines of {self.log_path}:\n{tail(self.log_path)}")
        # the walreceiver reads the password from the pgpass file too (last setting wins)
        with open(self.data / "postgresql.auto.conf", "a") as f:
            f.write(f"primary_conninfo = 'host={HOST} port={self.primary.port} user=postgres "
                    f"passfile={self.pgpass} application_name=dcstandby'\n")

    def argv(self) -> list[str]:
        a = super().argv() + ["-c", "hot_standby=on", "-c", "hot_standby_feedback=on",
                              "-c", f"recovery_min_apply_delay={int(self.delay_ms)}ms"]
        return a

    def streaming(self) -> bool:
        try:
            return psql(self.admin_url, "SELECT status FROM pg_stat_wal_receiver", timeout=5,
                        check=False) == "streaming"
        except (StackError, subprocess.TimeoutExpired):
            return False

    def after_start(self) -> None:
        self.wait_until(self.streaming, 60, "stream from the primary")

    def replay_lsn(self) -> str:
        return psql(self.admin_url, "SELECT pg_last_wal_replay_lsn()")

    def wait_caught_up(self, timeout: float = 60.0) -> None:
        """Until the standby has replayed what the primary had written when asked."""
        target = psql(self.primary.admin_url, "SELECT pg_current_wal_insert_lsn()")
        self.wait_until(lambda: psql(self.admin_url, f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")
                        == "t", timeout + self.delay_ms / 1000.0, f"replay up to {target}")

    def describe(self) -> str:
        return f", {HOST}:{self.port}, replay delay {self.delay_ms} ms"


# ------------------------------------------------------------------ any database, by URL

def split_password(url: str) -> tuple[str, str | None]:
    """(url without its password, the password or None): what a child's argv may show."""
    from urllib.parse import unquote
    m = re.match(r"^([a-z]+://[^/@:]*):([^@/]*)@(.*)$", url or "")
    if not m:
        return url, None
    return f"{m.group(1)}@{m.group(3)}", unquote(m.group(2))


def psql(url: str, sql: str | None = None, *, files=(), args=(), single_tx: bool = False,
         timeout: float = 120.0, check: bool = True) -> str:
    """Run psql (-X -q -At, ON_ERROR_STOP) on url and return its output, stripped."""
    try:
        bindir = pg_bindir()
        exe = str(bindir / "psql") if (bindir / "psql").exists() else "psql"
    except StackError:
        exe = "psql"
    url, password = split_password(url)
    cmd = [exe, url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
    if single_tx:
        cmd.append("-1")
    for f in files:
        cmd += ["-f", str(f)]
    if sql is not None:
        cmd += ["-c", sql]
    cmd += list(args)
    env = {**os.environ, "PGCONNECT_TIMEOUT": os.environ.get("PGCONNECT_TIMEOUT", "5")}
    if password is not None:
        env["PGPASSWORD"] = password
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    if check and r.returncode != 0:
        raise StackError(f"psql failed ({r.returncode}): {r.stderr.strip()[:2000]}")
    return r.stdout.strip()


def db_has_schema(url: str) -> bool:
    return psql(url, "SELECT to_regclass('public.organizations') IS NOT NULL") == "t"


def db_load_schema(url: str) -> None:
    psql(url, files=[ROOT / "sql/schema.sql", ROOT / "sql/seed.sql"])


def db_seed(url: str, orgs: int, days: int, step: int, truncate: bool = False) -> None:
    """(Re)fill the database with dc_seed in one transaction (readers see the old data
    until it commits), then VACUUM ANALYZE (statistics, index-only scans)."""
    pre = ["-c", "TRUNCATE organizations, sites, units, devices, readings, alerts, audit_log "
                 "RESTART IDENTITY CASCADE"] if truncate else []
    psql(url, files=[ROOT / "sql/seed.sql"], args=pre + ["-c", f"SELECT * FROM dc_seed({orgs}, {days}, {step})"],
         single_tx=True, timeout=3600)
    psql(url, "SET client_min_messages = error", args=["-c", "VACUUM ANALYZE"], timeout=3600)


def db_prepare(url: str, seed=DEMO_SEED) -> None:
    """Schema and data into a database that has none yet (loaded once). A database
    that has them gets the schema again (its files are idempotent: CREATE ... IF NOT
    EXISTS, CREATE OR REPLACE), so that a kept cluster has the tables and functions
    the workers of this checkout prepare (idempotency_keys, dc_idempotency_claim)."""
    if db_has_schema(url):
        psql(url, files=[ROOT / "sql/schema.sql"])
        return
    log(f"loading schema and data dc_seed{tuple(seed)} into {redact_url(url)}")
    db_load_schema(url)
    db_seed(url, *seed)


def scale_args(scale: str) -> tuple[int, int, int]:
    """dc_seed(orgs, days, step minutes) of `make seed SCALE=...`: small is 300
    organizations with a day of hourly readings (quick, and enough outbox rows for
    several of the invalidator's batches of 500); N is 20*N organizations, 3 days
    every 5 minutes below 10, else 5 days every 10 minutes (1 is the demo data)."""
    if scale == "small":
        return 300, 1, 60
    if not re.fullmatch(r"[1-9][0-9]*", scale or ""):
        raise StackError(f"SCALE must be a positive integer or 'small', got '{scale}'")
    n = int(scale)
    return (20 * n, 3, 5) if n < 10 else (20 * n, 5, 10)


REDIS_CONF = """# generated by scripts/dcstack.py for dashcache's private Redis
bind {host}
port {port}
protected-mode yes
daemonize no
supervised no
logfile ""
loglevel notice
dir {dir}
# RDB snapshots as Debian's packaged redis.conf takes them, as operators run it:
# dashcache must be right when Redis comes back from one (values carry the
# run_id of the process that stored them)
save 3600 1 300 100 60 10000
appendonly no
# the eviction policy dashcache requires (README, "Running Redis for dashcache")
maxmemory {maxmemory}
maxmemory-policy allkeys-lru
timeout 0
tcp-keepalive 60
"""


def redis_conf(directory: Path, port: int, password: str | None = None, also_bind: str | None = None) -> str:
    """Snapshots as Debian's default, bounded memory, evict least recently used;
    with password, every client must AUTH (requirepass); also_bind: an address to
    listen on besides 127.0.0.1 (a test network's, scripts/dcnet.py)."""
    conf = REDIS_CONF.format(host=HOST + (f" {also_bind}" if also_bind else ""), port=port, dir=directory,
                             maxmemory=os.environ.get("REDIS_MAXMEMORY", "256mb"))
    return conf + (f'requirepass "{password}"\n' if password else "")


def redact_url(url: str | None) -> str:
    """url with its password replaced by *** (for anything printed or logged)."""
    return re.sub(r"^([a-z]+://[^/@:]*):[^@/]*@", r"\1:***@", url or "")


def secret(runtime: Path, name: str) -> str:
    """A password of the private stack, made once per runtime directory and kept in
    RUNTIME/secrets/NAME (mode 0600, directory 0700: root's only); URL-safe."""
    d = runtime / "secrets"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    d.chmod(0o700)
    f = d / name
    try:
        value = f.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(24)
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


class Redis(Service):
    name = "redis"

    def __init__(self, stack: "Stack", port: int):
        super().__init__(stack)
        self.port = port
        self.dir = stack.runtime_dir / "redis"
        self.password = secret(stack.runtime_dir, "redis.pass")

    @property
    def url(self) -> str:
        return f"redis://default:{self.password}@{HOST}:{self.port}/0" if self.password else f"redis://{HOST}:{self.port}/0"

    def prepare(self) -> None:
        if shutil.which("redis-server") is None:
            raise StackError("redis-server not found (scripts/deps.sh installs it)")
        if port_in_use(self.port):
            raise StackError(f"port {self.port} on {HOST} is already in use (the Redis port)")
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "redis.conf"
        also = self.stack.also_listen
        conf.write_text(redis_conf(self.dir, self.port, self.password, also[0] if also else None))
        conf.chmod(0o600)

    def argv(self) -> list[str]:
        return ["redis-server", str(self.dir / "redis.conf")]

    def env(self) -> dict:
        return dict(os.environ)

    def ready(self) -> bool:
        c = self.client(timeout=1.0)
        try:
            return c("PING") == "PONG"
        except (OSError, RedisError, ConnectionError):
            return False
        finally:
            c.close()

    def client(self, timeout: float = 5.0) -> RedisClient:
        return RedisClient.from_url(self.url, timeout)

    def describe(self) -> str:
        return f", {HOST}:{self.port}"


class RedisClusterNode(Redis):
    """One redis-server of a RedisCluster: cluster-enabled, its own directory and port,
    and the cluster's password for clients and for its replication (masterauth)."""

    def __init__(self, stack: "Stack", port: int, index: int):
        self.name = f"redis-cluster-{index}"
        super().__init__(stack, port)
        self.dir = stack.runtime_dir / "redis-cluster" / str(port)
        self.password = secret(stack.runtime_dir, "redis.pass")

    def prepare(self) -> None:
        super().prepare()
        conf = self.dir / "redis.conf"
        conf.write_text(conf.read_text() + "cluster-enabled yes\n"
                        f"cluster-config-file {self.dir / 'nodes.conf'}\n"
                        "cluster-node-timeout 2000\n"
                        # a replica may take over at once, however long it was cut off (the drill kills primaries)
                        "cluster-replica-validity-factor 0\n"
                        f'masterauth "{self.password}"\n')


class RedisCluster:
    """A Redis Cluster of 3 primaries and 3 replicas on free ports of 127.0.0.1,
    made with redis-cli --cluster create and ready when every node says
    cluster_state:ok. Used by the stack like a service: start(), stop() (each
    node by its PID), pid(), running()."""

    name = "redis-cluster"

    def __init__(self, stack: "Stack", ports: list[int] | None = None):
        self.stack = stack
        self.nodes = [RedisClusterNode(stack, p, i) for i, p in enumerate(ports or [cluster_port() for _ in range(6)])]
        self.password = self.nodes[0].password

    @property
    def seeds(self) -> str:
        """REDIS_CLUSTER_NODES of the cluster."""
        return ",".join(f"{HOST}:{n.port}" for n in self.nodes)

    @property
    def url(self) -> str:
        """REDIS_URL: the password (a cluster node to name; database 0)."""
        return self.nodes[0].url

    def pid(self) -> int | None:
        return next((n.pid() for n in self.nodes if n.pid() is not None), None)

    def running(self) -> bool:
        return all(n.running() for n in self.nodes)

    def exit_status(self):
        return None

    def start(self) -> "RedisCluster":
        if shutil.which("redis-cli") is None:
            raise StackError("redis-cli not found (scripts/deps.sh installs redis-tools)")
        try:
            for n in self.nodes:
                n.start()
            env = dict(os.environ, REDISCLI_AUTH=self.password)  # not on the command line
            out = subprocess.run(["redis-cli", "--cluster", "create", *[f"{HOST}:{n.port}" for n in self.nodes],
                                  "--cluster-replicas", "1", "--cluster-yes"], env=env, capture_output=True,
                                 text=True, timeout=60)
            if out.returncode != 0:
                raise StackError(f"redis-cli --cluster create failed: {out.stdout[-2000:]}{out.stderr[-2000:]}")
            self.wait_ok(30)
        except BaseException:
            self.stop()
            raise
        log(f"redis cluster ready: {self.seeds}")
        return self

    def stop(self) -> None:
        for n in reversed(self.nodes):
            n.stop()

    def client(self, port: int, timeout: float = 5.0) -> RedisClient:
        return next(n for n in self.nodes if n.port == port).client(timeout)

    def call(self, port: int, *args):
        c = self.client(port)
        try:
            return c(*args)
        finally:
            c.close()

    def info(self, port: int, section: str) -> dict:
        text = self.call(port, "INFO", section) or ""
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))

    def ok(self) -> bool:
        """Every running node says cluster_state:ok and knows every slot's primary alike."""
        views = set()
        for n in self.nodes:
            if not n.running():
                continue
            try:
                if "cluster_state:ok" not in (self.call(n.port, "CLUSTER", "INFO") or ""):
                    return False
                views.add(tuple(sorted((r[0], r[1], r[2][1]) for r in self.call(n.port, "CLUSTER", "SLOTS"))))
            except (OSError, RedisError, ConnectionError):
                return False
        return len(views) == 1

    def wait_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ok():
            if time.monotonic() > deadline:
                raise StackError(f"the redis cluster is not ok after {timeout:.0f} s")
            time.sleep(0.1)

    def nodes_table(self, port: int | None = None) -> list[dict]:
        """CLUSTER NODES as {id, port, role, primary, slots, alive} rows, from a running node."""
        port = port or next(n.port for n in self.nodes if n.running())
        rows = []
        for line in (self.call(port, "CLUSTER", "NODES") or "").splitlines():
            f = line.split()
            rows.append({"id": f[0], "port": int(f[1].split("@")[0].rsplit(":", 1)[1]),
                         "role": "primary" if "master" in f[2] else "replica", "primary": f[3],
                         "alive": "fail" not in f[2] and f[7] == "connected", "slots": f[8:]})
        return rows

    def keyslot(self, key: str) -> int:
        return int(self.call(self.primaries()[0], "CLUSTER", "KEYSLOT", key))

    def primaries(self) -> list[int]:
        """Ports of the primaries that serve slots."""
        return sorted(r["port"] for r in self.nodes_table() if r["role"] == "primary" and r["slots"] and r["alive"])

    def primary_of(self, slot: int) -> int:
        port = next(n.port for n in self.nodes if n.running())
        for start, end, primary, *_ in self.call(port, "CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
        raise StackError(f"no primary serves slot {slot}")

    def replica_of(self, port: int) -> int:
        table = self.nodes_table()
        pid = next(r["id"] for r in table if r["port"] == port)
        return next(r["port"] for r in table if r["primary"] == pid and r["alive"])

    def node_id(self, port: int) -> str:
        return self.call(port, "CLUSTER", "MYID")

    def scan(self, pattern: str) -> list[str]:
        """SCAN MATCH pattern on every primary."""
        keys = []
        for port in self.primaries():
            c = self.client(port)
            try:
                keys += c.scan(pattern)
            finally:
                c.close()
        return sorted(keys)

    def get(self, key: str):
        return self.call(self.primary_of(self.keyslot(key)), "GET", key)

    def failover(self, primary: int, timeout: float = 30) -> int:
        """CLUSTER FAILOVER on a replica of primary: the replica takes over, with no write lost.
        Returns the new primary's port once the cluster is ok again."""
        replica = self.replica_of(primary)
        self.call(replica, "CLUSTER", "FAILOVER")
        deadline = time.monotonic() + timeout
        while not (self.info(replica, "replication").get("role") == "master" and self.ok()):
            if time.monotonic() > deadline:
                raise StackError(f"replica {replica} did not take over from {primary} within {timeout:.0f} s")
            time.sleep(0.05)
        return replica

    def migrate_slot(self, slot: int, to: int, finish: bool = True) -> int:
        """Moves slot to the primary at port to: IMPORTING/MIGRATING, MIGRATE of its keys,
        then (finish) CLUSTER SETSLOT NODE on every primary. Returns the old primary's port."""
        src = self.primary_of(slot)
        src_id, dst_id = self.node_id(src), self.node_id(to)
        self.call(to, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        self.call(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while True:
            keys = self.call(src, "CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            self.call(src, "MIGRATE", HOST, to, "", 0, 5000, "AUTH", self.password, "KEYS", *keys)
        if finish:
            self.finish_migration(slot, to)
        return src

    def finish_migration(self, slot: int, to: int) -> None:
        dst_id = self.node_id(to)
        for port in [to] + [p for p in self.primaries() if p != to]:
            self.call(port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        self.wait_ok(30)


class FcgiMaster(Service):
    """build/dashcache-fcgi as its own prefork master on a unix socket."""

    name = "fcgi"

    def __init__(self, stack: "Stack", binary: Path, workers: int, socket_path: Path, extra_args=()):
        super().__init__(stack)
        self.binary, self.workers_wanted, self.socket = Path(binary), workers, Path(socket_path)
        self.extra_args = list(extra_args)
        self.stop_plan = ((signal.SIGTERM, float(os.environ.get("FCGI_STOP_TIMEOUT", 20))),)

    def prepare(self) -> None:
        if not os.access(self.binary, os.X_OK):
            raise StackError(f"{self.binary} is not built (run make)")
        if self.socket.is_socket():  # left by a master that was killed; nobody listens on it
            self.socket.unlink()

    def argv(self) -> list[str]:
        a = [str(self.binary), "--listen", f"unix:{self.socket}", "--workers", str(self.workers_wanted),
             "--socket-mode", "0660"]
        user = service_user()
        if user:  # root: workers switch to it; only nginx's group may use the socket
            a += ["--user", user, "--socket-group", nginx_group()]
        return a + self.extra_args

    def ready(self) -> bool:
        return self.socket.is_socket() and bool(self.workers()) and unix_accepts(self.socket)

    def workers(self) -> list[int]:
        pid = self.pid()
        return children(pid) if pid else []

    def describe(self) -> str:
        return f", unix:{self.socket}, {self.workers_wanted} workers"


class Invalidator(Service):
    """dashcache-invalidator; it listens on nothing: ready once it has subscribed,
    logged its first resync (event=invalidate.all) and applied the outbox
    (event=invalidate.ready; the workers serve hits only then)."""

    name = "invalidator"

    def __init__(self, stack: "Stack", binary: Path):
        super().__init__(stack)
        self.binary = Path(binary)
        self.stop_plan = ((signal.SIGTERM, 10.0),)

    def prepare(self) -> None:
        if not os.access(self.binary, os.X_OK):
            raise StackError(f"{self.binary} is not built (run make)")

    def argv(self) -> list[str]:
        user = service_user()
        return [str(self.binary)] + (["--user", user] if user else [])

    def ready(self) -> bool:
        log = self.log_since_start()
        return "event=invalidate.all" in log and "event=invalidate.ready" in log


SERVICE_USER = "dashcache"


def service_user() -> str | None:
    """The unprivileged user that the workers and the invalidator switch to when we
    are root (a system user, created on first use), or None when we are not root
    (then everything runs as the invoking user)."""
    if not is_root():
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        r = subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", SERVICE_USER],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if r.returncode != 0 and r.returncode != 9:  # 9: created meanwhile by another stack
            raise StackError(f"useradd {SERVICE_USER} failed: {r.stderr.strip()}")
    return SERVICE_USER


def nginx_user() -> str:
    try:
        pwd.getpwnam("www-data")
        return "www-data"
    except KeyError:
        return "nobody"


def nginx_group() -> str:
    """The group of nginx's worker user: the FastCGI socket's group (mode 0660)."""
    return grp.getgrgid(pwd.getpwnam(nginx_user()).pw_gid).gr_name


def nginx_user_line() -> str:
    if not is_root():
        return "# not root: workers run as the invoking user"
    return f"user {nginx_user()};"


def render_nginx(out: Path, directory: Path, listen: str, sock: Path, access: str = "off") -> None:
    """Fill nginx/dashcache.conf.template's @...@ placeholders."""
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    text = (ROOT / "nginx/dashcache.conf.template").read_text()
    for k, v in {"@NGINX_USER@": nginx_user_line(), "@NGINX_WORKERS@": os.environ.get("NGINX_WORKERS", "auto"),
                 "@NGINX_DIR@": str(directory), "@LISTEN@": listen, "@FCGI_SOCKET@": str(sock),
                 "@ACCESS_LOG@": access,
                 "@LOCATIONS_CONF@": str(ROOT / "nginx/dashcache-locations.conf"),
                 "@LIMITS_CONF@": str(ROOT / "nginx/dashcache-limits.conf")}.items():
        text = text.replace(k, v)
    out.write_text(text)


class Nginx(Service):
    name = "nginx"

    def __init__(self, stack: "Stack", port: int, fcgi_socket: Path, access_log: str | None = None):
        super().__init__(stack)
        self.port, self.fcgi_socket, self.access_log = port, fcgi_socket, access_log
        self.dir = stack.runtime_dir / "nginx"
        self.conf = self.dir / "nginx.conf"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def prepare(self) -> None:
        if shutil.which("nginx") is None:
            raise StackError("nginx not found (scripts/deps.sh installs it)")
        if port_in_use(self.port):
            raise StackError(f"port {self.port} on {HOST} is already in use (the HTTP port)")
        self.dir.mkdir(parents=True, exist_ok=True)
        render_nginx(self.conf, self.dir, f"{HOST}:{self.port}", self.fcgi_socket,
                     f"{self.access_log} dashcache" if self.access_log else "off")
        r = subprocess.run(["nginx", "-q", "-t", "-p", f"{self.dir}/", "-c", str(self.conf), "-e", "stderr"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise StackError(f"nginx rejected {self.conf}:\n{r.stderr.strip()}")

    def argv(self) -> list[str]:
        return ["nginx", "-p", f"{self.dir}/", "-c", str(self.conf), "-e", "stderr"]

    def env(self) -> dict:
        return dict(os.environ)

    def ready(self) -> bool:
        return tcp_accepts(HOST, self.port)

    def describe(self) -> str:
        return f", {self.url}"


def nginx_check() -> list[tuple[str, bool, str]]:
    """nginx -t on the rendered site config and on a wrapper that includes the operator
    snippet and the example upstream in a server block: [(what, ok, output)]."""
    results = []
    with tempfile.TemporaryDirectory(prefix="dashcache-nginx-check.") as t:
        tmp = Path(t)
        render_nginx(tmp / "site.conf", tmp, f"{HOST}:18099", tmp / "fcgi.sock", f"{tmp}/access.log dashcache")
        (tmp / "wrapper.conf").write_text(f"""pid {tmp}/wrapper.pid;
events {{}}
http {{
    client_body_temp_path {tmp}/tmp/client_body;
    fastcgi_temp_path {tmp}/tmp/fastcgi;
    proxy_temp_path {tmp}/tmp/proxy;
    uwsgi_temp_path {tmp}/tmp/uwsgi;
    scgi_temp_path {tmp}/tmp/scgi;
    access_log off;
    include {ROOT}/nginx/dashcache-upstream.conf;
    include {ROOT}/nginx/dashcache-limits.conf;
    server {{
        listen {HOST}:18099;
        server_name operator.example;
        location / {{ return 200 "operator's own site\\n"; }}
        include {ROOT}/nginx/dashcache-locations.conf;
    }}
}}
""")
        # the auth_request example replaces the snippet's /api/dashboard/ location
        (tmp / "auth-request.conf").write_text((tmp / "wrapper.conf").read_text().replace(
            f"include {ROOT}/nginx/dashcache-locations.conf;",
            f"include {ROOT}/nginx/dashcache-auth-request.conf.example;"))
        for what, conf in (("site config (nginx/dashcache.conf.template)", "site.conf"),
                           ("include snippet (nginx/dashcache-locations.conf)", "wrapper.conf"),
                           ("auth_request example (nginx/dashcache-auth-request.conf.example)",
                            "auth-request.conf")):
            r = subprocess.run(["nginx", "-q", "-t", "-p", f"{tmp}/", "-c", str(tmp / conf), "-e", "stderr"],
                               capture_output=True, text=True, timeout=30)
            results.append((what, r.returncode == 0, (r.stdout + r.stderr).strip()))
    return results


# ------------------------------------------------------------------ the stack

_LIVE: list["Stack"] = []


def _stop_live() -> None:
    for s in list(reversed(_LIVE)):
        s.stop()


atexit.register(_stop_live)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C does, so that stacks are stopped."""
    def handler(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


SENTINEL_MASTER = "dcmaster"

SENTINEL_CONF = """# generated by scripts/dcstack.py: one of the sentinels of dashcache's test group
bind {host}
port {port}
protected-mode no
daemonize no
logfile ""
dir {dir}
sentinel resolve-hostnames no
sentinel monitor {name} {host} {primary} {quorum}
sentinel down-after-milliseconds {name} {down_ms}
sentinel failover-timeout {name} {failover_ms}
sentinel parallel-syncs {name} 2
"""


class RedisNode(Redis):
    """One server of a RedisSentinel group: the first primary, or a replica of it."""

    def __init__(self, stack: "Stack", port: int, name: str, replica_of: int | None = None):
        self.name = name  # before Service.__init__: the log and pid files are named after it
        super().__init__(stack, port)
        self.dir = stack.runtime_dir / name
        self.replica_of = replica_of

    def prepare(self) -> None:
        super().prepare()
        conf = self.dir / "redis.conf"
        extra = "save \"\"\n"  # no snapshot thread in the way of a failover
        if self.password:
            extra += f'masterauth "{self.password}"\n'
        if self.replica_of is not None:
            extra += f"replicaof {HOST} {self.replica_of}\n"
        conf.write_text(conf.read_text() + extra)

    def role(self) -> str:
        c = self.client(timeout=1.0)
        try:
            return c("ROLE")[0]
        finally:
            c.close()


class Sentinel(Service):
    """redis-server --sentinel watching the group's primary, on a free loopback port."""

    def __init__(self, stack: "Stack", port: int, name: str, primary_port: int, password: str | None,
                 quorum: int = 2, down_ms: int = 1000, failover_ms: int = 2000):
        self.name = name
        super().__init__(stack)
        self.port, self.dir = port, stack.runtime_dir / name
        self.primary_port, self.password = primary_port, password
        self.quorum, self.down_ms, self.failover_ms = quorum, down_ms, failover_ms

    def prepare(self) -> None:
        if shutil.which("redis-server") is None:
            raise StackError("redis-server not found (scripts/deps.sh installs it)")
        if port_in_use(self.port):
            raise StackError(f"port {self.port} on {HOST} is already in use (a sentinel's port)")
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = SENTINEL_CONF.format(host=HOST, port=self.port, dir=self.dir, name=SENTINEL_MASTER,
                                    primary=self.primary_port, quorum=self.quorum, down_ms=self.down_ms,
                                    failover_ms=self.failover_ms)
        if self.password:
            conf += f'sentinel auth-pass {SENTINEL_MASTER} "{self.password}"\n'
        path = self.dir / "sentinel.conf"  # Sentinel rewrites it: its own, writable
        path.write_text(conf)
        path.chmod(0o600)

    def argv(self) -> list[str]:
        return ["redis-server", str(self.dir / "sentinel.conf"), "--sentinel"]

    def env(self) -> dict:
        return dict(os.environ)

    def client(self, timeout: float = 5.0) -> RedisClient:
        return RedisClient(HOST, self.port, timeout)

    def ask(self, *args):
        c = self.client(timeout=2.0)
        try:
            return c(*args)
        finally:
            c.close()

    def ready(self) -> bool:
        try:
            return self.ask("PING") == "PONG"
        except (OSError, RedisError, ConnectionError):
            return False

    def describe(self) -> str:
        return f", {HOST}:{self.port}"


class RedisSentinel:
    """A Redis primary, its replicas and the sentinels watching them, all on loopback
    ports: quorum 2 and short timings (down after 1 s, failover timeout 2 s), so that
    a failover completes in a few seconds. Its services start and stop with the
    stack, by their handles."""

    def __init__(self, stack: "Stack", replicas: int = 2, sentinels: int = 3):
        first = free_port()
        self.primary = RedisNode(stack, first, "redis-0")
        self.nodes = [self.primary] + [RedisNode(stack, free_port(), f"redis-{i}", replica_of=first)
                                       for i in range(1, replicas + 1)]
        self.sentinels = [Sentinel(stack, free_port(), f"sentinel-{i}", first, self.primary.password)
                          for i in range(sentinels)]
        self.password = self.primary.password

    def services(self) -> list[Service]:
        return [*self.nodes, *self.sentinels]

    @property
    def sentinels_env(self) -> str:
        return ",".join(f"{HOST}:{s.port}" for s in self.sentinels)

    @property
    def url(self) -> str:
        """REDIS_URL with sentinels: the credentials and database (the host is the sentinels' to name)."""
        return self.primary.url

    def primary_addr(self, sentinel: int = 0) -> tuple[str, int]:
        host, port = self.sentinels[sentinel].ask("SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER)
        return host, int(port)

    def node(self, port: int) -> RedisNode:
        return next(n for n in self.nodes if n.port == port)

    def current_primary(self) -> RedisNode:
        return self.node(self.primary_addr()[1])

    def settled(self) -> bool:
        """Every sentinel names the same primary, which says it is one, sees every replica
        up and knows the other sentinels; every replica's link to it is up."""
        try:
            addrs = {self.primary_addr(i) for i in range(len(self.sentinels))}
            if len(addrs) != 1:
                return False
            primary = self.node(addrs.pop()[1])
            if primary.role() != "master":
                return False
            for s in self.sentinels:
                reps = s.ask("SENTINEL", "replicas", SENTINEL_MASTER)
                ok = [r for r in reps if "s_down" not in dict(zip(r[::2], r[1::2])).get("flags", "s_down")
                      and dict(zip(r[::2], r[1::2])).get("master-link-status") == "ok"]
                if len(ok) < len(self.nodes) - 1:
                    return False
                if len(s.ask("SENTINEL", "sentinels", SENTINEL_MASTER)) < len(self.sentinels) - 1:
                    return False
            for n in self.nodes:
                if n is not primary and n.role() != "slave":
                    return False
            return True
        except (OSError, RedisError, ConnectionError, StopIteration, ValueError, TypeError):
            return False

    def wait_settled(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.settled():
            if time.monotonic() > deadline:
                raise StackError(f"the sentinels did not settle within {timeout:.0f} s (a primary, "
                                 f"{len(self.nodes) - 1} replicas up, {len(self.sentinels)} sentinels); see "
                                 + ", ".join(str(s.log_path) for s in self.sentinels))
            time.sleep(0.1)

    def failover(self) -> tuple[tuple[str, int], tuple[str, int], float]:
        """SENTINEL FAILOVER through the first sentinel, timed by its own +switch-master:
        (old address, new address, seconds from the command to +switch-master)."""
        old = self.primary_addr()
        watch = self.sentinels[0].client(timeout=5.0)
        try:
            watch.subscribe("+switch-master")
            t0 = time.monotonic()
            self.sentinels[0].ask("SENTINEL", "FAILOVER", SENTINEL_MASTER)
            while True:
                left = 30.0 - (time.monotonic() - t0)
                msg = watch.message(max(left, 0.01)) if left > 0 else None
                if msg is None:
                    raise StackError("no +switch-master within 30 s of SENTINEL FAILOVER")
                parts = msg.split()
                if parts[0] == SENTINEL_MASTER:
                    return old, (parts[3], int(parts[4])), time.monotonic() - t0
        finally:
            watch.close()


class Stack:
    """PostgreSQL, Redis, dashcache-fcgi, (dashcache-invalidator) and nginx on
    127.0.0.1, started in that order and stopped in reverse; use it as a context
    manager (`with Stack(...) as s:`), or call start() / stop().

    name         what the stack is for ("test", "e2e", "san"): runtime directory
                 /var/tmp/dashcache-<hash>-NAME.XXXX (removed at stop) unless
                 runtime_dir is given (kept)
    state_dir    logs/ and pids/ (default .run/NAME)
    ports        {"pg","redis","http"}: fixed ports; missing ones are free ports
    seed         dc_seed arguments for an empty database (demo: DEMO_SEED)
    build        directory of the binaries (build, or build/san)
    invalidator  start dashcache-invalidator with the rest (start_invalidator() later otherwise)
    app_env      the application's environment (default: test_app_env())
    database_url, redis_url
                 use these servers: no PostgreSQL / Redis of the stack's own
    access_log   True: STATE_DIR/logs/nginx-access.log; a path; False: off
    fcgi_args    more flags of dashcache-fcgi (e.g. --max-requests N, --env-file FILE)
    sentinel     a RedisSentinel group (primary, 2 replicas, 3 sentinels) instead of one Redis;
                 the application finds the primary through REDIS_SENTINELS
    standby_delay_ms
                 not None: a streaming standby of the stack's PostgreSQL (Standby) with
                 this replay delay, and the workers read misses from it (DATABASE_READ_URL)
    also_listen  (address, network): PostgreSQL and Redis listen on address too, and
                 PostgreSQL lets that network log in (the hosts of scripts/dcnet.py)
    """

    def __init__(self, name: str = "test", *, state_dir: Path | None = None, runtime_dir: Path | None = None,
                 ports: dict | None = None, workers: int = 4, fsync: bool = False, seed=DEMO_SEED,
                 build: Path | str = "build", invalidator: bool = True, nginx: bool = True,
                 app_env: dict | None = None, access_log: bool | str = True,
                 database_url: str | None = None, redis_url: str | None = None, fcgi_args=(),
                 redis_cluster: bool = False, sentinel: bool = False, standby_delay_ms: int | None = None,
                 also_listen: tuple[str, str] | None = None):
        self.name = name
        self.with_sentinel = sentinel
        self.sentinel: RedisSentinel | None = None
        self.also_listen = also_listen
        self.fcgi_args = list(fcgi_args)
        self.state_dir = Path(state_dir or ROOT / ".run" / name)
        self.keep_runtime = runtime_dir is not None
        self._runtime_arg = runtime_dir
        self.ports = dict(ports or {})
        self.workers, self.fsync, self.seed = workers, fsync, seed
        self.build = ROOT / build
        self.with_invalidator, self.with_nginx, self.with_access_log = invalidator, nginx, access_log
        self._app_env = app_env
        self.external_db, self.external_redis = database_url, redis_url
        self.with_cluster = redis_cluster  # a RedisCluster of its own instead of one Redis
        self.standby_delay_ms = standby_delay_ms
        self.started: list[Service] = []
        self.runtime_dir: Path | None = None

    # ---- description
    @property
    def http_url(self) -> str:
        return self.nginx.url

    @property
    def database_url(self) -> str:
        return self.external_db or self.postgres.url

    @property
    def redis_url(self) -> str:
        if self.sentinel is not None:
            return self.sentinel.url
        return self.external_redis or self.redis.url

    def services(self) -> list[Service]:
        """Every service the stack may run, in start order."""
        redis = self.redis.nodes if isinstance(self.redis, RedisCluster) else [self.redis]
        group = self.sentinel.services() if self.sentinel is not None else []
        return [s for s in (self.postgres, getattr(self, "standby", None), *redis, *group, self.fcgi,
                            self.invalidator, self.nginx) if s is not None]

    def describe(self) -> dict:
        return {"HTTP_URL": self.http_url, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url,
                "HTTP_PORT": str(self.nginx.port), "PG_PORT": str(self.postgres.port) if self.postgres else "",
                "REDIS_PORT": str(getattr(self.redis, "port", "")) if self.redis else "",
                "REDIS_CLUSTER_NODES": self.app_env.get("REDIS_CLUSTER_NODES", ""), "WORKERS": str(self.workers),
                "FCGI_SOCKET": str(self.fcgi.socket), "DC_STATE_DIR": str(self.state_dir),
                "DC_RUNTIME_DIR": str(self.runtime_dir), "METRICS_FILE": self.app_env["METRICS_FILE"],
                "DC_PG_FSYNC": "on" if self.fsync else "off",
                "DC_FCGI_BIN": str(self.fcgi.binary), "DC_INVAL_BIN": str(self.invalidator.binary),
                "AUTH_KEYS_FILE": self.app_env.get("AUTH_KEYS_FILE", ""),
                # a token good for everything, for the tests only: only a stack with a key of its own has one
                "DC_TEST_TOKEN": self.default_token}

    def write_env(self, path: Path | None = None) -> Path:
        """KEY=value lines (shell-quoted) describing the stack: `set -a; . FILE; set +a`."""
        import shlex
        path = Path(path or self.state_dir / "stack.env")
        lines = [f"# written by scripts/dcstack.py; source it: set -a; . {path}; set +a"]
        lines += [f"{k}={shlex.quote(v)}" for k, v in self.describe().items()]
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the URLs carry passwords
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        tmp.replace(path)
        return path

    # ---- life cycle
    def _build_services(self) -> None:
        if getattr(self, "nginx", None) is not None:  # built already (prepare() before start())
            return
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "pids").mkdir(parents=True, exist_ok=True)
        if self._runtime_arg is not None:
            self.runtime_dir = Path(self._runtime_arg)
            self.runtime_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.runtime_dir = temp_runtime_dir(self.name)
        for k in ("pg", "redis", "http") + (("pg_standby",) if self.standby_delay_ms is not None else ()):
            self.ports.setdefault(k, free_port())
        self.app_env = test_app_env() if self._app_env is None else dict(self._app_env)
        self.postgres = None if self.external_db else Postgres(self, self.ports["pg"], fsync=self.fsync)
        self.redis = None if self.external_redis or self.with_sentinel else Redis(self, self.ports["redis"])
        if self.with_sentinel:
            self.sentinel = RedisSentinel(self)
            self.app_env.setdefault("REDIS_SENTINELS", self.sentinel.sentinels_env)
            self.app_env.setdefault("REDIS_MASTER_NAME", SENTINEL_MASTER)
        if self.with_cluster and not self.external_redis:
            self.redis = RedisCluster(self)
            self.app_env["REDIS_CLUSTER_NODES"] = self.redis.seeds
        self.standby = None
        if self.standby_delay_ms is not None and self.postgres is not None:
            self.standby = Standby(self, self.ports["pg_standby"], self.postgres, self.standby_delay_ms)
            self.app_env["DATABASE_READ_URL"] = self.standby.url
        self.app_env.update(DATABASE_URL=self.database_url, REDIS_URL=self.redis_url)
        # the pool's shared counters live and die with the stack
        self.app_env.setdefault("METRICS_FILE", str(self.runtime_dir / "metrics"))
        # a token key of the stack's own, unless the caller gave a key file
        own_key = not self.app_env.get("AUTH_KEYS_FILE") and self.app_env.get("AUTH_MODE", "jwt") == "jwt"
        if own_key:
            self.app_env["AUTH_KEYS_FILE"] = str(self.runtime_dir / "auth-keys")
            # the tests' default token speaks for every organization
            write_key_file(Path(self.app_env["AUTH_KEYS_FILE"]), all_orgs=True)
        keys = read_key_file(Path(self.app_env["AUTH_KEYS_FILE"])) if self.app_env.get("AUTH_KEYS_FILE") else {}
        self.auth_kid, self.auth_secret = next(iter(keys.items()), (None, b""))
        self.default_token = self.token(ttl=86400) if own_key else ""
        self.fcgi = FcgiMaster(self, self.build / "dashcache-fcgi", self.workers, self.runtime_dir / "fcgi.sock",
                               self.fcgi_args)
        self.invalidator = Invalidator(self, self.build / "dashcache-invalidator")
        access = self.with_access_log
        self.nginx = Nginx(self, self.ports["http"], self.fcgi.socket,
                           str(self.state_dir / "logs" / "nginx-access.log") if access is True else access or None)

    def prepare(self) -> "Stack":
        """Describe the services (ports, directories) without starting any."""
        self._build_services()
        return self

    def token(self, **kw) -> str:
        """A token signed with the stack's key (mint_token's arguments; default: every scope on
        every organization)."""
        kw.setdefault("kid", self.auth_kid)
        return mint_token(self.auth_secret, **kw)

    def stop_leftovers(self) -> None:
        """Stop what a killed harness of this state directory left running (its pidfiles)."""
        for svc in reversed(self.services()):
            if svc.pid() is not None:
                log(f"stopping {svc.name} (pid {svc.pid()}) left running by an earlier run")
                svc.stop()

    def _start(self, svc: Service) -> None:
        self.started.append(svc)
        svc.start()

    def start(self) -> "Stack":
        self._build_services()
        _LIVE.append(self)
        try:
            self.stop_leftovers()
            if self.postgres:
                self._start(self.postgres)
                if self.also_listen:
                    self.postgres.allow_network(self.also_listen[1])
            db_prepare(self.database_url, self.seed)
            if self.standby:
                self._start(self.standby)
            if self.redis:
                self._start(self.redis)
            if self.sentinel is not None:
                for svc in self.sentinel.services():
                    self._start(svc)
                self.sentinel.wait_settled()
            if self.with_nginx:
                self.start_host()
            self.write_env()
        except BaseException:
            self.stop()
            raise
        return self

    def start_host(self) -> None:
        """The dashcache host's own services: the FastCGI master, the invalidator, nginx."""
        self._start(self.fcgi)
        if self.with_invalidator:
            self._start(self.invalidator)
        self._start(self.nginx)

    def start_invalidator(self) -> None:
        if self.invalidator not in self.started:
            self.started.append(self.invalidator)
        self.invalidator.start()

    def down(self) -> list[str]:
        """Names of started services that are not running."""
        return [s.name for s in self.started if not s.running()]

    def stop(self) -> None:
        """Stop what this stack started, in reverse order; signals are held off meanwhile."""
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old[sig] = signal.signal(sig, signal.SIG_IGN)
            except ValueError:  # not the main thread
                pass
        try:
            for svc in reversed(self.started):
                try:
                    svc.stop()
                except Exception as e:  # noqa: BLE001 - stop the rest anyway
                    log(f"stopping {svc.name}: {e}")
            self.started.clear()
            if self in _LIVE:
                _LIVE.remove(self)
            if self.runtime_dir is not None and not self.keep_runtime:
                shutil.rmtree(self.runtime_dir, ignore_errors=True)
                self.nginx = None  # a later start() describes a new runtime directory
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def sanitizer_reports(self) -> dict[str, str]:
        """{service: first lines of a sanitizer report} found in the services' logs."""
        out = {}
        for svc in (self.fcgi, self.invalidator):
            text = svc.log_path.read_text(errors="replace") if svc.log_path.exists() else ""
            m = SANITIZER_REPORT.search(text)
            if m:
                out[svc.name] = text[max(0, m.start() - 200):m.start() + 1500]
        return out


# ------------------------------------------------------------------ make run's stack

def load_dotenv(path: Path = ROOT / ".env") -> None:
    """KEY=value lines of .env into os.environ; the environment wins over the file."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return
    for line in lines:
        m = re.match(r"^\s*(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$", line.rstrip("\r"))
        if not m:
            continue
        key, val = m.group(1), m.group(2)
        q = re.fullmatch(r'"(.*)"|\'(.*)\'', val)
        if q:
            val = q.group(1) if q.group(1) is not None else q.group(2)
        if val and not os.environ.get(key):
            os.environ[key] = val


def int_env(name: str, default: int, lo: int, hi: int) -> int:
    v = os.environ.get(name) or str(default)
    if not re.fullmatch(r"[0-9]+", v) or not lo <= int(v) <= hi:
        raise StackError(f"{name} must be an integer between {lo} and {hi} (got '{v}')")
    return int(v)


RUN_STATE = ROOT / ".run"


def run_stack(state_dir: Path | None = None, runtime: Path | None = None) -> Stack:
    """The stack of `make run`, configured by the environment (load_dotenv first):
    PG_PORT (25432), REDIS_PORT (26379), HTTP_PORT (8080), WORKERS (2 x cores),
    DATABASE_URL / REDIS_URL (then no server of its own), NGINX_ACCESS_LOG. State
    in state_dir (.run; DC_RUN_STATE_DIR), runtime data kept between runs in
    /var/tmp/dashcache-<hash>-run (DC_RUN_RUNTIME_DIR), so the demo data are loaded once."""
    state = Path(state_dir or os.environ.get("DC_RUN_STATE_DIR") or RUN_STATE).resolve()
    rt = runtime or os.environ.get("DC_RUN_RUNTIME_DIR")
    if not rt:
        rt = runtime_dir("run" if state == RUN_STATE.resolve() else
                         "run-" + hashlib.sha256(str(state).encode()).hexdigest()[:8])
    ports = {"pg": int_env("PG_PORT", 25432, 1, 65535), "redis": int_env("REDIS_PORT", 26379, 1, 65535),
             "http": int_env("HTTP_PORT", 8080, 1, 65535)}
    workers = int_env("WORKERS", 2 * (os.cpu_count() or 1), 1, 1024)
    env = dict(os.environ)
    env.setdefault("LOG_LEVEL", "info")
    if env.get("AUTH_MODE", "jwt") == "jwt" and not env.get("AUTH_KEYS_FILE"):
        # the demo token key of this checkout: mode 0600 in the git-ignored state
        # directory, kept between runs so that the tokens it printed stay good
        keys = state / "auth-keys"
        if not keys.exists():
            state.mkdir(parents=True, exist_ok=True)
            write_key_file(keys, kid="demo")
            log(f"created the demo token key {keys}")
        env["AUTH_KEYS_FILE"] = str(keys)
    return Stack("run", state_dir=state, runtime_dir=Path(rt), ports=ports, workers=workers, fsync=True,
                 seed=DEMO_SEED, app_env=env, access_log=os.environ.get("NGINX_ACCESS_LOG") or False,
                 database_url=os.environ.get("DATABASE_URL") or None,
                 redis_url=os.environ.get("REDIS_URL") or None)


def read_env_file(path: Path) -> dict:
    """KEY=value lines written by Stack.write_env (shell-quoted values)."""
    import shlex
    out = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = (shlex.split(v) or [""])[0]
    return out


# ------------------------------------------------------------------ command line

def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "nginx-check":
        rc = 0
        for what, ok, out in nginx_check():
            print(f"nginx-check: {what} {'ok' if ok else 'FAILED'}")
            if not ok:
                print("\n".join("     | " + ln for ln in out.splitlines()))
                rc = 1
        return rc
    else:
        print(__doc__.split("Command line")[1], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
