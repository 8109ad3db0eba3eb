#!/usr/bin/python3
"""dashcache test runner (`make test` builds everything, then calls this).

  tests/run.py [--only SUITE]...   SUITE: nginx-check monitoring systemd unit integration e2e drill san fuzz
                                          valgrind

Default: nginx-check, monitoring (promtool), systemd (systemd-analyze security
--offline=true on each systemd/*.service: exposure at most SYSTEMD_EXPOSURE_MAX,
2.0; make install into a temporary DESTDIR, systemd-analyze verify of the
installed units, make uninstall), unit (build/tests/test_*), integration (build/tests/integration_*), e2e
(pytest tests/e2e), drill (tests/drill/drill.py --short: one result per fault
scenario), then unit and integration again from build/san/ (ASan +
UBSan), then each libFuzzer target (build/fuzz/fuzz_*) for --fuzz-seconds
(FUZZ_TEST_SECONDS, 3) from its committed corpus (tests/fuzz/corpus/<target>).
valgrind runs only when asked for; `make fuzz` is `--only fuzz --fuzz-seconds
FUZZ_SECONDS` (30), which keeps what it finds in build/fuzz/corpus/ and its
findings in build/fuzz/findings/.

The integration binaries share one throwaway stack (scripts/dcstack.py:
PostgreSQL with demo data and Redis) on free loopback ports (TEST_PG_PORT,
TEST_REDIS_PORT pin them); the pytest suites start their own stacks
(tests/e2e/conftest.py). Timeouts: UNIT_TIMEOUT (60 s) and INTEGRATION_TIMEOUT
(120 s) per binary, E2E_TIMEOUT (960 s) for the pytest run, DRILL_TIMEOUT
(300 s) for the drill, each times
TIMEOUT_MULTIPLIER (1), and for sanitizer / valgrind runs times
SAN_TIMEOUT_MULTIPLIER (3) / VALGRIND_TIMEOUT_MULTIPLIER (10).

Counting: each cmocka binary's TAP lines (`ok N`, `not ok N`; `# SKIP` counted
apart), each pytest test (JUnit XML: failure or error = failed), one per fuzz
target (a crash, an invariant that failed, a leak or a timeout is a failure),
one per drill scenario (a row listed in the drill's EXPECTED_FAIL_UNTIL_TRUST
that fails is counted as skipped, and says so).
A binary or run that exits non-zero, times out, crashes or prints a sanitizer
report without a failed test counts as one failure more; one that runs no test
counts as a failure. The last
line is `N passed, M failed` (`, K skipped` when some were); exit 1 if M > 0 or
N == 0. Logs: .run/test/ (kept after the run).
"""
from __future__ import annotations

import argparse
import fcntl
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import dcstack as dc  # noqa: E402

SUITES = ("nginx-check", "monitoring", "systemd", "unit", "integration", "e2e", "drill", "san", "fuzz", "valgrind")
ALIASES = {"nginx": "nginx-check", "asan": "san", "ubsan": "san"}
PYTHON = "/usr/bin/python3"  # Debian's interpreter, which has python3-pytest
STATE = ROOT / ".run" / "test"
RESULTS = STATE / "results"
ASAN_OPTIONS = "detect_leaks=1:abort_on_error=1:halt_on_error=1:print_stacktrace=1"
UBSAN_OPTIONS = "halt_on_error=1:print_stacktrace=1"


def rel(p: Path) -> str:
    try:
        return str(Path(p).relative_to(ROOT))
    except ValueError:
        return str(p)


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.failures: list[str] = []

    def record(self, np: int, nf: int, ns: int, label: str) -> None:
        self.passed += np
        self.failed += nf
        self.skipped += ns
        if nf:
            self.failures.append(label)

    def report(self, label, np, nf, ns, extra, why, log: Path, fail_lines: list[str]) -> None:
        """Record the counts (extra: one more failure, for why) and print PASS/FAIL."""
        self.record(np, nf + extra, ns, label)
        if nf + extra == 0:
            print(f"PASS {label:<44} {np:3d} passed" + (f", {ns} skipped" if ns else ""), flush=True)
            return
        print(f"FAIL {label:<44} {np:3d} passed, {nf + extra} failed" + (f" - {why}" if why else "")
              + f" (log: {rel(log)})")
        for ln in fail_lines[:40]:
            print("     " + ln.strip())
        if extra:
            for ln in dc.tail(log, 25).splitlines():
                print("     | " + ln)
        sys.stdout.flush()

    def single(self, ok: bool, label: str, detail: str = "") -> None:
        self.record(int(ok), int(not ok), 0, label)
        print(("PASS " if ok else "FAIL ") + label)
        if not ok and detail:
            print("\n".join("     | " + ln for ln in detail.splitlines()[-25:]))
        sys.stdout.flush()


