"""Redis Sentinel (issue 13, part 2): the workers and the invalidator find the
primary through REDIS_SENTINELS, follow a failover, and a demoted primary's
READONLY is a reason to look for the primary again, never to serve stale.

The stack of this module runs a RedisSentinel group of scripts/dcstack.py (a
primary, two replicas, three sentinels with quorum 2, down after 1 s) on
loopback ports; the tests run in file order and each waits until the group
has settled after the one before.
"""
from __future__ import annotations

import subprocess
import threading
import time

import pytest

import consistency
from conftest import ROOT, Http, cache_key, own_stack, wait_for

import dcstack as dc

ORG, UNIT = dc.DEMO_ORG, dc.DEMO_UNIT


@pytest.fixture(scope="module")
def sstack():
    with own_stack("sentinel", workers=4, sentinel=True) as s:
        yield s


@pytest.fixture(scope="module")
def shttp(sstack) -> Http:
    return Http(sstack.http_url, token=sstack.default_token)


@pytest.fixture
def group(sstack):
    g = sstack.sentinel
    g.wait_settled()
    return g


def log_of(svc) -> str:
    return svc.log_path.read_text(errors="replace") if svc.log_path.exists() else ""


def count(http: Http) -> int:
    r = http.get("alerts/count")
    assert r.status == 200, r
    return r.json()["unresolved"]


def write_alert(http: Http, note: str) -> None:
    r = http.post("alerts", {"unitId": UNIT, "kind": "sentinel", "message": note})
    assert r.status == 201, r


def until_hit(http: Http, path: str, timeout: float = 20.0) -> bool:
    return wait_for(lambda: http.get(path).xcache == "HIT", timeout, 0.05)


def test_hits_and_writes_go_to_the_primary_the_sentinels_name(group, shttp):
    primary = group.current_primary()
    c = primary.client()
    try:
        assert until_hit(shttp, "alerts/count"), "no hit through the sentinels' primary"
        assert c("EXISTS", cache_key("alerts", ORG)) == 1, "the answer is not stored on the primary"
        gens = {k: c("GET", k) for k in c.scan(cache_key("gen", ORG))}
        before = count(shttp)
        write_alert(shttp, "through the sentinels")
        assert count(shttp) == before + 1, "a read after an acknowledged write misses it"
        moved = {k: c("GET", k) for k in gens}
        assert any(moved[k] != gens[k] for k in gens), "the write's invalidation did not reach the primary"
    finally:
        c.close()


def test_a_failover_under_load_is_followed_without_stale_reads_or_5xx(group, sstack, shttp):
    res: dict = {}
    runner = threading.Thread(target=lambda: res.setdefault(
        "r", consistency.check(sstack.http_url, ORG, UNIT, seconds=7.0, n_writers=2, n_readers=4,
                               token=sstack.default_token)))
    runner.start()
    time.sleep(1.5)
    old, new, took = group.failover()
    print(f"\nSentinel's failover: {old[1]} -> {new[1]} in {took:.2f} s")
    old_node, new_node = group.node(old[1]), group.node(new[1])
    # the workers and the invalidator follow before Sentinel converts the old primary (~8 s)
    c = new_node.client()
    try:
        run_id = next(line.split(":", 1)[1] for line in c("INFO", "server").splitlines()
                      if line.startswith("run_id:"))
        key = cache_key("alerts", ORG)
        # a value is tagged with the run_id of the server that stored it (dc_cache.h)
        assert wait_for(lambda: f"@{run_id}\n" in (c("GET", key) or ""), 6), \
            "no worker stored on the new primary"
        assert wait_for(lambda: c("PUBSUB", "NUMSUB", "cache:invalidate")[1] >= 1, 6), \
            "the invalidator did not subscribe on the new primary"
        assert old_node.role() == "master", "the old primary was converted before the workers followed"
    finally:
        c.close()
    runner.join(30)
    r = res["r"]
    print(r.summary())
    assert not r.stale, r.summary()
    assert not r.errors, r.summary()  # a 5xx (or any failed request) of the run
    assert r.enough, r.summary()
    assert "event=redis.switch_master" in log_of(sstack.invalidator)
    assert until_hit(shttp, "alerts/count"), "hits did not resume on the new primary"


