#!/usr/bin/python3
"""Several dashcache hosts on one machine (issue 13): network namespaces, each a
"host" with its own nginx, dashcache-fcgi master and workers, invalidator and
shared-memory files, all sharing one PostgreSQL and one Redis, for
tests/e2e/test_multihost.py and the drill's multi-host scenario. Standard
library only; needs root and `ip` (iproute2, which scripts/deps.sh installs).

TestNet makes the network: a bridge in the root namespace holding .1 of a
private /24 of our own (10.213.N.0/24, the first N that no address or route of
this machine touches; DC_NET_SUBNET names one, which must be free too), and
per host a namespace with a veth pair into the bridge, its end at .(10 + i)
and its loopback up. The namespaces have no default route: their traffic goes
to that /24 and nowhere else. Names carry the harness's pid (dc<pid><seq>h1,
...), so leftovers of a harness that was killed are told from live ones and
deleted at the next start. The choice of the subnet and its creation hold a
lock, so that two harnesses never take the same one.

NetHost is a Stack (scripts/dcstack.py) whose services run inside a host's
namespace (`ip netns exec NS ...`, which execs: the pid is the service's own,
stopped by its handle like any other) and use the PostgreSQL and Redis of a
base Stack started with also_listen=net.listen (they listen on the bridge's
address too; PostgreSQL lets that /24 log in with its password, Redis wants
its password). Each host has a runtime directory of its own, so its
METRICS_FILE and every shared file derived from it (the hit lease of
dc_trust, the breakers, the shared fills) are the host's alone; it shares the
base stack's token key. nginx listens on the host's address; the root
namespace's address (the tests' client) may read /metrics and is not rate
limited, as 127.0.0.1 is on a single host.
"""
from __future__ import annotations

import atexit
import fcntl
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dcstack as dc  # noqa: E402

NGINX_PORT = 8080          # inside each host's namespace: nothing else listens there
SUBNET_BASE = "10.213"     # candidates 10.213.0.0/24 ... 10.213.255.0/24
LOCK = Path("/run/lock/dashcache-net.lock")
_NAME = re.compile(r"^dc(\d+)[a-z](?:br|h\d+r?)$")
_LIVE: list["TestNet"] = []
_SEQ = [0]


