#!/usr/bin/python3
"""dashcache benchmark (`make bench`): wrk through one nginx against ten
targets that answer the same JSON body, measured interleaved in rounds:
  (a) nginx itself, `return 200`                 the ceiling behind nginx
  (b) bench_const, a minimal libfcgi program      the cost of the FastCGI hop
  (c) bench_redis, the same plus one Redis GET    the floor of a cache hit
  (d) dashcache's hit path                        X-Cache: HIT
  (e) dashcache's miss path, ?forceRefresh=true   X-Cache: BYPASS (Postgres)
  (f) (d) on a second pool with METRICS=off       the cost of the metrics
  (g) the seeds' stack: Fastify + ioredis         what dashcache replaces
  (h) nginx fastcgi_cache in front of (d)'s pool  nginx's own cache hit
  (i) (d)'s URL with If-None-Match: <its ETag>    a 304 from dashcache
  (j) (d) on a third pool with AUTH_MODE=trusted  the cost of token verification:
      the identity comes from nginx's fastcgi_param instead of a bearer token
Every request to every target carries the same `Authorization: Bearer` header
(a token for the demo organization, scopes read and refresh, minted with the
stack's key), so that the bytes on the wire are the same; (d), (e), (f) and
(g) verify it, (i) too if dashcache checks the token before the ETag, (h) only
when it fills its cache (the token is part of its cache key), (a), (b), (c)
and (j) ignore it.

(g), tests/bench/node/server.js: one Node process (Fastify 4, ioredis 5,
pinned by tests/bench/node/package-lock.json, installed with `npm ci` under
build/bench/node) behind the same nginx, `proxy_pass` to an upstream with
`keepalive 64`, HTTP/1.1. Per request it verifies the token as dashcache does
(HS256 with the stack's key, exp, organization, scope read) but without a
cache of verified tokens, and does one Redis GET of a key of its own that the
bench fills with dashcache's hit body, which it sends as stored with the same
Content-Type, Cache-Control and X-Cache. Its miss path is a 503 stub, not a
PostgreSQL query: only hits are measured. Without node and npm (make bench
installs them through scripts/deps.sh when it can), or when npm ci fails, (g)
is skipped with a note and the ratios against it are n/a.
(h): fastcgi_cache_valid 200 1m, fastcgi_ignore_headers Cache-Control
Expires Set-Cookie (dashcache says no-store), key = method, URI and the
Authorization header, with fastcgi_cache_lock, use_stale updating and
background_update, as a micro-cache is usually set up; warmed before the
runs, checked through an X-Cache-Status: $upstream_cache_status header.
(i): the ETag of a fresh hit is taken before each run of (i) (a forced
refresh by (e) may change it); without an ETag header (i) is reported as
"n/a (no ETag)", and as "n/a (no 304)" when the conditional request is
answered 200. nginx relays upstream answers without its own not-modified
check when it does not cache them, so the 304 is dashcache's.

For each target: requests/s, p50, p99 (median over rounds), CPU
microseconds and context switches (voluntary + involuntary, every thread)
per request, each summed over every process that serves it (nginx, the
FastCGI processes or the Node server, redis-server, and for (e) the Postgres
cluster); then the ratios d/g, d/h, d/c and d/b as the median of the
per-round ratios (each round runs every target once) with their spread, and
the RSS of dashcache's workers and of the Node server at start, after the
warm-up and at the end.

It starts its own PostgreSQL (demo data) and Redis (scripts/dcstack.py), three
dashcache-fcgi pools, the two baseline programs (compiled here, run under
spawn-fcgi), the Node server and nginx, on 127.0.0.1 in a temporary directory
under /var/tmp, and stops all of them on exit, Ctrl-C or SIGTERM. A benchmark,
not a test: it never fails on a number, only when something broke (a response
other than the expected status, a socket error, a process that died).

Environment (defaults):
  BENCH_DURATION=5      seconds per measured run
  BENCH_ROUNDS=3        rounds; each runs every target once, order rotated
  BENCH_WARMUP=2        seconds of warm-up per target before the rounds
  BENCH_CONNECTIONS=32  wrk connections
  BENCH_THREADS=2       wrk threads
  BENCH_WORKERS=2xcores dashcache workers, and processes of (b) and (c)
  BENCH_PORT=18480      nginx port on 127.0.0.1 (unset: the first free one from 18480)
  BENCH_TARGETS="a b c d e f g h i j"  a subset, e.g. "d" while profiling the hit path
  BENCH_REDIS_UNIX=0    1: (c), (g) and dashcache reach Redis over its unix socket
  BENCH_KEEPCONN=1      1: nginx keeps its FastCGI connections to dashcache's pools
                        (upstreams with keepalive 32, fastcgi_keep_conn on); a worker
                        that closes after each response still works, nginx reopens.
                        (b) and (c) never keep them (libfcgi programs close).
  DC_FCGI_BIN           dashcache-fcgi to measure (build/dashcache-fcgi)
Output: this report on stdout and in build/bench/last.txt; wrk's own output
and the servers' logs in build/bench/raw/ and build/bench/logs/. While it
runs, build/bench/pids.txt lists "name pid" of what it started (for perf).
"""
from __future__ import annotations

import email.message
import hashlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import dcstack as dc  # noqa: E402

SRC = ROOT / "tests/bench"
OUT = ROOT / "build/bench"
LAST = OUT / "last.txt"
HIT_PATH = f"/api/dashboard/orgs/{dc.DEMO_ORG}/units/status"
CACHE_KEY = f"dashboard:units:status:org:{{{dc.DEMO_ORG}}}"
NODE_SRC = SRC / "node"
NODE_DIR = OUT / "node"
NODE_KEY_PREFIX = "bench:node:"
TARGETS = "abcdefghij"
LABEL = {"a": "(a) nginx return 200", "b": "(b) fcgi constant", "c": "(c) fcgi + redis GET",
         "d": "(d) dashcache hit", "e": "(e) dashcache miss", "f": "(f) hit, METRICS=off",
         "g": "(g) Fastify + ioredis", "h": "(h) nginx fastcgi_cache", "i": "(i) 304, If-None-Match",
         "j": "(j) hit, no token check"}