def test_a_demoted_primary_answering_readonly_is_left_never_served_stale(group, sstack, shttp):
    """The primary turned into a replica behind the sentinels' back: writes to it
    get READONLY. The workers drop it and look again (the sentinels name it still, its
    ROLE says replica), answering from PostgreSQL meanwhile; the sentinels fail it
    over, and hits resume on the new primary."""
    old = group.current_primary()
    other = next(n for n in group.nodes if n is not old)
    assert until_hit(shttp, "alerts/count")
    readonly_before = log_of(sstack.fcgi).count("READONLY")
    res: dict = {}
    runner = threading.Thread(target=lambda: res.setdefault(
        "r", consistency.check(sstack.http_url, ORG, UNIT, seconds=6.0, n_writers=2, n_readers=4,
                               token=sstack.default_token)))
    runner.start()
    time.sleep(1.0)
    oc, nc = old.client(), other.client()
    try:
        nc("REPLICAOF", "NO", "ONE")
        oc("REPLICAOF", dc.HOST, str(other.port))
    finally:
        oc.close()
        nc.close()
    runner.join(30)
    r = res["r"]
    print("\n" + r.summary())
    assert not r.stale, r.summary()
    assert not r.errors, r.summary()
    assert r.acks >= 10 and r.reads >= 100, r.summary()
    assert log_of(sstack.fcgi).count("READONLY") > readonly_before, \
        "no worker met READONLY (the test did not demote the primary under them)"
    group.wait_settled()
    assert group.current_primary() is not old
    assert until_hit(shttp, "alerts/count"), "hits did not resume on the new primary"
    before = count(shttp)
    write_alert(shttp, "after the demotion")
    assert count(shttp) == before + 1


@pytest.mark.parametrize("env, message", [
    ({"REDIS_SENTINELS": "127.0.0.1"}, "REDIS_SENTINELS is invalid: entry 1 must be host:port"),
    ({"REDIS_SENTINELS": "127.0.0.1:26379,,127.0.0.1:26380"}, "REDIS_SENTINELS is invalid: entry 2 is empty"),
    ({"REDIS_SENTINELS": "127.0.0.1:99999"}, "REDIS_SENTINELS is invalid: entry 1: port must be an integer"),
    ({"REDIS_SENTINELS": "bad host:1"}, "REDIS_SENTINELS is invalid: entry 1 needs a host name"),
    ({"REDIS_SENTINELS": "127.0.0.1:26379"}, "REDIS_MASTER_NAME must be 1 to 64 letters"),
    ({"REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_MASTER_NAME": "my master"},
     "REDIS_MASTER_NAME must be 1 to 64 letters"),
    ({"REDIS_MASTER_NAME": "dcmaster"}, "REDIS_MASTER_NAME is set but REDIS_SENTINELS is not"),
    ({"REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_MASTER_NAME": "m", "REDIS_URL": "unix:///run/r.sock"},
     "REDIS_URL must be a redis:// URL with REDIS_SENTINELS"),
])
@pytest.mark.parametrize("binary", ["dashcache-fcgi", "dashcache-invalidator"])
def test_bad_sentinel_settings_stop_the_start_naming_the_variable(binary, env, message):
    full = {**dc.test_app_env(), "REDIS_SENTINEL_PASSWORD": "s3cret-never-shown", **env}
    r = subprocess.run([str(ROOT / "build" / binary)], env=full, capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0, f"exit status {r.returncode}"
    assert message in r.stderr, r.stderr
    assert "s3cret-never-shown" not in r.stderr
