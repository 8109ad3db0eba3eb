"""dashcache on a Redis Cluster (REDIS_CLUSTER_NODES; 3 primaries, 3 replicas started by
dcstack.RedisCluster): misses then hits, an organization's keys in one slot, a write's
next read fresh, invalidate-all through every slot's epoch, the untagged pattern messages
of earlier writers, a slot migrated under the workers (ASK while its keys move, MOVED
after), no stale read under concurrent readers and writers, and never a 5xx."""
from __future__ import annotations

import json
import os

import pytest

import consistency
from conftest import Http, cache_key, dc, scrape, wait_for

ORG = dc.DEMO_ORG


@pytest.fixture(scope="module")
def st(cluster_stack):
    return cluster_stack


@pytest.fixture(scope="module")
def http(st) -> Http:
    return Http(st.http_url, token=st.default_token)


@pytest.fixture(scope="module")
def cl(st) -> dc.RedisCluster:
    assert isinstance(st.redis, dc.RedisCluster), "the stack runs on a Redis Cluster"
    return st.redis


def cmd_calls(cl, name: str) -> int:
    """Calls of command `name` (INFO commandstats) summed over every running node."""
    total = 0
    for n in cl.nodes:
        if n.running():
            stat = cl.info(n.port, "commandstats").get(f"cmdstat_{name}", "")
            total += int(stat.split("calls=")[1].split(",")[0]) if "calls=" in stat else 0
    return total


def read(http, path="stats", org=ORG):
    r = http.get(http.org_url(org, path))
    assert r.status == 200, f"GET {path}: 200; got {r}"
    return r


def until_hit(http, path="stats", org=ORG, timeout=10):
    return wait_for(lambda: read(http, path, org).headers.get("X-Cache") == "HIT", timeout)


def test_misses_then_hits(http, cl):
    read(http, "stats?forceRefresh=true")
    assert until_hit(http), "stats: a hit after the miss that stored it"
    key = cache_key("stats", ORG)
    assert cl.get(key) is not None, f"{key} is in the slot of its organization"


def test_org_keys_share_one_slot(http, cl, st):
    unit = st.postgres.psql(f"SELECT id FROM units WHERE org_id = '{ORG}' ORDER BY name LIMIT 1")
    for path in ("stats", "units/status", "alerts/count", f"alerts/count?unitId={unit}",
                 f"units/{unit}/temperature/trends?hours=24", "devices/online", "compliance"):
        read(http, path)
        read(http, path)
    keys = cl.scan(f"dashboard:*:org:{{{ORG}}}*") + cl.scan(f"dashcache:gen:*:org:{{{ORG}}}")
    assert len(keys) >= 12, f"the organization's answers and generations: {keys}"
    slots = {cl.keyslot(k) for k in keys}
    assert slots == {cl.keyslot(ORG)}, f"every key of {ORG} hashes to its slot: {slots}"


def test_write_then_fresh_read(http, st):
    unit = st.postgres.psql(f"SELECT id FROM units WHERE org_id = '{ORG}' ORDER BY name LIMIT 1")
    before = read(http, "alerts/count").json()["unresolved"]
    assert until_hit(http, "alerts/count")
    r = http.post(http.org_url(ORG, "alerts"), {"unitId": unit, "kind": "door_open", "message": "cluster"})
    assert r.status == 201, f"POST alerts: 201; got {r}"
    r = read(http, "alerts/count")
    assert r.json()["unresolved"] == before + 1, f"the read after the write sees it: {r}"


def test_invalidate_all_moves_every_slots_epoch(http, cl):
    assert until_hit(http)
    epochs = {k: cl.get(k) for k in cl.scan("dashcache:epoch:*")}
    assert len(epochs) == 16384, f"one epoch copy per slot; found {len(epochs)}"
    cl.call(cl.primaries()[0], "PUBLISH", "cache:invalidate", json.dumps({"pattern": "dashboard:*", "scope": "all"}))
    assert wait_for(lambda: all(cl.get(k) != v for k, v in list(epochs.items())[::1024]), 10), \
        "the copies moved"
    assert wait_for(lambda: all(cl.get(k) != v for k, v in epochs.items()), 10), "every copy moved"
    r = read(http)
    assert r.headers.get("X-Cache") != "HIT", f"no answer stored before invalidate-all is a hit: {r}"


