#!/usr/bin/python3
"""Run dashcache on 127.0.0.1 with a private PostgreSQL, Redis and nginx, and
keep it running (`make run` builds first, then calls this).

  scripts/run.py            start, print the URL, supervise until Ctrl-C / SIGTERM
  scripts/run.py --detach   start in the background and return once it serves
  scripts/run.py stop       stop a running (or detached) instance
  scripts/run.py status     say whether it runs, and where

DATABASE_URL / REDIS_URL set: those servers are used and none is started (an
empty database gets the schema and demo data). Other settings, read from the
environment, then from .env (see .env.example): HTTP_PORT (8080), PG_PORT
(25432), REDIS_PORT (26379), WORKERS (cores x 2), NGINX_ACCESS_LOG, and
everything the application reads (CACHE_TTL_SECONDS, ...).

State: STATE/stack.env (HTTP_URL, DATABASE_URL, REDIS_URL, ...), STATE/logs/
(run.log is the supervisor's own when detached), STATE/pids/, STATE/runtime ->
/var/tmp/dashcache-<hash>-run (cluster data, sockets, nginx temp files; kept
between runs, so the demo data are loaded once; outside the repo because the
postgres and nginx users may not enter it). STATE is .run unless --state-dir
(DC_RUN_STATE_DIR) says otherwise; --runtime-dir (DC_RUN_RUNTIME_DIR) moves the
runtime data. Tests use both to run a stack of their own beside the user's.

A supervisor, not a tripwire: when Redis, dashcache-invalidator or the
dashcache-fcgi master exits, it logs one line saying so and what it means for
clients, keeps serving (without Redis the workers answer from PostgreSQL,
X-Cache: BYPASS), and starts it again after a back-off (0.5 s, doubling up to
10 s; back to 0.5 s once it has stayed up for 30 s). PostgreSQL and nginx are
restarted the same way, but when 3 restarts in a row fail the stack is stopped
with a message saying which one is gone (exit status 1).
"""
from __future__ import annotations

import argparse
import fcntl
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dcstack as dc  # noqa: E402

BACKOFF_FIRST = 0.5      # seconds before the first restart
BACKOFF_MAX = 10.0       # the back-off doubles up to this
STABLE_AFTER = 30.0      # up this long: the back-off starts again from BACKOFF_FIRST
CRITICAL = {"postgres": 3, "nginx": 3}  # restarts in a row that may fail before the stack stops
POLL = 0.2

# What a service's absence means for clients, for the one line logged when it exits.
MEANING = {
    "postgres": "cached answers are still served, misses get 503",
    "redis": "answers come from PostgreSQL meanwhile (X-Cache: BYPASS)",
    "fcgi": "nginx answers 502 until it is back",
    "invalidator": "database writes wait in the outbox, and are invalidated when it is back",
    "nginx": "nothing is served until it is back",
}


def say(msg: str) -> None:
    dc.log(f"{time.strftime('%H:%M:%S')} {msg}")


class Gone(Exception):
    """A service the stack cannot serve without is gone for good."""


class Watch:
    """The supervision state of one service: up, waiting (to restart) or starting."""

    def __init__(self, svc: dc.Service, now: float):
        self.svc, self.state = svc, "up"
        self.delay, self.failures = BACKOFF_FIRST, 0
        self.up_since = self.down_since = now
        self.next_try = self.deadline = 0.0
        self.last_pid = svc.pid()


