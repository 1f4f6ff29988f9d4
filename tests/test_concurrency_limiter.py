"""seawall.ConcurrencyLimiter and Permit: permits, outcomes, the queue, partitions, bad input.
On the manual clock; nothing sleeps."""

from __future__ import annotations

import asyncio
import threading

import pytest

from seawall import (
    AIMDLimit,
    ConcurrencyLimiter,
    GradientLimit,
    Overloaded,
    Permit,
    SeawallError,
)
from seawall.testing import ManualClock


def test_fixed_limit_permits_and_counts() -> None:
    limiter = ConcurrencyLimiter(3, clock=ManualClock())
    permits = [limiter.try_acquire() for _ in range(5)]
    assert [p is not None for p in permits] == [True, True, True, False, False]
    assert limiter.in_flight == 3 and limiter.limit == 3
    first = permits[0]
    assert first is not None
    first.success()
    first.dropped()  # a second report does nothing
    assert first.done and limiter.in_flight == 2
    stats = limiter.stats()
    assert (stats["acquired"], stats["rejected"], stats["successes"], stats["dropped"]) == (
        3,
        2,
        1,
        0,
    )
    assert stats["algorithm"] == "fixed" and stats["peak_in_flight"] == 3


def test_rtt_is_measured_on_the_limiters_clock() -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter(GradientLimit(4, min_limit=4), clock=clock)
    permit = limiter.try_acquire()
    assert permit is not None
    clock.advance(0.25)
    permit.success()
    assert limiter.stats()["last_rtt"] == 0.25
    other = limiter.try_acquire()
    assert other is not None
    other.success(rtt=0.5)  # an explicit RTT wins
    assert limiter.stats()["last_rtt"] == 0.5


def test_one_settings_object_serves_many_limiters() -> None:
    settings = AIMDLimit(10)
    a = ConcurrencyLimiter(settings, clock=ManualClock())
    b = ConcurrencyLimiter(settings, clock=ManualClock())
    permit = a.try_acquire()
    assert permit is not None
    permit.dropped()
    assert (a.limit, b.limit) == (9, 10)


def test_permit_as_context_manager_classifies_outcomes() -> None:
    limiter = ConcurrencyLimiter(AIMDLimit(10), clock=ManualClock())

    def run(exc: BaseException | None) -> None:
        permit = limiter.try_acquire()
        assert permit is not None
        try:
            with permit:
                if exc is not None:
                    raise exc
        except BaseException as e:
            assert e is exc

    run(None)
    run(TimeoutError())
    run(Overloaded("limit", name="downstream"))
    run(ValueError("bad input"))
    stats = limiter.stats()
    # One decrease for the two losses: the second was admitted before the first cut.
    assert (stats["successes"], stats["dropped"], stats["ignored"]) == (1, 2, 1)
    assert limiter.in_flight == 0


def test_async_with_permit_ignores_cancellation() -> None:
    limiter = ConcurrencyLimiter(5, clock=ManualClock())

    async def body(started: asyncio.Event) -> None:
        async with await limiter.acquire():
            started.set()
            await asyncio.Event().wait()

    async def scenario() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(body(started))
        await started.wait()
        assert limiter.in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert limiter.in_flight == 0 and limiter.stats()["ignored"] == 1


def test_refusals_say_why() -> None:
    async def scenario() -> None:
        no_queue = ConcurrencyLimiter(1, clock=ManualClock())
        held = await no_queue.acquire()
        with pytest.raises(Overloaded) as refused:
            await no_queue.acquire()
        assert refused.value.reason == "limit" and isinstance(refused.value, SeawallError)
        assert str(refused.value) == "concurrency limiter: overloaded (limit)"
        held.success()
        queue = ConcurrencyLimiter(1, max_queue=1, clock=ManualClock())
        held = await queue.acquire()
        waiter = asyncio.create_task(queue.acquire())
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as full:
            await queue.acquire()
        assert full.value.reason == "queue_full"
        held.success()
        (await waiter).success()

    asyncio.run(scenario())


