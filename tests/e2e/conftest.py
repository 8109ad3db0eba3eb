"""Fixtures of the end-to-end suites: a stack of their own (scripts/dcstack.py),
an HTTP client through its nginx, Redis and SQL helpers.

Run them with Debian's pytest: /usr/bin/python3 -m pytest tests/e2e
(tests/run.py does, with DC_E2E_STATE_DIR=.run/test/e2e). Each stack takes free
loopback ports, so this can run beside any other stack on the machine.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
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


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def stack():
    """The shared end-to-end stack: demo data, 4 workers, the invalidator, nginx."""
    with own_stack("main", workers=4) as s:
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