def exit_reason(rc: int | None) -> str:
    if rc is None:
        return "timed out (killed)"
    if rc < 0:
        try:
            return f"killed by signal {-rc} ({signal.Signals(-rc).name})"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit {rc}"


def run_logged(argv, log: Path, timeout: float, env: dict, cwd: Path = ROOT) -> int | None:
    """Run argv with output to log; on timeout TERM then KILL its process group
    (its own session, by handle). Returns the exit status, None on timeout."""
    with open(log, "wb") as f:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=env,
                             cwd=cwd, start_new_session=True)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    p.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            f.write(f"\n*** timed out after {timeout:.0f} s\n".encode())
            return None
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise


def logname(label: str) -> Path:
    return RESULTS / (re.sub(r"[/ ]", "_", label) + ".log")


TAP = re.compile(r"^(not )?ok \d+")
SKIP = re.compile(r"#\s*SKIP", re.I)


def run_binary(t: Tally, label: str, timeout: float, argv: list[str], env: dict) -> None:
    """A cmocka binary printing TAP."""
    log = logname(label)
    rc = run_logged(argv, log, timeout, {**env, "CMOCKA_MESSAGE_OUTPUT": "TAP"})
    lines = log.read_text(errors="replace").splitlines()
    ok = nok = skip = 0
    fail_lines = []
    for i, ln in enumerate(lines):
        m = TAP.match(ln)
        if not m:
            continue
        if SKIP.search(ln):  # cmocka 1.1 reports a skip as "not ok N # SKIP"
            skip += 1
        elif m.group(1):
            nok += 1
            fail_lines += lines[i:i + 5]
        else:
            ok += 1
    extra, why = 0, ""
    text = "\n".join(lines)
    if rc != 0 and nok == 0:
        extra, why = 1, exit_reason(rc)
    elif dc.SANITIZER_REPORT.search(text) and nok == 0:
        extra, why = 1, "sanitizer report"
    elif ok + nok + skip == 0:
        extra, why = 1, "no test ran"
    t.report(label, ok, nok, skip, extra, why, log, fail_lines)


def binaries(d: Path, prefix: str) -> list[Path]:
    """The built test binaries of d whose source still exists (a deleted test's
    binary left in build/ is not run)."""
    src = ROOT / "tests" / ("unit" if prefix == "test_" else "integration")
    return sorted(p for p in d.glob(prefix + "*")
                  if p.is_file() and os.access(p, os.X_OK) and p.suffix not in (".d", ".o")
                  and (src / (p.name + ".c")).is_file())


def run_binaries(t: Tally, kind: str, d: Path, prefix: str, timeout: float, env: dict, wrapper=()) -> None:
    found = binaries(ROOT / d, prefix)
    if not found:
        target = ("unit-bins" if prefix == "test_" else "integration-bins") + (" SAN=1" if "san" in str(d) else "")
        print(f"FAIL {kind}: no {d}/{prefix}* binaries (build them first: make {target})")
        t.record(0, 1, 0, f"{kind} (no binaries)")
        return
    for b in found:
        e = dict(env)
        if prefix == "test_":  # unit tests need no network: prove it by giving them no servers
            e.pop("DATABASE_URL", None)
            e.pop("REDIS_URL", None)
        run_binary(t, f"{kind} {b.name}", timeout, [*wrapper, str(b)], e)