class Supervisor:
    def __init__(self, stack: dc.Stack):
        now = time.monotonic()
        self.stack = stack
        self.watches = [Watch(s, now) for s in stack.started]

    def step(self) -> None:
        now = time.monotonic()
        for w in self.watches:
            getattr(self, "_" + w.state)(w, now)

    def _up(self, w: Watch, now: float) -> None:
        if w.svc.running():
            if now - w.up_since >= STABLE_AFTER:
                w.delay, w.failures = BACKOFF_FIRST, 0
            return
        rc = w.svc.exit_status()
        w.down_since = now
        say(f"{w.svc.name} (pid {w.last_pid}) exited ({exit_reason(rc)}): {MEANING.get(w.svc.name, '')}; "
            f"restarting it in {w.delay:g} s (log: {w.svc.log_path})")
        self._schedule(w, now)

    def _schedule(self, w: Watch, now: float) -> None:
        w.state, w.next_try = "waiting", now + w.delay
        w.delay = min(w.delay * 2, BACKOFF_MAX)

    def _waiting(self, w: Watch, now: float) -> None:
        if now < w.next_try:
            return
        try:
            w.svc.launch()
        except dc.StackError as e:
            self._failed(w, now, str(e))
            return
        w.state, w.deadline = "starting", now + w.svc.start_timeout

    def _starting(self, w: Watch, now: float) -> None:
        if not w.svc.running():
            self._failed(w, now, f"exited during start-up ({exit_reason(w.svc.exit_status())}); last lines:\n"
                         + dc.tail(w.svc.log_path, 5))
        elif w.svc.ready():
            w.svc.after_start()
            w.state, w.up_since, w.last_pid = "up", now, w.svc.pid()
            say(f"{w.svc.name} is back (pid {w.last_pid}), {now - w.down_since:.1f} s after it exited")
        elif now > w.deadline:
            w.svc.stop()
            self._failed(w, now, f"did not become ready within {w.svc.start_timeout:.0f} s")

    def _failed(self, w: Watch, now: float, why: str) -> None:
        w.failures += 1
        limit = CRITICAL.get(w.svc.name)
        if limit is not None and w.failures >= limit:
            raise Gone(f"{w.svc.name} is gone: {w.failures} restarts in a row failed, the last one: {why}")
        say(f"restarting {w.svc.name} failed: {why}; next attempt in {w.delay:g} s")
        self._schedule(w, now)


def exit_reason(rc: int | None) -> str:
    if rc is None:
        return "status unknown"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"status {rc}"


# ------------------------------------------------------------------ the run slot

def state_dir(args) -> Path:
    return Path(args.state_dir or os.environ.get("DC_RUN_STATE_DIR") or dc.RUN_STATE).resolve()


def running_pid(state: Path) -> int | None:
    """The supervisor recorded in STATE/pids/run.pid, if that very process still runs."""
    try:
        pid_s, start = (state / "pids" / "run.pid").read_text().split()[:2]
        st = dc.proc_stat(int(pid_s))
    except (OSError, ValueError):
        return None
    return int(pid_s) if st and st[0] not in ("Z", "X") and st[1] == start else None


def stack_value(state: Path, key: str, default: str = "?") -> str:
    try:
        return dc.read_env_file(state / "stack.env").get(key, default)
    except OSError:
        return default


def claim(state: Path) -> None:
    """Take this state directory's run slot, or say who has it and exit 1."""
    (state / "pids").mkdir(parents=True, exist_ok=True)
    with open(state / "run.lock", "w") as lock:
        deadline = time.monotonic() + 10
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"dashcache: error: could not lock {state / 'run.lock'}")
                time.sleep(0.1)
        pid = running_pid(state)
        if pid is not None:
            print(f"dashcache is already running (pid {pid}) at {stack_value(state, 'HTTP_URL')}\n"
                  f"stop it with: make stop (or Ctrl-C where it runs)", file=sys.stderr)
            sys.exit(1)
        st = dc.proc_stat(os.getpid())
        (state / "pids" / "run.pid").write_text(f"{os.getpid()} {st[1] if st else 0}\n")


def shown(path: Path) -> str:
    """A path as the user wants to read it: relative inside the checkout."""
    try:
        return str(Path(path).relative_to(dc.ROOT))
    except ValueError:
        return str(path)