def test_untagged_pattern_message_reaches_tagged_keys(http, cl):
    read(http)
    assert until_hit(http)
    key = cache_key("stats", ORG)
    assert cl.get(key) is not None
    # a writer of before the hash tag: dashboard:*:org:<uuid>, no braces
    cl.call(cl.primaries()[-1], "PUBLISH", "cache:invalidate", json.dumps({"pattern": f"dashboard:*:org:{ORG}"}))
    assert wait_for(lambda: cl.get(key) is None, 10), f"{key} deleted by the untagged pattern"
    assert read(http).headers.get("X-Cache") != "HIT"


def test_slot_migration_ask_then_moved(http, cl):
    slot = cl.keyslot(ORG)
    assert until_hit(http)
    src = cl.primary_of(slot)
    dst = next(p for p in cl.primaries() if p != src)
    asking = cmd_calls(cl, "asking")
    # every key of the slot moved, the slot still the source's: the source answers ASK
    cl.migrate_slot(slot, dst, finish=False)
    slots_read = cmd_calls(cl, "cluster|slots")  # the harness reads them too: counted from here
    statuses = [http.get(http.org_url(ORG, "stats")).status for _ in range(5)]
    assert statuses == [200] * 5, f"answers while the slot moves: {statuses}"
    assert cmd_calls(cl, "asking") > asking, "the workers followed ASK (ASKING on the importing node)"
    assert cmd_calls(cl, "cluster|slots") == slots_read, "an ASK leaves the slot map as it is"
    cl.finish_migration(slot, dst)
    slots_read = cmd_calls(cl, "cluster|slots")
    statuses = [http.get(http.org_url(ORG, "stats")).status for _ in range(5)]
    assert statuses == [200] * 5, f"answers after the slot moved: {statuses}"
    assert cmd_calls(cl, "cluster|slots") > slots_read, "a MOVED made the workers read the slot map again"
    # values came with the keys from another server process: a miss once, then hits on the new node
    assert until_hit(http), "hits resume on the slot's new primary"
    assert cl.primary_of(slot) == dst


def test_sampler_walks_every_primary(st, http, cl):
    """The consistency sampler's SCAN walk (dc_cache_scan_step) goes through every primary in turn,
    not only the node it first connected to; what it finds there it compares (counted consistent)."""
    before = {p: int(cl.info(p, "commandstats").get("cmdstat_scan", "calls=0,").split("calls=")[1].split(",")[0])
              for p in cl.primaries()}
    checks0 = scrape(http).value('dashboard_consistency_checks_total{result="consistent"}')
    st.app_env["CONSISTENCY_SAMPLE_PER_S"] = "50"
    try:
        st.invalidator.restart()  # which moves the epoch (a resync): the answers are stored after it
        assert until_hit(http, "units/status"), "an answer for the sampler to compare"

        def scanned_everywhere() -> bool:
            now = {p: int(cl.info(p, "commandstats").get("cmdstat_scan", "calls=0,").split("calls=")[1]
                          .split(",")[0]) for p in cl.primaries()}
            return all(now.get(p, 0) > before.get(p, 0) for p in now)
        assert wait_for(scanned_everywhere, 20), f"SCAN on every primary {cl.primaries()}"
        assert wait_for(lambda: scrape(http).value('dashboard_consistency_checks_total{result="consistent"}')
                        > checks0, 20), "the answers it found were compared: " + " ".join(
            ln for ln in scrape(http).text.splitlines() if ln.startswith("dashboard_consistency_checks_total"))
    finally:
        st.app_env["CONSISTENCY_SAMPLE_PER_S"] = "0"
        st.invalidator.restart()


def test_no_stale_read_under_concurrent_readers_and_writers(st):
    unit = st.postgres.psql(f"SELECT id FROM units WHERE org_id = '{dc.org_id(2)}' ORDER BY name LIMIT 1")
    res = consistency.check(st.http_url, dc.org_id(2), unit, float(os.environ.get("E2E_CONSISTENCY_SECONDS", 6)),
                            token=st.default_token)
    print(res.summary())
    assert not res.stale, res.summary()
    assert not res.errors, res.summary()
    assert res.enough, f"enough reads, acknowledged writes and hits to judge: {res.summary()}"


def test_no_5xx(st):
    log = st.state_dir / "logs" / "nginx-access.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    assert lines, "the access log has the requests"
    bad = [ln for ln in lines if '" 5' in ln and "/api/dashboard/" in ln]
    assert not bad, f"no 5xx on a cluster: {bad[:5]}"
