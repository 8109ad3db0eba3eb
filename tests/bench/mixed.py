#!/usr/bin/python3
"""dashcache under a mixed workload (`make bench-mixed`; issue 10, "Hit rate at
a realistic mix"): the hit rate and the PostgreSQL work per dashboard read
when reads spread over many tenants while readings and alerts are written,
measured twice on the same data with the same seed: with the cache
(CACHE=on) and without it (CACHE=off: every read from PostgreSQL, no Redis).

It starts its own stack (scripts/dcstack.py, as the e2e tests do: PostgreSQL,
Redis, dashcache-fcgi, dashcache-invalidator, nginx with the real dashcache
snippet) on free loopback ports, fills PostgreSQL as `scripts/seed.py
MIXED_SCALE` does (50: 1,000 organizations, ~5.8 M readings; the time it
takes is reported), then runs the phases one after the other, the second
after restarting the dashcache-fcgi master with CACHE=off:

  warm-up   MIXED_WARMUP s of the load, not measured
  measured  MIXED_DURATION s; /metrics, pg_stat_database and the CPU time of
            every process are read at its start and its end
  check     CACHE=on only: the consistency checker (tests/e2e/consistency.py)
            on MIXED_CHECK_ORGS organizations (Zipf ranks 1, 10, 100, ...) for
            MIXED_CHECK_SECONDS while the load goes on. Not measured: its
            writers create alerts as fast as they can (dozens a second per
            organization), which would swamp the mix. Stale reads must be 0.

The load, the same in both phases (every random choice is drawn from
generators seeded with MIXED_SEED):
  reads     MIXED_CONNECTIONS threads, each on a keep-alive connection sending
            one dashboard read after the other (closed loop; or paced with
            MIXED_READS_PER_S, so that both phases send the same reads). The
            organization is Zipf-distributed (weight of rank k:
            k^-MIXED_ZIPF_S) over the organizations ranked in a random order
            fixed by the seed; the dashboard by the fixed weights of MIX; a
            unit, where one is needed, uniformly among the organization's.
            Token: scope read, every organization.
  ingest    MIXED_READINGS_PER_S readings a second, MIXED_INGEST_BATCH per
            POST /api/ingest/readings, each for a device picked as
            MIXED_INGEST_PICK says, within its unit's range but for one in
            200. Token: scope ingest. The default is production-like: every
            device reports once per MIXED_REPORT_INTERVAL_S (600 s, the
            interval of the seeded readings), so devices are picked uniformly
            (sensors do not report more often because their dashboard is
            popular) at devices / 600 readings a second (about 13 at SCALE=50).
  alerts    MIXED_ALERTS_PER_S operations a second through the API: create an
            alert on a random unit of a Zipf-picked organization, then resolve
            the oldest one it created, in turn (never on the organizations the
            checker watches: it needs counts that only grow). Token: write.

Reported per phase: reads and reads/s, p50 and p99 latency (client side:
nginx, dashcache and this Python process), X-Cache HIT/MISS/BYPASS and the
hit rate (HIT / reads), the misses on a key's first read in the phase (the
cache starts empty: these cannot hit) and the later ones (invalidated or
expired), then from the server: PostgreSQL statements per dashboard read (the deltas of
dashboard_db_queries_total: the read statements of fcgi-app/dc_query.c, and
all of them, writes included, over the deltas of
dashboard_http_requests_total of the six dashboard routes), pg_stat_database
(transactions, tuples, blocks) per read, CPU milliseconds per read of each
component and of this load generator, the writes done and the stale reads;
then per dashboard, and the ratio of statements per read, cache / no cache,
as "DB queries -X%" (issue 10's goal: -95%).

A benchmark, not a test: it never fails on a number, only when something
broke (a read not answered 200, a write refused, a socket error, a stale
read, a service that died); exit status 1 then. Bounded in time (each phase
ends by itself, each request within 10 s) and in count (MAX_READS a phase).
It stops everything it started on exit, Ctrl-C or SIGTERM.

Environment (defaults):
  MIXED_SCALE=50            data set, as make seed SCALE= (small: 300 orgs, one day)
  MIXED_DURATION=60         measured seconds per phase
  MIXED_WARMUP=5            warm-up seconds per phase
  MIXED_CONNECTIONS=16      reader threads (keep-alive connections)
  MIXED_READS_PER_S=0       0: closed loop, each connection sends its next read when
                            the last one is answered; N: N reads/s in all, paced (the
                            same reads in both phases while the server keeps up)
  MIXED_READINGS_PER_S=auto ingested readings a second (0: none; auto: one per
                            device every MIXED_REPORT_INTERVAL_S)
  MIXED_REPORT_INTERVAL_S=600  how often a device reports, for auto
  MIXED_INGEST_PICK=device  device: uniformly over every device; zipf: a device of
                            a Zipf-picked organization (the read distribution: the
                            worst case, writes where the reads are)
  MIXED_INGEST_BATCH=20     readings per ingest request
  MIXED_ALERTS_PER_S=1      alert creations + resolutions a second (0: none)
  MIXED_ZIPF_S=1.1          Zipf exponent over the organizations
  MIXED_SEED=1              seed of the ranking and of every choice
  MIXED_CHECK_ORGS=3        organizations under the consistency checker (0: none)
  MIXED_CHECK_SECONDS=8     how long it runs
  MIXED_WORKERS=2xcores     dashcache workers (build/dashcache-fcgi)
Output: this report on stdout and in build/bench/mixed.txt; the services'
logs in build/bench/mixed/logs/.
"""
from __future__ import annotations