W = max(len(v) for v in LABEL.values())
SERVED_BY = {"a": ["nginx"], "b": ["nginx", "const"], "c": ["nginx", "bredis", "redis"],
             "d": ["nginx", "dashcache", "redis"], "e": ["nginx", "dashcache", "redis", "postgres"],
             "f": ["nginx", "nometrics", "redis"], "g": ["nginx", "node", "redis"],
             "h": ["nginx", "dashcache", "redis"], "i": ["nginx", "dashcache", "redis"],
             "j": ["nginx", "trusted", "redis"]}
COMPONENTS = ("nginx", "const", "bredis", "dashcache", "nometrics", "trusted", "node", "redis", "postgres")
X_CACHE = {"d": "HIT", "e": "BYPASS", "f": "HIT", "g": "HIT", "j": "HIT"}
AUTH = {}  # the Authorization header of every request (set once the stack's key exists)
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Broken(Exception):
    pass


def out(line: str = "") -> None:
    print(line, flush=True)
    with open(LAST, "a") as f:
        f.write(line + "\n")


def note(msg: str) -> None:
    out(f"bench: {msg}")


# ------------------------------------------------------------------ processes

def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [0] state, [11] utime, [12] stime, [19] starttime."""
    try:
        s = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()


def ticks(pid: int) -> int | None:
    f = stat_fields(pid)
    return int(f[11]) + int(f[12]) if f else None


def ctxt_switches(pid: int) -> int | None:
    """Voluntary + involuntary context switches of every thread of a process: /proc/PID/status
    counts the main thread only, and Node, Redis and PostgreSQL have more (a thread that ended
    between two snapshots takes its count with it)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total, seen = 0, False
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        for ln in text.splitlines():
            if ln.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                total += int(ln.split()[1])
                seen = True
    return total if seen else None


def rss_kb(pid: int) -> str:
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                return ln.split()[1]
    except OSError:
        pass
    return "-"


class Adopted:
    """A daemon we started that is not our child (spawn-fcgi's): pid + start time."""

    def __init__(self, name: str, pid: int):
        f = stat_fields(pid)
        if not f:
            raise dc.StackError(f"{name} (pid {pid}) exited right after start")
        self.name, self.pid, self.start = name, pid, f[19]

    def running(self) -> bool:
        f = stat_fields(self.pid)
        return bool(f) and f[0] not in ("Z", "X") and f[19] == self.start

    def stop(self) -> None:
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if not self.running():
                return
            os.kill(self.pid, sig)
            deadline = time.monotonic() + grace
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.05)


class Pool(dc.FcgiMaster):
    """A dashcache-fcgi prefork master with an environment of its own."""

    def __init__(self, stack, name: str, binary: Path, workers: int, sock: Path, env: dict):
        self.name = name
        super().__init__(stack, binary, workers, sock)
        self._env = env

    def env(self) -> dict:
        return self._env

    def ready(self) -> bool:
        return super().ready() and len(self.workers()) >= self.workers_wanted


class BenchRedis(dc.Redis):
    """The bench's own Redis, without a password: baseline (c), bench_redis, sends
    a bare GET, and AUTH is a connect-time cost that the hit path does not pay."""
    unix = False

    def __init__(self, stack, port: int):
        super().__init__(stack, port)
        self.password = None

    def prepare(self) -> None:
        super().prepare()
        if self.unix:
            # 777: as root, dashcache's workers run as another user; the socket lets in
            # no one that loopback TCP, without a password, does not
            with open(self.dir / "redis.conf", "a") as f:
                f.write(f"unixsocket {self.dir / 'redis.sock'}\nunixsocketperm 777\n")


class NodeServer(dc.Service):
    """Target (g): build/bench/node/server.js (a copy of tests/bench/node's) on a loopback TCP port."""
    name = "node"

    def __init__(self, stack, port: int, env: dict):
        super().__init__(stack)
        self.port, self._env = port, env

    def argv(self) -> list[str]:
        return ["node", str(NODE_DIR / "server.js")]

    def env(self) -> dict:
        return self._env

    def ready(self) -> bool:
        return dc.tcp_accepts(dc.HOST, self.port)


def nginx_quote(s: str) -> str:
    """The body as an nginx single-quoted string; $ spelled as a variable (return text is a template)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("$", "${dollar}") + "'"


class BenchNginx(dc.Service):
    name = "nginx"
    stop_plan = ((signal.SIGQUIT, 10.0),)

    def __init__(self, stack, port: int, socks: dict, node_port: int, keepconn: bool):
        super().__init__(stack)
        self.port, self.socks, self.body = port, socks, "'placeholder'"
        self.node_port, self.keepconn = node_port, keepconn
        self.dir = stack.runtime_dir / "nginx"

    def prepare(self) -> None:
        rt, d = self.stack.runtime_dir, self.dir
        (d / "tmp").mkdir(parents=True, exist_ok=True)
        (d / "fastcgi_min.conf").write_text(
            "fastcgi_param REQUEST_METHOD $request_method;\n"
            "fastcgi_param DOCUMENT_URI   $document_uri;\nfastcgi_param QUERY_STRING   $query_string;\n"
            "fastcgi_param REQUEST_URI    $request_uri;\n")
        inc = f"include {d}/fastcgi_min.conf;"
        # dashcache's pools: kept connections (BENCH_KEEPCONN=1) or one per request
        dc_inc = inc + (" fastcgi_keep_conn on;" if self.keepconn else " fastcgi_keep_conn off;")
        keepalive = " keepalive 32;" if self.keepconn else ""
        upstreams = "".join(f"    upstream dc_{n} {{ server unix:{self.socks[n]};{keepalive} }}\n"
                            for n in ("dashcache", "nometrics", "trusted"))
        user = "user www-data;" if dc.is_root() else ""
        (d / "nginx.conf").write_text(f"""{user}
