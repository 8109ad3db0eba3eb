"""Fixtures of the end-to-end suites: a stack of their own (scripts/dcstack.py),
an HTTP client through its nginx, Redis and SQL helpers, the cache key schema
(cache_key), /metrics parsed (Metrics), and `outage` for tests that stop,
pause or kill a component of the shared stack and must leave it whole.

Run them with Debian's pytest: /usr/bin/python3 -m pytest tests/e2e
(tests/run.py does, with DC_E2E_STATE_DIR=.run/test/e2e). Each stack takes free
loopback ports, so this can run beside any other stack on the machine.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import dcstack as dc  # noqa: E402

STATE = Path(os.environ.get("DC_E2E_STATE_DIR", ROOT / ".run" / "e2e"))
HTTP_TIMEOUT = float(os.environ.get("E2E_HTTP_TIMEOUT", 10))


def pytest_configure(config):
    dc.stop_on_signals()  # a SIGTERM (runner timeout) unwinds the fixtures: stacks stop


@contextlib.contextmanager
def own_stack(name: str, **kw):
    """A stack of the test's own, state in DC_E2E_STATE_DIR/NAME."""
    with dc.Stack(f"e2e-{name}", state_dir=STATE / name, **kw) as s:
        yield s


# ------------------------------------------------------------------ cache keys

# The key schema of fcgi-app/dc_key.h, by query type (the query_type label of
# the metrics), and the generation key of a query type of an organization. The
# only place the tests know how keys are spelled. The organization is the
# keys' Redis Cluster hash tag, in literal braces: org:{<org>}.
_KEYS = {
    "stats": "dashboard:stats:org:{{{org}}}",
    "units": "dashboard:units:status:org:{{{org}}}",
    "alerts": "dashboard:alerts:count:org:{{{org}}}",
    "alerts_unit": "dashboard:alerts:count:org:{{{org}}}:unit:{unit}",
    "temperature": "dashboard:temperature:trends:org:{{{org}}}:unit:{unit}:hours:{hours}",
    "devices": "dashboard:devices:online:org:{{{org}}}",
    "compliance": "dashboard:compliance:org:{{{org}}}",
    "any": "dashboard:*:org:{{{org}}}",  # every per-organization key without a unit part
    "all": "dashboard:*",  # every answer of every organization
    "gen": "dashcache:gen:{qtype}:org:{{{org}}}",
}
QUERY_TYPES = ("stats", "units", "alerts", "temperature", "devices", "compliance")


def cache_key(query: str, org: str = "*", unit: str | None = None, hours="*", qtype: str = "*") -> str:
    """The Redis key of a dashboard answer (or a SCAN pattern, with "*" parts):
    query is a query type, "any" (all of an organization's keys without a unit
    part), "all" (every answer key) or "gen" (the generation of query type qtype
    of the organization, every type's with "*"). alerts with a unit is the
    per-unit count; temperature needs the unit."""
    if query == "alerts" and unit is not None:
        query = "alerts_unit"
    if query == "temperature" and unit is None:
        raise ValueError("the temperature key needs a unit")
    return _KEYS[query].format(org=org, unit=unit, hours=hours, qtype=qtype)


# ------------------------------------------------------------------ HTTP

class Response:
    def __init__(self, status: int, headers, body: bytes, elapsed: float):
        self.status, self.headers, self.body, self.elapsed = status, headers, body, elapsed

    def header(self, name: str) -> str:
        return (self.headers.get(name) or "").strip() if self.headers is not None else ""

    @property
    def xcache(self) -> str:
        return self.header("X-Cache")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def is_json(self) -> bool:
        """JSON Content-Type and a body that parses."""
        return self.header("Content-Type").startswith("application/json") and self.json() is not None

    def error_code(self) -> str | None:
        j = self.json()
        return j.get("error", {}).get("code") if isinstance(j, dict) and isinstance(j.get("error"), dict) else None

    def is_error(self, status: int, *codes: str) -> bool:
        """A JSON error {"error":{"code","message"}} with STATUS and one of CODES."""
        j = self.json()
        msg = j.get("error", {}).get("message") if isinstance(j, dict) and isinstance(j.get("error"), dict) else None
        return (self.status == status and self.is_json() and self.error_code() in codes
                and isinstance(msg, str) and len(msg) > 0)

    def __repr__(self) -> str:
        b = self.body[:240].decode(errors="replace").replace("\r", "").replace("\n", "")
        return (f"HTTP {self.status} in {self.elapsed:.3f}s, X-Cache: {self.xcache}, "
                f"Content-Type: {self.header('Content-Type')}, body: {b or '<empty>'}")