def ip(*args: str, check: bool = True) -> str:
    try:
        r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise dc.StackError("`ip` not found: install iproute2 (scripts/deps.sh does)") from None
    if check and r.returncode != 0:
        raise dc.StackError(f"ip {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine has an address in or a route to (not the default route)."""
    nets = []
    for ln in ip("-4", "-o", "addr", "show").splitlines():
        m = re.search(r"\binet (\S+)", ln)
        if m:
            nets.append(ipaddress.ip_interface(m.group(1)).network)
    for ln in ip("-4", "route", "show", "table", "all").splitlines():
        f = ln.split()
        if f and f[0] in ("broadcast", "local", "unicast", "multicast"):
            f = f[1:]
        if f and f[0] != "default":
            try:
                nets.append(ipaddress.ip_network(f[0], strict=False))
            except ValueError:
                pass
    return nets


def on_address(url: str, addr: str) -> str:
    """A stack's URL (postgresql:// or redis:// on 127.0.0.1) on another address of the same server."""
    return re.sub(rf"@{re.escape(dc.HOST)}:", f"@{addr}:", url, count=1)


def remove_leftovers() -> None:
    """Namespaces and links of earlier harnesses that are gone (their pid is in the name)."""
    for ln in ip("netns", "list").splitlines():
        name = ln.split()[0] if ln.split() else ""
        m = _NAME.match(name)
        if m and not dc.pid_alive(int(m.group(1))):
            if ip("netns", "pids", name, check=False).split():
                dc.log(f"network namespace {name} of a dead harness still has processes: left alone")
                continue
            dc.log(f"deleting network namespace {name} left by an earlier run")
            ip("netns", "del", name, check=False)
    for ln in ip("-o", "link", "show").splitlines():
        m = re.match(r"^\d+: ([^:@]+)", ln)
        if m and _NAME.match(m.group(1)) and not dc.pid_alive(int(_NAME.match(m.group(1)).group(1))):
            dc.log(f"deleting link {m.group(1)} left by an earlier run")
            ip("link", "del", m.group(1), check=False)


class TestNet:
    """A bridge and `hosts` network namespaces on a private /24; use it as a context
    manager, or start() / stop(). Requires root."""

    def __init__(self, hosts: int = 2, subnet: str | None = None):
        _SEQ[0] += 1
        self.n = hosts
        self.tag = f"dc{os.getpid()}{chr(ord('a') + (_SEQ[0] - 1) % 26)}"
        self.subnet_arg = subnet or os.environ.get("DC_NET_SUBNET") or None
        self.subnet: ipaddress.IPv4Network | None = None
        self.made: list[tuple[str, str]] = []  # ("netns"|"link", name), in creation order

    # ---- description
    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    def netns(self, i: int) -> str:
        """The namespace of host i (1-based)."""
        return f"{self.tag}h{i}"

    @property
    def root_addr(self) -> str:
        """The root namespace's address on the test network: PostgreSQL's and Redis's for
        the hosts, and the source address of the tests' requests to them."""
        return str(self.subnet.network_address + 1)

    def addr(self, i: int) -> str:
        return str(self.subnet.network_address + 10 + i)

    @property
    def listen(self) -> tuple[str, str]:
        """Stack(also_listen=...) of the base stack whose PostgreSQL and Redis the hosts share."""
        return self.root_addr, str(self.subnet)

    # ---- life cycle
    def _pick(self) -> ipaddress.IPv4Network:
        used = networks_in_use()
        if self.subnet_arg:
            try:
                net = ipaddress.ip_network(self.subnet_arg)
            except ValueError:
                raise dc.StackError(f"DC_NET_SUBNET must be an IPv4 network such as 10.213.0.0/24, "
                                    f"got '{self.subnet_arg}'") from None
            if not isinstance(net, ipaddress.IPv4Network) or not net.is_private or net.prefixlen > 27:
                raise dc.StackError(f"DC_NET_SUBNET must be a private IPv4 network of at least 32 addresses, "
                                    f"got '{self.subnet_arg}'")
            if any(net.overlaps(u) for u in used):
                raise dc.StackError(f"the test network {net} is in use on this machine (ip -4 addr / route): "
                                    f"refusing to start; choose another with DC_NET_SUBNET")
            return net
        for k in range(256):
            net = ipaddress.ip_network(f"{SUBNET_BASE}.{k}.0/24")
            if not any(net.overlaps(u) for u in used):
                return net
        raise dc.StackError(f"every {SUBNET_BASE}.N.0/24 is in use on this machine: set DC_NET_SUBNET")

    def start(self) -> "TestNet":
        if not dc.is_root():
            raise dc.StackError("the multi-host tests need root (network namespaces): run them as root, "
                                "as make test does")
        if shutil.which("ip") is None:
            raise dc.StackError("`ip` not found: install iproute2 (scripts/deps.sh does)")
        _LIVE.append(self)
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(LOCK, "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                remove_leftovers()
                self.subnet = self._pick()
                self._make()
        except BaseException:
            self.stop()
            raise
        dc.log(f"test network {self.subnet}: {self.bridge} {self.root_addr}, "
               + ", ".join(f"{self.netns(i)} {self.addr(i)}" for i in range(1, self.n + 1)))
        return self

    def _make(self) -> None:
        plen = self.subnet.prefixlen
        ip("link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        ip("addr", "add", f"{self.root_addr}/{plen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for i in range(1, self.n + 1):
            ns, outer = self.netns(i), f"{self.netns(i)}r"
            ip("netns", "add", ns)
            self.made.append(("netns", ns))
            ip("link", "add", outer, "type", "veth", "peer", "name", ns)
            self.made.append(("link", outer))
            ip("link", "set", ns, "netns", ns)
            ip("link", "set", outer, "master", self.bridge)
            ip("link", "set", outer, "up")
            ip("-n", ns, "addr", "add", f"{self.addr(i)}/{plen}", "dev", ns)
            ip("-n", ns, "link", "set", ns, "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def stop(self) -> None:
        """Delete what start() made; a process still inside a namespace (one of ours: the
        name is this run's) is killed by its pid first."""
        for kind, name in reversed(self.made):
            if kind == "netns":
                for pid in ip("netns", "pids", name, check=False).split():
                    dc.log(f"killing pid {pid}, still in network namespace {name}")
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
                ip("netns", "del", name, check=False)
            else:
                ip("link", "del", name, check=False)
        self.made.clear()
        if self in _LIVE:
            _LIVE.remove(self)

    def __enter__(self) -> "TestNet":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _stop_live() -> None:
    dc._stop_live()  # the hosts' processes first: a namespace goes with nothing left in it
    for n in list(reversed(_LIVE)):
        n.stop()


atexit.register(_stop_live)


# ------------------------------------------------------------------ a host's services

class _InNetns:
    """A service started inside its host's namespace."""

    def argv(self) -> list[str]:
        return ["ip", "netns", "exec", self.stack.netns] + super().argv()


class NsFcgiMaster(_InNetns, dc.FcgiMaster):
    pass


class NsInvalidator(_InNetns, dc.Invalidator):
    pass


class NsNginx(_InNetns, dc.Nginx):
    """nginx on the host's address; the root namespace's address is what 127.0.0.1 is on
    a single host: it may scrape /metrics and is not rate limited."""

    @property
    def url(self) -> str:
        return f"http://{self.stack.address}:{self.port}"

    def prepare(self) -> None:
        if shutil.which("nginx") is None:
            raise dc.StackError("nginx not found (scripts/deps.sh installs it)")
        self.dir.mkdir(parents=True, exist_ok=True)
        client = self.stack.net.root_addr
        locations = self.dir / "dashcache-locations.conf"
        text = (dc.ROOT / "nginx/dashcache-locations.conf").read_text()
        text = text.replace("    allow 127.0.0.1;\n", f"    allow 127.0.0.1;\n    allow {client};\n")
        locations.write_text(text)
        dc.render_nginx(self.conf, self.dir, f"{self.stack.address}:{self.port}", self.fcgi_socket,
                        f"{self.access_log} dashcache" if self.access_log else "off")
        conf = self.conf.read_text()
        conf = conf.replace(str(dc.ROOT / "nginx/dashcache-locations.conf"), str(locations))
        conf = conf.replace('        127.0.0.1 "";\n', f'        127.0.0.1 "";\n        {client} "";\n')
        self.conf.write_text(conf)
        r = subprocess.run(["ip", "netns", "exec", self.stack.netns, "nginx", "-q", "-t", "-p", f"{self.dir}/", "-c", str(self.conf), "-e", "stderr"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise dc.StackError(f"nginx rejected {self.conf}:\n{r.stderr.strip()}")

    def ready(self) -> bool:
        return dc.tcp_accepts(self.stack.address, self.port)

    def describe(self) -> str:
        return f", {self.url} (namespace {self.stack.netns})"


class NetHost(dc.Stack):
    """Host i of net: nginx, dashcache-fcgi (workers) and the invalidator in its namespace,
    on base's PostgreSQL and Redis (base started with also_listen=net.listen) and base's
    token key. app_env: the application's environment (default: base's), its
    METRICS_FILE replaced by the host's own; redis_url: another Redis URL as the host
    sees it (a test that breaks the sharing)."""

    def __init__(self, net: TestNet, i: int, base: dc.Stack, *, workers: int = 2, app_env: dict | None = None,
                 redis_url: str | None = None, access_log: bool | str = False):
        env = dict(base.app_env if app_env is None else app_env)
        env.pop("METRICS_FILE", None)
        env["AUTH_KEYS_FILE"] = base.app_env.get("AUTH_KEYS_FILE", "")
        super().__init__(f"{base.name}-h{i}", state_dir=base.state_dir / f"h{i}", workers=workers, seed=None,
                         app_env=env, access_log=access_log,
                         database_url=on_address(base.database_url, net.root_addr),
                         redis_url=redis_url or on_address(base.redis_url, net.root_addr))
        self.net, self.index, self.base = net, i, base
        self.netns, self.address = net.netns(i), net.addr(i)

    def _build_services(self) -> None:
        if getattr(self, "nginx", None) is not None:
            return
        super()._build_services()
        self.default_token = self.base.default_token
        self.fcgi = NsFcgiMaster(self, self.fcgi.binary, self.workers, self.fcgi.socket, self.fcgi_args)
        self.invalidator = NsInvalidator(self, self.invalidator.binary)
        self.nginx = NsNginx(self, NGINX_PORT, self.fcgi.socket,
                             str(self.state_dir / "logs" / "nginx-access.log") if self.with_access_log is True
                             else self.with_access_log or None)

    def start(self) -> "NetHost":
        """The host's services in order (the database is the base's: prepared already)."""
        self._build_services()
        dc._LIVE.append(self)
        try:
            self.stop_leftovers()
            self.start_host()
            self.write_env()
        except BaseException:
            self.stop()
            raise
        return self
