"""seawall.Limiter at its edges: eviction at the bound, override memory, a clock that goes back or
reaches the end of its range, and counts near 2**64 (issue 11: #19, #20, #21, #24, #25)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from seawall import ALGORITHMS, ClientRateLimiter, Limit, Limiter, TokenBucketConfig
from seawall.testing import ManualClock

WINDOWS = ["fixed_window", "sliding_window_log", "sliding_window_counter"]


def last_manual_clock_reading() -> float:
    """The largest reading a ManualClock accepts (just under 2**64 ns)."""
    t = 2.0**64 / 1e9
    while True:
        try:
            ManualClock(start=t)
        except ValueError:
            t = math.nextafter(t, 0.0)
        else:
            return t


@pytest.mark.parametrize("algorithm", WINDOWS)
def test_at_the_bound_a_key_that_used_most_of_its_window_stays(algorithm: str) -> None:
    """#19: every key in a window used to rank the same, so the first sampled went; a key with 4
    of 5 used came back with 5 after a flood of keys using 1 each."""
    clock = ManualClock(start=1_800_000_000.0)
    limiter = Limiter("5/10 seconds", algorithm=algorithm, max_keys=10, clock=clock)
    assert limiter.hit("victim", cost=4).allowed
    clock.advance(1)
    for i in range(200):
        limiter.hit(f"flood-{i}")
    assert len(limiter) == 10
    assert limiter.allow("victim")
    assert not limiter.allow("victim"), "the victim came back with a fresh budget"
    stats = limiter.stats()
    assert stats["evicted_before_fresh"] == 191


def test_clear_override_frees_what_set_override_took() -> None:
    """#21: 300k set/clear pairs kept 12 MB; now clearing frees, and memory_bytes() counts it."""
    limiter = Limiter("10/second", max_keys=1000)
    base = limiter.memory_bytes()
    for i in range(30_000):
        limiter.set_override(f"customer-{i:08d}", "100/second")
        limiter.clear_override(f"customer-{i:08d}")
    assert limiter.memory_bytes() <= base + 16384
    for i in range(500):
        limiter.set_override(f"customer-{i:08d}", "100/second")
    assert limiter.memory_bytes() >= base + 500 * 16, "overrides are counted"


def test_overrides_are_bounded_by_max_keys() -> None:
    limiter = Limiter("1/second", max_keys=3)
    for key in "abc":
        limiter.set_override(key, "5/second")
    with pytest.raises(ValueError, match=r"^max_keys"):
        limiter.set_override("d", "5/second")
    limiter.clear_override("a")
    limiter.set_override("d", "5/second")


def test_client_configs_are_counted_bounded_and_freed() -> None:
    """#21: set_client_config_sync for 200k ids kept 6.5 MB that memory_bytes() did not count."""
    default = TokenBucketConfig(10, 1.0, 10)
    vip = TokenBucketConfig(100, 10.0, 100)
    limiter = ClientRateLimiter(default, max_clients=20_000)
    base = limiter.memory_bytes()
    for i in range(20_000):
        limiter.set_client_config_sync(f"client-{i:08d}", vip)
    assert limiter.memory_bytes() >= base + 20_000 * 16
    with pytest.raises(ValueError, match=r"^max_clients"):
        limiter.set_client_config_sync("one-too-many", vip)
    # Setting a client back to the default configuration frees its entry.
    for i in range(20_000):
        limiter.set_client_config_sync(f"client-{i:08d}", default)
    assert limiter.memory_bytes() <= base + 16384
    limiter.set_client_config_sync("one-too-many", vip)
    assert limiter.try_consume("one-too-many", 100)


def per_key(make: Callable[[], Any], hit: str, n: int = 4000) -> float:
    """memory_bytes() per key after `n` keys with 7-character ids, each hit once."""
    limiter = make()
    base = limiter.memory_bytes()
    call = getattr(limiter, hit)
    for i in range(n):
        call(f"k{i:06d}")
    return float(limiter.memory_bytes() - base) / n