class Http:
    """Requests through the stack's nginx; every call bounded by HTTP_TIMEOUT. Each carries
    `Authorization: Bearer <token>` (the stack's default token: every scope, every
    organization) unless the call passes its own token, or token=None for none."""

    DEFAULT = object()

    def __init__(self, base: str, org: str = dc.DEMO_ORG, token: str = ""):
        self.base, self.org, self.token = base, org, token
        self.api = f"{base}/api/dashboard"

    def auth_header(self, token=DEFAULT) -> dict:
        token = self.token if token is Http.DEFAULT else token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def url(self, path: str) -> str:
        """http...: as is; /...: on the base URL; else relative to the demo organization's API."""
        if path.startswith("http"):
            return path
        if path.startswith("/"):
            return self.base + path
        return f"{self.api}/orgs/{self.org}/{path}"

    def request(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None,
                timeout: float = HTTP_TIMEOUT, token=DEFAULT) -> Response:
        req = urllib.request.Request(self.url(path), data=data, method=method,
                                     headers={**self.auth_header(token), **(headers or {})})
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Response(r.status, r.headers, r.read(), time.monotonic() - t0)
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read(), time.monotonic() - t0)
        except (urllib.error.URLError, OSError) as e:  # no answer: status 0, like curl's 000
            return Response(0, None, str(e).encode(), time.monotonic() - t0)

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def head(self, path: str, **kw) -> Response:
        return self.request("HEAD", path, **kw)

    def post(self, path: str, body=None, content_type: str = "application/json", **kw) -> Response:
        data = body if isinstance(body, bytes) else (b"" if body is None else
                                                      body.encode() if isinstance(body, str) else
                                                      json.dumps(body).encode())
        return self.request("POST", path, data=data, headers={"Content-Type": content_type}, **kw)

    def org_url(self, org: str, path: str) -> str:
        return f"{self.api}/orgs/{org}/{path}"

    def load(self, paths, parallel: int) -> list[tuple[int, float]]:
        """GET every path, PARALLEL at a time: [(status, monotonic time it ended)] in
        order. Bounded: each request by HTTP_TIMEOUT, so the whole by
        len(paths) / parallel * HTTP_TIMEOUT."""
        def one(p):
            r = self.get(p)
            return r.status, time.monotonic()
        with ThreadPoolExecutor(parallel) as ex:
            return list(ex.map(one, paths))


# ------------------------------------------------------------------ JSON helpers

def walk(v):
    """Every value of a JSON document, pre-order (jq's `..`)."""
    yield v
    if isinstance(v, dict):
        for x in v.values():
            yield from walk(x)
    elif isinstance(v, list):
        for x in v:
            yield from walk(x)


def find_object(doc, *keys):
    """The first object in doc that has all keys (jq: first(.. | objects | select(has(...))))."""
    return next((o for o in walk(doc) if isinstance(o, dict) and all(k in o for k in keys)), None)


def wait_for(pred, timeout: float, interval: float = 0.05) -> bool:
    """Poll pred until true or timeout seconds have passed; bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# ------------------------------------------------------------------ metrics

class Metrics:
    """One scrape of /metrics: the response, and every sample by its series
    (name{labels} exactly as written)."""

    def __init__(self, r: Response):
        self.response = r
        self.text = r.body.decode(errors="replace")
        self.series: dict[str, float] = {}
        for ln in self.text.splitlines():
            if ln and not ln.startswith("#"):
                name, _, value = ln.rpartition(" ")
                self.series[name] = float(value)

    def value(self, series: str) -> float:
        """One series' value (0 if absent, as for a counter never touched)."""
        return self.series.get(series, 0.0)

    def sum(self, family: str) -> float:
        """The sum over every labelled series of a family."""
        return sum(v for k, v in self.series.items() if k.startswith(family + "{"))

    def lookups(self) -> int:
        """Cache hits + misses over all query types."""
        return int(self.sum("dashboard_cache_hit_total") + self.sum("dashboard_cache_miss_total"))

    def counters(self) -> dict[str, float]:
        """Every sample of every counter family (# TYPE ... counter)."""
        fams = [ln.split()[2] for ln in self.text.splitlines()
                if ln.startswith("# TYPE ") and ln.split()[3:4] == ["counter"]]
        return {k: v for k, v in self.series.items() if k.split("{")[0] in fams}


def scrape(http: Http) -> Metrics:
    return Metrics(http.get("/metrics"))


def proc_state(pid: int | None) -> str | None:
    st = dc.proc_stat(pid) if pid else None
    return st[0] if st else None


def rchar(pid: int) -> int:
    """Bytes a process has read through syscalls: it grows only while a worker serves."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for ln in f:
                if ln.startswith("rchar:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def resyncs(stack) -> int:
    """How many times the invalidator logged invalidate.all (all its runs in this stack)."""
    p = stack.invalidator.log_path
    return p.read_text(errors="replace").count("event=invalidate.all") if p.exists() else 0


@contextlib.contextmanager
def postgres_hung(stack):
    """PostgreSQL's postmaster and all its backends stopped (SIGSTOP), continued on exit."""
    pids = stack.postgres.freeze()
    try:
        assert wait_for(lambda: dc.Postgres.frozen(pids), 5), "PostgreSQL did not stop on SIGSTOP"
        yield
    finally:
        dc.Postgres.thaw(pids)


