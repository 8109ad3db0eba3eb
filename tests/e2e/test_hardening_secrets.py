"""Secrets (issue 9, part 3): a Redis password that needs percent-encoding in REDIS_URL
(a space, '@', '/', ':', '%') works end to end, and no log line of the stack
carries it, nor a configuration error that quotes the URL."""
from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import quote

from conftest import STATE, Http

import dcstack as dc

USER = "default"
PASSWORD = "s3cr3t pass@w/rd:%41x"
FRAGMENTS = (PASSWORD, quote(PASSWORD, safe=""), "s3cr3t", "pass@w")


def url_with_password(host: str, port: int) -> str:
    return f"redis://{USER}:{quote(PASSWORD, safe='')}@{host}:{port}/0"


class PasswordRedis(dc.Redis):
    """The stack's Redis with requirepass; every client authenticates."""

    def prepare(self) -> None:
        super().prepare()
        with open(self.dir / "redis.conf", "a") as f:
            f.write(f'requirepass "{PASSWORD}"\n')

    @property
    def url(self) -> str:
        return url_with_password(dc.HOST, self.port)

    def client(self, timeout: float = 5.0) -> dc.RedisClient:
        c = dc.RedisClient(dc.HOST, self.port, timeout)
        c("AUTH", USER, PASSWORD)
        return c

    def ready(self) -> bool:
        try:
            c = self.client(1.0)
        except (OSError, dc.RedisError, ConnectionError):
            return False
        try:
            return c("PING") == "PONG"
        except (OSError, dc.RedisError, ConnectionError):
            return False
        finally:
            c.close()


class PasswordStack(dc.Stack):
    def _build_services(self) -> None:
        super()._build_services()
        self.redis = PasswordRedis(self, self.ports["redis"])
        self.app_env.update(REDIS_URL=self.redis.url)


def leaked(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if any(f in ln for f in FRAGMENTS)]


def test_redis_password_with_space_works_and_never_reaches_a_log():
    with PasswordStack("e2e-secrets", state_dir=STATE / "secrets", workers=2) as s:
        # unauthenticated clients are refused: the password is really required
        anon = dc.RedisClient(dc.HOST, s.redis.port, 2.0)
        try:
            try:
                anon("GET", "x")
                refused = False
            except dc.RedisError:
                refused = True
        finally:
            anon.close()
        assert refused, "Redis does not require the password"

        http = Http(s.http_url)
        first = http.get("stats?forceRefresh=true")
        second = http.get("stats")
        assert first.status == 200 and second.status == 200, (first, second)
        # a HIT proves the workers authenticated (AUTH with the decoded, space-holding password)
        assert second.xcache == "HIT", f"no cache hit through an authenticated Redis: {second}"
        r = http.post("alerts", {"unitId": dc.DEMO_UNIT, "kind": "secrets", "message": "write path"})
        assert r.status == 201, r
        h = http.get("/health").json()
        assert h and h["services"]["redis"]["ok"] is True, h

        # a worker with a bad URL of the same password fails with a message that hides it
        bad = subprocess.run([str(s.fcgi.binary), "--listen", f"unix:{s.runtime_dir}/bad.sock", "--workers", "1"],
                             env={**s.app_env, "REDIS_URL": url_with_password("bad host", 1)},
                             capture_output=True, text=True, timeout=20)
        assert bad.returncode != 0 and "REDIS_URL" in bad.stderr, bad.stderr
        assert "***" in bad.stderr and not leaked(bad.stdout + bad.stderr), bad.stderr

        logs = sorted(Path(s.state_dir / "logs").glob("*.log"))
        assert any(p.name.startswith("fcgi") for p in logs), logs
        texts = {p.name: p.read_text(errors="replace") for p in logs}
    found = {name: leaked(t)[:3] for name, t in texts.items() if leaked(t)}
    assert not found, f"the Redis password is in the logs: {found}"
