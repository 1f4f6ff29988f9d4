"""seawall.RedisLimiter against real redis-servers on loopback (nothing mocked).

The servers come from the fixtures in ``conftest.py`` (``tests/redis_servers.py``): one shared
server for most tests (each test under its own ``redis_prefix``), a server of its own for the
tests that kill and restart it, and a 3-node Cluster. Tests talk to Redis directly with redis-py.

What is shown here:

- Same decisions as memory: with a shared ``ManualClock`` (whose time is sent to Redis in whole
  microseconds), every decision of the Redis store equals the in-memory ``Limiter``'s, for every
  algorithm and for tiers of mixed algorithms (hypothesis).
- Exactness: 4 processes x 32 asyncio tasks (and 32 threads) on one key admit exactly the limit.
- Skewed clients: with the default clock the server's ``TIME`` decides, so processes whose wall
  clocks are an hour apart (libfaketime) share one budget; a client-sent clock would not.
- ``kill -9`` of Redis under load: no exception reaches a caller, ``on_error`` decides meanwhile,
  the breaker opens, and decisions come from Redis again after a restart on the same port.
- TTLs, Cluster hash tags, NOSCRIPT recovery, logging once per interval, bad input, the
  ``Limiter(store=...)`` factory, passwords and ACL users, unix sockets and Sentinel.
"""

from __future__ import annotations

import asyncio
import functools
import glob
import json
import logging
import math
import multiprocessing
import os
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_servers import RedisServer, free_port

import seawall
from seawall import ALGORITHMS, Decision, Limit, Limiter, RedisLimiter
from seawall.testing import ManualClock

US = 1e-6
# For tests that count admissions: a Redis failure refuses (never inflates the count), and the
# timeouts are generous so that a slow, loaded machine does not turn into refusals.
PATIENT: dict[str, Any] = {"on_error": "deny", "connect_timeout": 5.0, "command_timeout": 5.0}
# Redis works in whole µs and memory in ns: times may differ by less than one µs.
TOL = 1e-6 + 1e-9


def asyncio_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an ``async def`` test in a fresh event loop (its fixtures are passed through)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    c = client(redis_url)
    try:
        yield c
    finally:
        c.close()


def unique(prefix: str = "p") -> str:
    return f"{prefix}:{uuid.uuid4().hex[:12]}:"


def close_to(a: float, b: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= TOL


def assert_same(mem: Decision, red: Decision, context: object) -> None:
    """The Redis decision equals the in-memory one (times within one µs)."""
    assert (red.allowed, red.limit, red.remaining, red.window) == (
        mem.allowed,
        mem.limit,
        mem.remaining,
        mem.window,
    ), (context, mem, red)
    assert close_to(red.retry_after, mem.retry_after), (context, mem, red)
    assert close_to(red.reset_after, mem.reset_after), (context, mem, red)


def ptimes(r: redis.Redis) -> float:
    """The server's TIME, in seconds."""
    sec, usec = r.time()
    return sec + usec / 1e6


def wait_clear_of_boundary(r: redis.Redis, period: float, margin: float = 15.0) -> None:
    """Sleep past the next epoch-aligned window boundary (server time) if it is within
    ``margin`` s, so a fixed-window or sliding-counter test does not straddle two windows."""
    left = period - math.fmod(ptimes(r), period)
    if left < margin:
        time.sleep(left + 0.05)


# --------------------------------------------------------------------------------------------
# (a) The same decisions as the in-memory limiter (hypothesis)
#
# One ManualClock drives both limiters and is sent to Redis. It starts at an epoch-scale time and
# only ever moves by whole microseconds (``advance`` rounds seconds to the nearest ns), so Redis
# (µs) and memory (ns) see the same instant. Each example uses a fresh key.
#
# Keys written with a manual clock still expire in *real* time (PEXPIRE of the time until fresh,
# in manual-clock terms, rounded up to a whole ms). An example runs its steps back to back, far
# faster than that, so expiry never overtakes the manual clock in practice.

START = 1_800_000_000.0

steps_us = st.one_of(
    st.just(0),
    st.integers(1, 1_000),
    st.integers(1, 2_000_000),
    st.integers(1, 130_000_000),
)
ops = st.lists(
    st.tuples(steps_us, st.integers(1, 9), st.sampled_from(("hit", "hit", "hit", "test", "reset"))),
    min_size=1,
    max_size=40,
)


def run_both(
    mem: Limiter,
    red: RedisLimiter,
    clock: ManualClock,
    steps: list[tuple[int, int, str]],
    smallest: int,
    move: Any = None,
) -> None:
    key = uuid.uuid4().hex
    for i, (step, cost, op) in enumerate(steps):
        if move is None:
            clock.advance(step * US)
        else:
            move(step)
        context = (i, step, cost, op)
        if op == "reset":
            m, rr = mem.reset(key), red.reset(key)
            # Redis may have dropped state that memory still holds (an expired log), never the
            # reverse.
            assert m or not rr, context
            continue
        if cost > smallest:
            with pytest.raises(ValueError):
                mem.hit(key, cost)
            with pytest.raises(ValueError):
                red.hit(key, cost)
            continue
        if op == "hit":
            assert_same(mem.hit(key, cost), red.hit(key, cost), context)
        else:
            assert_same(mem.test(key, cost), red.test(key, cost), context)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 8),
    period=st.integers(1, 120),
    offset_us=st.integers(0, 86_400_000_000),
    steps=ops,
)
def test_same_decisions_as_memory(
    redis_url: str,
    algorithm: str,
    count: int,
    period: int,
    offset_us: int,
    steps: list[tuple[int, int, str]],
) -> None:
    clock = ManualClock(start=START)
    clock.advance(offset_us * US)
    limit = f"{count}/{period} seconds"
    mem = Limiter(limit, algorithm=algorithm, clock=clock)
    red = RedisLimiter(
        limit, store=redis_url, algorithm=algorithm, key_prefix=unique("prop"), clock=clock
    )
    run_both(mem, red, clock, steps, count)
    assert red.stats()["errors"] == 0


