#!/usr/bin/python3
"""dashcache benchmark (`make bench`): wrk through one nginx against seven
targets that answer the same JSON body, measured interleaved in rounds:
  (a) nginx itself, `return 200`                 the ceiling behind nginx
  (b) bench_const, a minimal libfcgi program      the cost of the FastCGI hop
  (c) bench_redis, the same plus one Redis GET    the floor of a cache hit
  (d) dashcache's hit path                        X-Cache: HIT
  (e) dashcache's miss path, ?forceRefresh=true   X-Cache: BYPASS (Postgres)
  (f) (d) on a second pool with METRICS=off       the cost of the metrics
  (g) (d) on a third pool with AUTH_MODE=trusted  the cost of token verification:
      the identity comes from nginx's fastcgi_param instead of a bearer token
Every request to every target carries the same `Authorization: Bearer` header
(a token for the demo organization, scopes read and refresh, minted with the
stack's key), so that the bytes on the wire are the same; (d), (e) and (f)
verify it.
For each: requests/s, p50, p99 (median over rounds) and CPU microseconds per
request, summed over every process that serves it (nginx, the FastCGI
processes, redis-server, and for (e) the Postgres cluster).

It starts its own PostgreSQL (demo data) and Redis (scripts/dcstack.py), two
dashcache-fcgi pools, the two baseline programs (compiled here, run under
spawn-fcgi) and nginx, on 127.0.0.1 in a temporary directory under /var/tmp,
and stops all of them on exit, Ctrl-C or SIGTERM. A benchmark, not a test: it
never fails on a number, only when something broke (a response other than
200, a socket error, a process that died).

Environment (defaults):
  BENCH_DURATION=5      seconds per measured run
  BENCH_ROUNDS=3        rounds; each runs every target once, order rotated
  BENCH_WARMUP=2        seconds of warm-up per target before the rounds
  BENCH_CONNECTIONS=32  wrk connections
  BENCH_THREADS=2       wrk threads
  BENCH_WORKERS=2xcores dashcache workers, and processes of (b) and (c)
  BENCH_PORT=18480      nginx port on 127.0.0.1 (unset: the first free one from 18480)
  BENCH_TARGETS="a b c d e f g"  a subset, e.g. "d" while profiling the hit path
  BENCH_REDIS_UNIX=0    1: (c) and dashcache reach Redis over its unix socket
  DC_FCGI_BIN           dashcache-fcgi to measure (build/dashcache-fcgi)
Output: this report on stdout and in build/bench/last.txt; wrk's own output
and the servers' logs in build/bench/raw/ and build/bench/logs/. While it
runs, build/bench/pids.txt lists "name pid" of what it started (for perf).
"""
from __future__ import annotations

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
CACHE_KEY = f"dashboard:units:status:org:{dc.DEMO_ORG}"
TARGETS = "abcdefg"
LABEL = {"a": "(a) nginx return 200", "b": "(b) fcgi constant", "c": "(c) fcgi + redis GET",
         "d": "(d) dashcache hit", "e": "(e) dashcache miss", "f": "(f) hit, METRICS=off",
         "g": "(g) hit, no token check"}
SERVED_BY = {"a": ["nginx"], "b": ["nginx", "const"], "c": ["nginx", "bredis", "redis"],
             "d": ["nginx", "dashcache", "redis"], "e": ["nginx", "dashcache", "redis", "postgres"],
             "f": ["nginx", "nometrics", "redis"], "g": ["nginx", "trusted", "redis"]}
X_CACHE = {"d": "HIT", "e": "BYPASS", "f": "HIT", "g": "HIT"}
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


