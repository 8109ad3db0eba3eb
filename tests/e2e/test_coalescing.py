"""One database query per cold key across workers and hosts (issue 12, part 2).

Two worker pools (two dashcache-fcgi masters of 4 workers each, as two hosts
would run them, on one Redis and one PostgreSQL) get 64 concurrent requests for
the same cold answer, 32 each, straight over FastCGI (tests/bench/coalesce.py,
which `make bench` also runs). With the lease (CACHE_LEASE=on, the default) the
database runs the statements of exactly one miss and every reader gets the same
answer; with CACHE_LEASE=off (the same scenario without the protection) it runs
several.
"""
import sys
from pathlib import Path

import pytest

from conftest import STATE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import coalesce  # noqa: E402

READERS = 64


@pytest.fixture(scope="module", params=["on", "off"])
def pools(request):
    with coalesce.two_pools(f"e2e-coalesce-{request.param}", request.param,
                            state_dir=STATE / f"coalesce-{request.param}") as (s, socks):
        yield request.param, s, socks


def test_one_query_per_cold_key_across_two_pools(pools):
    lease, stack, socks = pools
    one_miss, one_miss_s = coalesce.one_miss(stack, socks)
    assert one_miss, "a miss runs statements"
    results, burst = coalesce.cold_burst(stack, socks, READERS)
    assert all(r and r[0] == 200 for r in results), [r[:2] for r in results if not r or r[0] != 200][:5]
    slowest = max(r[3] for r in results)
    print(f"\nCACHE_LEASE={lease}: one miss {one_miss} in {one_miss_s * 1000:.1f} ms; {READERS} cold readers on "
          f"two pools ran {burst}; X-Cache {sorted({r[1] for r in results})}; slowest {slowest * 1000:.1f} ms")
    if lease == "on":
        assert burst == one_miss, f"the statements of exactly one miss: {burst} vs {one_miss}"
        assert len({r[2] for r in results}) == 1, "every reader got the one answer"
    else:
        # the baseline: how many misses depends on how many workers happen to read at once
        assert sum(burst.values()) >= sum(one_miss.values()), "the cold answer was read from the database"


def test_one_host_shares_fills_without_redis(pools):
    """Redis away: the workers of one host still share one fill per key (shared
    memory): a burst costs at most a few misses' worth, not one per reader."""
    lease, stack, socks = pools
    one_miss, _ = coalesce.one_miss(stack, socks)
    stack.redis.stop()
    try:
        results, burst = coalesce.cold_burst(stack, socks[:1], READERS, cold=False)
    finally:
        stack.redis.start()
    assert all(r and r[0] == 200 and r[1] == "BYPASS" for r in results), \
        [r[:2] for r in results if not r or r[0] != 200 or r[1] != "BYPASS"][:5]
    n = sum(burst.values()) / sum(one_miss.values())
    print(f"\nCACHE_LEASE={lease}, Redis stopped: {READERS} readers on one host ran {n:.1f} misses' worth")
    if lease == "on":
        assert n <= 8, f"one fill per key per host, a few waves at most ({n:.1f} misses' worth)"
    else:
        assert n > 8, f"without it, every reader queries ({n:.1f} misses' worth)"