# Distinct tiers only: two identical limits are test_identical_limits_are_separate_tiers's case.
tiers = st.lists(
    st.tuples(st.integers(1, 6), st.integers(1, 120), st.sampled_from(ALGORITHMS)),
    min_size=2,
    max_size=3,
    unique=True,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=tiers, offset_us=st.integers(0, 86_400_000_000), steps=ops)
def test_tiers_same_decisions_as_memory_all_or_nothing(
    redis_url: str,
    spec: list[tuple[int, int, str]],
    offset_us: int,
    steps: list[tuple[int, int, str]],
) -> None:
    """Several limits of mixed algorithms ("3/second; 5/minute" style): the Redis decision
    equals memory's, and it is all or nothing: admitted exactly when every tier alone would
    admit, and then counted by every tier."""
    clock = ManualClock(start=START)
    clock.advance(offset_us * US)
    limits = [Limit(f"{c}/{p} seconds", a) for c, p, a in spec]
    mem = Limiter(limits, clock=clock)
    red = RedisLimiter(limits, store=redis_url, key_prefix=unique("tiers"), clock=clock)
    singles = [Limiter(limit, clock=clock) for limit in limits]
    smallest = min(c for c, _, _ in spec)
    key = uuid.uuid4().hex
    for i, (step, cost, op) in enumerate(steps):
        clock.advance(step * US)
        if cost > smallest or op == "reset":
            continue
        context = (i, step, cost, op)
        if op == "test":
            assert_same(mem.test(key, cost), red.test(key, cost), context)
            continue
        each = [s.test(key, cost).allowed for s in singles]
        d = red.hit(key, cost)
        assert_same(mem.hit(key, cost), d, context)
        assert d.allowed == all(each), context
        if d.allowed:
            for s in singles:
                assert s.hit(key, cost).allowed
    assert red.stats()["errors"] == 0


