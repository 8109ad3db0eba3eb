#!/usr/bin/python3
"""Reseed the database with deterministic demo data (`make seed SCALE=N`).

  scripts/seed.py [SCALE]      SCALE from the argument, else $SCALE, else 1

SCALE=small: 300 organizations, one day of hourly readings (quick).
SCALE=N gives 20*N organizations: 3 days of readings every 5 minutes when
N < 10, else 5 days every 10 minutes (SCALE=1 is the demo data set, ~140k
readings; SCALE=50 is ~5.8M readings over 1000 organizations).

Which database: the stack described by $DC_STACK_ENV if set (tests), else the
one of a running `make run` (.run/stack.env), else DATABASE_URL if set, else
the private cluster of `make run`, started for the duration if it is not
running. All existing rows are replaced, in one transaction; the dashboard keys
in that stack's Redis are then deleted (SCAN + UNLINK, never KEYS).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dcstack as dc  # noqa: E402


def say(msg: str) -> None:
    dc.log(msg)


def delete_dashboard_keys(redis_url: str) -> int:
    c = dc.RedisClient.from_url(redis_url, timeout=10)
    n, cursor = 0, "0"
    try:
        while True:
            cursor, keys = c("SCAN", cursor, "MATCH", "dashboard:*", "COUNT", 1000)
            for i in range(0, len(keys), 500):
                n += c("UNLINK", *keys[i:i + 500])
            if cursor == "0":
                return n
    finally:
        c.close()


def main(argv: list[str]) -> int:
    os.chdir(dc.ROOT)
    dc.load_dotenv()
    scale = argv[1] if len(argv) > 1 and argv[1] else os.environ.get("SCALE") or "1"
    started = None
    redis_url = None
    run_env = dc.RUN_STATE / "stack.env"
    run_pid = dc.RUN_STATE / "pids" / "run.pid"
    try:
        orgs, days, step = dc.scale_args(scale)
        if os.environ.get("DC_STACK_ENV"):
            path = Path(os.environ["DC_STACK_ENV"])
            if not os.access(path, os.R_OK):
                raise dc.StackError(f"DC_STACK_ENV={path} is not readable")
            info = dc.read_env_file(path)
            url, redis_url = info["DATABASE_URL"], info.get("REDIS_URL")
            say(f"reseeding the database of the stack in {path}: {dc.redact_url(url)}")
        elif run_env.is_file() and _alive(run_pid):
            info = dc.read_env_file(run_env)
            url, redis_url = info["DATABASE_URL"], info.get("REDIS_URL")
            say(f"reseeding the database of the running stack: {dc.redact_url(url)}")
        elif os.environ.get("DATABASE_URL"):
            url, redis_url = os.environ["DATABASE_URL"], os.environ.get("REDIS_URL")
            say(f"reseeding DATABASE_URL: {dc.redact_url(url)}")
        else:
            for k in ("DATABASE_URL", "REDIS_URL"):
                os.environ.pop(k, None)
            stack = dc.run_stack(dc.RUN_STATE).prepare()
            if not stack.postgres.running():
                stack.postgres.start()
                started = stack.postgres
            url = stack.postgres.url
            say(f"reseeding the private cluster: {dc.redact_url(url)}")

        if not dc.db_has_schema(url):
            say("loading sql/schema.sql")
            dc.db_load_schema(url)
        say(f"dc_seed({orgs}, {days}, {step}) (SCALE={scale})")
        t0 = time.monotonic()
        dc.db_seed(url, orgs, days, step, truncate=True)
        t1 = time.monotonic()
        if redis_url:
            try:
                say(f"deleted {delete_dashboard_keys(redis_url)} cached dashboard keys from {dc.redact_url(redis_url)}")
            except (OSError, ConnectionError, dc.RedisError) as e:
                say(f"warning: could not delete the cached dashboard keys from {dc.redact_url(redis_url)}: {e}")
        print(dc.psql(url, """SELECT (SELECT count(*) FROM organizations) AS organizations,
               (SELECT count(*) FROM sites) AS sites, (SELECT count(*) FROM units) AS units,
               (SELECT count(*) FROM devices) AS devices, (SELECT count(*) FROM readings) AS readings,
               (SELECT count(*) FROM alerts) AS alerts, (SELECT count(*) FROM audit_log) AS audit_rows,
               pg_size_pretty(pg_database_size(current_database())) AS db_size""",
                      args=["-P", "footer=off", "-A", "-F", " | ", "-P", "tuples_only=off"]))
        print(f"seeded in {t1 - t0:.1f} s")
        return 0
    except dc.StackError as e:
        print(f"dashcache: error: {e}", file=sys.stderr)
        return 1
    finally:
        if started is not None:
            started.stop()


def _alive(pidfile: Path) -> bool:
    try:
        pid_s, start = pidfile.read_text().split()[:2]
        st = dc.proc_stat(int(pid_s))
    except (OSError, ValueError):
        return False
    return bool(st) and st[0] not in ("Z", "X") and st[1] == start


if __name__ == "__main__":
    dc.stop_on_signals()
    try:
        sys.exit(main(sys.argv))
    except KeyboardInterrupt:
        sys.exit(130)