def demo_token(state: Path) -> str:
    """A day's token for the first two demo organizations, minted by dashcachectl with the
    stack's key file; "" when the stack verifies no tokens (AUTH_MODE=trusted) or it fails."""
    keys = stack_value(state, "AUTH_KEYS_FILE", "")
    if not keys:
        return ""
    r = subprocess.run([str(dc.ROOT / "build/dashcachectl"), "token", "--org", f"{dc.DEMO_ORG},{dc.org_id(2)}",
                        "--scope", "read,write,ingest,refresh", "--ttl", "1d", "--sub", "demo"],
                       capture_output=True, text=True, env={**os.environ, "AUTH_KEYS_FILE": keys})
    if r.returncode != 0:
        print(f"dashcache: dashcachectl token failed: {r.stderr.strip()}", file=sys.stderr)
    return r.stdout.strip() if r.returncode == 0 else ""


def banner(state: Path) -> str:
    url = stack_value(state, "HTTP_URL")
    api, unit = f"{url}/api/dashboard/orgs/{dc.DEMO_ORG}", dc.DEMO_UNIT
    logs = shown(state / "logs") + "/"
    token = demo_token(state)
    h = '-H "Authorization: Bearer $TOKEN" ' if token else ""
    intro = ("Try (TOKEN: read, write, ingest and refresh on the first two demo organizations for a\n"
             "day; mint others with build/dashcachectl token --help):\n"
             f"  export TOKEN={token}\n") if token else "Try:\n"
    return f"""
dashcache is running at {url}
  database   {dc.redact_url(stack_value(state, 'DATABASE_URL'))}
  redis      {dc.redact_url(stack_value(state, 'REDIS_URL'))}
  workers    {stack_value(state, 'WORKERS')} (dashcache-fcgi on unix:{stack_value(state, 'FCGI_SOCKET')})
  logs       {logs}    endpoints: {shown(state / 'stack.env')}

{intro}  curl -i {h}{api}/stats
  curl -s {h}{api}/units/status
  curl -s {h}'{api}/alerts/count?unitId={unit}'
  curl -s {h}'{api}/units/{unit}/temperature/trends?hours=6'
  curl -s {h}{api}/devices/online
  curl -s {h}{api}/compliance
  curl -s {h}'{api}/audit?limit=5'
  curl -s -o /dev/null -D - {h}'{api}/stats?forceRefresh=true'    # X-Cache: BYPASS
  curl -i {api}/stats                                      # no token: 401
  curl -s {url}/health
  curl -s -X POST {h}-H 'Content-Type: application/json' \\
       -d '{{"unitId":"{unit}","kind":"door_open","message":"Door left open"}}' {api}/alerts
"""


# ------------------------------------------------------------------ commands

def cmd_run(args) -> int:
    state = state_dir(args)
    claim(state)
    dc.stop_on_signals()  # SIGTERM and SIGHUP unwind like Ctrl-C
    # even when started with SIGINT ignored (a background job of a script)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stack = None
    try:
        stack = dc.run_stack(state, args.runtime_dir).prepare()
        link = state / "runtime"
        if link.is_symlink() or not link.exists():
            link.unlink(missing_ok=True)
            link.symlink_to(stack.runtime_dir)
        (state / "stack.env").unlink(missing_ok=True)
        stack.stop_leftovers()
        # every port checked before anything starts
        for svc, what, var in ((stack.nginx, "HTTP", "HTTP_PORT"), (stack.postgres, "PostgreSQL", "PG_PORT"),
                               (stack.redis, "Redis", "REDIS_PORT")):
            if svc is not None and dc.port_in_use(svc.port):
                raise dc.StackError(f"port {svc.port} on {dc.HOST} is already in use "
                                    f"(it is the {what} port; set {var} to another one)")
        if stack.external_db:
            say("using DATABASE_URL from the environment (no private PostgreSQL)")
        if stack.external_redis:
            say("using REDIS_URL from the environment (no private Redis)")
            try:
                dc.RedisClient.from_url(stack.external_redis, timeout=1.0)("PING")
            except (OSError, dc.RedisError, ConnectionError):
                say(f"warning: {stack.external_redis} does not answer; serving from PostgreSQL until it does")
        stack.start()
        try:
            with urllib.request.urlopen(f"{stack.http_url}/health", timeout=5) as r:
                health = r.status
        except urllib.error.HTTPError as e:
            health = e.code
        except OSError:
            health = "nothing"
        if health != 200:
            say(f"warning: GET /health answered {health} (see {stack.fcgi.log_path})")
        stack.write_env()
        print(banner(state))
        print("Ctrl-C (or 'make stop' elsewhere) stops it.", flush=True)
        sup = Supervisor(stack)
        while True:
            sup.step()
            time.sleep(POLL)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        rc = 0
    except Gone as e:
        say(f"{e}; stopping the stack")
        rc = 1
    except dc.StackError as e:
        say(f"error: {e}")
        rc = 1
    finally:
        if stack is not None and stack.started:
            say("stopping")
            stack.stop()
            say("stopped")
        (state / "stack.env").unlink(missing_ok=True)
        (state / "pids" / "run.pid").unlink(missing_ok=True)
    return rc


