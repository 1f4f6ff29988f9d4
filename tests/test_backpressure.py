# This file is longer than 450 lines because it is one suite for one class: each strategy's
# flood, each way a caller can leave (cancelled waiting, running, between its turn and its run,
# timed out, closed) and each shape are separate scenarios, each written out so it reads alone.
"""seawall.Backpressure: every strategy's accounting under 1,000 concurrent submitters (exact
counts, nothing lost), FIFO and LIFO, the byte budget, cancellation of waiting and running callers,
timeouts on a ManualClock, close(), every shape (run, submit, slot, the decorator) and bad
arguments.

Work is held by events the test sets, and timeouts run on a ManualClock: nothing here sleeps.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

import seawall
from seawall import Backpressure, Dropped, Overloaded, SeawallError
from seawall.testing import ManualClock

SUBMITTERS = 1_000
# A guard, not a timing: a scenario that loses a wake-up would otherwise hang the suite.
GUARD = 60.0


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def guarded() -> None:
        await asyncio.wait_for(scenario(), GUARD)

    asyncio.run(guarded())


async def settle() -> None:
    """Lets every ready task take its next step (a few loop iterations, no time passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


def ended(stats: dict[str, Any]) -> int:
    return int(
        stats["completed"]
        + stats["failed"]
        + stats["cancelled"]
        + stats["dropped"]
        + stats["timed_out"]
        + sum(stats["rejected"].values())
    )


async def flood(bp: Backpressure, size: int = 0) -> tuple[Counter[str], list[int]]:
    """1,000 callers of ``bp.run`` at once, their work held until all have been admitted or
    refused; every tenth raises. Returns how each call ended and the order the work ran in."""
    gate = asyncio.Event()
    ran: list[int] = []

    async def work(i: int, payload: bytes) -> int:
        await gate.wait()
        ran.append(i)
        if i % 10 == 0:
            raise ValueError(i)
        return i

    async def submitter(i: int) -> str:
        try:
            assert await bp.run(work, i, b"x" * size) == i
            return "ok"
        except ValueError:
            return "failed"
        except Dropped as e:
            assert e.reason == "dropped"
            return "dropped"
        except Overloaded as e:
            return e.reason

    tasks = [asyncio.create_task(submitter(i)) for i in range(SUBMITTERS)]
    await settle()
    gate.set()
    outcomes = Counter(await asyncio.gather(*tasks))
    return outcomes, ran


def failures(items: range | list[int]) -> int:
    return sum(1 for i in items if i % 10 == 0)


@pytest.mark.parametrize(
    ("strategy", "expected_ran", "refused"),
    [
        # 5 run at once and 50 queue (items 0..54); the other 945 are refused or dropped at once.
        ("reject", list(range(55)), {"queue_full": 945}),
        ("drop_newest", list(range(55)), {"dropped": 945}),
        # The newest always gets in: 5..949 are displaced, the last 50 wait and run.
        ("drop_oldest", [*range(5), *range(950, 1000)], {"dropped": 945}),
        # Without a byte budget there is no memory pressure: adaptive blocks, and everyone runs.
        ("adaptive", list(range(1000)), {}),
        # Nothing is lost: 945 block for room, and everyone runs, in arrival order.
        ("block", list(range(1000)), {}),
    ],
)
def test_every_strategy_accounts_for_every_item(
    strategy: str, expected_ran: list[int], refused: dict[str, int]
) -> None:
    async def scenario() -> None:
        bp = Backpressure("flood", max_concurrency=5, max_queue=50, strategy=strategy)
        outcomes, ran = await flood(bp)
        assert ran == expected_ran
        n_failed = failures(expected_ran)
        assert outcomes == Counter(
            {"ok": len(expected_ran) - n_failed, "failed": n_failed, **refused}
        )
        s = bp.stats()
        assert s["submitted"] == SUBMITTERS == ended(s)
        assert (s["completed"], s["failed"]) == (len(expected_ran) - n_failed, n_failed)
        assert s["admitted"] == len(expected_ran)
        assert s["dropped"] == refused.get("dropped", 0)
        assert s["rejected"]["queue_full"] == refused.get("queue_full", 0)
        assert (s["in_flight"], s["queued"], s["blocked"], s["timed_out"]) == (0, 0, 0, 0)
        assert s["strategy"] == strategy and s["name"] == "flood"

    run(scenario)


@pytest.mark.parametrize(
    ("size", "expected_ran"),
    [
        # 10 bytes each: 50 queued hold 500 bytes, under 0.9 x 1,000, so the rest block; all run.
        (10, list(range(1000))),
        # 30 bytes each: 33 fit (990 bytes, past 900), so every later item displaces the oldest.
        (30, [*range(5), *range(967, 1000)]),
    ],
)
def test_adaptive_blocks_under_the_byte_threshold_and_drops_past_it(
    size: int, expected_ran: list[int]
) -> None:
    async def scenario() -> None:
        bp = Backpressure(
            max_concurrency=5, max_queue=50, max_queue_bytes=1000, strategy="adaptive"
        )
        outcomes, ran = await flood(bp, size)
        assert ran == expected_ran
        lost = SUBMITTERS - len(expected_ran)
        n_failed = failures(expected_ran)
        expected = {"ok": len(expected_ran) - n_failed, "failed": n_failed, "dropped": lost}
        assert outcomes == Counter({k: v for k, v in expected.items() if v})
        s = bp.stats()
        assert s["submitted"] == ended(s) == SUBMITTERS
        assert s["dropped"] == lost

    run(scenario)


@pytest.mark.parametrize(
    ("order", "expected"), [("fifo", [0, 1, 2, 3, 4]), ("lifo", [4, 3, 2, 1, 0])]
)
def test_fifo_starts_the_oldest_and_lifo_the_newest(order: str, expected: list[int]) -> None:
    async def scenario() -> None:
        bp = Backpressure(max_concurrency=1, order=order)
        ran: list[int] = []

        async def work(i: int) -> None:
            ran.append(i)

        hold = asyncio.Event()
        holder = asyncio.create_task(bp.run(hold.wait))
        await settle()
        waiters = [asyncio.create_task(bp.run(work, i)) for i in range(5)]
        await settle()
        assert (bp.in_flight, bp.queued) == (1, 5)
        hold.set()
        await asyncio.gather(holder, *waiters)
        assert ran == expected

    run(scenario)


def test_the_byte_budget_counts_what_callers_declare() -> None:
    async def scenario() -> None:
        bp = Backpressure(max_concurrency=1, max_queue_bytes=10, strategy="reject")
        hold = asyncio.Event()
        # Running items do not count against the budget, whatever their size.
        async with bp.slot(size=1_000):
            first = asyncio.create_task(bp.run(hold.wait))  # 0 bytes, no arguments
            a = asyncio.create_task(_in_slot(bp, 6, hold))
            await settle()
            assert (bp.queued, bp.queued_bytes) == (2, 6)
            with pytest.raises(Overloaded) as refused:
                async with bp.slot(size=5):
                    pass
            assert refused.value.reason == "memory"
            b = asyncio.create_task(_in_slot(bp, 4, hold))
            await settle()
            assert bp.queued_bytes == 10
            # Larger than the whole budget: refused, it could never wait.
            with pytest.raises(Overloaded, match="memory"):
                await bp.run(_echo, b"y" * 11)
        hold.set()
        await asyncio.gather(first, a, b)
        s = bp.stats()
        assert s["rejected"]["memory"] == 2
        assert s["submitted"] == ended(s) == 6

    run(scenario)


async def _in_slot(bp: Backpressure, size: int, hold: asyncio.Event) -> None:
    async with bp.slot(size=size):
        await hold.wait()


async def _echo(*args: Any) -> Any:
    return args


def test_sizes_come_from_size_of_or_the_bytes_like_arguments() -> None:
    async def scenario() -> None:
        for size_of, args, expected in [
            (None, (b"abc", bytearray(2), memoryview(b"12345"), "xy", 7), 12),
            (lambda *a, **k: 42, (b"abc",), 42),
        ]:
            bp = Backpressure(max_concurrency=1, max_queue_bytes=100, size_of=size_of)
            hold = asyncio.Event()
            holder = asyncio.create_task(bp.run(hold.wait))
            await settle()
            waiter = asyncio.create_task(bp.run(_echo, *args))
            await settle()
            assert bp.queued_bytes == expected
            hold.set()
            assert await waiter == args
            await holder

        bad = Backpressure(max_queue_bytes=100, size_of=lambda *a: -1)
        with pytest.raises(ValueError, match="size_of's result"):
            await bad.run(_echo)
        assert bad.stats()["submitted"] == 0

    run(scenario)


def test_a_cancelled_waiter_frees_its_place() -> None:
    async def scenario() -> None:
        bp = Backpressure(max_concurrency=1, max_queue=1, strategy="reject")
        hold = asyncio.Event()
        holder = asyncio.create_task(bp.run(hold.wait))
        await settle()
        waiter = asyncio.create_task(bp.run(_echo, "waiter"))
        await settle()
        with pytest.raises(Overloaded, match="queue_full"):
            await bp.run(_echo)
        waiter.cancel()
        await settle()
        assert (bp.queued, bp.in_flight) == (0, 1)
        later = asyncio.create_task(bp.run(_echo, "later"))  # the place is free again
        await settle()
        hold.set()
        assert await later == ("later",)
        await holder
        assert waiter.cancelled()
        s = bp.stats()
        assert (s["cancelled"], s["completed"], s["rejected"]["queue_full"]) == (1, 2, 1)
        assert s["submitted"] == ended(s) == 4

    run(scenario)


def test_a_cancelled_running_caller_frees_its_slot_for_the_next() -> None:
    async def scenario() -> None:
        bp = Backpressure(max_concurrency=1)
        running = asyncio.create_task(bp.run(asyncio.Event().wait))
        await settle()
        waiter = asyncio.create_task(bp.run(_echo, "next"))
        await settle()
        running.cancel()
        assert await waiter == ("next",)
        s = bp.stats()
        assert (s["cancelled"], s["completed"], s["in_flight"]) == (1, 1, 0)

    run(scenario)


def test_a_waiter_cancelled_after_its_turn_came_passes_the_slot_on() -> None:
    async def scenario() -> None:
        bp = Backpressure(max_concurrency=1)
        ran: list[str] = []

        async def work(name: str) -> None:
            ran.append(name)

        held = bp.slot()
        await held.__aenter__()
        second = asyncio.create_task(bp.run(work, "second"))
        third = asyncio.create_task(bp.run(work, "third"))
        await settle()
        # Releasing starts "second" (its future is set); it is cancelled before it can run.
        await held.__aexit__(None, None, None)
        second.cancel()
        await third
        assert second.cancelled()
        assert ran == ["third"]
        s = bp.stats()
        assert (s["cancelled"], s["completed"], s["in_flight"], s["queued"]) == (1, 2, 0, 0)

    run(scenario)


def test_a_waiter_cancelled_before_its_turn_came_is_skipped_when_it_comes() -> None:
    async def scenario() -> None:
        bp = Backpressure(max_concurrency=1)
        ran: list[str] = []

        async def work(name: str) -> None:
            ran.append(name)

        held = bp.slot()
        await held.__aenter__()
        second = asyncio.create_task(bp.run(work, "second"))
        third = asyncio.create_task(bp.run(work, "third"))
        await settle()
        # Cancelled (its future too) but not yet resumed when the slot is released: the release
        # names it, finds it cancelled, and passes the slot on to "third" at once.
        second.cancel()
        await held.__aexit__(None, None, None)
        assert bp.in_flight == 1 and bp.waiting == 0
        await third
        assert second.cancelled() and ran == ["third"]
        s = bp.stats()
        assert (s["cancelled"], s["completed"], s["admitted"]) == (1, 2, 3)

    run(scenario)


def test_queue_timeouts_run_on_the_manual_clock() -> None:
    async def scenario() -> None:
        clock = ManualClock(1_000.0)
        bp = Backpressure(max_concurrency=1, queue_timeout=5, strategy="block", clock=clock)
        hold = asyncio.Event()
        holder = asyncio.create_task(bp.run(hold.wait))
        await settle()
        early = asyncio.create_task(bp.run(_echo, "early"))
        await settle()
        clock.advance(3)
        late = asyncio.create_task(bp.run(_echo, "late"))
        await settle()
        clock.advance(1.9)
        assert bp.check_timeouts() == 0
        clock.advance(0.1)  # "early" has waited 5 s
        assert bp.check_timeouts() == 1
        with pytest.raises(Overloaded) as e:
            await early
        assert e.value.reason == "timeout" and not isinstance(e.value, Dropped)
        hold.set()
        assert await late == ("late",)
        await holder
        s = bp.stats()
        assert (s["timed_out"], s["completed"]) == (1, 2)
        assert s["wait_p99"] == pytest.approx(2.0)  # "late" waited 2 s on the manual clock
        assert s["submitted"] == ended(s)

    run(scenario)


def test_the_timer_is_set_from_the_handlers_clock_and_rearms() -> None:
    """The loop's timer (what applies timeouts without a check_timeouts() call) is due when the
    first waiter's timeout falls on the handler's clock; fired, it expires the due waiters and
    arms itself for the next one. Fired by hand here, so nothing waits for it."""

    async def scenario() -> None:
        clock = ManualClock(50.0)
        bp = Backpressure(max_concurrency=1, queue_timeout=10, clock=clock)
        loop = asyncio.get_running_loop()
        async with bp.slot():
            first = asyncio.create_task(bp.run(_echo))
            await settle()
            clock.advance(4)
            second = asyncio.create_task(bp.run(_echo))
            await settle()
            timer = bp._timer
            assert timer is not None
            assert timer.when() - loop.time() == pytest.approx(10.001, abs=0.05)
            clock.advance(6)  # the first has waited 10 s, the second 6 s
            timer.cancel()
            bp._tick(loop)
            with pytest.raises(Overloaded, match="timeout"):
                await first
            rearmed = bp._timer
            assert rearmed is not None and rearmed is not timer
            assert rearmed.when() - loop.time() == pytest.approx(4.001, abs=0.05)
        assert await second == ()
        assert bp.stats()["timed_out"] == 1

    run(scenario)


def test_close_ends_waiters_refuses_newcomers_and_waits_for_running() -> None:
    async def scenario() -> None:
        bp = Backpressure(max_concurrency=1)
        hold = asyncio.Event()
        holder = asyncio.create_task(bp.run(hold.wait))
        await settle()
        waiter = asyncio.create_task(bp.run(_echo))
        await settle()
        closing = asyncio.create_task(bp.close())
        await settle()
        with pytest.raises(Overloaded, match="closed"):
            await waiter
        with pytest.raises(Overloaded, match="closed"):
            await bp.run(_echo)
        assert not closing.done()  # the running item goes on
        hold.set()
        await closing
        await holder
        s = bp.stats()
        assert s["closed"] and s["rejected"]["closed"] == 2
        assert s["submitted"] == ended(s) == 3
        await bp.close()  # twice is harmless

    run(scenario)


def test_close_can_cancel_running_items() -> None:
    async def scenario() -> None:
        bp = Backpressure(max_concurrency=3)
        forever = asyncio.Event().wait
        tasks = [
            asyncio.create_task(bp.run(forever)),
            asyncio.create_task(_in_slot(bp, 0, asyncio.Event())),
        ]
        submitted = bp.submit(forever)
        await settle()
        assert bp.in_flight == 3
        await bp.close(cancel_running=True)
        assert all(t.cancelled() for t in [*tasks, submitted])
        s = bp.stats()
        assert (s["cancelled"], s["in_flight"]) == (3, 0)

    run(scenario)


def test_submit_takes_the_slot_at_once_and_returns_the_result() -> None:
    async def scenario() -> None:
        bp = Backpressure(max_concurrency=1, max_queue=1, strategy="drop_oldest")
        first = bp.submit(_echo, 1)
        assert bp.in_flight == 1  # taken inside submit, before the task has run
        second = bp.submit(_echo, 2)
        third = bp.submit(_echo, 3)  # displaces the second
        with pytest.raises(Dropped):
            await second
        assert await first == (1,)
        assert await third == (3,)
        # A refusal is raised by submit itself.
        strict = Backpressure(max_concurrency=1, max_queue=0, strategy="reject")
        strict.submit(_echo)
        with pytest.raises(Overloaded) as e:
            strict.submit(_echo)
        assert e.value.reason == "limit"
        # Cancelling a queued submission before its turn frees its place.
        hold = asyncio.Event()
        bp2 = Backpressure(max_concurrency=1)
        holder = bp2.submit(hold.wait)
        queued = bp2.submit(_echo)
        queued.cancel()
        await settle()
        assert bp2.waiting == 0
        hold.set()
        await holder
        for b in (bp, bp2):
            s = b.stats()
            assert s["submitted"] == ended(s)
        assert bp2.stats()["cancelled"] == 1

    run(scenario)


def test_the_decorator_runs_each_call_through_the_handler() -> None:
    async def scenario() -> None:
        bp = Backpressure(max_concurrency=2)

        @bp
        async def double(x: int) -> int:
            """Doubles."""
            return 2 * x

        assert double.__name__ == "double" and double.__doc__ == "Doubles."
        assert await asyncio.gather(*(double(i) for i in range(10))) == [2 * i for i in range(10)]
        assert bp.stats()["completed"] == 10
        with pytest.raises(TypeError, match="async functions"):
            bp(lambda: None)  # type: ignore[arg-type, return-value]

    run(scenario)


def test_errors_are_seawall_errors_with_a_retry_estimate() -> None:
    assert issubclass(Dropped, Overloaded) and issubclass(Overloaded, SeawallError)
    assert seawall.errors.Overloaded is Overloaded

    async def scenario() -> None:
        clock = ManualClock(0.0)
        bp = Backpressure("api", max_concurrency=1, max_queue=0, strategy="reject", clock=clock)

        async def two_seconds() -> None:
            clock.advance(2)

        await bp.run(two_seconds)
        async with bp.slot():
            with pytest.raises(Overloaded) as e:
                await bp.run(_echo)
        assert e.value.reason == "limit" and e.value.name == "api"
        assert e.value.retry_after == pytest.approx(2.0)  # the mean run time, one ahead
        assert e.value.retry_after_seconds == 2
        assert "api" in str(e.value) and "limit" in str(e.value)

    run(scenario)


def test_stats_and_properties() -> None:
    bp = Backpressure(max_concurrency=7, max_queue=3)
    assert (bp.limit, bp.in_flight, bp.queued, bp.waiting, bp.queued_bytes) == (7, 0, 0, 0, 0)
    assert bp.name is None
    assert set(bp.stats()) >= {
        "limit",
        "in_flight",
        "queued",
        "blocked",
        "queued_bytes",
        "submitted",
        "admitted",
        "completed",
        "failed",
        "cancelled",
        "dropped",
        "timed_out",
        "rejected",
        "wait_p50",
        "wait_p99",
        "mean_run_time",
    }
    assert "limit=7" in repr(bp)


BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"name": 3}, TypeError, "name"),
    ({"max_concurrency": 0}, ValueError, "max_concurrency"),
    ({"max_concurrency": "10"}, TypeError, "max_concurrency"),
    ({"max_concurrency": True}, TypeError, "max_concurrency"),
    ({"max_concurrency": 2**70}, ValueError, "max_concurrency"),
    ({"max_queue": -1}, ValueError, "max_queue"),
    ({"max_queue": 1.5}, TypeError, "max_queue"),
    ({"max_queue_bytes": 0}, ValueError, "max_queue_bytes"),
    ({"max_queue_bytes": "1MB"}, TypeError, "max_queue_bytes"),
    ({"strategy": "lossy"}, ValueError, "strategy"),
    ({"strategy": None}, TypeError, "strategy"),
    ({"queue_timeout": 0}, ValueError, "queue_timeout"),
    ({"queue_timeout": float("inf")}, ValueError, "queue_timeout"),
    ({"queue_timeout": "5"}, TypeError, "queue_timeout"),
    ({"order": "random"}, ValueError, "order"),
    ({"adaptive_threshold": 1.5}, ValueError, "adaptive_threshold"),
    ({"adaptive_threshold": 0}, ValueError, "adaptive_threshold"),
    ({"adaptive_threshold": "high"}, TypeError, "adaptive_threshold"),
    ({"size_of": 5}, TypeError, "size_of"),
    ({"clock": 5}, TypeError, "clock"),
]


@pytest.mark.parametrize(("kwargs", "error", "param"), BAD)
def test_bad_arguments_are_named(
    kwargs: dict[str, Any], error: type[Exception], param: str
) -> None:
    with pytest.raises(error, match=param):
        Backpressure(**kwargs)


@pytest.mark.parametrize(
    ("size", "error"), [(-1, ValueError), (2**64, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_bad_slot_sizes_are_named(size: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="size"):
        Backpressure().slot(size=size)


def test_close_checks_its_argument() -> None:
    call: Callable[..., Coroutine[Any, Any, None]] = Backpressure().close
    with pytest.raises(TypeError, match="cancel_running"):
        asyncio.run(call(cancel_running="yes"))