def test_queue_is_first_in_first_out_and_loses_nobody() -> None:
    limiter = ConcurrencyLimiter(4, max_queue=1000, clock=ManualClock())
    order: list[int] = []

    async def caller(i: int) -> None:
        async with await limiter.acquire():
            order.append(i)
            await asyncio.sleep(0)

    async def scenario() -> list[BaseException | None]:
        tasks = [asyncio.create_task(caller(i)) for i in range(1004)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(scenario())
    refused = sum(isinstance(r, Overloaded) for r in results)
    assert refused == 0 and sorted(order) == list(range(1004))
    assert order[4:] == sorted(order[4:])  # waiters served in arrival order
    stats = limiter.stats()
    assert stats["acquired"] == 1004 and stats["successes"] == 1004 and stats["in_flight"] == 0


def test_queue_timeout_on_the_manual_clock() -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter(1, max_queue=5, queue_timeout=1.0, clock=clock)

    async def scenario() -> None:
        held = await limiter.acquire()
        early = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        clock.advance(0.6)
        late = asyncio.create_task(limiter.acquire(timeout=2.0))  # capped at queue_timeout
        await asyncio.sleep(0)
        clock.advance(0.6)  # early waited 1.2 s, late 0.6 s
        held.success()  # the next report expires early and hands the permit to late
        with pytest.raises(Overloaded) as timed_out:
            await early
        assert timed_out.value.reason == "timeout"
        (await late).success()

    asyncio.run(scenario())
    stats = limiter.stats()
    assert (stats["timed_out"], stats["acquired"], stats["in_flight"]) == (1, 2, 0)


def test_cancelled_waiter_leaves_the_queue() -> None:
    limiter = ConcurrencyLimiter(1, max_queue=2, clock=ManualClock())

    async def scenario() -> None:
        held = await limiter.acquire()
        gone = asyncio.create_task(limiter.acquire())
        stays = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        assert limiter.queued == 2
        gone.cancel()
        await asyncio.sleep(0)
        assert limiter.queued == 1
        held.success()
        (await stays).success()

    asyncio.run(scenario())
    assert limiter.stats()["cancelled"] == 1 and limiter.in_flight == 0


def test_waiter_cancelled_after_its_permit_was_granted_gives_it_back() -> None:
    limiter = ConcurrencyLimiter(1, max_queue=1, clock=ManualClock())

    async def scenario() -> None:
        held = await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        held.success()  # granted to the waiter, which has not run yet
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(scenario())
    assert limiter.in_flight == 0 and limiter.queued == 0


def test_partitions_reserve_capacity() -> None:
    limiter = ConcurrencyLimiter(
        10, partitions={"critical": 0.7, "batch": 0.2}, clock=ManualClock()
    )
    batch = [limiter.try_acquire("batch") for _ in range(10)]
    assert sum(p is not None for p in batch) == 3  # its 2, and the 1 nobody is owed
    assert limiter.try_acquire() is None  # no partition: the rest is critical's
    critical = [limiter.try_acquire("critical") for _ in range(10)]
    assert sum(p is not None for p in critical) == 7
    assert limiter.in_flight == 10
    parts = limiter.stats()["partitions"]
    assert parts["critical"] == {"share": 0.7, "guaranteed": 7, "in_flight": 7}
    assert parts["batch"]["in_flight"] == 3
    with pytest.raises(ValueError, match='partition "bulk" is not one'):
        limiter.try_acquire("bulk")


def test_threads_never_exceed_the_limit() -> None:
    limiter = ConcurrencyLimiter(AIMDLimit(8, max_limit=8), clock=ManualClock())
    peak = [0]
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(2_000):
            permit = limiter.try_acquire()
            if permit is not None:
                with lock:
                    peak[0] = max(peak[0], limiter.in_flight)
                permit.success()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] <= 8 and limiter.stats()["peak_in_flight"] <= 8 and limiter.in_flight == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"limit": 0}, ValueError, "limit must be at least 1"),
        ({"limit": "ten"}, TypeError, "limit must be a GradientLimit"),
        ({"limit": 2**80}, ValueError, "limit must be an int from 1"),
        ({"max_queue": -1}, ValueError, "max_queue must be an int from 0"),
        ({"max_queue": 1.5}, TypeError, "max_queue must be an int"),
        ({"queue_timeout": 0}, ValueError, "queue_timeout must be"),
        ({"queue_timeout": "1"}, TypeError, "queue_timeout must be a number"),
        ({"partitions": {"a": 0.7, "b": 0.7}}, ValueError, "add up to at most 1"),
        ({"partitions": {"a": -0.1}}, ValueError, "from 0 to 1"),
        ({"partitions": {1: 0.5}}, TypeError, "names must be str"),
        ({"partitions": ["a"]}, TypeError, "partitions must be a mapping"),
        ({"clock": 5}, TypeError, "clock must be"),
    ],
)
def test_bad_limiter_arguments(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ConcurrencyLimiter(**kwargs)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: AIMDLimit(0), ValueError, "initial must be at least 1"),
        (lambda: AIMDLimit(5, min_limit=0), ValueError, "min_limit must be at least 1"),
        (lambda: AIMDLimit(1, min_limit=5, max_limit=4), ValueError, "max_limit must be at least"),
        (lambda: AIMDLimit(backoff_ratio=1.0), ValueError, "backoff_ratio must be from 0.5"),
        (lambda: AIMDLimit(backoff_ratio=0.4), ValueError, "backoff_ratio"),
        (lambda: AIMDLimit(timeout=0), ValueError, "timeout must be"),
        (lambda: AIMDLimit(increase_by=True), TypeError, "increase_by must be an int"),
        (lambda: GradientLimit(smoothing=0), ValueError, "smoothing must be above 0"),
        (lambda: GradientLimit(smoothing=1.5), ValueError, "smoothing"),
        (lambda: GradientLimit(rtt_tolerance=0.9), ValueError, "rtt_tolerance must be"),
        (lambda: GradientLimit(rtt_tolerance=float("inf")), ValueError, "rtt_tolerance"),
        (lambda: GradientLimit(long_window=0), ValueError, "long_window must be at least 1"),
        (lambda: GradientLimit(queue_size=0), ValueError, "queue_size must be at least 1"),
        (lambda: GradientLimit(300), ValueError, "initial must be from min_limit"),
        (lambda: GradientLimit("20"), TypeError, "initial must be an int"),  # type: ignore[arg-type]
    ],
)
def test_bad_limit_settings(make: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make()  # type: ignore[operator]


def test_settings_read_back() -> None:
    g = GradientLimit(10, min_limit=2, max_limit=50, smoothing=0.5, rtt_tolerance=2.0)
    assert (g.initial, g.min_limit, g.max_limit, g.smoothing, g.rtt_tolerance) == (
        10,
        2,
        50,
        0.5,
        2.0,
    )
    assert (g.long_window, g.queue_size) == (600, 4)
    a = AIMDLimit(5, timeout=0.5, increase_by=2)
    assert (a.initial, a.timeout, a.increase_by, a.backoff_ratio) == (5, 0.5, 2, 0.9)
    assert "GradientLimit(10" in repr(g) and "AIMDLimit(5" in repr(a)
    assert isinstance(ConcurrencyLimiter(clock=ManualClock()).try_acquire(), Permit)


def test_waiter_on_another_threads_loop_is_handed_its_permit() -> None:
    limiter = ConcurrencyLimiter(1, max_queue=1, clock=ManualClock())
    held = limiter.try_acquire()
    assert held is not None
    queued = threading.Event()
    got: list[Permit] = []

    def other_thread() -> None:
        async def wait() -> None:
            task = asyncio.ensure_future(limiter.acquire())
            await asyncio.sleep(0)
            queued.set()
            permit = await task
            got.append(permit)
            permit.success()

        asyncio.run(wait())

    thread = threading.Thread(target=other_thread)
    thread.start()
    assert queued.wait(10)
    held.success()  # from this thread, which runs no event loop
    thread.join(10)
    assert len(got) == 1 and limiter.in_flight == 0 and limiter.queued == 0


def test_backpressure_takes_an_adaptive_limit() -> None:
    from seawall import Backpressure

    clock = ManualClock()
    bp = Backpressure(max_concurrency=AIMDLimit(4), max_queue=10, clock=clock)
    assert bp.limit == 4 and Backpressure(max_concurrency=GradientLimit(7)).limit == 7

    async def timed_out() -> None:
        raise TimeoutError

    async def bad_input() -> None:
        raise ValueError("not the dependency's fault")

    async def held(gate: asyncio.Event) -> None:
        await gate.wait()

    async def scenario() -> None:
        with pytest.raises(TimeoutError):
            await bp.run(timed_out)  # a loss: 4 * 0.9
        assert bp.limit == 3
        with pytest.raises(ValueError):
            await bp.run(bad_input)  # an ordinary failure leaves it
        assert bp.limit == 3
        # Three round trips at full use: + 1 each (AIMD adds increase_by per round trip).
        for _ in range(3):
            gate = asyncio.Event()
            running = [asyncio.create_task(bp.run(held, gate)) for _ in range(bp.limit)]
            await asyncio.sleep(0)
            assert bp.in_flight == len(running)
            clock.advance(0.01)
            gate.set()
            await asyncio.gather(*running)
        assert bp.limit == 5
        async with bp.slot():
            pass

    asyncio.run(scenario())
    stats = bp.stats()
    assert stats["failed"] == 2 and stats["limit"] == 5


def test_backpressure_rejects_a_bad_max_concurrency() -> None:
    from seawall import Backpressure

    with pytest.raises(TypeError, match="max_concurrency"):
        Backpressure(max_concurrency="many")  # type: ignore[arg-type]