def nginx_quote(s: str) -> str:
    """The body as an nginx single-quoted string; $ spelled as a variable (return text is a template)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("$", "${dollar}") + "'"


class BenchNginx(dc.Service):
    name = "nginx"
    stop_plan = ((signal.SIGQUIT, 10.0),)

    def __init__(self, stack, port: int, socks: dict):
        super().__init__(stack)
        self.port, self.socks, self.body = port, socks, "'placeholder'"
        self.dir = stack.runtime_dir / "nginx"

    def prepare(self) -> None:
        rt, d = self.stack.runtime_dir, self.dir
        (d / "tmp").mkdir(parents=True, exist_ok=True)
        (d / "fastcgi_min.conf").write_text(
            "fastcgi_keep_conn off;\nfastcgi_param REQUEST_METHOD $request_method;\n"
            "fastcgi_param DOCUMENT_URI   $document_uri;\nfastcgi_param QUERY_STRING   $query_string;\n"
            "fastcgi_param REQUEST_URI    $request_uri;\n")
        inc = f"include {d}/fastcgi_min.conf;"
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
    server {{
        listen {dc.HOST}:{self.port};
        location = /a {{ default_type application/json; return 200 {self.body}; }}
        location = /b {{ fastcgi_pass unix:{rt}/const.sock; {inc} }}
        location = /c {{ fastcgi_pass unix:{rt}/bredis.sock; {inc} }}
        location /api/dashboard/ {{ fastcgi_pass unix:{self.socks['dashcache']}; {inc} }}
        location /nometrics/ {{
            rewrite ^/nometrics(/.*)$ $1 break;
            fastcgi_pass unix:{self.socks['nometrics']}; {inc}
        }}
        location /trusted/ {{
            rewrite ^/trusted(/.*)$ $1 break;
            fastcgi_pass unix:{self.socks['trusted']}; {inc}
            fastcgi_param DASHCACHE_AUTH_SUB bench;
            fastcgi_param DASHCACHE_AUTH_ORGS {dc.DEMO_ORG};
            fastcgi_param DASHCACHE_AUTH_SCOPE "read refresh";
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
        if self.threads > self.conns:
            raise dc.StackError("BENCH_THREADS must not exceed BENCH_CONNECTIONS")
        self.targets = (os.environ.get("BENCH_TARGETS") or " ".join(TARGETS)).split()
        if not self.targets or any(t not in LABEL for t in self.targets):
            raise dc.StackError(f"BENCH_TARGETS must list some of: {' '.join(TARGETS)} "
                                f"(got '{os.environ.get('BENCH_TARGETS', '')}')")
        self.dc_bin = Path(os.environ.get("DC_FCGI_BIN") or ROOT / "build/dashcache-fcgi")
        self.spawned: dict[str, list[Adopted]] = {"const": [], "bredis": []}
        self.broken = False
        self.wrk: subprocess.Popen | None = None
        self.stack: dc.Stack | None = None

    def broke(self, msg: str) -> None:
        note(f"BROKEN: {msg}")
        self.broken = True

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
        # TTL: the key must outlive the whole run, or (c) would find it gone
        app = {**dc.test_app_env(), "CACHE_TTL_SECONDS": "86400", "LOG_LEVEL": "warn"}
        s = self.stack = dc.Stack("bench", state_dir=OUT, fsync=False, nginx=False, app_env=app,
                                  workers=self.workers, ports={"http": self.port}).prepare()
        s.redis = BenchRedis(s, s.redis.port)
        s.redis.unix = self.redis_unix
        note(f"starting PostgreSQL (demo data) on 127.0.0.1:{s.postgres.port} and Redis on :{s.redis.port}")
        s.start()
        rt = s.runtime_dir
        env = dict(s.app_env)
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
        self.nginx = BenchNginx(s, self.port, socks)
        note(f"starting nginx on 127.0.0.1:{self.port}")
        s._start(self.nginx)
        base = f"http://{dc.HOST}:{self.port}"
        self.url = {"a": f"{base}/a", "b": f"{base}/b", "c": f"{base}/c", "d": base + HIT_PATH,
                    "e": base + HIT_PATH + "?forceRefresh=true", "f": f"{base}/nometrics{HIT_PATH}",
                    "g": f"{base}/trusted{HIT_PATH}"}

        st, body, xc = fetch(self.url["d"])
        if st != 200:
            raise dc.StackError(f"first request to the hit URL answered {st}: {body[:300]!r}")
        if xc != "MISS":
            note(f"warning: first request to the hit URL says X-Cache: {xc or 'none'}, expected MISS")
        st, body, xc = fetch(self.url["d"])
        if st != 200 or xc != "HIT":
            raise dc.StackError(f"second request to the hit URL: status {st}, X-Cache: {xc or 'none'}")
        self.body = body
        (rt / "body.json").write_bytes(body)
        (rt / "body.json").chmod(0o644)
        cached = s.redis.client()("GET", CACHE_KEY) or ""
        text = body.decode()
        if cached == text:
            gen_opt = []
        elif "\n" in cached and cached.split("\n", 1)[1] == text:
            gen_opt = ["-g"]
            note('the cache holds "<generation>\\n<body>": (c) answers what follows the generation')
        else:
            raise dc.StackError(f"Redis key {CACHE_KEY} does not hold the hit body: {cached[:200]!r}")
        note(f"hit body: {len(body)} bytes: {text[:160]}{'...' if len(body) > 160 else ''}")

        note(f"starting bench_const and bench_redis, {self.workers} processes each")
        rhost = str(s.redis.dir / "redis.sock") if self.redis_unix else dc.HOST
        self.spawn("const", [str(OUT / "bench_const"), str(rt / "body.json")])
        self.spawn("bredis", [str(OUT / "bench_redis"), *gen_opt, rhost, str(s.redis.port), CACHE_KEY])
        self.nginx.stop()
        self.nginx.body = nginx_quote(text)
        self.nginx.start()
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
        out_ += [(f"dcworker.{i}", p) for i, p in enumerate(self.dc_workers)]
        out_ += [(p.name, p.pid) for ps in self.spawned.values() for p in ps]
        return [(n, p) for n, p in out_ if p]

    def component_pids(self, c: str) -> list[int]:
        """PIDs of a component now (children afresh: respawned workers, new Postgres backends count)."""
        if c in ("const", "bredis"):
            return [p.pid for p in self.spawned[c]]
        svc = {"nginx": self.nginx, "dashcache": self.pool, "nometrics": self.nometrics, "trusted": self.trusted,
               "postgres": self.stack.postgres, "redis": self.stack.redis}[c]
        pid = svc.pid()
        if pid is None:
            return []
        return [pid] if c == "redis" else [pid] + dc.children(pid)

    def cpu_snapshot(self) -> dict[int, int]:
        snap = {}
        for c in ("nginx", "const", "bredis", "dashcache", "nometrics", "trusted", "redis", "postgres"):
            for p in self.component_pids(c):
                t = ticks(p)
                if t is not None:
                    snap[p] = t
        return snap

    def cpu_delta(self, snap: dict[int, int], c: str) -> int:
        total = 0
        for p in self.component_pids(c):
            t = ticks(p)
            if t is not None:
                total += t - snap.get(p, 0)
        return total

    def check_alive(self) -> None:
        svcs = [self.stack.postgres, self.stack.redis, self.pool, self.nometrics, self.trusted, self.nginx]
        for s in svcs:
            if not s.running() and s.name not in self.dead:
                self.dead.add(s.name)
                self.broke(f"{s.name} died")
        for p in [p for ps in self.spawned.values() for p in ps]:
            if not p.running() and p.name not in self.dead:
                self.dead.add(p.name)
                self.broke(f"{p.name} (pid {p.pid}) died")

    def check_targets(self, when: str) -> None:
        """Each target answers 200 and the expected X-Cache; (a) and (b) the body captured at start,
        (c) and (d) whatever the cache holds now (each run of (e) rewrites it: same length)."""
        seen = {}
        for t in TARGETS:
            st, body, xc = fetch(self.url[t])
            seen[t] = body
            if st != 200:
                self.broke(f"{when}: {LABEL[t]} answered {st}: {body[:200]!r}")
            elif t in X_CACHE and xc != X_CACHE[t]:
                self.broke(f"{when}: {LABEL[t]} says X-Cache: {xc or 'none'}, expected {X_CACHE[t]}")
            elif len(body) != len(self.body):
                self.broke(f"{when}: {LABEL[t]} answered a body of another size: {body[:200]!r}")
            elif t in "ab" and body != self.body:
                self.broke(f"{when}: {LABEL[t]} answered another body: {body[:200]!r}")
            elif t == "d" and body != seen["c"]:
                self.broke(f"{when}: {LABEL['d']} and {LABEL['c']} answered different bodies")
            elif t == "f" and body != seen["e"]:
                self.broke(f"{when}: {LABEL['f']} and {LABEL['e']} answered different bodies")
            elif t == "g" and body != seen["e"]:
                self.broke(f"{when}: {LABEL['g']} and {LABEL['e']} answered different bodies")

    def run_wrk(self, t: str, secs: int, raw: Path) -> dict:
        with open(raw, "wb") as f:
            self.wrk = subprocess.Popen(["wrk", f"-t{self.threads}", f"-c{self.conns}", f"-d{secs}s", "--timeout", "5s",
                                         *(f"-H{k}: {v}" for k, v in AUTH.items()),
                                         "--latency", "-s", str(SRC / "stats.lua"), self.url[t]],
                                        stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                self.wrk.wait(timeout=secs + 30)
            except subprocess.TimeoutExpired:
                self.wrk.kill()
                self.wrk.wait()
        self.wrk = None
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
    def measure(self) -> None:
        self.dead: set[str] = set()
        self.check_targets("before the runs")
        if self.broken:
            raise dc.StackError("a target does not answer as expected; not measuring")
        load1 = float(Path("/proc/loadavg").read_text().split()[0])
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip() or "?"
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "fcgi-app"],
                               capture_output=True, text=True).stdout.strip()
        ngv = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
        u = platform.uname()
        out()
        out(f"dashcache benchmark  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
        out(f"host: {u.system} {u.release} {u.machine}, {self.ncpu} cores, load average before the runs {load1}"
            + (" (busy: other work skews the figures)" if load1 > self.ncpu / 2 else ""))
        out(f"dashcache: {rev}{' + uncommitted changes in fcgi-app/' if dirty else ''}, {self.dc_bin}, "
            f"{self.workers} workers; nginx on 127.0.0.1:{self.port}; Redis over "
            f"{'its unix socket' if self.redis_unix else 'TCP'}")
        out(f"wrk: {self.threads} threads, {self.conns} connections, {self.rounds} rounds x {self.duration}s per "
            f"target, {self.warmup}s warm-up; body {len(self.body)} bytes; nginx {ngv}, worker_processes auto, "
            f"fastcgi_keep_conn off")
        out()
        rss = {"start": [rss_kb(p) for p in self.dc_workers]}
        if self.warmup:
            note(f"warm-up: {self.warmup}s per target")
            for t in self.targets:
                self.run_wrk(t, self.warmup, OUT / "raw" / f"warmup-{t}.txt")
            self.check_alive()
        rss["warm"] = [rss_kb(p) for p in self.dc_workers]
        res: dict[str, list] = {t: [] for t in self.targets}
        out(f"{'round':<5} {'target':<22} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'CPU us/req':>11}  "
            f"CPU us/req by process")
        n = len(self.targets)
        for r in range(self.rounds):
            for k in range(n):
                t = self.targets[(k + r) % n]
                snap = self.cpu_snapshot()
                w = self.run_wrk(t, self.duration, OUT / "raw" / f"round{r + 1}-{t}.txt")
                per = {c: self.cpu_delta(snap, c) * 1e6 / CLK_TCK / w["requests"] if w["requests"] else 0.0
                       for c in SERVED_BY[t]}
                self.check_alive()
                row = {"rps": float(w["rps"]), "p50": w["p50_us"], "p99": w["p99_us"], "cpu": sum(per.values()),
                       "by": per}
                res[t].append(row)
                out(f"{r + 1:<5} {LABEL[t]:<22} {row['rps']:>10.0f} {row['p50'] / 1000:>9.3f} "
                    f"{row['p99'] / 1000:>9.3f} {row['cpu']:>11.1f} "
                    + " ".join(f"{c} {v:.1f}" for c, v in per.items()))
        rss["end"] = [rss_kb(p) for p in self.dc_workers]
        self.check_targets("after the runs")
        self.check_alive()
        self.report(res, rss)

    def report(self, res: dict, rss: dict) -> None:
        med = {t: {k: statistics.median(row[k] for row in rows) for k in ("rps", "p50", "p99", "cpu")}
               for t, rows in res.items()}
        out()
        out(f"median of {self.rounds} rounds ({self.conns} connections, {self.workers} FastCGI processes per app):")
        out(f"{'target':<22} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'CPU us/req':>11}")
        for t, m in med.items():
            out(f"{LABEL[t]:<22} {m['rps']:>10.0f} {m['p50'] / 1000:>9.3f} {m['p99'] / 1000:>9.3f} {m['cpu']:>11.1f}")
        out()
        out("CPU us/req by process (median):")
        for t, rows in res.items():
            out(f"{LABEL[t]:<22}" + "".join(f" {c} {statistics.median(r['by'][c] for r in rows):.1f}"
                                            for c in SERVED_BY[t]))
        ratio = lambda a, b: f"{a / b:.2f}" if b else "n/a"  # noqa: E731
        out()
        for a, b in (("d", "c"), ("d", "b")):
            if a in med and b in med:
                out(f"{a}/{b}: req/s {ratio(med[a]['rps'], med[b]['rps'])}, p99 {ratio(med[a]['p99'], med[b]['p99'])}, "
                    f"CPU/req {ratio(med[a]['cpu'], med[b]['cpu'])}")
        if "d" in med and "f" in med and med["f"]["rps"] and med["f"]["cpu"]:
            d, f = med["d"], med["f"]
            out(f"cost of metrics, (d) against (f): req/s {100 * (d['rps'] - f['rps']) / f['rps']:+.1f}%, "
                f"CPU/req {100 * (d['cpu'] - f['cpu']) / f['cpu']:+.1f}% (goal: under 3%) [information only]")
        if "d" in med and "g" in med and med["g"]["rps"] and med["g"]["cpu"]:
            d, g = med["d"], med["g"]
            out(f"cost of token verification, (d) against (g): req/s {100 * (d['rps'] - g['rps']) / g['rps']:+.1f}%, "
                f"CPU/req {100 * (d['cpu'] - g['cpu']) / g['cpu']:+.1f}% (goal: req/s within 5%) [information only]")
        if "c" in med and "d" in med:
            c, d = med["c"], med["d"]
            met = d["rps"] >= 0.9 * c["rps"] and d["p99"] <= 1.2 * c["p99"]
            out(f"goal, hit path vs (c): {'met' if met else 'not met'} (req/s "
                f"{100 * d['rps'] / c['rps'] if c['rps'] else 0:.0f}% of (c), needs >= 90%; p99 "
                f"{d['p99'] / c['p99'] if c['p99'] else 0:.2f}x (c), needs <= 1.2x) [information only]")
        out()
        out("dashcache worker RSS (kB): at start, after warm-up, after the last round")
        for i, pid in enumerate(self.dc_workers):
            s0, w, e = rss["start"][i], rss["warm"][i], rss["end"][i]
            growth = "(died)" if "-" in (w, e) else f"({int(e) - int(w):+d} since warm-up)"
            out(f"  worker pid {pid:<8} {s0:>8} {w:>8} {e:>8}  {growth}")
        out()


def fetch(url: str) -> tuple[int, bytes, str]:
    """(status, body, X-Cache) of a GET, bounded by 10 s; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=AUTH), timeout=10) as r:
            return r.status, r.read(), (r.headers.get("X-Cache") or "").strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read(), (e.headers.get("X-Cache") or "").strip()
    except OSError as e:
        return 0, str(e).encode(), ""


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