def test_memory_bytes_per_key_is_what_the_readme_says() -> None:
    """#20: "under 80 bytes per client" held for ClientRateLimiter only. Since issue 18, Limiter
    with one bucket or fixed-window limit keeps its state inline in the same 64-byte record
    (the same bytes as ClientRateLimiter), a single sliding counter boxes its 24 bytes; any other
    set boxes 40 bytes per limit, plus 16 bytes per slot of a sliding log (4 slots at least)."""
    n = 4096  # one shard, its record and index capacities just above the 4000 keys
    client = per_key(
        lambda: ClientRateLimiter(TokenBucketConfig(10, 1.0, 10), max_clients=n), "try_consume"
    )
    assert client <= 80
    one, two, three = (
        per_key(lambda limits=limits: Limiter(limits, max_keys=n), "hit")
        for limits in ("10/second", "10/second; 1000/day", "10/second; 100/minute; 1000/day")
    )
    assert (one - client, two - one, three - two) == (0, 80, 40)
    for algorithm in ("fixed_window", "token_bucket", "leaky_bucket"):
        assert (
            per_key(lambda a=algorithm: Limiter("10/second", algorithm=a, max_keys=n), "hit") == one
        )
    counter = per_key(
        lambda: Limiter("10/second", algorithm="sliding_window_counter", max_keys=n), "hit"
    )
    assert counter - one == 24
    log = per_key(lambda: Limiter("10/second", algorithm="sliding_window_log", max_keys=n), "hit")
    assert log - one == 40 + 4 * 16


def test_sliding_log_cleanup_after_the_clock_went_back() -> None:
    """#24: hits at 1000 and 999 (2 per 10 s), cleanup() at 1009.5 dropped the spent key, and then
    2 more were admitted; the denied decision said reset_after=0."""
    clock = ManualClock(start=1000.0)
    limiter = Limiter("2/10 seconds", algorithm="sliding_window_log", clock=clock)
    assert limiter.allow("k")
    clock.set(999.0)
    assert limiter.allow("k")
    clock.set(1009.5)
    denied = limiter.test("k", 2)
    assert not denied.allowed
    assert denied.reset_after >= denied.retry_after > 0
    assert limiter.cleanup() == 0
    # The hit at 999 was logged at 1000, the latest time the log had seen: both leave at 1010.
    assert not limiter.allow("k")
    clock.set(1010.0)
    assert [limiter.allow("k") for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_at_the_end_of_the_clocks_range_every_algorithm_holds(algorithm: str) -> None:
    """#24: at the end of ManualClock's range the sliding log admitted 3 of 2, and the windows
    denied with retry_after=0."""
    for start in (last_manual_clock_reading(), None):
        clock = ManualClock(start=last_manual_clock_reading())
        if start is None:
            clock.advance(10.0)  # saturates at the very end
        limiter = Limiter("2/10 seconds", algorithm=algorithm, clock=clock)
        assert [limiter.allow("k") for _ in range(3)] == [True, True, False]
        d = limiter.hit("k")
        assert not d.allowed and d.retry_after > 0


def test_sliding_counter_refuses_a_period_it_cannot_weigh() -> None:
    """#25: periods over ~292 years wrapped."""
    with pytest.raises(ValueError, match=r"limit '1/400 years'.*sliding_window_counter"):
        Limiter("1/400 years", algorithm="sliding_window_counter")
    with pytest.raises(ValueError, match=r"limit '1/400 years'"):
        Limit("1/400 years", "sliding_window_counter")
    # One per 400 years is below the buckets' slowest rate (1e-9 per second): refused, quoted.
    for algorithm in ("gcra", "token_bucket", "leaky_bucket"):
        with pytest.raises(ValueError, match=r"^limit '1/400 years' is a rate outside"):
            Limiter("1/400 years", algorithm=algorithm)
    for algorithm in ("fixed_window", "sliding_window_log"):
        limiter = Limiter("1/400 years", algorithm=algorithm)
        assert [limiter.allow("k") for _ in range(2)] == [True, False]


@pytest.mark.parametrize("algorithm", WINDOWS)
def test_counts_near_two_to_the_64_are_exact(algorithm: str) -> None:
    """#25: "18446744073709551615/second" admitted three hits of cost 2**63 - 1."""
    limiter = Limiter(
        "18446744073709551615/second", algorithm=algorithm, clock=ManualClock(start=1.8e9)
    )
    cost = 2**63 - 1
    assert [limiter.allow("k", cost) for _ in range(3)] == [True, True, False]
    assert limiter.test("k", 1).remaining == 1