def run_pytest(t: Tally, timeout: float, env: dict) -> None:
    """pytest tests/e2e and the bench's own parts (tests/bench/test_bench.py); one result
    line per test module, from the JUnit XML."""
    log, xml = logname("e2e pytest"), RESULTS / "e2e-pytest.xml"
    xml.unlink(missing_ok=True)
    # E2E_ARGS: extra pytest arguments while working on one suite, e.g. "-k privileges"
    extra = shlex.split(os.environ.get("E2E_ARGS", ""))
    rc = run_logged([PYTHON, "-m", "pytest", "tests/e2e", "tests/bench/test_bench.py", "-p", "no:cacheprovider",
                     "-rfEs", "-v", f"--junitxml={xml}", "-o", "junit_family=xunit1", *extra], log, timeout, env)
    modules: dict[str, list] = {}
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError):
        root = None
    for case in (root.iter("testcase") if root is not None else ()):
        mod = case.get("file") or case.get("classname", "?").split(".")[-1] + ".py"
        r = modules.setdefault(Path(mod).name, [0, 0, 0, []])
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            r[1] += 1
            msg = (bad.get("message") or "").splitlines()
            r[3].append(f"FAIL {case.get('name')}: {msg[0][:300] if msg else ''}")
        elif case.find("skipped") is not None:
            r[2] += 1
        else:
            r[0] += 1
    nfail = sum(r[1] for r in modules.values())
    for mod, (np, nf, ns, lines) in sorted(modules.items()):
        t.report(f"e2e {mod}", np, nf, ns, 0, "", log, lines)
    if not modules:
        t.report("e2e pytest", 0, 0, 0, 1, f"no test ran ({exit_reason(rc)})", log, [])
    elif rc != 0 and nfail == 0:
        t.report("e2e pytest", 0, 0, 0, 1, exit_reason(rc), log, [])


def run_drill(t: Tally, timeout: float, env: dict) -> None:
    """tests/drill/drill.py --short: one result per scenario row of its JSON. A failed row
    listed in its EXPECTED_FAIL_UNTIL_TRUST is counted as skipped, by name."""
    import json
    log, out = logname("drill"), RESULTS / "drill.json"
    out.unlink(missing_ok=True)
    rc = run_logged([PYTHON, "tests/drill/drill.py", "--short", "--json", str(out)], log, timeout,
                    {**env, "DRILL_STATE_DIR": str(STATE / "drill")})
    try:
        rows = json.loads(out.read_text())["rows"]
    except (OSError, ValueError, KeyError):
        t.report("drill", 0, 0, 0, 1, f"no result ({exit_reason(rc)})", log, [])
        return
    for r in rows:
        label = f"drill: {r['scenario']}"
        if not r["failures"]:
            t.single(True, label + (" (listed in EXPECTED_FAIL_UNTIL_TRUST, yet passed: take it off the list)"
                                    if r["listed"] else ""))
        elif r["listed"]:
            t.record(0, 0, 1, label)
            print(f"SKIP {label} - failed as expected, listed in EXPECTED_FAIL_UNTIL_TRUST "
                  f"(tests/drill/drill.py): {'; '.join(r['failures'])}", flush=True)
        else:
            t.single(False, f"{label} - {'; '.join(r['failures'])} (log: {rel(log)})")
    table = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("|")]
    print("\n".join("     " + ln for ln in table), flush=True)


FUZZ_DIR = ROOT / "build" / "fuzz"
FUZZ_EXECS = re.compile(r"^stat::number_of_executed_units:\s*(\d+)", re.M)
FUZZ_FINDING = re.compile(r"^(invariant failed .*|==\d+==\s*ERROR: .*|SUMMARY: .*|.*runtime error: .*)$", re.M)