class Outage:
    """Stops, pauses and kills services of the shared stack for one test, always
    through their dcstack handles (never by name); the `outage` fixture's
    finalizer puts everything back and checks that the stack serves again."""

    def __init__(self, stack, http: Http, redis: dc.RedisClient):
        self.stack, self.http, self.redis = stack, http, redis
        self.touched: set[str] = set()
        self.restarted: set[str] = set()
        self.resyncs_at_redis_back: int | None = None

    def stop(self, svc) -> None:
        """Stop by the service's stop plan (SIGTERM; PostgreSQL: fast shutdown)."""
        self.touched.add(svc.name)
        svc.stop()

    def start(self, svc) -> None:
        if svc is self.stack.redis:
            self.resyncs_at_redis_back = resyncs(self.stack)
            self.redis.close()  # the `redis` fixture's connection went with the old server
        svc.start()
        self.restarted.add(svc.name)

    def pause(self, svc) -> None:
        """SIGSTOP: the process hangs with its sockets open."""
        self.touched.add(svc.name)
        svc.signal(signal.SIGSTOP)
        assert wait_for(lambda: proc_state(svc.pid()) == "T", 5), f"{svc.name} did not stop on SIGSTOP"

    def resume(self, svc) -> None:
        svc.signal(signal.SIGCONT)
        assert wait_for(lambda: proc_state(svc.pid()) != "T", 5), f"{svc.name} did not continue on SIGCONT"

    def send(self, svc, sig: int) -> None:
        """A signal through the handle that may end the service (the restore starts it again)."""
        self.touched.add(svc.name)
        svc.signal(sig)

    def wait_resync(self, timeout: float) -> bool:
        """Wait until the invalidator resynchronized (invalidate.all) after Redis was
        started again (it resubscribes with a back-off of at most 2 s)."""
        if self.resyncs_at_redis_back is None:
            return True
        return wait_for(lambda: resyncs(self.stack) > self.resyncs_at_redis_back, timeout)

    def restore(self) -> list[str]:
        """Resume what is paused, start what is stopped (in start order), wait until
        the API serves. Returns what was wrong beyond what the test did."""
        problems = []
        for svc in list(self.stack.started):
            if proc_state(svc.pid()) == "T":
                self.resume(svc)
            if not svc.running():
                if svc.name not in self.touched:
                    problems.append(f"{svc.name} died (status {svc.exit_status()}); last lines of "
                                    f"{svc.log_path}:\n{dc.tail(svc.log_path, 10)}")
                self.start(svc)
        if not wait_for(lambda: self.http.get("/health").status == 200
                        and self.http.get("stats").status == 200, 30, 0.2):
            problems.append(f"the stack does not serve after the restore: /health {self.http.get('/health')}")
        # an invalidate.all still to come would empty the cache under the next test
        if not self.wait_resync(10):
            problems.append("the invalidator did not resynchronize within 10 s after Redis came back")
        return problems


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def stack():
    """The shared end-to-end stack: demo data, 4 workers, the invalidator, nginx."""
    with own_stack("main", workers=4) as s:
        yield s


@pytest.fixture(scope="module")
def cluster_stack():
    """A stack of its own on a Redis Cluster (3 primaries, 3 replicas: dcstack.RedisCluster),
    REDIS_CLUSTER_NODES naming its six nodes; for the module that asks for it."""
    with own_stack("cluster", workers=2, redis_cluster=True) as s:
        yield s


@pytest.fixture(scope="session")
def http(stack) -> Http:
    return Http(stack.http_url, token=stack.default_token)


@pytest.fixture(scope="session")
def redis(stack) -> dc.RedisClient:
    c = stack.redis.client()
    yield c
    c.close()


@pytest.fixture(scope="session")
def sql(stack):
    """sql(query) -> psql's unaligned output, stripped."""
    return lambda q: stack.postgres.psql(q)


@pytest.fixture(scope="session")
def demo():
    """The demo ids: ORG, UNIT, org(n)."""
    class Demo:
        ORG, UNIT = dc.DEMO_ORG, dc.DEMO_UNIT
        org = staticmethod(dc.org_id)
    return Demo


@pytest.fixture
def outage(stack, http, redis):
    """For a test that stops, pauses or kills parts of the shared stack: afterwards
    every service runs again and the API serves; a service that died without the
    test stopping it is an error of the test."""
    o = Outage(stack, http, redis)
    yield o
    problems = o.restore()
    assert not problems, "\n".join(problems)
