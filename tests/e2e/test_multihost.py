"""Several hosts (issue 13): two dashcache hosts, each its own nginx, workers,
invalidator and shared-memory files, in network namespaces of a private test
network (scripts/dcnet.py), sharing one PostgreSQL and one Redis. A write
acknowledged by one host is never missed by a read through the other; each
host serves hits, counts them in its own /metrics and says it is healthy.

Needs root (network namespaces), as make test runs: without it the module's
tests fail with the reason, they are not skipped.
"""
from __future__ import annotations

import consistency
import dcnet
import pytest
from conftest import Http, Metrics, STATE, dc, scrape, wait_for

HOSTS = 2
WORKERS = 2  # per host: two hosts on two cores


@pytest.fixture(scope="module")
def net():
    with dcnet.TestNet(HOSTS) as n:
        yield n


@pytest.fixture(scope="module")
def hosts(net):
    """[host 1, host 2] (dcnet.NetHost) on a base stack of PostgreSQL and Redis only."""
    with dc.Stack("e2e-multihost", state_dir=STATE / "multihost", nginx=False, also_listen=net.listen) as base:
        started = []
        try:
            for i in range(1, HOSTS + 1):
                started.append(dcnet.NetHost(net, i, base, workers=WORKERS).start())
            yield started
        finally:
            for h in reversed(started):
                h.stop()


def http(host) -> Http:
    return Http(host.http_url, token=host.default_token)


def hits(m: Metrics) -> float:
    """Answers with X-Cache: HIT: read from Redis, or the value a waiter's lease holder
    had just filled (dashboard_cache_coalesced_total)."""
    return m.sum("dashboard_cache_hit_total") + m.value("dashboard_cache_coalesced_total")


def server_errors(m: Metrics) -> float:
    return sum(v for k, v in m.series.items()
               if k.startswith("dashboard_http_requests_total{") and 'status="5' in k)


def test_each_host_is_healthy_and_counts_its_own_hits(hosts):
    files = {h.app_env["METRICS_FILE"] for h in hosts}
    assert len(files) == HOSTS, f"the hosts share a METRICS_FILE: {files}"
    for h in hosts:
        r = http(h).get("/health")
        assert r.status == 200 and r.json()["status"] == "healthy", f"{h.netns}: {r}"
        assert all(s["ok"] for s in r.json()["services"].values()), f"{h.netns}: {r}"
    # reads through host 1 only: its hit counter moves, host 2's does not
    h1, h2 = (http(h) for h in hosts)
    before = [hits(scrape(c)) for c in (h1, h2)]
    assert wait_for(lambda: h1.get("devices/online").xcache == "HIT", 10), "host 1 serves no hit"
    after = [hits(scrape(c)) for c in (h1, h2)]
    assert after[0] > before[0], f"host 1's /metrics did not count its hit: {before} -> {after}"
    assert after[1] == before[1], f"host 2 counted host 1's hits (shared metrics?): {before} -> {after}"


@pytest.mark.parametrize("writer,reader", [(0, 1), (1, 0)], ids=["write h1 read h2", "write h2 read h1"])
def test_a_write_through_one_host_invalidates_what_the_other_cached(hosts, writer, reader):
    w, r = http(hosts[writer]), http(hosts[reader])
    assert wait_for(lambda: r.get("alerts/count").xcache == "HIT", 10), "the reading host serves no hit"
    cached = r.get("alerts/count")
    assert cached.xcache == "HIT", cached
    ack = w.post("alerts", {"unitId": dc.DEMO_UNIT, "kind": "multihost", "message": "written on one host"})
    assert ack.status == 201, ack
    after = r.get("alerts/count")
    assert after.status == 200 and after.xcache != "HIT", f"the old answer is still a hit: {after}"
    assert after.json()["unresolved"] == cached.json()["unresolved"] + 1, f"{cached} then {after}"
    assert wait_for(lambda: r.get("alerts/count").xcache == "HIT", 10), "no hit of the new answer"
    assert r.get("alerts/count").json()["unresolved"] == cached.json()["unresolved"] + 1


@pytest.mark.parametrize("writer,reader", [(0, 1), (1, 0)], ids=["write h1 read h2", "write h2 read h1"])
def test_consistency_checker_writes_through_one_host_reads_through_the_other(hosts, writer, reader):
    w, r = hosts[writer], hosts[reader]
    m0 = [scrape(http(h)) for h in hosts]
    res = consistency.check(w.http_url, dc.DEMO_ORG, dc.DEMO_UNIT, seconds=5.0, n_writers=2, n_readers=4,
                            token=w.default_token, read_base=r.http_url)
    m1 = [scrape(http(h)) for h in hosts]
    print(f"{w.netns} -> {r.netns}: {res.summary()}")
    assert res.ok, res.summary()  # 0 stale, 0 errors (a 5xx is one), and hits among the reads
    assert not res.stale and not res.errors
    assert hits(m1[reader]) - hits(m0[reader]) >= res.hits > 0, "the reading host's /metrics miss its hits"
    assert hits(m1[writer]) == hits(m0[writer]), "the writing host counted hits it did not serve"
    for h, a, b in zip(hosts, m0, m1):
        assert server_errors(b) == server_errors(a), f"{h.netns} answered 5xx"
