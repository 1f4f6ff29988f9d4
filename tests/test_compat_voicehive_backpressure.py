"""Seed 003's backpressure_handler (3.4, B14) on seawall.Backpressure: flow control, memory held by
running *and* waiting items, each strategy with exact counts under 1,000 concurrent submitters,
shutdown, the warning, the decorator. Time is a ManualClock; nothing sleeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from seawall import Overloaded
from seawall.compat.voicehive.backpressure_handler import (
    BackpressureConfig,
    BackpressureDroppedError,
    BackpressureHandler,
    BackpressureManager,
    BackpressureStats,
    BackpressureStrategy,
    with_backpressure,
)
from seawall.testing import ManualClock

pytestmark = pytest.mark.anyio
S = BackpressureStrategy
KB100 = b"\0" * 100_000  # 10 of these fit in 1 MiB, 11 do not


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def handler(strategy: S, clock: ManualClock | None = None, **kw: Any) -> BackpressureHandler:
    kw.setdefault("max_concurrency", 4)
    kw.setdefault("max_queue_size", 50)
    kw.setdefault("max_memory_mb", 1)
    return BackpressureHandler("h", BackpressureConfig(strategy=strategy, **kw), clock=clock)


def gate() -> tuple[asyncio.Event, Callable[..., Awaitable[int]]]:
    release = asyncio.Event()

    async def work(i: int, payload: bytes = b"") -> int:
        await release.wait()
        return i

    return release, work


def ended(s: BackpressureStats) -> int:
    return s.total_processed + s.total_failed + s.total_dropped + s.total_blocked


async def submit_all(h: BackpressureHandler, work: Any, n: int, payload: bytes) -> list[Any]:
    return list(await asyncio.gather(*(h.submit_task(str(i), work, i, payload) for i in range(n))))


async def outcomes(tasks: list[Any]) -> list[Any]:
    return list(await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True))


async def test_drop_newest_counts_running_items_in_memory_held() -> None:
    h = handler(S.DROP_NEWEST)
    release, work = gate()
    tasks = await submit_all(h, work, 1000, KB100)
    s = await h.get_stats()
    # 4 run and 6 wait: 10 x 100 kB held. seawall's own byte budget would have let 10 *wait*
    # besides the 4 running; B14 counts the running ones too.
    assert (s.in_flight, s.current_queue_size) == (4, 6)
    assert s.current_memory_mb == pytest.approx(10 * 100_000 / 2**20)
    assert sum(t is None for t in tasks) == 990 == s.total_dropped
    release.set()
    assert await outcomes(tasks) == list(range(10))
    s = await h.get_stats()
    assert (s.total_processed, s.total_dropped, s.current_memory_mb, s.in_flight) == (10, 990, 0, 0)
    assert ended(s) == 1000


async def test_drop_oldest_fails_the_oldest_waiting_items_until_the_new_one_fits() -> None:
    h = handler(S.DROP_OLDEST)
    release, work = gate()
    tasks = await submit_all(h, work, 1000, KB100)
    assert all(t is not None for t in tasks)  # each new item fits once older ones are dropped
    s = await h.get_stats()
    assert (s.in_flight, s.current_queue_size, s.total_dropped) == (4, 6, 990)
    release.set()
    results = await outcomes(tasks)
    done = [r for r in results if isinstance(r, int)]
    dropped = [r for r in results if isinstance(r, BackpressureDroppedError)]
    assert done[:4] == [0, 1, 2, 3]  # running items are never dropped
    assert len(done) == 10 and len(dropped) == 990 and len(results) == 1000
    assert all(isinstance(e, Overloaded) and e.name == "h" for e in dropped)
    s = await h.get_stats()
    assert (s.total_processed, s.total_dropped) == (10, 990) and ended(s) == 1000


async def test_drop_oldest_by_count_is_the_native_displacement() -> None:
    h = handler(S.DROP_OLDEST, max_concurrency=2, max_queue_size=3, max_memory_mb=100)
    release, work = gate()
    tasks = await submit_all(h, work, 10, b"")
    release.set()
    results = await outcomes(tasks)
    assert [r for r in results if isinstance(r, int)] == [0, 1, 7, 8, 9]
    assert sum(isinstance(r, BackpressureDroppedError) for r in results) == 5
    s = await h.get_stats()
    assert (s.total_processed, s.total_dropped) == (5, 5)


async def test_block_waits_for_room_then_counts_blocked_on_timeout() -> None:
    clock = ManualClock(1000.0)
    h = handler(S.BLOCK, clock, max_concurrency=2, max_queue_size=2, timeout_seconds=5)
    release, work = gate()
    submitters = [asyncio.create_task(h.submit_task(str(i), work, i)) for i in range(1000)]
    for _ in range(3):
        await asyncio.sleep(0)  # every submitter reaches its decision
    assert sum(t.done() for t in submitters) == 4
    clock.advance(4.9)
    assert h.check_timeouts() == 0
    clock.advance(0.1)
    assert h.check_timeouts() == 996
    tasks = await asyncio.gather(*submitters)
    assert sum(t is None for t in tasks) == 996
    release.set()
    assert await outcomes(tasks) == [0, 1, 2, 3]
    s = await h.get_stats()
    assert (s.total_processed, s.total_blocked, s.total_dropped) == (4, 996, 0)
    assert ended(s) == 1000


async def test_block_admits_when_room_appears_and_counts_it_processed() -> None:
    h = handler(S.BLOCK, max_concurrency=1, max_queue_size=1)
    release, work = gate()
    first = await h.submit_task("a", work, 1)
    second = await h.submit_task("b", work, 2)
    third = asyncio.create_task(h.submit_task("c", work, 3))
    await asyncio.sleep(0)
    assert not third.done()
    release.set()
    late = await third
    assert late is not None and first is not None and second is not None
    assert list(await asyncio.gather(first, second, late)) == [1, 2, 3]
    s = await h.get_stats()
    assert (s.total_processed, s.total_blocked) == (3, 0)


async def test_block_waits_on_memory_held_by_running_items_with_slots_free() -> None:
    h = handler(S.BLOCK, max_concurrency=4, max_queue_size=10, max_memory_mb=1)
    release, work = gate()
    big = b"\0" * 400_000
    a = await h.submit_task("a", work, 1, big)
    b = await h.submit_task("b", work, 2, big)
    c = asyncio.create_task(h.submit_task("c", work, 3, big))
    await asyncio.sleep(0)
    s = await h.get_stats()
    assert (s.in_flight, s.current_queue_size) == (2, 0) and not c.done()
    release.set()
    late = await c
    assert a is not None and b is not None and late is not None
    assert list(await asyncio.gather(a, b, late)) == [1, 2, 3]


async def test_an_item_larger_than_the_bound_is_refused_at_once() -> None:
    _, work = gate()
    huge = b"\0" * (2 * 2**20)
    assert await handler(S.DROP_NEWEST).submit_task("x", work, 1, huge) is None
    blocking = handler(S.BLOCK)
    assert await blocking.submit_task("x", work, 1, huge) is None
    assert (await blocking.get_stats()).total_blocked == 1


async def test_adaptive_blocks_below_the_threshold_and_drops_oldest_above() -> None:
    clock = ManualClock(0.0)
    h = handler(
        S.ADAPTIVE, clock, max_concurrency=1, max_queue_size=2, max_memory_mb=1, timeout_seconds=1
    )
    release, work = gate()
    tasks = [await h.submit_task(str(i), work, i, b"\0" * 1000) for i in range(3)]
    blocked = asyncio.create_task(h.submit_task("3", work, 3, b"\0" * 1000))
    await asyncio.sleep(0)
    assert not blocked.done()  # queue full by count, little memory: BLOCK
    clock.advance(1)
    h.check_timeouts()
    assert await blocked is None
    heavy = await h.submit_task("4", work, 4, b"\0" * 1_047_000)  # passes 1 MiB: drop oldest
    assert heavy is not None
    release.set()
    results = await outcomes([*tasks, heavy])
    assert results[0] == 0 and results[3] == 4
    assert all(isinstance(r, BackpressureDroppedError) for r in results[1:3])
    s = await h.get_stats()
    assert (s.total_processed, s.total_dropped, s.total_blocked) == (2, 2, 1) and ended(s) == 5


async def test_failures_results_and_processing_time() -> None:
    clock = ManualClock(0.0)
    h = handler(S.DROP_NEWEST, clock)
    step = asyncio.Event()

    async def slow() -> str:
        await step.wait()
        return "ok"

    async def broken() -> None:
        raise KeyError("boom")

    ok = await h.submit_task("same-id", slow)
    bad = await h.submit_task("same-id", broken)  # task ids need not be unique
    assert ok is not None and bad is not None
    await asyncio.sleep(0)
    clock.advance(2.0)
    step.set()
    assert await ok == "ok"
    with pytest.raises(KeyError):
        await bad
    s = await h.get_stats()
    assert (s.total_processed, s.total_failed) == (1, 1)
    assert s.average_processing_time == pytest.approx(2.0)


async def test_the_slot_is_taken_inside_submit_task() -> None:
    h = handler(S.BLOCK)
    release, work = gate()
    task = await h.submit_task("a", work, 1)
    assert (await h.get_stats()).in_flight == 1  # before the loop ran the task
    release.set()
    assert task is not None and await task == 1


async def test_shutdown_cancels_running_fails_waiting_and_ends_blocked() -> None:
    clock = ManualClock(0.0)
    h = handler(S.BLOCK, clock, max_concurrency=1, max_queue_size=1)
    _, work = gate()
    running = await h.submit_task("a", work, 1)
    waiting = await h.submit_task("b", work, 2)
    blocked = asyncio.create_task(h.submit_task("c", work, 3))
    await asyncio.sleep(0)
    await h.shutdown()
    assert await blocked is None
    assert running is not None and waiting is not None
    with pytest.raises(asyncio.CancelledError):
        await running
    with pytest.raises(BackpressureDroppedError):
        await waiting
    assert await h.submit_task("d", work, 4) is None
    s = await h.get_stats()
    assert (s.total_processed, s.total_failed, s.total_dropped, s.total_blocked) == (0, 1, 3, 0)


async def test_one_warning_per_crossing(caplog: pytest.LogCaptureFixture) -> None:
    h = handler(S.DROP_NEWEST, max_concurrency=1, max_queue_size=10, warning_threshold=0.5)
    release, work = gate()
    with caplog.at_level(logging.WARNING, "seawall.compat.voicehive.backpressure"):
        tasks = await submit_all(h, work, 30, b"")
        assert len(caplog.records) == 1
        release.set()
        await outcomes(tasks)
        release.clear()
        tasks = await submit_all(h, work, 30, b"")
        assert len(caplog.records) == 2
        release.set()
        await outcomes(tasks)


async def test_with_backpressure_keeps_one_handler_and_raises_when_refused() -> None:
    release = asyncio.Event()

    @with_backpressure(
        "fn", BackpressureConfig(max_concurrency=1, max_queue_size=1, strategy=S.DROP_NEWEST)
    )
    async def fn(x: int) -> int:
        await release.wait()
        return x * 2

    calls = [asyncio.create_task(fn(i)) for i in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[:2] == [0, 2] and isinstance(results[2], BackpressureDroppedError)
    own: BackpressureHandler = fn.backpressure_handler  # type: ignore[attr-defined]
    assert (own.stats().total_processed, own.stats().total_dropped) == (2, 1)


async def test_with_backpressure_on_a_manager_shows_in_its_stats() -> None:
    manager = BackpressureManager()

    @with_backpressure("tts", manager=manager)
    async def synth(text: str) -> int:
        return len(text)

    assert await synth("hello") == 5
    stats = await manager.get_all_stats()
    assert stats["tts"].total_processed == 1
    assert manager.get_handler("tts") is manager.create_handler("tts")
    await manager.shutdown_all()
    with pytest.raises(TypeError, match="async"):
        with_backpressure("x")(len)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("max_queue_size", 0, ValueError),
        ("max_concurrency", "4", TypeError),
        ("max_memory_mb", 0, ValueError),
        ("timeout_seconds", -1, ValueError),
        ("warning_threshold", 1.5, ValueError),
        ("adaptive_threshold", 0, ValueError),
        ("strategy", "sometimes", ValueError),
        ("size_of", 3, TypeError),
    ],
)
def test_bad_config_names_the_field(field: str, value: Any, error: type[Exception]) -> None:
    config = BackpressureConfig()
    setattr(config, field, value)
    with pytest.raises(error, match=field):
        BackpressureHandler("h", config)


async def test_size_of_estimates_the_bytes() -> None:
    h = handler(S.DROP_NEWEST, size_of=lambda args, kwargs: kwargs["n"])
    _, work = gate()

    async def job(n: int) -> int:
        return n

    assert await h.submit_task("a", job, n=2**20 + 1) is None
    task = await h.submit_task("b", job, n=10)
    assert task is not None and await task == 10
    assert work is not None


async def test_adaptive_drops_oldest_at_the_threshold_even_when_the_item_fits() -> None:
    h = handler(S.ADAPTIVE, max_concurrency=1, max_queue_size=4, adaptive_threshold=0.9)
    release, work = gate()
    tasks = [await h.submit_task(str(i), work, i, b"\0" * 200_000) for i in range(5)]
    assert (await h.get_stats()).current_memory_mb >= 0.9  # 1,000,000 bytes held
    small = await h.submit_task("5", work, 5, b"")  # queue full by count, memory under pressure
    assert small is not None
    release.set()
    results = await outcomes([*tasks, small])
    assert isinstance(results[1], BackpressureDroppedError)  # the oldest waiting one
    assert [r for r in results if isinstance(r, int)] == [0, 2, 3, 4, 5]


async def test_a_caller_cancelling_counts_dropped_while_waiting_and_failed_while_running() -> None:
    h = handler(S.DROP_NEWEST, max_concurrency=1)
    release, work = gate()
    running = await h.submit_task("a", work, 1)
    waiting = await h.submit_task("b", work, 2)
    after = await h.submit_task("c", work, 3)
    assert running is not None and waiting is not None and after is not None
    await asyncio.sleep(0)
    waiting.cancel()
    running.cancel()
    release.set()
    assert await after == 3  # the cancelled ones freed their places
    for task in (running, waiting):
        with pytest.raises(asyncio.CancelledError):
            await task
    s = await h.get_stats()
    assert (s.total_processed, s.total_failed, s.total_dropped) == (1, 1, 1)
    assert (s.in_flight, s.current_queue_size, s.current_memory_mb) == (0, 0, 0)