import bisect
import http.client
import json
import math
import os
import random
import re
import shutil
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import dcstack as dc  # noqa: E402
import consistency  # noqa: E402
import seed as seeding  # noqa: E402  scripts/seed.py

OUT = ROOT / "build" / "bench"
REPORT = OUT / "mixed.txt"
STATE = OUT / "mixed"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MAX_READS = 20_000_000  # a phase's bound in count, far above what 2 cores do in an hour
MAX_ERRORS = 50  # error messages kept per phase (all are counted)
HTTP_TIMEOUT = 10.0

# The dashboards read and their weights (percent of reads). alerts_unit is
# alerts/count?unitId=; temperature is a unit's trends over 24 hours.
MIX = (("stats", 25), ("units", 20), ("alerts", 10), ("alerts_unit", 5), ("temperature", 20),
       ("devices", 10), ("compliance", 10))
KINDS = tuple(k for k, _ in MIX)
NEEDS_UNIT = ("alerts_unit", "temperature")
# route labels of dashboard_http_requests_total for the six cached dashboards
READ_ROUTES = ("stats", "units", "alerts", "temperature", "devices", "compliance")
# statements of the read side (fcgi-app/dc_query.c); the rest are writes and the outbox
READ_STATEMENTS = frozenset(("org_exists", "unit_exists", "units_status", "alerts_org", "alerts_unit", "trends",
                             "devices_online", "compliance", "audit"))
COMPONENTS = ("postgres", "fcgi", "invalidator", "redis", "nginx")
GOAL_REDUCTION = 95.0


def out(line: str = "") -> None:
    print(line, flush=True)
    with open(REPORT, "a") as f:
        f.write(line + "\n")


def note(msg: str) -> None:
    out(f"mixed: {msg}")


# ------------------------------------------------------------------ the workload's pure parts

class Zipf:
    """Ranks 0..n-1 drawn with probability proportional to (rank+1)^-s."""

    def __init__(self, n: int, s: float):
        if n < 1:
            raise ValueError("Zipf needs at least one rank")
        w = [(k + 1) ** -s for k in range(n)]
        total, acc, self.cdf = sum(w), 0.0, []
        for x in w:
            acc += x
            self.cdf.append(acc / total)
        self.cdf[-1] = 1.0
        self.n = n

    def share(self, rank: int) -> float:
        """The probability of rank (0-based)."""
        return self.cdf[rank] - (self.cdf[rank - 1] if rank > 0 else 0.0)

    def pick(self, rng: random.Random) -> int:
        return min(bisect.bisect_right(self.cdf, rng.random()), self.n - 1)


class Weighted:
    """Indexes 0..len(weights)-1 drawn in proportion to weights."""

    def __init__(self, weights):
        total, acc, self.cdf = sum(weights), 0, []
        for w in weights:
            acc += w
            self.cdf.append(acc / total)
        self.cdf[-1] = 1.0

    def pick(self, rng: random.Random) -> int:
        return min(bisect.bisect_right(self.cdf, rng.random()), len(self.cdf) - 1)


def rank_orgs(orgs, seed) -> list[str]:
    """The organizations in a random order fixed by seed (whatever order they came in)."""
    ranked = sorted(orgs)
    random.Random(f"{seed}:rank").shuffle(ranked)
    return ranked


def check_ranks(n_orgs: int, n_checked: int) -> list[int]:
    """0-based ranks watched by the consistency checker: 1, 10, 100, ... (1-based), within n_orgs."""
    ranks, r = [], 0
    while len(ranks) < n_checked and r < n_orgs:
        ranks.append(r)
        r = r * 10 + 9
    return ranks


def dashboard_path(kind: str, org: str, unit: str | None = None) -> str:
    base = f"/api/dashboard/orgs/{org}"
    return {"stats": f"{base}/stats", "units": f"{base}/units/status", "alerts": f"{base}/alerts/count",
            "alerts_unit": f"{base}/alerts/count?unitId={unit}",
            "temperature": f"{base}/units/{unit}/temperature/trends?hours=24",
            "devices": f"{base}/devices/online", "compliance": f"{base}/compliance"}[kind]


def next_read(rng: random.Random, orgs: list[str], units: dict, zipf: Zipf, mix: Weighted) -> tuple[str, str]:
    """The next read of a reader: (dashboard, path). The organization by Zipf rank, the
    dashboard by MIX, a unit of the organization where the dashboard needs one."""
    org = orgs[zipf.pick(rng)]
    kind = KINDS[mix.pick(rng)]
    unit = rng.choice(units[org]) if kind in NEEDS_UNIT else None
    return kind, dashboard_path(kind, org, unit)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list; nan when empty."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(q / 100 * len(sorted_values)) - 1)]


