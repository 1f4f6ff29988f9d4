"""``BackpressureHandler`` (3.4, B14) on :class:`seawall.Backpressure`.

The native handler decides who runs (at most ``max_concurrency``), who waits and in which order
(at most ``max_queue_size``, oldest first), and, under DROP_OLDEST / DROP_NEWEST, who is displaced
or refused when the queue is full by count. The shell adds what B14 asks and seawall's byte
budget does not do: B14's memory held is the estimated bytes of every admitted, unfinished item,
*running or waiting*, while ``seawall.Backpressure(max_queue_bytes=...)`` counts only waiting
items. So the shell keeps that sum itself (added at admission, taken off when the item ends or is
dropped) and applies the strategy when an item would pass ``max_memory_mb``: DROP_NEWEST refuses
it, DROP_OLDEST (and ADAPTIVE under pressure) cancels the oldest waiting items until it fits,
BLOCK (and ADAPTIVE without pressure) waits for room up to ``timeout_seconds`` on the handler's
clock. Under BLOCK / ADAPTIVE the native core refuses at once (strategy ``"reject"``) and the
shell waits, because B14's ``timeout_seconds`` bounds only the wait for room, while seawall's
``queue_timeout`` would bound every waiter's time in the queue too.

All of it runs on the event loop thread between awaits, so each decision is one step: no lock.
Every submitted item ends processed, failed, dropped or blocked, counted once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from seawall._backpressure_args import default_size
from seawall._time import now
from seawall.backpressure import Backpressure
from seawall.compat.voicehive._backpressure_config import BackpressureConfig, BackpressureStrategy
from seawall.compat.voicehive._backpressure_types import (
    BackpressureDroppedError,
    BackpressureStats,
    check_config,
)
from seawall.errors import Overloaded

__all__ = ["BackpressureHandler"]

logger = logging.getLogger("seawall.compat.voicehive.backpressure")

_MIB = 1024 * 1024
_NATIVE = {
    BackpressureStrategy.DROP_OLDEST: "drop_oldest",
    BackpressureStrategy.DROP_NEWEST: "drop_newest",
    BackpressureStrategy.BLOCK: "reject",
    BackpressureStrategy.ADAPTIVE: "reject",
}
_GO, _DROP_NEW, _DROP_OLDEST, _WAIT = range(4)


class _Item:
    """One admitted item: its bytes, when it started (``None``: not yet), whether it ended."""

    __slots__ = ("ended", "size", "started", "task", "task_id", "victim")

    def __init__(self, task_id: str, size: int) -> None:
        self.task_id = task_id
        self.size = size
        self.started: float | None = None
        self.task: asyncio.Task[Any] | None = None  # the native one
        self.victim = False  # dropped by the shell (DROP_OLDEST / ADAPTIVE)
        self.ended = False


class BackpressureHandler:
    """Bounded admission for one kind of work (see the module's doc and B14).

    ``submit_task`` returns the :class:`asyncio.Task` running ``coro(*args, **kwargs)`` (a slot
    free: taken inside the call), or ``None`` when the item was dropped or blocked; a waiting item
    dropped later ends its task with :class:`BackpressureDroppedError`. ``redis_client`` is
    accepted and unused, as in the service. ``clock``: the handler's time (BLOCK's wait, run
    times); with a :class:`seawall.testing.ManualClock`, advance it and call
    :meth:`check_timeouts`. Use one event loop per handler.
    """

    def __init__(
        self, name: str, config: BackpressureConfig, redis_client: Any = None, *, clock: Any = None
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self.name = name
        self.config = check_config(config)
        self.redis_client = redis_client
        self.clock = clock
        self._strategy = BackpressureStrategy(config.strategy)
        self._bp = Backpressure(
            name,
            max_concurrency=config.max_concurrency,
            max_queue=config.max_queue_size,
            strategy=_NATIVE[self._strategy],
            clock=clock,
        )
        self._bound = int(config.max_memory_mb * _MIB)
        self._pressure = config.adaptive_threshold * self._bound
        self._size_of = config.size_of
        self._held = 0
        self._waiting: dict[_Item, None] = {}  # admitted, not started: oldest first
        self._live: set[asyncio.Task[Any]] = set()  # the native tasks of unfinished items
        self._blocked: list[tuple[float, asyncio.Future[bool | None]]] = []
        self._processed = self._failed = self._dropped = self._blocked_total = 0
        self._run_time = 0.0
        self._warned = False
        self._closed = False

    # -- the service's API -------------------------------------------------------------------

    async def submit_task(
        self, task_id: str, coro: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> asyncio.Task[Any] | None:
        """Admits ``coro(*args, **kwargs)`` (a coroutine function, or a function whose result is
        awaited if awaitable) under the strategy; see the class's doc."""
        if not callable(coro):
            raise TypeError(f"coro must be callable, got {type(coro).__name__}")
        size = self._size(args, kwargs)
        if size > self._bound:  # it could never fit
            if self._strategy is BackpressureStrategy.BLOCK:
                self._blocked_total += 1
            else:
                self._dropped += 1
            return None
        deadline: float | None = None
        while True:
            if self._closed:
                self._dropped += 1
                return None
            decision = self._decide(size)
            if decision == _GO:
                task = self._admit(task_id, size, coro, args, kwargs)
                if task is not None:
                    return task
                decision = _WAIT if self._closed is False and self._waits() else _DROP_NEW
            if decision == _DROP_NEW:
                self._dropped += 1
                return None
            if decision == _DROP_OLDEST:
                victims = self._drop_oldest(size)
                if not victims:
                    self._dropped += 1
                    return None
                await asyncio.wait(victims)  # the core frees their places
                continue
            if deadline is None:
                deadline = now(self.clock) + self.config.timeout_seconds
            outcome = await self._wait_for_room(deadline)
            if outcome is not True:
                if outcome is None:  # ended by shutdown()
                    self._dropped += 1
                else:
                    self._blocked_total += 1
                return None

    async def get_stats(self) -> BackpressureStats:
        return self.stats()

    def stats(self) -> BackpressureStats:
        """:meth:`get_stats` without awaiting."""
        c = self.config
        return BackpressureStats(
            current_queue_size=self._bp.queued,
            max_queue_size=c.max_queue_size,
            current_memory_mb=self._held / _MIB,
            max_memory_mb=float(c.max_memory_mb),
            total_processed=self._processed,
            total_dropped=self._dropped,
            total_blocked=self._blocked_total,
            average_processing_time=self._run_time / self._processed if self._processed else 0.0,
            strategy=self._strategy,
            in_flight=self._bp.in_flight,
            total_failed=self._failed,
        )

    async def shutdown(self) -> None:
        """Refuses new items, ends blocked submitters (``None``) and waiting items
        (:class:`BackpressureDroppedError`), all counted dropped; cancels the running ones
        (counted failed); returns once every item has ended."""
        self._closed = True
        for _, fut in self._blocked:
            if not fut.done():
                fut.set_result(None)
        await self._bp.close(cancel_running=True)
        live = [t for t in self._live if t is not asyncio.current_task()]
        if live:
            await asyncio.wait(live)

    def check_timeouts(self) -> int:
        """Ends every BLOCK wait whose ``timeout_seconds`` has passed on the handler's clock (it
        returns ``None``, counted blocked); returns how many. A timer does this on its own; call
        it after advancing a manual clock."""
        t = now(self.clock)
        ended = 0
        for deadline, fut in self._blocked:
            if deadline <= t and not fut.done():
                fut.set_result(False)
                ended += 1
        return ended

    # -- deciding ----------------------------------------------------------------------------

    def _size(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        size = default_size(args, kwargs) if self._size_of is None else self._size_of(args, kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size_of must return an int of at least 0, got {size!r}")
        return size

    def _waits(self) -> bool:
        return self._strategy in (BackpressureStrategy.BLOCK, BackpressureStrategy.ADAPTIVE)

    def _decide(self, size: int) -> int:
        bp = self._bp
        fits_memory = self._held + size <= self._bound
        fits_count = bp.in_flight < bp.limit or bp.queued < self.config.max_queue_size
        s = self._strategy
        if fits_memory and (fits_count or s is BackpressureStrategy.DROP_OLDEST):
            return _GO  # under DROP_OLDEST the core displaces the oldest waiter by count
        if s is BackpressureStrategy.DROP_NEWEST:
            return _DROP_NEW
        if s is BackpressureStrategy.DROP_OLDEST or (
            s is BackpressureStrategy.ADAPTIVE and (not fits_memory or self._held >= self._pressure)
        ):
            return _DROP_OLDEST if self._waiting else _DROP_NEW
        return _WAIT

    def _drop_oldest(self, size: int) -> list[asyncio.Task[Any]]:
        """Cancels the oldest waiting items until ``size`` fits in memory (and, when the queue
        is full by count, at least one); returns their native tasks. ``[]``: it cannot fit even
        with nothing waiting (the running items hold too much), and nothing is dropped."""
        if self._held - sum(i.size for i in self._waiting) + size > self._bound:
            return []
        by_count = self._bp.queued >= self.config.max_queue_size
        victims: list[asyncio.Task[Any]] = []
        for item in list(self._waiting):
            if self._held + size <= self._bound and (victims or not by_count):
                break
            assert item.task is not None
            item.victim = True
            self._end(item, dropped=True)
            item.task.cancel()
            victims.append(item.task)
        return victims

    async def _wait_for_room(self, deadline: float) -> bool | None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool | None] = loop.create_future()
        entry = (deadline, fut)
        self._blocked.append(entry)
        timer = loop.call_later(max(0.0, deadline - now(self.clock)) + 0.001, self.check_timeouts)
        try:
            return await fut
        finally:
            timer.cancel()
            self._blocked.remove(entry)

    def _wake(self) -> None:
        for _, fut in self._blocked:
            if not fut.done():
                fut.set_result(True)

    # -- running -----------------------------------------------------------------------------

    def _admit(
        self,
        task_id: str,
        size: int,
        coro: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> asyncio.Task[Any] | None:
        item = _Item(task_id, size)
        before = self._bp.in_flight
        try:
            inner = self._bp.submit(self._run, item, coro, args, kwargs)
        except Overloaded:
            return None  # refused by count (or closed): the caller decides what follows
        item.task = inner
        self._held += size
        self._live.add(inner)
        inner.add_done_callback(functools.partial(self._ended, item))
        self._warn_on_crossing()
        if self._bp.in_flight != before:  # it runs: nothing can drop it, its task is the one
            inner.set_name(task_id)
            return inner
        # It waits: its task turns an end while waiting into BackpressureDroppedError.
        self._waiting[item] = None
        outer = asyncio.get_running_loop().create_task(self._outcome(item, inner), name=task_id)
        outer.add_done_callback(functools.partial(_cancel_with, inner))
        return outer

    async def _run(
        self, item: _Item, coro: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self._waiting.pop(item, None)
        item.started = now(self.clock)
        result = coro(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _outcome(self, item: _Item, inner: asyncio.Task[Any]) -> Any:
        """The task ``submit_task`` returns: the item's own result or exception, or
        :class:`BackpressureDroppedError` if it was dropped before it ran."""
        try:
            return await inner
        except asyncio.CancelledError:
            if item.victim:
                raise BackpressureDroppedError(self.name) from None
            raise
        except Overloaded as e:
            if item.started is None:
                raise BackpressureDroppedError(self.name, e.reason) from e
            raise

    def _ended(self, item: _Item, inner: asyncio.Task[Any]) -> None:
        self._live.discard(inner)
        if item.ended:
            return
        if item.started is None:
            self._end(item, dropped=True)
            return
        if inner.cancelled() or inner.exception() is not None:
            self._failed += 1
        else:
            self._processed += 1
            self._run_time += now(self.clock) - item.started
        self._end(item, dropped=False)

    def _end(self, item: _Item, *, dropped: bool) -> None:
        item.ended = True
        if dropped:
            self._dropped += 1
        self._held -= item.size
        self._waiting.pop(item, None)
        self._warn_on_crossing()
        if self._blocked:
            self._wake()

    def _warn_on_crossing(self) -> None:
        """One WARNING each time the load crosses ``warning_threshold`` upwards."""
        load = max(self._held / self._bound, self._bp.queued / self.config.max_queue_size)
        if load >= self.config.warning_threshold:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "backpressure handler %r at %.0f%% of its bounds (queue %d/%d, %.1f/%s MiB)",
                    self.name,
                    load * 100,
                    self._bp.queued,
                    self.config.max_queue_size,
                    self._held / _MIB,
                    self.config.max_memory_mb,
                )
        else:
            self._warned = False


def _cancel_with(inner: asyncio.Task[Any], outer: asyncio.Task[Any]) -> None:
    if outer.cancelled():
        inner.cancel()