def run_fuzz(t: Tally, seconds: float, keep: bool, env: dict) -> None:
    """Each libFuzzer target in turn (one at a time: the machine may be shared)
    for `seconds`, from the committed seeds (tests/fuzz/corpus/<name>) and, with
    keep, from what earlier runs found (build/fuzz/corpus/<name>); else from a
    scratch directory. One result per target; prints its executions."""
    import shutil
    targets = sorted(p for p in FUZZ_DIR.glob("fuzz_*") if p.is_file() and os.access(p, os.X_OK) and not p.suffix)
    if not targets:
        print("FAIL fuzz: no build/fuzz/fuzz_* binaries (build them first: make fuzz-bins)")
        t.record(0, 1, 0, "fuzz (no binaries)")
        return
    findings = FUZZ_DIR / "findings"
    findings.mkdir(parents=True, exist_ok=True)
    fenv = {**env, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:print_stacktrace=1",
            "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
    total = 0
    for b in targets:
        name = b.name[len("fuzz_"):]
        seeds = ROOT / "tests" / "fuzz" / "corpus" / name
        work = (FUZZ_DIR / "corpus" / name) if keep else (RESULTS / "fuzz-corpus" / name)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        argv = [str(b), f"-max_total_time={seconds:g}", "-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048",
                f"-artifact_prefix={findings}/{name}-", str(work)]
        if seeds.is_dir():
            argv.append(str(seeds))
        d = ROOT / "tests" / "fuzz" / f"{name}.dict"
        if d.exists():
            argv.insert(1, f"-dict={d}")
        log = logname(f"fuzz {name}")
        rc = run_logged(argv, log, seconds * 3 + 60, fenv)
        text = log.read_text(errors="replace")
        m = FUZZ_EXECS.findall(text)
        execs = int(m[-1]) if m else 0
        total += execs
        found = FUZZ_FINDING.findall(text)
        ok = rc == 0 and not found and execs > 0
        label = f"fuzz {name}: {execs:,} executions in {seconds:g} s"
        if ok:
            t.single(True, label)
        else:
            arts = sorted(findings.glob(f"{name}-*"), key=lambda p: p.stat().st_mtime)[-1:]
            why = exit_reason(rc) if rc != 0 else ("no execution" if not execs else "finding")
            t.single(False, f"{label} - {why}" + (f" (input: {rel(arts[0])}, log: {rel(log)})" if arts else
                                                  f" (log: {rel(log)})"),
                     "\n".join(found[:12]))
    print(f"---- fuzz: {total:,} executions over {len(targets)} targets", flush=True)


def check_monitoring(t: Tally) -> None:
    for f in sorted((ROOT / "monitoring").glob("*-alerts.yml")):
        r = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True, timeout=60)
        t.single(r.returncode == 0, f"monitoring: promtool check rules {rel(f)}", r.stdout + r.stderr)
    for f in sorted((ROOT / "monitoring").glob("*.test.yml")):
        r = subprocess.run(["promtool", "test", "rules", f.name], capture_output=True, text=True, timeout=60,
                           cwd=ROOT / "monitoring")
        t.single(r.returncode == 0, f"monitoring: promtool test rules {rel(f)}", r.stdout + r.stderr)
    import json
    try:
        ok = len(json.loads((ROOT / "monitoring/dashcache-grafana.json").read_text())["panels"]) > 0
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    t.single(ok, "monitoring: Grafana dashboard is JSON with panels")


EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


def check_systemd(t: Tally) -> None:
    """systemd-analyze security --offline=true per service unit: the exposure figure printed, at most the bound."""
    bound = float(os.environ.get("SYSTEMD_EXPOSURE_MAX", 2.0))
    units = sorted((ROOT / "systemd").glob("*.service"))
    if not units:
        t.single(False, "systemd: no systemd/*.service units")
    for u in units:
        try:
            r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(u)],
                               capture_output=True, text=True, timeout=60)
            out = r.stdout + r.stderr
        except (OSError, subprocess.TimeoutExpired) as e:
            t.single(False, f"systemd: systemd-analyze security {rel(u)}", str(e))
            continue
        m = EXPOSURE.search(out)
        level = float(m.group(1)) if m else None
        ok = level is not None and level <= bound
        t.single(ok, f"systemd: {rel(u)} exposure {level if level is not None else '?'} (at most {bound})",
                 "\n".join(ln for ln in out.splitlines() if "\u2717" in ln or "Overall" in ln) or out)