_SERIES = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text → {(name, ((label, value), ...)): value}."""
    out_ = {}
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        series, _, value = ln.rpartition(" ")
        m = _SERIES.match(series)
        if m:
            out_[(m.group(1), tuple(_LABEL.findall(m.group(2) or "")))] = float(value)
    return out_


def metric_sum(samples: dict, name: str, label: str | None = None, values=None) -> float:
    """Sum of a family's samples; with label, only those whose label value is in values
    (values None: any value, grouped by nothing)."""
    total = 0.0
    for (n, labels), v in samples.items():
        if n != name:
            continue
        if label is not None and values is not None and dict(labels).get(label) not in values:
            continue
        total += v
    return total


def statements(samples: dict) -> dict[str, float]:
    """dashboard_db_queries_total by statement."""
    return {dict(lb).get("statement", ""): v for (n, lb), v in samples.items() if n == "dashboard_db_queries_total"}


def server_deltas(before: dict, after: dict) -> dict:
    """What the server counted between two scrapes: dashboard reads (the six routes, any
    status), cache hits and misses, read statements, all statements, and per statement."""
    sb, sa = statements(before), statements(after)
    per = {k: sa.get(k, 0.0) - sb.get(k, 0.0) for k in set(sa) | set(sb)}
    per = {k: v for k, v in per.items() if v}

    def d(name, label=None, values=None):
        return metric_sum(after, name, label, values) - metric_sum(before, name, label, values)
    return {"reads": d("dashboard_http_requests_total", "route", READ_ROUTES),
            "hits": d("dashboard_cache_hit_total"), "misses": d("dashboard_cache_miss_total"),
            "read_statements": sum(v for k, v in per.items() if k in READ_STATEMENTS),
            "statements": sum(per.values()), "by_statement": per}


def reads_per_s(phase: dict) -> float:
    """Measured reads per second of a phase's result."""
    return sum(len(v) for v in phase["lat"].values()) / phase["seconds"]


def per(n: float, reads: float) -> float:
    return n / reads if reads else math.nan


def reduction(with_cache: float, without: float) -> float:
    """Percent fewer: 100 * (1 - with/without); nan when without is 0 or unknown."""
    if not without or math.isnan(without) or math.isnan(with_cache):
        return math.nan
    return 100.0 * (1.0 - with_cache / without)