def cmd_detach(args) -> int:
    state = state_dir(args)
    pid = running_pid(state)
    if pid is not None:
        print(f"dashcache is already running (pid {pid}) at {stack_value(state, 'HTTP_URL')}", file=sys.stderr)
        return 1
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / "stack.env").unlink(missing_ok=True)
    log_path = state / "logs" / "run.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "--state-dir", str(state)]
    if args.runtime_dir:
        argv += ["--runtime-dir", str(args.runtime_dir)]
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + float(os.environ.get("DC_RUN_START_TIMEOUT", 300))
    while not (state / "stack.env").is_file():
        if proc.poll() is not None or time.monotonic() > deadline:
            print(dc.tail(log_path, 30), file=sys.stderr)
            why = "exited" if proc.poll() is not None else "did not serve in time"
            print(f"dashcache: error: dashcache {why} (log: {log_path})", file=sys.stderr)
            if proc.poll() is None:
                cmd_stop(args)
            return 1
        time.sleep(0.2)
    print(banner(state))
    print(f"running in the background (pid {proc.pid}, log {shown(log_path)}); "
          f"stop it with: make stop")
    return 0


def cmd_stop(args) -> int:
    state = state_dir(args)
    pid = running_pid(state)
    rc = 0
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 90
        while dc.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if dc.pid_alive(pid):
            print(f"dashcache: the supervisor (pid {pid}) did not stop within 90 s", file=sys.stderr)
            return 1
        print("dashcache stopped")
    else:
        print("dashcache is not running")
    # services whose supervisor was killed outright (their pidfiles say which processes)
    if (state / "pids").is_dir() and any((state / "pids").glob("*.pid")):
        try:
            dc.run_stack(state, args.runtime_dir).prepare().stop_leftovers()
        except dc.StackError as e:
            print(f"dashcache: {e}", file=sys.stderr)
            rc = 1
    (state / "pids" / "run.pid").unlink(missing_ok=True)
    return rc


def cmd_status(args) -> int:
    state = state_dir(args)
    pid = running_pid(state)
    if pid is None:
        print("dashcache is not running")
        return 3
    print(f"dashcache is running (pid {pid}) at {stack_value(state, 'HTTP_URL')}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", choices=("stop", "status"))
    ap.add_argument("-d", "--detach", action="store_true", help="start in the background")
    ap.add_argument("--state-dir", help="state directory (default .run; DC_RUN_STATE_DIR)")
    ap.add_argument("--runtime-dir", help="runtime data (default /var/tmp/dashcache-<hash>-run; DC_RUN_RUNTIME_DIR)")
    args = ap.parse_args()
    os.chdir(dc.ROOT)
    dc.load_dotenv()
    try:
        if args.command == "stop":
            return cmd_stop(args)
        if args.command == "status":
            return cmd_status(args)
        return cmd_detach(args) if args.detach else cmd_run(args)
    except dc.StackError as e:
        print(f"dashcache: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