worker_processes auto;
daemon off;
pid {d}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/client_body;
    fastcgi_temp_path {d}/tmp/fastcgi;
    proxy_temp_path {d}/tmp/proxy;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    geo $dollar {{ default "$"; }}
{upstreams}    upstream node {{ server {dc.HOST}:{self.node_port}; keepalive 64; }}
    fastcgi_cache_path {d}/fcache levels=1:2 keys_zone=bench:4m max_size=64m inactive=10m use_temp_path=off;
    server {{
        listen {dc.HOST}:{self.port};
        location = /a {{ default_type application/json; return 200 {self.body}; }}
        location = /b {{ fastcgi_pass unix:{rt}/const.sock; {inc} fastcgi_keep_conn off; }}
        location = /c {{ fastcgi_pass unix:{rt}/bredis.sock; {inc} fastcgi_keep_conn off; }}
        location /api/dashboard/ {{ fastcgi_pass dc_dashcache; {dc_inc} }}
        location /nometrics/ {{
            rewrite ^/nometrics(/.*)$ $1 break;
            fastcgi_pass dc_nometrics; {dc_inc}
        }}
        location /trusted/ {{
            rewrite ^/trusted(/.*)$ $1 break;
            fastcgi_pass dc_trusted; {dc_inc}
            fastcgi_param DASHCACHE_AUTH_SUB bench;
            fastcgi_param DASHCACHE_AUTH_ORGS {dc.DEMO_ORG};
            fastcgi_param DASHCACHE_AUTH_SCOPE "read refresh";
        }}
        location /node/ {{
            proxy_pass http://node/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location /fcache/ {{
            rewrite ^/fcache(/.*)$ $1 break;
            fastcgi_pass dc_dashcache; {dc_inc}
            fastcgi_cache bench;
            fastcgi_cache_key "$request_method $request_uri $http_authorization";
            fastcgi_cache_valid 200 1m;
            fastcgi_ignore_headers Cache-Control Expires Set-Cookie;
            fastcgi_cache_lock on;
            fastcgi_cache_use_stale updating;
            fastcgi_cache_background_update on;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
""")
        r = subprocess.run(["nginx", "-q", "-t", "-p", f"{d}/", "-c", str(d / "nginx.conf"), "-e", "stderr"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise dc.StackError(f"nginx rejected its config:\n{r.stderr.strip()}")

    def argv(self) -> list[str]:
        return ["nginx", "-p", f"{self.dir}/", "-c", str(self.dir / "nginx.conf"), "-e", "stderr"]

    def env(self) -> dict:
        return dict(os.environ)

    def ready(self) -> bool:
        return dc.tcp_accepts(dc.HOST, self.port)


# ------------------------------------------------------------------ the bench

class Bench:
    def __init__(self):
        self.ncpu = os.cpu_count() or 1
        ie = dc.int_env
        self.duration, self.rounds = ie("BENCH_DURATION", 5, 1, 3600), ie("BENCH_ROUNDS", 3, 1, 100)
        self.warmup, self.conns = ie("BENCH_WARMUP", 2, 0, 600), ie("BENCH_CONNECTIONS", 32, 1, 10000)
        self.threads, self.workers = ie("BENCH_THREADS", 2, 1, 64), ie("BENCH_WORKERS", 2 * self.ncpu, 1, 256)
        self.port_fixed = bool(os.environ.get("BENCH_PORT"))
        self.port = ie("BENCH_PORT", 18480, 1024, 65535)
        self.redis_unix = ie("BENCH_REDIS_UNIX", 0, 0, 1) == 1
        self.keepconn = ie("BENCH_KEEPCONN", 1, 0, 1) == 1
        if self.threads > self.conns:
            raise dc.StackError("BENCH_THREADS must not exceed BENCH_CONNECTIONS")
        self.targets = (os.environ.get("BENCH_TARGETS") or " ".join(TARGETS)).split()
        if not self.targets or any(t not in LABEL for t in self.targets):
            raise dc.StackError(f"BENCH_TARGETS must list some of: {' '.join(TARGETS)} "
                                f"(got '{os.environ.get('BENCH_TARGETS', '')}')")
        self.dc_bin = Path(os.environ.get("DC_FCGI_BIN") or ROOT / "build/dashcache-fcgi")
        self.spawned: dict[str, list[Adopted]] = {"const": [], "bredis": []}
        # target -> why it is not measured; (g) is set up only when asked for (npm ci)
        self.skipped: dict[str, str] = {} if "g" in self.targets else {"g": "not in BENCH_TARGETS"}
        self.etag = ""
        self.node: NodeServer | None = None
        self.broken = False
        self.wrk: subprocess.Popen | None = None
        self.stack: dc.Stack | None = None

    def broke(self, msg: str) -> None:
        note(f"BROKEN: {msg}")
        self.broken = True

    def skip(self, t: str, why: str) -> None:
        self.skipped[t] = why
        if t in self.targets:
            note(f"{LABEL[t]}: skipped, {why}")

    def active(self) -> list[str]:
        """The targets that are measured, in BENCH_TARGETS order."""
        return [t for t in self.targets if t not in self.skipped]

    def available(self) -> list[str]:
        """The targets that answer (checked before and after the runs, measured or not)."""
        return [t for t in TARGETS if t not in self.skipped]

    # ---- set-up
    def compile(self) -> None:
        note("compiling bench_const and bench_redis")
        pkg = lambda what: subprocess.run(["pkg-config", what, "fcgi", "hiredis"], capture_output=True,  # noqa: E731
                                          text=True, check=True).stdout.split()
        for prog in ("bench_const", "bench_redis"):
            r = subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow",
                                "-Wstrict-prototypes", "-Wwrite-strings", *pkg("--cflags"),
                                *os.environ.get("CFLAGS", "").split(), "-o", str(OUT / prog),
                                str(SRC / f"{prog}.c"), *pkg("--libs")], capture_output=True, text=True)
            if r.returncode != 0:
                raise dc.StackError(f"compiling tests/bench/{prog}.c failed:\n{r.stderr}")

    def install_node(self) -> str | None:
        """Target (g)'s server in build/bench/node: tests/bench/node copied there and `npm ci`
        run, unless that lockfile is installed already for this node. None, or why (g) is skipped."""
        for tool in ("node", "npm"):
            if shutil.which(tool) is None:
                return (f"{tool} not found (make bench installs nodejs and npm with scripts/deps.sh "
                        "when run as root)")
        version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        try:
            major = int(version.lstrip("v").split(".")[0])
        except ValueError:
            return f"`node --version` printed '{version}'"
        if major < 18:
            return f"node {version} is too old (Fastify 4 and ioredis 5 want 18 or later)"
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        for f in ("package.json", "package-lock.json", "server.js"):
            shutil.copyfile(NODE_SRC / f, NODE_DIR / f)
        want = hashlib.sha256((NODE_SRC / "package-lock.json").read_bytes() + version.encode()).hexdigest()
        stamp = NODE_DIR / "node_modules" / ".bench-installed"  # npm ci removes node_modules first
        if stamp.exists() and stamp.read_text().strip() == want:
            return None
        note(f"installing (g)'s Fastify and ioredis: npm ci in {NODE_DIR} (node {version})")
        try:
            with open(OUT / "logs" / "npm.log", "wb") as logf:
                r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--omit=dev"], cwd=NODE_DIR,
                                   stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, timeout=600)
        except subprocess.TimeoutExpired:
            return f"npm ci took more than 10 minutes (see {OUT}/logs/npm.log)"
        if r.returncode != 0:
            return f"npm ci failed with status {r.returncode} (see {OUT}/logs/npm.log)"
        stamp.write_text(want + "\n")
        return None

    def start(self) -> None:
        for tool in ("wrk", "nginx", "redis-server", "spawn-fcgi", "cc", "pkg-config"):
            if shutil.which(tool) is None:
                raise dc.StackError(f"{tool} not found (make deps installs what the project needs)")
        if not os.access(self.dc_bin, os.X_OK):
            raise dc.StackError(f"{self.dc_bin} not built (run make)")
        if self.port_fixed:
            if dc.port_in_use(self.port):
                raise dc.StackError(f"BENCH_PORT {self.port} is in use on 127.0.0.1")
        else:
            while dc.port_in_use(self.port):
                self.port += 1
        self.compile()
        if "g" not in self.skipped:
            why = self.install_node()
            if why:
                self.skip("g", why)
        # TTL: the key must outlive the whole run, or (c) would find it gone
        # LOG_LEVEL info for the invalidator (it is ready when it logs so); the pools log warnings only
        app = {**dc.test_app_env(), "CACHE_TTL_SECONDS": "86400", "LOG_LEVEL": "info"}
        s = self.stack = dc.Stack("bench", state_dir=OUT, fsync=False, nginx=False, app_env=app,
                                  workers=self.workers, ports={"http": self.port}).prepare()
        s.redis = BenchRedis(s, s.redis.port)
        s.redis.unix = self.redis_unix
        note(f"starting PostgreSQL (demo data) on 127.0.0.1:{s.postgres.port} and Redis on :{s.redis.port}")
        s.start()
        # hits are served only while the outbox is applied (dc_trust): the invalidator is part of the stack
        s.start_invalidator()
        rt = s.runtime_dir
        env = {**s.app_env, "LOG_LEVEL": "warn"}
        if self.redis_unix:
            env["REDIS_URL"] = f"unix://{s.redis.dir / 'redis.sock'}"
        socks = {"dashcache": rt / "dashcache.sock", "nometrics": rt / "dashcache-nometrics.sock",
                 "trusted": rt / "dashcache-trusted.sock"}
        AUTH["Authorization"] = "Bearer " + s.token(sub="bench", orgs=[dc.DEMO_ORG], scope="read refresh",
                                                    ttl=86400)
        note(f"starting dashcache-fcgi with {self.workers} workers, a second one with METRICS=off and a third "
             "with AUTH_MODE=trusted")
        self.pool = Pool(s, "dashcache", self.dc_bin, self.workers, socks["dashcache"], env)
        nm_env = {**env, "METRICS": "off"}
        nm_env.pop("METRICS_FILE", None)
        self.nometrics = Pool(s, "nometrics", self.dc_bin, self.workers, socks["nometrics"], nm_env)
        tr_env = {**env, "AUTH_MODE": "trusted", "METRICS_FILE": str(rt / "metrics-trusted")}
        tr_env.pop("AUTH_KEYS_FILE", None)
        self.trusted = Pool(s, "trusted", self.dc_bin, self.workers, socks["trusted"], tr_env)
        for p in (self.pool, self.nometrics, self.trusted):
            s._start(p)
        self.dc_workers = self.pool.workers()
        node_port = dc.free_port()
        self.nginx = BenchNginx(s, self.port, socks, node_port, self.keepconn)
        note(f"starting nginx on 127.0.0.1:{self.port} (dashcache upstreams: "
             f"{'keepalive 32, fastcgi_keep_conn on' if self.keepconn else 'a connection per request'})")
        s._start(self.nginx)
        base = f"http://{dc.HOST}:{self.port}"
        self.url = {"a": f"{base}/a", "b": f"{base}/b", "c": f"{base}/c", "d": base + HIT_PATH,
                    "e": base + HIT_PATH + "?forceRefresh=true", "f": f"{base}/nometrics{HIT_PATH}",
                    "g": f"{base}/node{HIT_PATH}", "h": f"{base}/fcache{HIT_PATH}", "i": base + HIT_PATH,
                    "j": f"{base}/trusted{HIT_PATH}"}

        st, body, h = fetch(self.url["d"])
        if st != 200:
            raise dc.StackError(f"first request to the hit URL answered {st}: {body[:300]!r}")
        if hdr(h, "X-Cache") != "MISS":
            note(f"warning: first request to the hit URL says X-Cache: {hdr(h, 'X-Cache') or 'none'}, expected MISS")
        st, body, h = fetch(self.url["d"])
        if st != 200 or hdr(h, "X-Cache") != "HIT":
            raise dc.StackError(f"second request to the hit URL: status {st}, X-Cache: {hdr(h, 'X-Cache') or 'none'}")
        self.body = body
        (rt / "body.json").write_bytes(body)
        (rt / "body.json").chmod(0o644)
        rc = s.redis.client()
        cached = rc("GET", CACHE_KEY) or ""
        text = body.decode()
        if cached == text:
            gen_opt = []
        elif cached.count("\n") >= 3 and cached.split("\n", 3)[3] == text:
            gen_opt = ["-g"]
            note('the cache holds "<token>\\n<etag>\\n<stored>\\n<body>": (c) answers what follows the store time')
        else:
            raise dc.StackError(f"Redis key {CACHE_KEY} does not hold the hit body: {cached[:200]!r}")
        note(f"hit body: {len(body)} bytes: {text[:160]}{'...' if len(body) > 160 else ''}")

        note(f"starting bench_const and bench_redis, {self.workers} processes each")
        rhost = str(s.redis.dir / "redis.sock") if self.redis_unix else dc.HOST
        self.spawn("const", [str(OUT / "bench_const"), str(rt / "body.json")])
        self.spawn("bredis", [str(OUT / "bench_redis"), *gen_opt, rhost, str(s.redis.port), CACHE_KEY])
        if "g" not in self.skipped:
            rc("SET", NODE_KEY_PREFIX + dc.DEMO_ORG, text)
            nenv = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NODE_ENV": "production",
                    "NODE_HOST": dc.HOST, "NODE_PORT": str(node_port), "NODE_KEY_PREFIX": NODE_KEY_PREFIX,
                    "AUTH_KEYS_FILE": env["AUTH_KEYS_FILE"]}
            if self.redis_unix:
                nenv["REDIS_PATH"] = str(s.redis.dir / "redis.sock")
            else:
                nenv.update(REDIS_HOST=dc.HOST, REDIS_PORT=str(s.redis.port))
            note(f"starting the Node server of (g) on 127.0.0.1:{node_port}")
            self.node = NodeServer(s, node_port, nenv)
            s._start(self.node)
        rc.close()
        self.nginx.stop()
        self.nginx.body = nginx_quote(text)
        self.nginx.start()

        for _ in range(2):  # (h): the first request fills nginx's cache
            st, hbody, h = fetch(self.url["h"])
        if st != 200 or hdr(h, "X-Cache-Status") != "HIT":
            raise dc.StackError(f"(h) after warming: status {st}, X-Cache-Status: "
                                f"{hdr(h, 'X-Cache-Status') or 'none'}: {hbody[:200]!r}")
        self.etag = hdr(fetch(self.url["d"])[2], "ETag")
        if not self.etag:
            self.skip("i", "n/a (no ETag)")
        else:
            st, ibody, _ = fetch(self.url["i"], {"If-None-Match": self.etag})
            if st == 200:
                self.skip("i", f"n/a (no 304: ETag {self.etag} sent back in If-None-Match is answered 200)")
            elif st != 304:
                raise dc.StackError(f"(i) If-None-Match: {self.etag} answered {st}: {ibody[:200]!r}")
            else:
                note(f"(i) ETag of the hit: {self.etag}")
        with open(OUT / "pids.txt", "w") as f:
            for name, pid in self.named_pids():
                f.write(f"{name} {pid}\n")

    def spawn(self, name: str, argv: list[str]) -> None:
        rt = self.stack.runtime_dir
        with open(OUT / "logs" / f"{name}.log", "ab") as logf:
            r = subprocess.run(["spawn-fcgi", "-s", str(rt / f"{name}.sock"), "-M", "0666", "-F", str(self.workers),
                                "-P", str(rt / f"{name}.pids"), "--", *argv], stdin=subprocess.DEVNULL,
                               stdout=logf, stderr=subprocess.STDOUT, cwd=rt, timeout=30)
        pids = [int(x) for x in (rt / f"{name}.pids").read_text().split()] if (rt / f"{name}.pids").exists() else []
        self.spawned[name] = [Adopted(f"{name}.{i}", p) for i, p in enumerate(pids)]
        if r.returncode != 0 or len(pids) != self.workers:
            raise dc.StackError(f"spawn-fcgi started {len(pids)} of {self.workers} {name} processes "
                                f"(see {OUT}/logs/{name}.log)")

    def stop(self) -> None:
        if self.wrk is not None and self.wrk.poll() is None:
            self.wrk.terminate()
            self.wrk.wait(timeout=10)
        for procs in self.spawned.values():
            for p in procs:
                p.stop()
        if self.stack is not None:
            self.stack.stop()
        (OUT / "pids.txt").unlink(missing_ok=True)
        (OUT / "stack.env").unlink(missing_ok=True)
        left = [p.name for ps in self.spawned.values() for p in ps if p.running()]
        if left:
            out(f"bench: warning: still running: {' '.join(left)}")

    # ---- what serves what
    def named_pids(self) -> list[tuple[str, int]]:
        s = self.stack
        out_ = [("postgres", s.postgres.pid()), ("redis", s.redis.pid()), ("dashcache", self.pool.pid()),
                ("nometrics", self.nometrics.pid()), ("trusted", self.trusted.pid()), ("nginx", self.nginx.pid())]
        if self.node is not None:
            out_.append(("node", self.node.pid()))
        out_ += [(f"dcworker.{i}", p) for i, p in enumerate(self.dc_workers)]
        out_ += [(p.name, p.pid) for ps in self.spawned.values() for p in ps]
        return [(n, p) for n, p in out_ if p]

    def component_pids(self, c: str) -> list[int]:
        """PIDs of a component now (children afresh: respawned workers, new Postgres backends count)."""
        if c in ("const", "bredis"):
            return [p.pid for p in self.spawned[c]]
        svc = {"nginx": self.nginx, "dashcache": self.pool, "nometrics": self.nometrics, "trusted": self.trusted,
               "node": self.node, "postgres": self.stack.postgres, "redis": self.stack.redis}[c]
        pid = svc.pid() if svc is not None else None
        if pid is None:
            return []
        return [pid] if c in ("redis", "node") else [pid] + dc.children(pid)

    def snapshot(self) -> dict[int, tuple[int, int]]:
        """{pid: (CPU ticks, context switches)} of every process serving a target."""
        snap = {}
        for c in COMPONENTS:
            for p in self.component_pids(c):
                t, cs = ticks(p), ctxt_switches(p)
                if t is not None and cs is not None:
                    snap[p] = (t, cs)
        return snap

    def delta(self, snap: dict[int, tuple[int, int]], c: str) -> tuple[int, int]:
        """(CPU ticks, context switches) of component c since snap; a process born since counts whole."""
        ticks_, cs_ = 0, 0
        for p in self.component_pids(c):
            t, cs = ticks(p), ctxt_switches(p)
            if t is not None and cs is not None:
                t0, cs0 = snap.get(p, (0, 0))
                ticks_, cs_ = ticks_ + t - t0, cs_ + cs - cs0
        return ticks_, cs_

    def services(self) -> list:
        s = self.stack
        return [s.postgres, s.redis, self.pool, self.nometrics, self.trusted, self.nginx] + \
            ([self.node] if self.node is not None else [])

    def check_alive(self) -> None:
        for s in self.services():
            if not s.running() and s.name not in self.dead:
                self.dead.add(s.name)
                self.broke(f"{s.name} died")
        for p in [p for ps in self.spawned.values() for p in ps]:
            if not p.running() and p.name not in self.dead:
                self.dead.add(p.name)
                self.broke(f"{p.name} (pid {p.pid}) died")

    def refresh_etag(self) -> None:
        """(i) asks with the ETag of the hit as it is now: each run of (e) rewrites the cached body."""
        st, body, h = fetch(self.url["d"])
        etag = hdr(h, "ETag")
        if st != 200 or not etag:
            self.broke(f"(d) answered {st} without an ETag: {body[:200]!r}")
        self.etag = etag or self.etag

    def check_targets(self, when: str) -> None:
        """Each target answers as expected: 200 and X-Cache; (a), (b) and (g) the body captured at start,
        (c) and (d) whatever the cache holds now (each run of (e) rewrites it: same length), (h) nginx's
        cached copy (a HIT), (i) a 304 without a body."""
        seen = {}
        for t in self.available():
            extra = {}
            if t == "i":
                self.refresh_etag()
                extra = {"If-None-Match": self.etag}
            st, body, h = fetch(self.url[t], extra)
            if t == "h":  # after the rounds the entry may have expired: the next request refreshes it
                for _ in range(5):
                    if st != 200 or hdr(h, "X-Cache-Status") == "HIT":
                        break
                    time.sleep(0.2)
                    st, body, h = fetch(self.url[t])
            seen[t] = body
            xc = hdr(h, "X-Cache")
            want = 304 if t == "i" else 200
            if st != want:
                self.broke(f"{when}: {LABEL[t]} answered {st}, expected {want}: {body[:200]!r}")
            elif t == "i":
                if body:
                    self.broke(f"{when}: {LABEL[t]} answered 304 with a body: {body[:200]!r}")
            elif t in X_CACHE and xc != X_CACHE[t]:
                self.broke(f"{when}: {LABEL[t]} says X-Cache: {xc or 'none'}, expected {X_CACHE[t]}")
            elif t == "h" and hdr(h, "X-Cache-Status") != "HIT":
                self.broke(f"{when}: {LABEL[t]} says X-Cache-Status: {hdr(h, 'X-Cache-Status') or 'none'}, "
                           "expected HIT")
            elif len(body) != len(self.body):
                self.broke(f"{when}: {LABEL[t]} answered a body of another size: {body[:200]!r}")
            elif t in "abg" and body != self.body:
                self.broke(f"{when}: {LABEL[t]} answered another body: {body[:200]!r}")
            elif t == "d" and body != seen["c"]:
                self.broke(f"{when}: {LABEL['d']} and {LABEL['c']} answered different bodies")
            elif t in "fj" and body != seen["e"]:
                self.broke(f"{when}: {LABEL[t]} and {LABEL['e']} answered different bodies")

    def run_wrk(self, t: str, secs: int, raw: Path) -> dict:
        headers = dict(AUTH)
        if t == "i":
            self.refresh_etag()
            headers["If-None-Match"] = self.etag
        with open(raw, "wb") as f:
            self.wrk = subprocess.Popen(["wrk", f"-t{self.threads}", f"-c{self.conns}", f"-d{secs}s", "--timeout", "5s",
                                         *(f"-H{k}: {v}" for k, v in headers.items()),
                                         "--latency", "-s", str(SRC / "stats.lua"), self.url[t]],
                                        stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                self.wrk.wait(timeout=secs + 30)
            except subprocess.TimeoutExpired:
                self.wrk.kill()
                self.wrk.wait()
        self.wrk = None
        if t == "i":  # wrk counts statuses >= 400 only: a 200 instead of the 304 shows here
            st, body, _ = fetch(self.url["i"], {"If-None-Match": self.etag})
            if st != 304:
                self.broke(f"{LABEL[t]}: If-None-Match: {self.etag} answered {st} after the run: {body[:200]!r}")
        lines = [ln for ln in raw.read_text(errors="replace").splitlines() if ln.startswith("BENCH ")]
        w = {"requests": 0, "rps": 0.0, "p50_us": 0, "p99_us": 0}
        if not lines:
            self.broke(f"wrk on {LABEL[t]} printed no summary (see {raw})")
            return w
        for kv in lines[-1].split()[1:]:
            k, v = kv.split("=", 1)
            w[k] = float(v) if "." in v else int(v)
        errs = sum(int(w.get(k, 0)) for k in ("status", "connect", "read", "write", "timeout"))
        if errs:
            self.broke(f"{LABEL[t]}: {w['status']} responses >= 400, socket errors: connect {w['connect']}, "
                       f"read {w['read']}, write {w['write']}, timeout {w['timeout']} (see {raw})")
        if not w["requests"]:
            self.broke(f"{LABEL[t]}: no request completed")
        return w

    # ---- measuring and the report
    def rss(self) -> list[str]:
        return [rss_kb(p) for p in self.dc_workers] + ([rss_kb(self.node_pid)] if self.node_pid else [])

    def measure(self) -> None:
        self.dead: set[str] = set()
        self.node_pid = self.node.pid() if self.node is not None else None
        self.check_targets("before the runs")
        if self.broken:
            raise dc.StackError("a target does not answer as expected; not measuring")
        targets = self.active()
        if not targets:
            raise dc.StackError("none of BENCH_TARGETS can be measured here")
        load1 = float(Path("/proc/loadavg").read_text().split()[0])
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip() or "?"
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "fcgi-app"],
                               capture_output=True, text=True).stdout.strip()
        ngv = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
        nodev = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() \
            if self.node is not None else ""
        u = platform.uname()
        out()
        out(f"dashcache benchmark  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
        out(f"host: {u.system} {u.release} {u.machine}, {self.ncpu} cores, load average before the runs {load1}"
            + (" (busy: other work skews the figures)" if load1 > self.ncpu / 2 else ""))
        out(f"dashcache: {rev}{' + uncommitted changes in fcgi-app/' if dirty else ''}, {self.dc_bin}, "
            f"{self.workers} workers; nginx on 127.0.0.1:{self.port}; Redis over "
            f"{'its unix socket' if self.redis_unix else 'TCP'}")
        out(f"wrk: {self.threads} threads, {self.conns} connections, {self.rounds} rounds x {self.duration}s per "
            f"target, {self.warmup}s warm-up; body {len(self.body)} bytes; nginx {ngv}, worker_processes auto")
        out("nginx to dashcache's pools: "
            + ("keepalive 32, fastcgi_keep_conn on (BENCH_KEEPCONN=1)" if self.keepconn
               else "fastcgi_keep_conn off (BENCH_KEEPCONN=0)") + "; to (b) and (c): fastcgi_keep_conn off"
            + (f"; to (g): HTTP/1.1, keepalive 64, node {nodev}, one process" if nodev else ""))
        if "i" in self.active():
            out(f"(i): If-None-Match with the hit's ETag ({self.etag} at start)")
        for t in self.targets:
            if t in self.skipped:
                out(f"{LABEL[t]}: not measured: {self.skipped[t]}")
        out()
        rss = {"start": self.rss()}
        if self.warmup:
            note(f"warm-up: {self.warmup}s per target")
            for t in targets:
                self.run_wrk(t, self.warmup, OUT / "raw" / f"warmup-{t}.txt")
            self.check_alive()
        rss["warm"] = self.rss()
        res: dict[str, list] = {t: [] for t in targets}
        out(f"{'round':<5} {'target':<{W}} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'CPU us/req':>11} "
            f"{'cs/req':>7}  CPU us/req by process")
        n = len(targets)
        for r in range(self.rounds):
            for k in range(n):
                t = targets[(k + r) % n]
                snap = self.snapshot()
                w = self.run_wrk(t, self.duration, OUT / "raw" / f"round{r + 1}-{t}.txt")
                d = {c: self.delta(snap, c) for c in SERVED_BY[t]}
                nreq = w["requests"] or 1
                per = {c: v[0] * 1e6 / CLK_TCK / nreq for c, v in d.items()}
                cs = {c: v[1] / nreq for c, v in d.items()}
                self.check_alive()
                row = {"rps": float(w["rps"]), "p50": w["p50_us"], "p99": w["p99_us"], "cpu": sum(per.values()),
                       "cs": sum(cs.values()), "by": per, "cs_by": cs}
                res[t].append(row)
                out(f"{r + 1:<5} {LABEL[t]:<{W}} {row['rps']:>10.0f} {row['p50'] / 1000:>9.3f} "
                    f"{row['p99'] / 1000:>9.3f} {row['cpu']:>11.1f} {row['cs']:>7.2f}  "
                    + " ".join(f"{c} {v:.1f}" for c, v in per.items()))
        rss["end"] = self.rss()
        self.check_targets("after the runs")
        self.check_alive()
        self.report(res, rss)

    def report(self, res: dict, rss: dict) -> None:
        keys = ("rps", "p50", "p99", "cpu", "cs")
        med = {t: {k: statistics.median(row[k] for row in rows) for k in keys} for t, rows in res.items()}
        out()
        out(f"median of {self.rounds} rounds ({self.conns} connections, {self.workers} FastCGI processes per app; "
            "cs: context switches):")
        out(f"{'target':<{W}} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'CPU us/req':>11} {'cs/req':>7}")
        for t in self.targets:
            if t in self.skipped:
                out(f"{LABEL[t]:<{W}} {self.skipped[t]}")
                continue
            m = med[t]
            out(f"{LABEL[t]:<{W}} {m['rps']:>10.0f} {m['p50'] / 1000:>9.3f} {m['p99'] / 1000:>9.3f} "
                f"{m['cpu']:>11.1f} {m['cs']:>7.2f}")
        out()
        out("CPU us/req and context switches/req by process (median):")
        for t, rows in res.items():
            out(f"{LABEL[t]:<{W}}" + "".join(
                f"  {c} {statistics.median(r['by'][c] for r in rows):.1f} us "
                f"{statistics.median(r['cs_by'][c] for r in rows):.2f} cs" for c in SERVED_BY[t]))

        def per_round(a: str, b: str, k: str) -> list[float]:
            return [x[k] / y[k] for x, y in zip(res.get(a, []), res.get(b, [])) if y[k]]

        def spread(rs: list[float]) -> str:
            return f"{statistics.median(rs):.2f} ({min(rs):.2f}..{max(rs):.2f})" if rs else "n/a"

        out()
        out(f"ratios of (d) to another target: median of the {self.rounds} per-round ratios (min..max); "
            "above 1 favours (d) for req/s, below 1 for the others")
        cols = (("rps", "req/s"), ("p99", "p99"), ("cpu", "CPU/req"), ("cs", "cs/req"))
        out((f"  {'':<4}" + "".join(f" {name:<21}" for _, name in cols)).rstrip())
        for a, b, what in (("d", "g", "the Node service it replaces"), ("d", "h", "nginx's fastcgi_cache hit"),
                           ("d", "c", "its floor, one GET from libfcgi"), ("d", "b", "the FastCGI hop alone")):
            if a in res and b in res:
                out(f"  {a}/{b} " + "".join(f" {spread(per_round(a, b, k)):<21}" for k, _ in cols) + " " + what)
            elif a in self.targets and b in self.targets:
                out(f"  {a}/{b}  n/a: {LABEL[b] if b in self.skipped else LABEL[a]} "
                    f"{self.skipped.get(b) or self.skipped.get(a, '')}")
        if "d" in med and "g" in med:
            out(f"  p99: (d) {med['d']['p99'] / 1000:.3f} ms against (g) {med['g']['p99'] / 1000:.3f} ms "
                f"(medians over the rounds)")
        if "d" in med and "f" in med and med["f"]["rps"] and med["f"]["cpu"]:
            d, f = med["d"], med["f"]
            out(f"cost of metrics, (d) against (f): req/s {100 * (d['rps'] - f['rps']) / f['rps']:+.1f}%, "
                f"CPU/req {100 * (d['cpu'] - f['cpu']) / f['cpu']:+.1f}% (goal: under 3%) [information only]")
        if "d" in med and "j" in med and med["j"]["rps"] and med["j"]["cpu"]:
            d, j = med["d"], med["j"]
            out(f"cost of token verification, (d) against (j): req/s {100 * (d['rps'] - j['rps']) / j['rps']:+.1f}%, "
                f"CPU/req {100 * (d['cpu'] - j['cpu']) / j['cpu']:+.1f}% (goal: req/s within 5%) [information only]")
        rps_dc, p99_dc = per_round("d", "c", "rps"), per_round("d", "c", "p99")
        if rps_dc and p99_dc:
            met = statistics.median(rps_dc) >= 0.9 and statistics.median(p99_dc) <= 1.2
            out(f"goal, hit path vs (c): {'met' if met else 'not met'} (req/s {statistics.median(rps_dc):.2f}x (c), "
                f"needs >= 0.90; p99 {statistics.median(p99_dc):.2f}x (c), needs <= 1.2) [information only]")
        out()
        out("RSS (kB): at start, after warm-up, after the last round")
        procs = [f"dashcache worker pid {pid}" for pid in self.dc_workers]
        if self.node_pid:
            procs.append(f"(g) node pid {self.node_pid}")
        for i, name in enumerate(procs):
            s0, w, e = rss["start"][i], rss["warm"][i], rss["end"][i]
            growth = "(died)" if "-" in (w, e) else f"({int(e) - int(w):+d} since warm-up)"
            out(f"  {name:<28} {s0:>8} {w:>8} {e:>8}  {growth}")
        out()


def hdr(h: email.message.Message, name: str) -> str:
    return (h.get(name) or "").strip()


def fetch(url: str, extra: dict | None = None) -> tuple[int, bytes, email.message.Message]:
    """(status, body, headers) of a GET with AUTH (and extra headers), bounded by 10 s; status 0
    when nothing answered. Statuses other than 2xx come back as such (304 included)."""
    try:
        req = urllib.request.Request(url, headers={**AUTH, **(extra or {})})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers
    except OSError as e:
        return 0, str(e).encode(), email.message.Message()


def main() -> int:
    os.environ["LC_ALL"] = "C"
    for d in ("raw", "logs"):
        shutil.rmtree(OUT / d, ignore_errors=True)
        (OUT / d).mkdir(parents=True, exist_ok=True)
    LAST.write_text("")
    dc.stop_on_signals()
    bench = None
    try:
        bench = Bench()
        bench.start()
        bench.measure()
    except dc.StackError as e:
        out(f"bench: error: {e}")
        return 1
    except KeyboardInterrupt:
        out("bench: interrupted")
        return 130
    finally:
        if bench is not None:
            bench.stop()
    if bench.broken:
        out(f"bench: something broke during the run (see BROKEN lines above); wrk output in {OUT}/raw/")
        return 1
    out("bench: done; report saved to build/bench/last.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