def fmt(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned first column, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = []
    for j, r in enumerate([header] + rows):
        cells = [str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


# ------------------------------------------------------------------ processes and PostgreSQL

def tree_ticks(pid: int | None) -> int:
    """CPU ticks of a process, of the children it reaped, and of its live children (PostgreSQL
    backends, dashcache workers, nginx workers are all direct children)."""
    if not pid:
        return 0

    def fields(p):
        try:
            s = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            return None
        return s[s.rindex(")") + 2:].split()
    f = fields(pid)
    if f is None:
        return 0
    total = int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    for child in dc.children(pid):
        c = fields(child)
        if c is not None:
            total += int(c[11]) + int(c[12])
    return total


def pg_stats(url: str) -> dict[str, float]:
    row = dc.psql(url, "SELECT xact_commit + xact_rollback, tup_returned, tup_fetched, "
                       "tup_inserted + tup_updated + tup_deleted, blks_hit, blks_read "
                       "FROM pg_stat_database WHERE datname = current_database()")
    keys = ("xact", "tup_returned", "tup_fetched", "tup_written", "blks_hit", "blks_read")
    return dict(zip(keys, (float(x) for x in row.split("|"))))


class Client:
    """One keep-alive HTTP/1.1 connection to nginx. A GET that finds the reused connection
    closed by the server is sent again once on a new one; a POST never is."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, str, bytes]:
        for attempt in (0, 1):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                if r.will_close:
                    self.close()
                return r.status, r.getheader("X-Cache", ""), data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if not reused or method != "GET" or attempt:
                    raise
            except (OSError, http.client.HTTPException):
                self.close()
                raise
        raise AssertionError("unreachable")


# ------------------------------------------------------------------ the tenants

class Catalog:
    """Organizations (ranked), their units and their devices (with the unit's range)."""

    def __init__(self, url: str, seed):
        self.orgs = rank_orgs(dc.psql(url, "SELECT id FROM organizations").split(), seed)
        self.units: dict[str, list[str]] = {o: [] for o in self.orgs}
        self.devices: dict[str, list[tuple[str, float, float]]] = {o: [] for o in self.orgs}
        for ln in dc.psql(url, "SELECT org_id, id FROM units ORDER BY org_id, id").splitlines():
            org, unit = ln.split("|")
            self.units[org].append(unit)
        for ln in dc.psql(url, "SELECT d.org_id, d.id, u.min_temp, u.max_temp FROM devices d "
                               "JOIN units u ON u.id = d.unit_id ORDER BY d.org_id, d.id").splitlines():
            org, dev, lo, hi = ln.split("|")
            self.devices[org].append((dev, float(lo), float(hi)))
        self.all_devices = [d for o in self.orgs for d in self.devices[o]]
        empty = [o for o in self.orgs if not self.units[o] or not self.devices[o]]
        if empty:
            raise dc.StackError(f"{len(empty)} organizations have no unit or no device (e.g. {empty[0]})")


# ------------------------------------------------------------------ one phase of load

class Phase:
    """The load of one phase: reader threads, an ingest thread, an alert thread."""

    def __init__(self, bench: "Mixed", name: str):
        self.b, self.name = bench, name
        self.stop = threading.Event()
        self.measuring = threading.Event()
        self.lock = threading.Lock()
        self.lat = {k: [] for k in KINDS}           # measured latencies, seconds
        self.xcache = {k: Counter() for k in KINDS}  # measured X-Cache values
        self.errors: list[str] = []                   # the first MAX_ERRORS
        self.n_errors = 0
        self.writes = Counter()                       # measured: ingest posts, readings, alerts
        self.behind = Counter()                       # measured seconds a paced thread fell behind
        self.seen: set[str] = set()                   # paths read in this phase (a first read misses)
        self.threads: list[threading.Thread] = []

    def error(self, msg: str) -> None:
        with self.lock:
            self.n_errors += 1
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(msg)

    # ---- threads
    def reader(self, i: int) -> None:
        b, rng = self.b, random.Random(f"{self.b.seed}:read:{i}")
        client = Client(dc.HOST, b.port)
        lat = {k: [] for k in KINDS}
        xc = {k: Counter() for k in KINDS}
        cap = MAX_READS // b.connections

        def one() -> None:
            kind, path = next_read(rng, b.cat.orgs, b.cat.units, b.zipf, b.mix)
            t0 = time.perf_counter()
            try:
                status, x, body = client.request("GET", path, headers=b.read_auth)
            except (OSError, http.client.HTTPException) as e:
                self.error(f"GET {path}: {type(e).__name__}: {e}")
                self.stop.wait(0.05)  # nothing answers: no busy loop
                return
            dt = time.perf_counter() - t0
            with self.lock:
                first = path not in self.seen
                self.seen.add(path)
            if status != 200:
                self.error(f"GET {path}: {status} {body[:200]!r}")
            elif self.measuring.is_set():
                lat[kind].append(dt)
                xc[kind][x or "-"] += 1
                if x == "MISS" and first:
                    xc[kind]["MISS first"] += 1
        try:
            if b.reads_per_s:
                # this connection's share of the rate, the connections spread over one interval
                self.paced(b.reads_per_s / b.connections, 1, one, "reads", cap, offset=i / b.reads_per_s)
            else:
                for _ in range(cap):
                    if self.stop.is_set():
                        break
                    one()
        finally:
            client.close()
            with self.lock:
                for k in KINDS:
                    self.lat[k] += lat[k]
                    self.xcache[k].update(xc[k])

    def paced(self, rate: float, per_tick: int, tick, what: str, cap: int = MAX_READS, offset: float = 0.0) -> None:
        """Call tick() per_tick/rate seconds apart (the first after offset), at most cap times,
        until stopped; when it falls behind by more than a second it starts again from now (no
        burst) and counts the seconds lost under what."""
        interval, nxt = per_tick / rate, time.monotonic() + offset
        for _ in range(cap):
            delay = nxt - time.monotonic()
            if (delay > 0 and self.stop.wait(delay)) or self.stop.is_set():
                return
            tick()
            nxt += interval
            late = time.monotonic() - nxt
            if late > 1.0:
                if self.measuring.is_set():
                    with self.lock:
                        self.behind[what] += late
                nxt = time.monotonic()

    def ingester(self) -> None:
        b, rng = self.b, random.Random(f"{self.b.seed}:ingest")
        client = Client(dc.HOST, b.port)

        def tick():
            readings = []
            for _ in range(b.batch):
                if b.ingest_pick == "zipf":
                    dev, lo, hi = rng.choice(b.cat.devices[b.cat.orgs[b.zipf.pick(rng)]])
                else:
                    dev, lo, hi = rng.choice(b.cat.all_devices)
                t = hi + rng.uniform(0.5, 3.0) if rng.random() < 0.005 else rng.uniform(lo + 0.5, hi - 0.5)
                readings.append({"deviceId": dev, "temperature": round(t, 2)})
            try:
                status, _, body = client.request("POST", "/api/ingest/readings", json.dumps(readings).encode(),
                                                 {**b.write_auth, "Content-Type": "application/json"})
            except (OSError, http.client.HTTPException) as e:
                self.error(f"POST ingest: {type(e).__name__}: {e}")
                return
            if status != 200:
                self.error(f"POST ingest: {status} {body[:200]!r}")
            elif self.measuring.is_set():
                with self.lock:
                    self.writes["ingest posts"] += 1
                    self.writes["readings"] += int(json.loads(body).get("accepted", 0))
        try:
            self.paced(b.readings_per_s, b.batch, tick, "ingest")
        finally:
            client.close()

    def alerter(self) -> None:
        b, rng = self.b, random.Random(f"{self.b.seed}:alerts")
        client = Client(dc.HOST, b.port)
        opened: deque = deque()
        op = [0]
        headers = {**b.write_auth, "Content-Type": "application/json"}

        def tick():
            create = op[0] % 2 == 0 or not opened
            op[0] += 1
            try:
                if create:
                    for _ in range(1000):
                        org = b.cat.orgs[b.zipf.pick(rng)]
                        if org not in b.checked:
                            break
                    unit = rng.choice(b.cat.units[org])
                    body = json.dumps({"unitId": unit, "kind": "bench_mixed", "message": "made by mixed.py"})
                    status, _, resp = client.request("POST", f"/api/dashboard/orgs/{org}/alerts", body.encode(),
                                                     headers)
                    if status != 201:
                        self.error(f"POST alert: {status} {resp[:200]!r}")
                        return
                    opened.append((org, json.loads(resp)["id"]))
                    what = "alerts created"
                else:
                    org, alert = opened.popleft()
                    status, _, resp = client.request("POST", f"/api/dashboard/orgs/{org}/alerts/{alert}/resolve",
                                                     b"{}", headers)
                    if status != 200:
                        self.error(f"POST resolve: {status} {resp[:200]!r}")
                        return
                    what = "alerts resolved"
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                self.error(f"alert write: {type(e).__name__}: {e}")
                return
            if self.measuring.is_set():
                with self.lock:
                    self.writes[what] += 1
        try:
            self.paced(b.alerts_per_s, 1, tick, "alerts")
        finally:
            client.close()

    def start(self) -> None:
        b = self.b
        self.threads = [threading.Thread(target=self.reader, args=(i,), name=f"read{i}", daemon=True)
                        for i in range(b.connections)]
        if b.readings_per_s > 0:
            self.threads.append(threading.Thread(target=self.ingester, name="ingest", daemon=True))
        if b.alerts_per_s > 0:
            self.threads.append(threading.Thread(target=self.alerter, name="alerts", daemon=True))
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        deadline = time.monotonic() + HTTP_TIMEOUT + 5
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            self.error(f"load threads still running after the phase: {alive}")


# ------------------------------------------------------------------ the benchmark

class Mixed:
    def __init__(self):
        ie = dc.int_env
        self.scale = os.environ.get("MIXED_SCALE") or "50"
        try:
            self.seed_args = dc.scale_args(self.scale)
        except dc.StackError:
            raise dc.StackError(f"MIXED_SCALE must be a positive integer or 'small', got '{self.scale}'") from None
        self.duration = ie("MIXED_DURATION", 60, 1, 3600)
        self.warmup = ie("MIXED_WARMUP", 5, 0, 600)
        self.connections = ie("MIXED_CONNECTIONS", 16, 1, 256)
        self.reads_per_s = ie("MIXED_READS_PER_S", 0, 0, 1000000)
        rps = os.environ.get("MIXED_READINGS_PER_S") or "auto"
        self.readings_per_s = -1 if rps == "auto" else ie("MIXED_READINGS_PER_S", 0, 0, 100000)
        self.report_interval = ie("MIXED_REPORT_INTERVAL_S", 600, 1, 86400)
        self.ingest_pick = os.environ.get("MIXED_INGEST_PICK") or "device"
        if self.ingest_pick not in ("device", "zipf"):
            raise dc.StackError(f"MIXED_INGEST_PICK must be device or zipf (got '{self.ingest_pick}')")
        self.batch = ie("MIXED_INGEST_BATCH", 20, 1, 1000)
        self.alerts_per_s = ie("MIXED_ALERTS_PER_S", 1, 0, 1000)
        self.seed = ie("MIXED_SEED", 1, 0, 2 ** 31)
        self.n_checked = ie("MIXED_CHECK_ORGS", 3, 0, 20)
        self.check_seconds = ie("MIXED_CHECK_SECONDS", 8, 1, 600)
        self.workers = ie("MIXED_WORKERS", 2 * (os.cpu_count() or 1), 1, 256)
        z = os.environ.get("MIXED_ZIPF_S") or "1.1"
        try:
            self.zipf_s = float(z)
        except ValueError:
            self.zipf_s = -1.0
        if not 0.0 <= self.zipf_s <= 5.0:
            raise dc.StackError(f"MIXED_ZIPF_S must be a number between 0 and 5 (got '{z}')")
        self.stack: dc.Stack | None = None
        self.broken: list[str] = []
        self.results: dict[str, dict] = {}

    # ---- set-up
    def start(self) -> None:
        app = {**dc.test_app_env(), "CACHE": "on"}  # LOG_LEVEL info: the invalidator is ready when it logs
        # a tiny data set to start with; the real one is loaded (and timed) as make seed does
        s = self.stack = dc.Stack("mixed", state_dir=STATE, workers=self.workers, seed=(1, 1, 60), app_env=app,
                                  access_log=False)
        note(f"starting PostgreSQL, Redis, dashcache-fcgi ({self.workers} workers), the invalidator and nginx")
        s.start()
        self.port = s.nginx.port
        orgs, days, step = self.seed_args
        note(f"seeding as `scripts/seed.py {self.scale}`: dc_seed({orgs}, {days}, {step}) in one transaction, "
             "then VACUUM ANALYZE ...")
        t0 = time.monotonic()
        dc.db_seed(s.database_url, orgs, days, step, truncate=True)
        self.seed_seconds = time.monotonic() - t0
        seeding.delete_dashboard_keys(s.redis_url)
        counts = s.postgres.psql("SELECT (SELECT count(*) FROM organizations), (SELECT count(*) FROM units), "
                                 "(SELECT count(*) FROM devices), (SELECT count(*) FROM readings), "
                                 "(SELECT count(*) FROM alerts WHERE resolved_at IS NULL), "
                                 "pg_size_pretty(pg_database_size(current_database()))").split("|")
        self.data = dict(zip(("orgs", "units", "devices", "readings", "open_alerts", "size"), counts))
        note(f"seeded in {self.seed_seconds:.1f} s: {int(counts[0]):,} organizations, {int(counts[1]):,} units, "
             f"{int(counts[2]):,} devices, {int(counts[3]):,} readings, {counts[5]}")
        self.cat = Catalog(s.database_url, self.seed)
        if self.readings_per_s < 0:
            self.readings_per_s = max(1, round(len(self.cat.all_devices) / self.report_interval))
        self.zipf = Zipf(len(self.cat.orgs), self.zipf_s)
        self.mix = Weighted([w for _, w in MIX])
        self.checked = [self.cat.orgs[r] for r in check_ranks(len(self.cat.orgs), self.n_checked)]
        self.read_auth = {"Authorization": "Bearer " + s.token(sub="mixed-reader", scope="read", ttl=86400)}
        self.write_auth = {"Authorization": "Bearer " + s.token(sub="mixed-writer", scope="ingest write",
                                                                ttl=86400)}
        # the checker reads with ?forceRefresh=true once, to learn the count it starts from
        self.check_token = s.token(sub="mixed-consistency", scope="read write refresh", ttl=86400)

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()

    # ---- snapshots
    def scrape(self) -> dict:
        c = Client(dc.HOST, self.port)
        try:
            status, _, body = c.request("GET", "/metrics")
        finally:
            c.close()
        if status != 200:
            raise dc.StackError(f"/metrics answered {status}")
        return parse_metrics(body.decode(errors="replace"))

    def cpu(self) -> dict[str, float]:
        s = self.stack
        got = {name: tree_ticks(getattr(s, name).pid()) / CLK_TCK for name in COMPONENTS}
        t = os.times()
        got["load generator"] = t.user + t.system
        return got

    def snapshot(self) -> tuple:
        return time.monotonic(), self.scrape(), pg_stats(self.stack.database_url), self.cpu()

    # ---- phases
    def run_phase(self, name: str, check: bool) -> dict:
        s = self.stack
        note(f"{name}: {self.warmup} s warm-up, {self.duration} s measured"
             + (f", then the consistency checker for {self.check_seconds} s" if check and self.checked else ""))
        ph = Phase(self, name)
        ph.start()
        res: dict = {"name": name}
        try:
            time.sleep(self.warmup)
            t0, m0, pg0, cpu0 = self.snapshot()
            ph.measuring.set()
            time.sleep(self.duration)
            ph.measuring.clear()
            t1, m1, pg1, cpu1 = self.snapshot()
            res.update(seconds=t1 - t0, server=server_deltas(m0, m1),
                       pg={k: pg1[k] - pg0[k] for k in pg0}, cpu={k: cpu1[k] - cpu0[k] for k in cpu0})
            if check and self.checked:
                res["check"] = self.check()
        finally:
            ph.join()
        res.update(lat=ph.lat, xcache=ph.xcache, writes=ph.writes, errors=ph.n_errors, behind=ph.behind)
        for e in ph.errors[:5]:
            self.broke(f"{name}: {e}")
        if ph.n_errors > 5:
            self.broke(f"{name}: ... {ph.n_errors} errors in all")
        down = s.down()
        if down:
            self.broke(f"{name}: services not running after the phase: {', '.join(down)}")
        return res

    def check(self) -> dict:
        results: dict[str, consistency.Result] = {}

        def one(org):
            unit = self.cat.units[org][0]
            try:
                results[org] = consistency.check(self.stack.http_url, org, unit, float(self.check_seconds),
                                                 n_writers=1, n_readers=2, token=self.check_token)
            except Exception as e:  # noqa: BLE001 - reported as broken
                r = consistency.Result()
                r.errors.append(f"{type(e).__name__}: {e}")
                results[org] = r
        threads = [threading.Thread(target=one, args=(o,), daemon=True) for o in self.checked]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.check_seconds + 60)
        out_ = {"orgs": len(self.checked), "reads": 0, "hits": 0, "acks": 0, "stale": 0, "errors": 0,
                "judged": 0}
        for org in self.checked:
            r = results.get(org)
            if r is None:
                self.broke(f"consistency checker on {org} did not finish")
                continue
            out_["reads"] += r.reads
            out_["hits"] += r.hits
            out_["acks"] += r.acks
            out_["stale"] += len(r.stale)
            out_["errors"] += len(r.errors)
            out_["judged"] += r.enough
            if r.stale or r.errors:
                self.broke(f"consistency on {org} (rank {self.cat.orgs.index(org) + 1}): {r.summary()}")
            elif not r.enough:
                note(f"consistency on {org}: too little happened to judge ({r.summary()})")
        return out_

    def restart_without_cache(self) -> None:
        s = self.stack
        note("restarting dashcache-fcgi with CACHE=off (same data, same seed)")
        s.fcgi.stop()
        s.app_env["CACHE"] = "off"
        s.fcgi.start()

    def broke(self, msg: str) -> None:
        note(f"BROKEN: {msg}")
        self.broken.append(msg)

    def run(self) -> None:
        self.results["on"] = self.run_phase("CACHE=on", check=True)
        self.restart_without_cache()
        self.results["off"] = self.run_phase("CACHE=off", check=False)

    # ---- report
    def phase_rows(self, r: dict) -> dict[str, str]:
        lat = sorted(x for k in KINDS for x in r["lat"][k])  # every measured read
        xc = Counter()
        for k in KINDS:
            xc.update(r["xcache"][k])
        reads = len(lat)
        sv, pg, cpu = r["server"], r["pg"], r["cpu"]
        srv_reads = sv["reads"]
        rows = {
            "reads measured": fmt(reads),
            "reads/s": fmt(reads / r["seconds"], 0),
            "p50 ms": fmt(percentile(lat, 50) * 1000),
            "p99 ms": fmt(percentile(lat, 99) * 1000),
            "X-Cache HIT / MISS / BYPASS": f"{xc['HIT']:,} / {xc['MISS']:,} / {xc['BYPASS']:,}",
            "hit rate (HIT / reads)": fmt(100 * per(xc["HIT"], reads), 1) + " %",
            "MISS on a key's first read / later": f"{xc['MISS first']:,} / {xc['MISS'] - xc['MISS first']:,}",
            "dashboard reads seen by the server": fmt(int(srv_reads)),
            "read statements / read": fmt(per(sv["read_statements"], srv_reads), 3),
            "all statements / read (writes incl.)": fmt(per(sv["statements"], srv_reads), 3),
            "pg transactions / read": fmt(per(pg["xact"], srv_reads), 3),
            "pg tuples returned+fetched / read": fmt(per(pg["tup_returned"] + pg["tup_fetched"], srv_reads), 1),
            "pg blocks hit+read / read": fmt(per(pg["blks_hit"] + pg["blks_read"], srv_reads), 1),
        }
        for c in COMPONENTS + ("load generator",):
            rows[f"CPU ms / read: {c}"] = fmt(1000 * per(cpu[c], reads), 3)
        w = r["writes"]
        rows["readings ingested (posts)"] = f"{w['readings']:,} ({w['ingest posts']:,})"
        rows["readings/s achieved"] = fmt(w["readings"] / r["seconds"], 0)
        rows["alerts created / resolved"] = f"{w['alerts created']:,} / {w['alerts resolved']:,}"
        rows["errors"] = fmt(r["errors"])
        ck = r.get("check")
        rows["stale reads (consistency checker)"] = (
            f"{ck['stale']} in {ck['reads']:,} reads, {ck['judged']}/{ck['orgs']} orgs judged" if ck else "not run")
        return rows

    def report(self) -> None:
        on, off = self.results.get("on"), self.results.get("off")
        out()
        note("report")
        orgs, days, step = self.seed_args
        out(f"data: MIXED_SCALE={self.scale}: dc_seed({orgs}, {days}, {step}): {int(self.data['orgs']):,} "
            f"organizations, {int(self.data['units']):,} units, {int(self.data['devices']):,} devices, "
            f"{int(self.data['readings']):,} readings ({self.data['size']}); seeded in {self.seed_seconds:.1f} s "
            "(one transaction + VACUUM ANALYZE, fsync off)")
        top = self.zipf
        pace = (f"{self.connections} connections paced to {self.reads_per_s:,} reads/s in all" if self.reads_per_s
                else f"{self.connections} closed-loop connections")
        out(f"load: {pace}; Zipf s={self.zipf_s} over {len(self.cat.orgs):,} "
            f"organizations (seed {self.seed}; rank 1 gets {100 * top.share(0):.1f} % of picks, the top 10 "
            f"{100 * top.cdf[min(9, top.n - 1)]:.1f} %); mix "
            + ", ".join(f"{k} {w} %" for k, w in MIX))
        out(f"      ingest {self.readings_per_s} readings/s in POSTs of {self.batch} (devices picked: "
            f"{self.ingest_pick}); alerts {self.alerts_per_s} "
            f"op/s; {self.workers} dashcache workers; warm-up {self.warmup} s, measured {self.duration} s a phase")
        phases = [p for p in (on, off) if p is not None and "server" in p]
        if not phases:
            return
        cols = [self.phase_rows(p) for p in phases]
        out()
        for ln in table([""] + [p["name"] for p in phases], [[k] + [c[k] for c in cols] for k in cols[0]]):
            out(ln)

        out()
        hdr = ["dashboard", "weight"]
        for p in phases:
            hdr += [f"{p['name']} hit %", "p50 ms", "p99 ms"] if p is on else [f"{p['name']} p50 ms", "p99 ms"]
        rows = []
        for k, w in MIX:
            row = [k, f"{w} %"]
            for p in phases:
                lat = sorted(p["lat"][k])
                if p is on:
                    row.append(fmt(100 * per(p["xcache"][k]["HIT"], len(lat)), 1))
                row += [fmt(percentile(lat, 50) * 1000), fmt(percentile(lat, 99) * 1000)]
            rows.append(row)
        for ln in table(hdr, rows):
            out(ln)

        out()
        if on is not None and off is not None and "server" in on and "server" in off:
            spr_on = per(on["server"]["read_statements"], on["server"]["reads"])
            spr_off = per(off["server"]["read_statements"], off["server"]["reads"])
            all_on = per(on["server"]["statements"], on["server"]["reads"])
            all_off = per(off["server"]["statements"], off["server"]["reads"])
            red = reduction(spr_on, spr_off)
            cpu_on = per(on["cpu"]["postgres"], on["server"]["reads"])
            cpu_off = per(off["cpu"]["postgres"], off["server"]["reads"])
            out(f"DB statements per dashboard read, cache / no cache: {fmt(spr_on, 3)} / {fmt(spr_off, 3)} = "
                f"{fmt(per(spr_on, spr_off), 3)}: DB queries {fmt(-red, 1)} % "
                f"(issue 10's goal: -{GOAL_REDUCTION:.0f} %, {'met' if red >= GOAL_REDUCTION else 'not met'})")
            out(f"  all statements (writes and outbox too) per read: {fmt(all_on, 3)} / {fmt(all_off, 3)}: "
                f"{fmt(-reduction(all_on, all_off), 1)} %; PostgreSQL CPU per read: "
                f"{fmt(-reduction(cpu_on, cpu_off), 1)} %")
            rps_on, rps_off = reads_per_s(on), reads_per_s(off)
            out(f"reads/s with the cache {fmt(rps_on, 0)}, without {fmt(rps_off, 0)} "
                f"({fmt(per(rps_on, rps_off), 2)} x)")
        for p in phases:
            gen = per(p["cpu"]["load generator"], p["seconds"])
            w, late = p["writes"], p["behind"]
            target = f" of {self.reads_per_s:,}" if self.reads_per_s else ""
            out(f"load generator, {p['name']}: {self.connections} connections achieved "
                f"{fmt(reads_per_s(p), 0)}{target} reads/s using {fmt(100 * gen, 0)} % of a core "
                f"({os.cpu_count()} cores shared with the stack); ingest "
                f"{fmt(w['readings'] / p['seconds'], 0)} of {self.readings_per_s} readings/s, alerts "
                f"{fmt((w['alerts created'] + w['alerts resolved']) / p['seconds'], 2)} of {self.alerts_per_s} op/s"
                + ("; late (seconds lost, summed over threads): "
                   + ", ".join(f"{k} {v:.1f}" for k, v in sorted(late.items())) if late else ""))
        by = on["server"]["by_statement"] if on and "server" in on else {}
        if by:
            out("statements during CACHE=on: " + ", ".join(f"{k} {int(v):,}" for k, v in sorted(by.items())))
        if off and "server" in off and off["server"]["by_statement"]:
            out("statements during CACHE=off: "
                + ", ".join(f"{k} {int(v):,}" for k, v in sorted(off["server"]["by_statement"].items())))


def main() -> int:
    os.environ["LC_ALL"] = "C"
    shutil.rmtree(STATE / "logs", ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("")
    dc.stop_on_signals()
    m = None
    rc = 0
    try:
        m = Mixed()
        note(f"started {time.strftime('%Y-%m-%d %H:%M:%S')}; report in {REPORT.relative_to(ROOT)}")
        m.start()
        m.run()
    except dc.StackError as e:
        note(f"error: {e}")
        rc = 1
    except KeyboardInterrupt:
        note("interrupted")
        rc = 130
    finally:
        if m is not None:
            m.stop()
    if m is not None and m.results:
        m.report()
    if rc:
        return rc
    if m.broken:
        note(f"something broke during the run ({len(m.broken)} BROKEN lines above); logs in "
             f"{(STATE / 'logs').relative_to(ROOT)}/")
        return 1
    note(f"done; report saved to {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