@pytest.mark.parametrize(
    "limits",
    [
        "2/second; 2/second",
        "2/second; 2/1 seconds",
        [Limit("3/minute", "sliding_window_log"), Limit("3/60 seconds", "sliding_window_log")],
    ],
)
def test_identical_limits_are_separate_tiers(
    redis_url: str, redis_prefix: str, limits: Any
) -> None:
    """A limit given twice (say a default merged with a route's own) is two tiers in memory,
    each counting the request once: "2/second; 2/second" admits 2 per second. Redis must agree,
    so the two tiers must not share one Redis key (and count every request twice)."""
    clock = ManualClock(start=START)
    mem = Limiter(limits, clock=clock)
    red = RedisLimiter(limits, store=redis_url, key_prefix=redis_prefix, clock=clock)
    for i in range(4):
        assert_same(mem.hit("k"), red.hit("k"), i)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    algorithm=st.sampled_from(ALGORITHMS),
    count=st.integers(1, 8),
    period=st.integers(1, 120),
    steps=st.lists(
        st.tuples(
            st.integers(-3_000_000, 3_000_000),
            # Costs the limit allows: see test_refused_cost_leaves_no_state for the others.
            st.integers(1, 8),
            st.sampled_from(("hit", "hit", "test")),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_clock_moving_backwards_same_as_memory(
    redis_url: str, algorithm: str, count: int, period: int, steps: list[tuple[int, int, str]]
) -> None:
    """A clock that also steps back (``ManualClock.set``): still memory's decisions. The start is
    1e6 s so that every µs reading is exactly representable after ``set``'s rounding."""
    base_us = 1_000_000_000_000
    clock = ManualClock(start=base_us * US)
    now = [base_us]

    def move(step: int) -> None:
        now[0] += step
        assert round(now[0] * US * 1e9) == now[0] * 1000
        clock.set(now[0] * US)

    limit = f"{count}/{period} seconds"
    mem = Limiter(limit, algorithm=algorithm, clock=clock)
    red = RedisLimiter(
        limit, store=redis_url, algorithm=algorithm, key_prefix=unique("back"), clock=clock
    )
    steps = [(step, min(cost, count), op) for step, cost, op in steps]
    run_both(mem, red, clock, steps, count, move=move)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_refused_cost_leaves_no_state(redis_url: str, redis_prefix: str, algorithm: str) -> None:
    """A call refused with ValueError (cost above the smallest limit) must change nothing. Redis
    keeps no state for it; memory must not either, or a clock that then steps back finds a
    state stamped in the future and refuses the next request (buckets), or keeps a later
    window (fixed window, sliding counter), where Redis, holding nothing, admits from fresh."""
    clock = ManualClock(start=1_000_000.0)
    mem = Limiter("1/second", algorithm=algorithm, clock=clock)
    red = RedisLimiter("1/second", store=redis_url, algorithm=algorithm, key_prefix=redis_prefix)
    for lim in (mem, red):
        with pytest.raises(ValueError, match="cost"):
            lim.hit("k", 2)
    assert red.redis_keys("k") and not red.reset("k")
    assert mem.key_stats("k") is None
    assert len(mem) == 0
    clock.set(1_000_000.0 - 1e-6)
    fresh = Limiter("1/second", algorithm=algorithm, clock=clock)
    assert_same(fresh.hit("k"), mem.hit("k"), algorithm)


@asyncio_test
async def test_async_methods_match_sync(redis_url: str, redis_prefix: str) -> None:
    """``ahit`` / ``atest`` / ``aallow`` / ``areset`` decide what the sync methods decide."""
    clock = ManualClock(start=START)
    mem = Limiter("3/minute; 5/hour", clock=clock)
    red = RedisLimiter("3/minute; 5/hour", store=redis_url, key_prefix=redis_prefix, clock=clock)
    for i in range(7):
        assert_same(mem.test("k"), await red.atest("k"), i)
        assert_same(mem.hit("k"), await red.ahit("k"), i)
        clock.advance(7.5)
    assert await red.aallow("k") == mem.allow("k")
    assert await red.areset("k") is True
    assert await red.areset("k") is False
    assert (await red.ahit("k")).remaining == 2


# --------------------------------------------------------------------------------------------
# (b) Exactness under concurrency: admitted == limit


def _hammer(
    url: str,
    prefix: str,
    key: str,
    limit: str,
    algorithm: str,
    tasks: int,
    hits: int,
    barrier: Any,
    results: Any,
) -> None:
    """A worker process: ``tasks`` asyncio tasks, each hitting ``key`` ``hits`` times."""

    async def main() -> tuple[int, dict[str, Any], float, float]:
        lim = RedisLimiter(
            limit,
            store=url,
            algorithm=algorithm,
            key_prefix=prefix,
            **PATIENT,
        )
        await lim.atest("warm-up")  # connect before the start line
        barrier.wait(30)

        async def one() -> int:
            admitted = 0
            for _ in range(hits):
                if (await lim.ahit(key)).allowed:
                    admitted += 1
            return admitted

        t0 = time.time()
        counts = await asyncio.gather(*(one() for _ in range(tasks)))
        return sum(counts), lim.stats(), t0, time.time()

    try:
        results.put(("ok", *asyncio.run(main())))
    except BaseException as e:  # reported to the test, never lost
        results.put(("error", repr(e)))


@pytest.mark.parametrize("algorithm", ["gcra", "sliding_window_log"])
def test_four_processes_by_32_tasks_admit_exactly_the_limit(
    redis_url: str, redis_prefix: str, algorithm: str
) -> None:
    """4 spawned processes x 32 asyncio tasks x 8 hits (1024 attempts) on one key limited to
    500/hour: exactly 500 admitted. (GCRA would let one more in per 7.2 s; the processes start
    together at a barrier and the whole burst takes well under that, which is checked.)"""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_hammer,
            args=(redis_url, redis_prefix, "one", "500/hour", algorithm, 32, 8, barrier, results),
        )
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    try:
        out = [results.get(timeout=90) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert all(o[0] == "ok" for o in out), out
    admitted = sum(o[1] for o in out)
    assert all(o[2]["errors"] == 0 and o[2]["fallbacks"] == 0 for o in out), out
    span = max(o[4] for o in out) - min(o[3] for o in out)
    assert span < 7.0, span
    assert sum(o[2]["decisions"] for o in out) == 4 * 32 * 8 + 4  # and one test() each
    assert admitted == 500


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_threads_admit_exactly_the_limit(
    redis_url: str, redis_prefix: str, r: redis.Redis, algorithm: str
) -> None:
    """32 threads x 24 sync ``hit`` calls on one key (the GIL released while each waits):
    exactly 500 of 768 admitted, for every algorithm."""
    wait_clear_of_boundary(r, 3600)
    lim = RedisLimiter(
        "500/hour", store=redis_url, algorithm=algorithm, key_prefix=redis_prefix, **PATIENT
    )
    lim.test("warm-up")
    start = threading.Barrier(32)
    counts: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait(10)
            counts.append(sum(lim.hit("one").allowed for _ in range(24)))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert time.monotonic() - t0 < 7.0
    assert lim.stats()["errors"] == 0
    assert sum(counts) == 500, lim.stats()


@asyncio_test
async def test_asyncio_tasks_many_keys_exact(redis_url: str, redis_prefix: str) -> None:
    """64 concurrent tasks over 16 keys, tiers of two algorithms: each key gets exactly its
    tightest limit."""
    lim = RedisLimiter(
        [Limit("10/minute", "sliding_window_log"), Limit("20/hour", "gcra")],
        store=redis_url,
        key_prefix=redis_prefix,
        **PATIENT,
    )
    admitted: dict[str, int] = {}

    async def one(i: int) -> None:
        key = f"k{i % 16}"
        for _ in range(6):
            if (await lim.ahit(key)).allowed:
                admitted[key] = admitted.get(key, 0) + 1

    await asyncio.gather(*(one(i) for i in range(64)))
    assert admitted == {f"k{i}": 10 for i in range(16)}, lim.stats()
    assert lim.stats()["errors"] == 0


# --------------------------------------------------------------------------------------------
# (c) Skewed client clocks


def libfaketime() -> str | None:
    for pattern in (
        "/usr/lib/*/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


SKEWED_CLIENT = """
import json, sys, time
import seawall
url, prefix, key, algorithm, n = sys.argv[1:6]
lim = seawall.RedisLimiter("5/minute", store=url, algorithm=algorithm, key_prefix=prefix)
ds = [lim.hit(key) for _ in range(int(n))]
print(json.dumps({
    "wall": time.time(),
    "seawall_clock": seawall.SystemClock().now(),
    "allowed": [d.allowed for d in ds],
    "retry_after": [d.retry_after for d in ds],
    "errors": lim.stats()["errors"],
}))
"""


def skewed_client(
    offset: str, url: str, prefix: str, key: str, algorithm: str, n: int
) -> dict[str, Any]:
    lib = libfaketime()
    assert lib is not None
    env = dict(
        os.environ,
        LD_PRELOAD=lib,
        FAKETIME=offset,
        # Only the wall clock is skewed; tokio's timers keep the real monotonic clock.
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    out = subprocess.run(
        [sys.executable, "-c", SKEWED_CLIENT, url, prefix, key, algorithm, str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(out.stdout))


@pytest.mark.skipif(
    libfaketime() is None,
    reason="libfaketime is not installed (Debian package faketime; scripts/test.sh installs it)",
)
@pytest.mark.parametrize("algorithm", ["gcra", "sliding_window_log"])
def test_clients_an_hour_apart_share_one_budget(
    redis_url: str, redis_prefix: str, algorithm: str
) -> None:
    """Three processes share one key limited to 5/minute: one an hour ahead (libfaketime), this
    one, and one an hour behind. With the default clock the script reads Redis's ``TIME``, so
    the processes' wall clocks never enter a decision: together they admit exactly 5, and each
    denial says to retry within the minute. (Were each client's time used, the one ahead would
    look an hour later and find a full budget, or leave state that locks the others out for an
    hour: see the next test.)"""
    ahead = skewed_client("+1h", redis_url, redis_prefix, "k", algorithm, 3)
    # The child really lived an hour ahead, seawall's own clock included.
    assert 3590 < ahead["seawall_clock"] - time.time() < 3610
    assert 3590 < ahead["wall"] - time.time() < 3610
    lim = RedisLimiter("5/minute", store=redis_url, algorithm=algorithm, key_prefix=redis_prefix)
    here = [lim.hit("k") for _ in range(4)]
    behind = skewed_client("-1h", redis_url, redis_prefix, "k", algorithm, 2)
    assert -3610 < behind["seawall_clock"] - time.time() < -3590
    assert ahead["allowed"] == [True, True, True]
    assert [d.allowed for d in here] == [True, True, False, False]
    assert behind["allowed"] == [False, False]
    assert ahead["errors"] == behind["errors"] == lim.stats()["errors"] == 0
    waits = [d.retry_after for d in here[2:]] + behind["retry_after"]
    assert all(0 < w <= 60 for w in waits), waits


def test_client_sent_clocks_would_disagree(redis_url: str, redis_prefix: str) -> None:
    """Why the server's clock is the default: a client-sent time (here two ManualClocks an hour
    apart, as tests use) makes the shared state depend on each client's clock. The client an hour
    ahead writes state from the future, and the other is then refused for about an hour though
    only 3 of 5 were used."""
    now = time.time()
    ahead = RedisLimiter(
        "5/minute", store=redis_url, key_prefix=redis_prefix, clock=ManualClock(now + 3600)
    )
    here = RedisLimiter(
        "5/minute", store=redis_url, key_prefix=redis_prefix, clock=ManualClock(now)
    )
    assert [ahead.hit("k").allowed for _ in range(3)] == [True, True, True]
    d = here.hit("k")
    assert not d.allowed
    assert d.retry_after > 3500
    # The same two limiters on the server's clock (explicit SystemClock) agree.
    a = RedisLimiter("5/minute", store=redis_url, key_prefix=redis_prefix + "s:")
    b = RedisLimiter(
        "5/minute", store=redis_url, key_prefix=redis_prefix + "s:", clock=seawall.SystemClock()
    )
    assert [a.hit("k").allowed for _ in range(3)] + [b.hit("k").allowed for _ in range(3)] == [
        True,
        True,
        True,
        True,
        True,
        False,
    ]


def test_default_clock_is_the_servers_time(
    redis_url: str, redis_prefix: str, r: redis.Redis
) -> None:
    """With the default clock the state is stamped with Redis's ``TIME`` (a fixed window's start
    and a bucket's timestamp are server µs)."""
    lim = RedisLimiter(
        [Limit("5/minute", "fixed_window"), Limit("5/minute", "gcra")],
        store=redis_url,
        key_prefix=redis_prefix,
    )
    before = ptimes(r)
    d = lim.hit("k")
    after = ptimes(r)
    fixed_key, bucket_key = lim.redis_keys("k")
    # State is packed doubles (Lua's struct, native byte order): exact integers.
    raw = redis.Redis.from_url(redis_url)
    start, n = (int(x) for x in struct.unpack("=dd", raw.get(fixed_key)))
    assert n == 1
    assert start == int(before // 60 * 60 * 1_000_000) or start == int(after // 60 * 60 * 1_000_000)
    _, at = (int(x) for x in struct.unpack("=dd", raw.get(bucket_key)))
    raw.close()
    assert before * 1e6 - 1 <= at <= after * 1e6 + 1
    assert d.reset_after <= 60


# --------------------------------------------------------------------------------------------
# (d) kill -9 of Redis under load, then restart on the same port


async def wait_for(cond: Any, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(step)
    return bool(cond())


@pytest.mark.parametrize("on_error", ["allow", "deny", "local"])
@asyncio_test
async def test_kill_9_under_load_then_restart(
    redis_server: RedisServer, redis_prefix: str, on_error: str
) -> None:
    """16 asyncio tasks and a thread decide continuously; redis-server gets SIGKILL, then is
    started again on the same port. No exception reaches any caller; during the outage
    decisions follow ``on_error`` at once (the breaker opens after 3 failures), ``reset``
    raises OSError, errors and fallbacks grow; after the restart the same limiter's decisions
    come from Redis again (within 10 s, in practice well under a second) and enforce the
    limit, with the state in the new server."""
    lim = RedisLimiter(
        "5/minute",
        store=redis_server.url,
        key_prefix=redis_prefix,
        on_error=on_error,
        connect_timeout=0.2,
        command_timeout=0.2,
        breaker_failures=3,
        breaker_recovery=0.2,
        log_interval=3600,
    )
    stop = asyncio.Event()
    stop_threads = threading.Event()
    errors: list[BaseException] = []
    # (time, allowed, retry_after) of each load decision; every load hit uses a fresh key, so
    # Redis admits all of them: a refusal can only be on_error="deny" at work.
    seen: list[tuple[float, bool, float]] = []
    counter = iter(range(10**9))

    async def load() -> None:
        while not stop.is_set():
            try:
                d = await lim.ahit(f"load{next(counter)}")
                seen.append((time.monotonic(), d.allowed, d.retry_after))
            except BaseException as e:
                errors.append(e)
            await asyncio.sleep(0.001)

    def sync_load() -> None:
        while not stop_threads.is_set():
            try:
                d = lim.hit(f"sync{next(counter)}")
                seen.append((time.monotonic(), d.allowed, d.retry_after))
            except BaseException as e:
                errors.append(e)
            time.sleep(0.001)

    tasks = [asyncio.create_task(load()) for _ in range(16)]
    thread = threading.Thread(target=sync_load)
    thread.start()
    try:
        await asyncio.sleep(0.3)
        healthy = lim.stats()
        assert healthy["decisions"] > 50 and healthy["errors"] == 0 and healthy["fallbacks"] == 0
        assert (await lim.ahit("probe")).allowed

        # kill -9: the server dies mid-load.
        killed = time.monotonic()
        redis_server.kill()
        assert await wait_for(lambda: lim.stats()["breaker"] == "open", 5.0)
        down = lim.stats()
        assert down["errors"] >= 3 and down["fallbacks"] >= 3

        # Decisions during the outage follow on_error, without waiting for Redis.
        t0 = time.monotonic()
        during = [await lim.ahit("outage") for _ in range(7)] + [lim.hit("outage-sync")]
        assert time.monotonic() - t0 < 2.0
        if on_error == "allow":
            assert all(d.allowed for d in during)
        elif on_error == "deny":
            assert not any(d.allowed for d in during)
            assert all(d.retry_after >= 1.0 for d in during)
        else:  # local: an in-memory limiter with the same 5/minute
            assert [d.allowed for d in during[:7]] == [True] * 5 + [False] * 2
            assert during[7].allowed
        # reset() must say it could not reach Redis.
        with pytest.raises(OSError):
            lim.reset("outage")
        await asyncio.sleep(0.3)
        assert lim.stats()["fallbacks"] > down["fallbacks"]

        # Restart on the same port: decisions come from Redis again, without a restart of ours.
        # Recovered: the breaker is closed and nothing fell back during 0.3 s of load. (A pooled
        # connection that went stale in the outage can still cost one fallback just after the
        # breaker closes: test_connection_closed_by_server_is_not_a_failure.)
        restarted = time.monotonic()
        redis_server.restart()
        while True:
            assert time.monotonic() - restarted < 10.0, lim.stats()
            window = time.monotonic()
            a = lim.stats()
            await asyncio.sleep(0.3)
            b = lim.stats()
            if b["breaker"] == "closed" and b["fallbacks"] == a["fallbacks"]:
                break
        recovered = window + 0.05
        assert b["decisions"] > a["decisions"] + 50  # the load kept going, all of it from Redis
        after = [await lim.ahit("after") for _ in range(6)]
        assert [d.allowed for d in after] == [True] * 5 + [False]
        assert lim.stats()["fallbacks"] == b["fallbacks"]
        # The state is in the restarted Redis.
        assert redis_server.command("EXISTS", *lim.redis_keys("after")) == 1
    finally:
        stop.set()
        stop_threads.set()
        await asyncio.gather(*tasks)
        thread.join(10)
    assert not errors, errors[:3]
    # The load itself saw the policy during the outage and normal service around it.
    outage = [s for s in seen if killed + 0.05 < s[0] < restarted]
    assert outage
    if on_error == "deny":
        assert not any(s[1] for s in outage)
        assert all(s[2] >= 1.0 for s in outage)
    else:
        assert all(s[1] for s in outage)
    assert all(s[1] for s in seen if s[0] < killed or s[0] > recovered)
    assert recovered - restarted < 10.0


@pytest.mark.parametrize("how", ["client kill", "restart"])
def test_connection_closed_by_server_is_not_a_failure(
    redis_server: RedisServer, redis_prefix: str, how: str
) -> None:
    """Redis closes a connection seawall holds idle (``CLIENT KILL``, the server's ``timeout``
    for idle clients, a proxy's idle timeout, a restart between two requests). Redis is healthy,
    so the next decisions must come from Redis: none may fail and get ``on_error`` (here a
    spurious refusal), sync or async."""
    lim = RedisLimiter("100/minute", store=redis_server.url, key_prefix=redis_prefix, **PATIENT)

    async def some(n: int) -> list[bool]:
        return [(await lim.ahit("k")).allowed for _ in range(n)]

    async def scenario() -> tuple[list[bool], list[bool]]:
        assert await some(3) == [True] * 3
        assert [lim.hit("k").allowed for _ in range(3)] == [True] * 3  # both paths connected
        if how == "restart":
            redis_server.restart()
        else:
            redis_server.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        return [lim.hit("k").allowed for _ in range(3)], await some(3)

    sync, async_ = asyncio.run(scenario())
    assert (sync, async_, lim.stats()["errors"]) == ([True] * 3, [True] * 3, 0), lim.stats()


@asyncio_test
async def test_limiter_built_while_redis_is_down_works_when_it_comes_up(
    redis_prefix: str,
) -> None:
    """Lazy connection: built with nothing listening, the limiter applies on_error, then uses
    Redis once a server appears on that port."""
    server = RedisServer()
    try:
        lim = RedisLimiter(
            "2/minute",
            store=server.url,
            key_prefix=redis_prefix,
            on_error="deny",
            connect_timeout=0.2,
            command_timeout=0.2,
            breaker_recovery=0.1,
        )
        assert not (await lim.ahit("k")).allowed
        assert lim.stats()["errors"] >= 1
        server.start()

        async def admitted() -> bool:
            return (await lim.ahit("probe")).allowed

        deadline = time.monotonic() + 10
        while not await admitted():
            assert time.monotonic() < deadline, lim.stats()
            await asyncio.sleep(0.05)
        assert [(await lim.ahit("k")).allowed for _ in range(3)] == [True, True, False]
    finally:
        server.close()


# --------------------------------------------------------------------------------------------
# (e) Every key written has a TTL: the time until its state is fresh again


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_key_has_a_ttl_until_fresh(
    redis_url: str, redis_prefix: str, r: redis.Redis, algorithm: str
) -> None:
    limits = [Limit("5/10 seconds", algorithm), Limit("20/minute", algorithm)]
    lim = RedisLimiter(limits, store=redis_url, key_prefix=redis_prefix)
    keys = ["a", "b", "c"]
    last: dict[str, Decision] = {}
    for i in range(9):
        for key in keys:
            lim.test(key, 1)
            last[key] = lim.hit(key, 1 + i % 2)
    for key in keys:
        written = lim.redis_keys(key)
        assert all(k.startswith(redis_prefix) for k in written)
        pttls = [r.pttl(k) for k in written]
        present = [p for p in pttls if p != -2]
        assert present, (key, written)
        # Each key lives no longer than its own state (a sliding counter's current window is
        # still needed through the next one).
        for name, p in zip(written, pttls, strict=True):
            if p == -2:
                continue
            window = 10_000 if "/10s" in name else 60_000
            bound = 2 * window if algorithm == "sliding_window_counter" else window
            assert 0 < p <= bound, (name, p)
        # And the longest-lived one is the limiter's own reset_after: the time until fresh.
        expected_ms = last[key].reset_after * 1000
        assert expected_ms - 250 <= max(present) <= math.ceil(expected_ms) + 1, (
            key,
            present,
            last[key],
        )
    # Nothing under the prefix lacks a TTL.
    found = list(r.scan_iter(match=redis_prefix + "*", count=1000))
    assert found
    assert all(r.pttl(k) > 0 for k in found), [(k, r.pttl(k)) for k in found]
    # reset removes all of a key's state.
    assert lim.reset("a") is True
    assert not any(r.exists(k) for k in lim.redis_keys("a"))
    assert lim.reset("a") is False


def test_test_writes_nothing(redis_url: str, redis_prefix: str, r: redis.Redis) -> None:
    lim = RedisLimiter(
        [Limit("5/minute", a) for a in ALGORITHMS], store=redis_url, key_prefix=redis_prefix
    )
    for _ in range(3):
        assert lim.test("k").allowed
    assert list(r.scan_iter(match=redis_prefix + "*")) == []


def test_ttl_with_manual_clock_is_manual_time_until_fresh(
    redis_url: str, redis_prefix: str, r: redis.Redis
) -> None:
    """With a manual clock the TTL is the time until fresh on that clock."""
    clock = ManualClock(start=START)
    lim = RedisLimiter("10/hour", store=redis_url, key_prefix=redis_prefix, clock=clock)
    for _ in range(4):
        lim.hit("k")
    (key,) = lim.redis_keys("k")
    assert 4 * 360_000 - 1000 < r.pttl(key) <= 4 * 360_000


# --------------------------------------------------------------------------------------------
# (f) Redis Cluster


def cluster_ports(url: str) -> list[int]:
    return [int(hp.rsplit(":", 1)[1]) for hp in url.removeprefix("redis+cluster://").split(",")]


@asyncio_test
async def test_cluster_tiers_many_keys_exact(redis_cluster_url: str, redis_prefix: str) -> None:
    """On a 3-node Cluster a multi-tier limiter (one algorithm with two keys) works for keys in
    slots of every node, each key exactly at its limit: all of a key's Redis keys share its hash
    tag, so one script call touches one slot."""
    lim = RedisLimiter(
        [
            Limit("5/minute", "sliding_window_log"),
            Limit("7/hour", "gcra"),
            Limit("6/hour", "token_bucket"),
        ],
        store=redis_cluster_url,
        key_prefix=redis_prefix,
        **PATIENT,
    )
    keys = [f"user{i}" for i in range(60)]

    async def per_key(key: str) -> int:
        ds = await asyncio.gather(*(lim.ahit(key) for _ in range(8)))
        return sum(d.allowed for d in ds)

    counts = await asyncio.gather(*(per_key(k) for k in keys))
    assert counts == [5] * len(keys), (counts, lim.stats())
    sync = [lim.hit("sync-user").allowed for _ in range(7)]
    assert sync == [True] * 5 + [False] * 2
    assert lim.stats()["errors"] == 0

    ports = cluster_ports(redis_cluster_url)
    nodes = [redis.Redis(port=p, decode_responses=True) for p in ports]
    try:
        for key in keys[:5]:
            slots = {nodes[0].cluster("KEYSLOT", k) for k in lim.redis_keys(key)}
            assert len(slots) == 1
        per_node = [len(list(n.scan_iter(match=redis_prefix + "*"))) for n in nodes]
        assert all(c > 0 for c in per_node), per_node
        assert sum(per_node) == 4 * (len(keys) + 1)
    finally:
        for n in nodes:
            n.close()


@asyncio_test
async def test_cluster_concurrent_one_key_exact(redis_cluster_url: str, redis_prefix: str) -> None:
    lim = RedisLimiter("50/hour", store=redis_cluster_url, key_prefix=redis_prefix, **PATIENT)

    async def one() -> int:
        return sum([(await lim.ahit("hot")).allowed for _ in range(4)])

    assert sum(await asyncio.gather(*(one() for _ in range(64)))) == 50
    assert await lim.areset("hot") is True
    assert (await lim.ahit("hot")).remaining == 49


# --------------------------------------------------------------------------------------------
# (g) Bad input


@pytest.mark.parametrize(
    "url",
    [
        "http://app:s3cret-pw@127.0.0.1:6379/0",
        "redis://app:s3cret-pw@[::1/0",
        "redis://app:s3cret-pw@127.0.0.1:notaport/0",
        "redis+cluster://app:s3cret-pw@",
        "redis+sentinel://app:s3cret-pw@127.0.0.1:26379/svc/notadb",
        "",
        "127.0.0.1:6379",
    ],
)
def test_bad_url_is_value_error_without_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="store") as e:
        RedisLimiter("5/minute", store=url)
    assert "s3cret" not in str(e.value)


def test_bad_options(redis_url: str) -> None:
    with pytest.raises(ValueError, match="on_error"):
        RedisLimiter("5/minute", store=redis_url, on_error="ignore")
    for prefix in ("a{b", "a}b", "{x}"):
        with pytest.raises(ValueError, match="key_prefix"):
            RedisLimiter("5/minute", store=redis_url, key_prefix=prefix)
    with pytest.raises(ValueError, match="command_timeout"):
        RedisLimiter("5/minute", store=redis_url, command_timeout=0)
    with pytest.raises(ValueError, match="connect_timeout"):
        RedisLimiter("5/minute", store=redis_url, connect_timeout=float("nan"))
    with pytest.raises(ValueError, match="breaker_failures"):
        RedisLimiter("5/minute", store=redis_url, breaker_failures=0)
    with pytest.raises(ValueError, match="algorithm"):
        RedisLimiter("5/minute", store=redis_url, algorithm="nope")
    with pytest.raises(ValueError):
        RedisLimiter("five per minute", store=redis_url)


def test_too_fine_limits_are_refused(redis_url: str) -> None:
    """Limits whose µs arithmetic would pass 2^53 (exact in a Lua double) are refused."""
    with pytest.raises(ValueError, match="2\\^53"):
        RedisLimiter("1000000/day", store=redis_url, algorithm="sliding_window_counter")
    # The same limit is fine in memory, and a coarser one in Redis.
    Limiter("1000000/day", algorithm="sliding_window_counter")
    RedisLimiter("1000/day", store=redis_url, algorithm="sliding_window_counter")


@asyncio_test
async def test_bad_cost(redis_url: str, redis_prefix: str) -> None:
    lim = RedisLimiter("5/minute; 3/second", store=redis_url, key_prefix=redis_prefix)
    for cost in (0, -1, 4, 2**40):
        with pytest.raises(ValueError, match="cost"):
            lim.hit("k", cost)
        with pytest.raises(ValueError, match="cost"):
            lim.test("k", cost)
        with pytest.raises(ValueError, match="cost"):
            await lim.ahit("k", cost)
        with pytest.raises(ValueError, match="cost"):
            await lim.aallow("k", cost)
    assert lim.stats()["decisions"] == 0
    assert lim.hit("k", 3).remaining == 0


# --------------------------------------------------------------------------------------------
# (h) NOSCRIPT recovery


@asyncio_test
async def test_script_flush_is_recovered(redis_url: str, redis_prefix: str, r: redis.Redis) -> None:
    lim = RedisLimiter("4/minute", store=redis_url, key_prefix=redis_prefix)
    assert lim.hit("k").remaining == 3
    r.script_flush()
    assert lim.hit("k").remaining == 2
    r.script_flush()
    assert (await lim.ahit("k")).remaining == 1
    r.script_flush()
    ds = await asyncio.gather(*(lim.ahit(f"m{i}") for i in range(20)))
    assert all(d.allowed for d in ds)
    stats = lim.stats()
    assert stats["errors"] == 0 and stats["fallbacks"] == 0


# --------------------------------------------------------------------------------------------
# (i) Failures are logged once per interval


def test_outage_logged_once_per_interval(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    caplog.set_level(logging.WARNING, logger="seawall.redis")
    lim = RedisLimiter(
        "5/minute",
        store=dead,
        key_prefix=redis_prefix,
        log_interval=3600,
        breaker_failures=1_000_000,  # every call really tries Redis
        connect_timeout=0.05,
    )
    for _ in range(40):
        assert lim.hit("k").allowed
    asyncio.run(_many(lim, 40))
    assert lim.stats()["errors"] == 80
    records = [rec for rec in caplog.records if rec.name == "seawall.redis"]
    assert len(records) == 1, [rec.getMessage() for rec in records]
    assert records[0].levelno == logging.WARNING
    assert "127.0.0.1" in records[0].getMessage()

    # With a short interval, one more per interval.
    caplog.clear()
    lim = RedisLimiter(
        "5/minute",
        store=dead,
        key_prefix=redis_prefix,
        log_interval=0.3,
        breaker_failures=1_000_000,
        connect_timeout=0.05,
    )
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        lim.hit("k")
    n = len([rec for rec in caplog.records if rec.name == "seawall.redis"])
    assert 2 <= n <= 5, n


async def _many(lim: RedisLimiter, n: int) -> None:
    for _ in range(n):
        assert (await lim.ahit("k")).allowed


def test_password_never_logged(redis_prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    dead = f"redis://app:s3cret-pw@127.0.0.1:{free_port()}/0"
    caplog.set_level(logging.WARNING, logger="seawall.redis")
    lim = RedisLimiter("5/minute", store=dead, key_prefix=redis_prefix, connect_timeout=0.05)
    lim.hit("k")
    assert "s3cret" not in lim.store
    assert "s3cret" not in repr(lim)
    assert caplog.records
    assert all("s3cret" not in rec.getMessage() for rec in caplog.records)


# --------------------------------------------------------------------------------------------
# (j) Limiter(store=...) and the properties


def test_limiter_with_store_is_a_redis_limiter(redis_url: str, redis_prefix: str) -> None:
    lim = Limiter(
        "3/minute",
        store=redis_url,
        algorithm="fixed_window",
        max_keys=10,
        key_prefix=redis_prefix,
        on_error="local",
    )
    assert isinstance(lim, RedisLimiter)
    assert lim.on_error == "local"
    assert lim.key_prefix == redis_prefix
    assert lim.store == redis_url
    assert lim.limits == [Limit("3/minute", "fixed_window")]
    assert [lim.allow("k") for _ in range(4)] == [True, True, True, False]
    assert isinstance(Limiter("3/minute", store="memory://"), Limiter)
    assert not isinstance(Limiter("3/minute"), RedisLimiter)
    assert isinstance(seawall.RedisLimiter, type)


def test_limiter_without_store_rejects_redis_options() -> None:
    for options in ({"key_prefix": "x:"}, {"on_error": "deny"}, {"command_timeout": 1.0}):
        with pytest.raises(TypeError):
            Limiter("3/minute", **options)
    with pytest.raises(TypeError):
        Limiter("3/minute", store=6379)  # type: ignore[call-overload]


def test_stats_shape(redis_url: str, redis_prefix: str) -> None:
    lim = RedisLimiter("1/minute", store=redis_url, key_prefix=redis_prefix)
    lim.hit("k")
    lim.hit("k")
    s = lim.stats()
    round_trips = s.pop("round_trip_seconds")
    assert round_trips["count"] == s["round_trips"] == s["round_trip_decisions"] == 2
    assert s == {
        "round_trips": 2,
        "round_trip_decisions": 2,
        "decisions": 2,
        "limited": 1,
        "errors": 0,
        "fallbacks": 0,
        "breaker": "closed",
        "breaker_retry_after": 0.0,
    }


# --------------------------------------------------------------------------------------------
# Passwords and ACL users, unix sockets, Sentinel


def test_password_and_acl_user(redis_prefix: str) -> None:
    with RedisServer(extra_args=["--requirepass", "s3cret-pw"]) as server:
        server_cmd = redis.Redis(port=server.port, password="s3cret-pw", decode_responses=True)
        server_cmd.acl_setuser(
            "app", enabled=True, passwords=["+app-pw"], keys=["*"], commands=["+@all"]
        )
        server_cmd.close()
        good = [
            f"redis://:s3cret-pw@127.0.0.1:{server.port}/0",
            f"redis://app:app-pw@127.0.0.1:{server.port}/0",
        ]
        for url in good:
            lim = RedisLimiter("2/minute", store=url, key_prefix=redis_prefix, **PATIENT)
            assert [lim.allow("k" + url[8:11]) for _ in range(3)] == [True, True, False]
            assert lim.stats()["errors"] == 0
            assert "pw" not in lim.store
        wrong = RedisLimiter(
            "2/minute",
            store=f"redis://app:wrong@127.0.0.1:{server.port}/0",
            key_prefix=redis_prefix,
            on_error="deny",
        )
        # A configuration error, not an outage (tests/test_redis_faults.py).
        with pytest.raises(PermissionError, match="credentials"):
            wrong.hit("k")
        assert wrong.stats()["errors"] == 0


def test_unix_socket(redis_prefix: str, tmp_path: Any) -> None:
    sock = tmp_path / "redis.sock"
    with RedisServer(extra_args=["--unixsocket", str(sock), "--unixsocketperm", "700"]):
        lim = RedisLimiter("2/minute", store=f"unix://{sock}", key_prefix=redis_prefix)
        assert [lim.allow("k") for _ in range(3)] == [True, True, False]
        assert lim.stats()["errors"] == 0


def test_sentinel(redis_prefix: str) -> None:
    """A master found through a real Sentinel (``redis-server --sentinel``)."""
    with RedisServer() as master:
        port = free_port()
        sentinel = RedisServer(port=port)
        conf = sentinel.dir / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {sentinel.dir}\n"
            f"sentinel monitor svc 127.0.0.1 {master.port} 1\n"
        )
        sentinel.argv = lambda: [sentinel.binary, str(conf), "--sentinel"]  # type: ignore[method-assign]
        with sentinel:
            url = f"redis+sentinel://127.0.0.1:{port}/svc/0"
            lim = RedisLimiter("2/minute", store=url, key_prefix=redis_prefix, **PATIENT)
            assert [lim.allow("k") for _ in range(3)] == [True, True, False]
            assert lim.stats()["errors"] == 0
            assert master.command("EXISTS", *lim.redis_keys("k")) == 1


def test_sliding_log_after_the_clock_went_back_same_as_memory(
    redis_url: str, redis_prefix: str
) -> None:
    """A hit, the clock back 2 µs, a hit: both are logged at the later time (a clock that goes
    back grants nothing), so the key is fresh again a window after that time, in memory and in
    Redis alike; and a spent log stays spent."""
    base_us = 1_000_000_000_000
    clock = ManualClock(start=base_us * US)
    mem = Limiter("2/second", algorithm="sliding_window_log", clock=clock)
    red = RedisLimiter(
        "2/second",
        store=redis_url,
        algorithm="sliding_window_log",
        key_prefix=redis_prefix,
        clock=clock,
    )
    steps = [(0, 1, "hit"), (-2, 1, "hit"), (0, 1, "test"), (999_999, 1, "hit"), (1, 1, "hit")]
    now = [base_us]

    def move(step: int) -> None:
        now[0] += step
        clock.set(now[0] * US)

    run_both(mem, red, clock, steps, 2, move=move)


def test_sliding_log_test_changes_nothing_same_as_memory(redis_url: str, redis_prefix: str) -> None:
    """``test`` changes nothing: an entry that has expired at the time of a ``test`` is still
    there if the clock then steps back (hypothesis found Redis popping it)."""
    base_us = 1_000_000_000_000
    clock = ManualClock(start=base_us * US)
    mem = Limiter("1/second", algorithm="sliding_window_log", clock=clock)
    red = RedisLimiter(
        "1/second",
        store=redis_url,
        algorithm="sliding_window_log",
        key_prefix=redis_prefix,
        clock=clock,
    )
    now = [base_us]

    def move(step: int) -> None:
        now[0] += step
        clock.set(now[0] * US)

    run_both(mem, red, clock, [(0, 1, "hit"), (1_000_000, 1, "test"), (-1, 1, "hit")], 1, move=move)


@pytest.mark.parametrize("start", [0.0, 1_000.0, START])
def test_local_fallback_with_a_manual_clock_admits_the_whole_limit(start: float) -> None:
    """With Redis unreachable and ``on_error="local"``, the in-memory fallback decides on the
    caller's clock: a manual clock stands still while Redis is asked, so the real time a failed
    call took must not move it (it did: the first call was decided at start + its real duration,
    the next one, refused by the open breaker, at start, which GCRA saw as time going back)."""
    clock = ManualClock(start)
    lim = RedisLimiter(
        "2/minute",
        store="redis://127.0.0.1:1/0",  # nothing listens on port 1
        on_error="local",
        connect_timeout=0.05,
        command_timeout=0.05,
        clock=clock,
    )
    assert [lim.hit("k").allowed for _ in range(3)] == [True, True, False]
    assert lim.stats()["fallbacks"] == 3
    clock.advance(30)
    assert lim.hit("k").allowed