def check_systemd_install(t: Tally) -> None:
    """make install into a temporary DESTDIR: every file where it belongs, the units' paths rewritten for
    PREFIX; then make uninstall leaves no file. And an install whose paths exist (PREFIX, SYSCONFDIR and
    SYSTEMD_UNIT_DIR in a temporary directory): systemd-analyze verify of each unit (an instance of each
    template) finds no error and says nothing."""
    import tempfile
    units = sorted(p.name for p in (ROOT / "systemd").iterdir() if p.suffix in (".service", ".socket"))
    with tempfile.TemporaryDirectory(prefix="dashcache-install-") as tmp:
        dest = Path(tmp) / "dest"
        r = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "install", f"DESTDIR={dest}",
                            "PREFIX=/usr/local"], capture_output=True, text=True, timeout=600)
        want = {f"usr/local/bin/{b}" for b in ("dashcache-fcgi", "dashcache-invalidator", "dashcachectl")}
        want |= {f"lib/systemd/system/{u}" for u in units} | {"etc/dashcache/dashcache.env.example"}
        want |= {f"usr/local/share/dashcache/sql/{p.name}" for p in (ROOT / "sql").glob("*.sql")}
        want |= {f"usr/local/share/dashcache/nginx/{p.name}" for p in (ROOT / "nginx").glob("*.conf")}
        got = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
        t.single(r.returncode == 0 and got == want, "systemd: make install DESTDIR=... puts every file in place",
                 r.stdout + r.stderr + f"\nmissing: {sorted(want - got)}\nunexpected: {sorted(got - want)}")
        unit = (dest / "lib/systemd/system/dashcache-fcgi@.service")
        text = unit.read_text() if unit.exists() else ""
        t.single("Type=notify" in text and "ExecStart=/usr/local/bin/dashcache-fcgi " in text
                 and "EnvironmentFile=/etc/dashcache/%i.env" in text,
                 "systemd: the installed template unit is Type=notify on its own environment file", text)
        r = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "uninstall", f"DESTDIR={dest}",
                            "PREFIX=/usr/local"], capture_output=True, text=True, timeout=120)
        left = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
        t.single(r.returncode == 0 and not left, "systemd: make uninstall removes every installed file",
                 r.stdout + r.stderr + f"\nleft: {left}")

        base = Path(tmp) / "live"
        r = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "install", f"PREFIX={base}/prefix",
                            f"SYSCONFDIR={base}/etc", f"SYSTEMD_UNIT_DIR={base}/units"],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            t.single(False, "systemd: make install for systemd-analyze verify", r.stdout + r.stderr)
            return
        names = [u.replace("@.", "@main.") for u in units]
        try:
            v = subprocess.run(["systemd-analyze", "verify", "--no-pager", *names], cwd=base / "units",
                               capture_output=True, text=True, timeout=120)
            out = (v.stdout + v.stderr).strip()
            ok = v.returncode == 0 and not out
        except (OSError, subprocess.TimeoutExpired) as e:
            ok, out = False, str(e)
        t.single(ok, f"systemd: systemd-analyze verify of the installed units ({', '.join(names)})", out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], metavar="SUITE")
    ap.add_argument("--fuzz-seconds", type=float, metavar="S",
                    help="run each fuzz target S seconds and keep its corpus in build/fuzz/corpus "
                         "(default: FUZZ_TEST_SECONDS, 3, from the committed seeds only)")
    args = ap.parse_args()
    only = [ALIASES.get(s, s) for s in args.only]
    for s in only:
        if s not in SUITES:
            ap.error(f"unknown suite '{s}' (one of {', '.join(SUITES)})")

    def want(s: str) -> bool:
        return s in only if only else s != "valgrind"

    os.chdir(ROOT)
    STATE.mkdir(parents=True, exist_ok=True)
    lockf = open(STATE / "lock", "w")
    try:
        fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("dashcache: error: another tests/run.py of this checkout is running", file=sys.stderr)
        return 1
    deps = ["bash", str(ROOT / "scripts/deps.sh")] + (["valgrind"] if want("valgrind") else [])
    if subprocess.run(deps).returncode != 0:
        print("dashcache: error: scripts/deps.sh failed", file=sys.stderr)
        return 1
    dc.stop_on_signals()
    import shutil
    shutil.rmtree(RESULTS, ignore_errors=True)
    shutil.rmtree(STATE / "logs", ignore_errors=True)
    RESULTS.mkdir(parents=True)
    dc.LOG_STREAM = open(RESULTS / "stack.log", "a", buffering=1)  # the stack's own messages

    mult = float(os.environ.get("TIMEOUT_MULTIPLIER", 1))
    unit_t = float(os.environ.get("UNIT_TIMEOUT", 60)) * mult
    int_t = float(os.environ.get("INTEGRATION_TIMEOUT", 120)) * mult
    e2e_t = float(os.environ.get("E2E_TIMEOUT", 960)) * mult
    drill_t = float(os.environ.get("DRILL_TIMEOUT", 300)) * mult
    san_m = float(os.environ.get("SAN_TIMEOUT_MULTIPLIER", 3))
    vg_m = float(os.environ.get("VALGRIND_TIMEOUT_MULTIPLIER", 10))
    base_env = dc.test_app_env()
    t = Tally()
    started = time.monotonic()

    if want("nginx-check"):
        for what, ok, out in dc.nginx_check():
            t.single(ok, f"nginx-check: {what}", out)
    if want("monitoring"):
        check_monitoring(t)
    if want("systemd"):
        check_systemd(t)
        check_systemd_install(t)
    if want("unit"):
        run_binaries(t, "unit", Path("build/tests"), "test_", unit_t, base_env)
    if want("fuzz"):
        if args.fuzz_seconds:
            run_fuzz(t, args.fuzz_seconds, True, base_env)
        else:
            run_fuzz(t, float(os.environ.get("FUZZ_TEST_SECONDS", 3)), False, base_env)

    stack = None
    try:
        if any(want(s) for s in ("integration", "san", "valgrind")):
            ports = {k: int(os.environ[v]) for k, v in (("pg", "TEST_PG_PORT"), ("redis", "TEST_REDIS_PORT"))
                     if os.environ.get(v)}
            # the integration binaries talk to PostgreSQL and Redis only; the invalidator's
            # asynchronous invalidations would make their HIT/MISS expectations racy
            stack = dc.Stack("test", state_dir=STATE, ports=ports, invalidator=False, nginx=False)
            try:
                stack.start()
                print(f"---- stack: postgres :{stack.postgres.port}, redis :{stack.redis.port} "
                      f"({stack.runtime_dir})", flush=True)
            except dc.StackError as e:
                print(f"FAIL stack: could not start the test stack: {e}")
                t.record(0, 1, 0, "stack start")
                stack = None
        stack_env = {**base_env, **stack.describe()} if stack else None

        if want("integration") and stack:
            run_binaries(t, "integration", Path("build/tests"), "integration_", int_t, stack_env)

        if want("e2e"):  # the pytest suites start their own stacks (tests/e2e/conftest.py)
            run_pytest(t, e2e_t, {**base_env, "DC_E2E_STATE_DIR": str(STATE / "e2e")})

        if want("drill"):  # its own stack, on free ports
            run_drill(t, drill_t, base_env)

        if want("san"):
            san_env = {**base_env, "ASAN_OPTIONS": ASAN_OPTIONS, "UBSAN_OPTIONS": UBSAN_OPTIONS}
            run_binaries(t, "san unit", Path("build/san/tests"), "test_", unit_t * san_m, san_env)
            if stack:
                run_binaries(t, "san integration", Path("build/san/tests"), "integration_", int_t * san_m,
                             {**stack_env, "ASAN_OPTIONS": ASAN_OPTIONS, "UBSAN_OPTIONS": UBSAN_OPTIONS})

        if want("valgrind"):
            vg = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                  "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite", "--track-fds=no"]
            run_binaries(t, "valgrind unit", Path("build/tests"), "test_", unit_t * vg_m, base_env, vg)
            if stack:
                run_binaries(t, "valgrind integration", Path("build/tests"), "integration_", int_t * vg_m,
                             stack_env, vg)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        if stack:
            stack.stop()
        return 130
    finally:
        if stack:
            stack.stop()

    print(f"---- {time.monotonic() - started:.0f} s; logs in {rel(STATE)}/")
    if t.failures:
        print("failed:")
        for f in t.failures:
            print(f"  {f}")
    print(f"{t.passed} passed, {t.failed} failed" + (f", {t.skipped} skipped" if t.skipped else ""), flush=True)
    return 0 if t.failed == 0 and t.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
