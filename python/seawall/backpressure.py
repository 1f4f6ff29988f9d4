"""``seawall.Backpressure``: bounded admission for async work, decided natively.

The state machine (who runs, who waits, in which order, who is refused or displaced, and every
count) is Rust (``seawall._seawall.BackpressureCore``); this module holds the waiting callers'
futures in a dict by ticket and turns the core's answers into results and exceptions. An
admission is one native call, a release one more, and no lock is held while the work runs.

Nothing is lost silently: every item offered ends as run (its own result or exception), refused
(:class:`seawall.Overloaded`, raised to its caller at once), or ended while waiting
(:class:`seawall.Dropped`, or :class:`~seawall.Overloaded` with ``reason="timeout"`` /
``"closed"``, raised where its caller awaits), and is counted in :meth:`Backpressure.stats`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from seawall import _log
from seawall._backpressure_args import checked, default_size, size_error
from seawall._backpressure_slot import CANCELLED, NO_LOOP, SUCCESS, Slot, failure, find_task
from seawall._metrics_registry import track
from seawall._seawall import AIMDLimit, BackpressureCore, GradientLimit
from seawall.errors import Dropped, Overloaded

_logger = logging.getLogger("seawall.backpressure")

__all__ = ["Backpressure"]

P = ParamSpec("P")
T = TypeVar("T")

_CancelledError = asyncio.CancelledError
_current_task = asyncio.current_task
_MAX_SIZE = 2**64 - 1


class Backpressure:
    """Bounded admission: at most ``max_concurrency`` items run at once, at most ``max_queue``
    wait for a slot, and ``strategy`` says what happens to the rest.

    * ``max_concurrency``: an int, or an adaptive limit (:class:`~seawall.GradientLimit`,
      :class:`~seawall.AIMDLimit`; see ``docs/concurrency.md``) fed by each item's outcome: a
      success is an RTT sample (admission to end, on ``clock``), an item that raised
      :class:`~seawall.Overloaded` or :class:`TimeoutError` is a loss; other failures and
      cancellations leave it unmoved.

    * ``max_queue_bytes``: a byte budget for the waiting items, as their callers weigh them
      (``slot(size=...)``; for ``run`` / ``submit`` / the decorator, ``size_of(*args, **kwargs)``,
      or by default the summed ``len()`` of the ``bytes`` / ``bytearray`` / ``memoryview`` /
      ``str`` arguments; sizes are computed only with a budget or a ``size_of``). Not process
      memory. Running items do not count.
    * ``strategy``: for an item that can neither run nor wait in the queue: ``"reject"``
      (:class:`~seawall.Overloaded`, reason ``"queue_full"``, ``"memory"``, or ``"limit"`` when
      ``max_queue=0``); ``"drop_newest"`` (:class:`~seawall.Dropped`: the new item is the one
      lost); ``"drop_oldest"`` (the oldest queued items end with :class:`~seawall.Dropped` until
      it fits); ``"block"`` (the default: it waits for room, outside the queue, and enters it in
      arrival order); ``"adaptive"`` (``drop_oldest`` when the queued bytes reach
      ``adaptive_threshold`` * ``max_queue_bytes`` or the item would pass the budget, else
      ``block``; so without a budget it always blocks: a queue full by count is no memory
      pressure).
      An item larger than the whole budget that would have to wait is refused (``"memory"``).
    * ``queue_timeout``: the longest an item waits, from its submission, before it ends with
      :class:`~seawall.Overloaded` (``"timeout"``); ``None``: as long as its caller waits.
      Measured on ``clock``; :meth:`check_timeouts` applies it at once (tests with a
      :class:`seawall.testing.ManualClock` call it after advancing the clock).
    * ``order``: ``"fifo"`` starts the oldest queued item first, ``"lifo"`` the newest.

    Use: ``await bp.run(fn, *args)``, ``bp.submit(fn, *args)`` (an :class:`asyncio.Task`; the slot
    is taken at once), ``async with bp.slot(size=n):``, or ``@bp`` on an ``async def``. A caller
    cancelled while it waits or runs frees its place. Use one event loop per handler.
    """

    __slots__ = (
        "__weakref__",
        "_admit",
        "_core",
        "_idle",
        "_loop",
        "_name",
        "_release",
        "_running",
        "_size_of",
        "_sized",
        "_strategy",
        "_task_of",
        "_timed",
        "_timer",
        "_timer_loop",
        "_waiters",
    )

    def __init__(
        self,
        name: str | None = None,
        *,
        max_concurrency: int | AIMDLimit | GradientLimit = 10,
        max_queue: int = 100,
        max_queue_bytes: int | None = None,
        strategy: str = "block",
        queue_timeout: float | None = None,
        order: str = "fifo",
        adaptive_threshold: float = 0.9,
        size_of: Callable[..., int] | None = None,
        clock: Any = None,
    ) -> None:
        args = checked(
            name,
            max_concurrency,
            max_queue,
            max_queue_bytes,
            strategy,
            queue_timeout,
            order,
            adaptive_threshold,
            size_of,
        )
        self._core = BackpressureCore(**args, clock=clock)
        self._name = name
        self._strategy: str = args["strategy"]
        self._admit = self._core.try_admit
        self._release = self._core.release
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._running: dict[int, asyncio.Task[Any] | None] = {}  # for close(cancel_running)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Future[None] | None = None
        self._loop: Any = NO_LOOP  # the loop last seen running: see find_task()
        self._task_of: Callable[[Any], asyncio.Task[Any] | None] = _current_task
        self._size_of = size_of if size_of is not None else default_size_of
        self._sized = size_of is not None or max_queue_bytes is not None
        self._timed = queue_timeout is not None
        track(self)

    # -- reading -----------------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        """The name given, used in errors."""
        return self._name

    @property
    def in_flight(self) -> int:
        """Items running now."""
        return self._core.in_flight

    @property
    def queued(self) -> int:
        """Items waiting in the queue (not those blocked waiting for room: see :attr:`waiting`)."""
        return self._core.queued

    @property
    def waiting(self) -> int:
        """Items waiting: in the queue, or blocked waiting for room in it."""
        return self._core.waiting

    @property
    def queued_bytes(self) -> int:
        """The summed sizes of the queued items."""
        return self._core.queued_bytes

    @property
    def limit(self) -> int:
        """How many items may run at once."""
        return self._core.limit

    def stats(self) -> dict[str, Any]:
        """Every count and gauge, read together: ``limit``, ``in_flight``, ``queued``,
        ``blocked``, ``queued_bytes``, ``in_flight_bytes``, ``submitted``, ``admitted``,
        ``completed``, ``failed``, ``cancelled``, ``dropped``, ``timed_out``, ``rejected``
        (a dict by reason: ``queue_full``, ``memory``, ``limit``, ``closed``), ``wait_p50`` /
        ``wait_p99`` (seconds waited before starting, over the last 1,024 starts, on the
        handler's clock), ``wait_seconds`` (every start's wait as a histogram: ``bounds``,
        ``cumulative`` counts, ``sum``, ``count``), ``mean_run_time`` and ``closed``, plus
        ``name`` and ``strategy``.

        When nothing runs or waits: ``submitted == completed + failed + cancelled + dropped +
        timed_out + sum(rejected.values())``.
        """
        s: dict[str, Any] = self._core.stats()
        s["name"] = self._name
        s["strategy"] = self._strategy
        return s

    def __repr__(self) -> str:
        return (
            f"Backpressure({self._name!r}, limit={self.limit}, in_flight={self.in_flight}, "
            f"waiting={self.waiting})"
        )

    # -- the shapes --------------------------------------------------------------------------

    async def run(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs ``await fn(*args, **kwargs)`` when admitted and returns its result; raises
        :class:`~seawall.Overloaded` (or :class:`~seawall.Dropped`) if refused or ended while
        waiting."""
        r = self._admit(self._size(args, kwargs) if self._sized else 0)
        if r.__class__ is not int:
            r = await self._wait(r)
        running = self._running
        running[r] = self._task_of(self._loop) or find_task(self)
        try:
            result = await fn(*args, **kwargs)
        except _CancelledError:
            self._end(r, CANCELLED)
            raise
        except BaseException as exc:
            self._end(r, failure(exc))
            raise
        del running[r]
        started = self._release(r, SUCCESS)
        if started is not None or self._idle is not None:
            self._after(started)
        return result

    def submit(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Task[T]:
        """Admits ``fn(*args, **kwargs)`` now and returns the task that runs it (when its turn
        comes). A refusal raises :class:`~seawall.Overloaded` here, at once; an item ended
        while waiting ends its task with the error. Cancelling the task frees its place."""
        loop = asyncio.get_running_loop()
        r = self._admit(self._size(args, kwargs) if self._sized else 0)
        if r.__class__ is int:
            task = loop.create_task(_call(fn, args, kwargs))
            self._running[r] = task
            task.add_done_callback(functools.partial(self._submitted_done, r, None))
            return task
        ticket, fut = self._queue(r, loop)
        task = loop.create_task(self._run_after(ticket, fut, fn, args, kwargs))
        task.add_done_callback(functools.partial(self._submitted_done, ticket, fut))
        return task

    def slot(self, *, size: int = 0) -> Slot:
        """``async with bp.slot(size=len(chunk)):`` — holds a slot for the block. ``size``:
        the item's weight in bytes against ``max_queue_bytes`` (0 by default)."""
        if size.__class__ is not int or size:
            _check_size("size", size)
        return Slot(self, size)

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """``@bp`` on an ``async def``: every call runs through :meth:`run`."""
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"Backpressure decorates async functions (async def), got {fn!r}; "
                "for other callables use bp.run(fn, ...)"
            )
        run = self.run

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await run(fn, *args, **kwargs)

        return guarded

    # -- ending ------------------------------------------------------------------------------

    def check_timeouts(self) -> int:
        """Ends every waiter whose ``queue_timeout`` has passed on the handler's clock (with
        :class:`~seawall.Overloaded`, reason ``"timeout"``); returns how many. A timer does this
        on its own; call it after advancing a manual clock."""
        expired = self._core.expire()
        self._fail(expired, "timeout")
        return len(expired)

    async def close(self, *, cancel_running: bool = False) -> None:
        """Refuses new items (reason ``"closed"``), ends every waiter with ``"closed"``, then
        waits until nothing runs; with ``cancel_running=True`` the running items' tasks are
        cancelled first (except the caller's own). Closing twice is harmless."""
        if not isinstance(cancel_running, bool):
            raise TypeError(f"cancel_running must be a bool, got {type(cancel_running).__name__}")
        self._fail(self._core.close(), "closed")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        me = _current_task()
        mine = sum(1 for t in self._running.values() if t is me)
        if cancel_running:
            for task in list(self._running.values()):
                if task is not None and task is not me:
                    task.cancel()
        loop = asyncio.get_running_loop()
        while self._core.in_flight > mine:
            self._idle = loop.create_future()
            try:
                await self._idle
            finally:
                self._idle = None

    # -- internals ---------------------------------------------------------------------------

    def _size(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        size = self._size_of(*args, **kwargs)
        if size.__class__ is not int or size:
            _check_size("size_of's result", size)
        return size

    def _refusal(self, reason: str, retry_after: float | None) -> Overloaded:
        if reason != "closed":
            name = self._name or "default"
            _log.event(
                _logger,
                logging.WARNING,
                "backpressure_overloaded",
                "backpressure handler %r refuses work (%s): in flight %d of %d, %d queued",
                name,
                reason,
                self._core.in_flight,
                self._core.limit,
                self._core.queued,
                site=name,
                handler=name,
                reason=reason,
            )
        if reason == "dropped":
            return Dropped(reason, retry_after, self._name)
        return Overloaded(reason, retry_after, self._name)

    def _queue(self, r: Any, loop: asyncio.AbstractEventLoop) -> tuple[int, asyncio.Future[None]]:
        """Registers a waiter for a non-run answer (or raises the refusal)."""
        first, displaced = r
        if first.__class__ is str:
            raise self._refusal(first, displaced)
        if displaced is not None:
            name = self._name or "default"
            _log.event(
                _logger,
                logging.WARNING,
                "backpressure_dropped",
                "backpressure handler %r dropped %d queued item(s) to make room for newer ones",
                name,
                len(displaced),
                site=name,
                handler=name,
                dropped=len(displaced),
            )
            self._fail(displaced, "dropped")
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters[first] = fut
        if self._timed and (self._timer is None or self._timer_loop is not loop):
            self._arm(loop)
        return first, fut

    async def _wait(self, r: Any) -> int:
        """Waits for the turn of a queued item; returns its ticket once it runs."""
        ticket, fut = self._queue(r, asyncio.get_running_loop())
        try:
            await fut
        except _CancelledError:
            self._gave_up(ticket, fut)
            raise
        return ticket

    def _gave_up(self, ticket: int, fut: asyncio.Future[None]) -> None:
        """A waiter's caller was cancelled: free its place, whatever point it had reached."""
        if self._waiters.pop(ticket, None) is not None:
            self._after(self._core.cancel(ticket))
        elif fut.done() and not fut.cancelled() and fut.exception() is None:
            # Started, but cancelled before it could run.
            self._end(ticket, CANCELLED)
        # Otherwise the core has ended it already (started and released as cancelled by
        # _start, or dropped / timed out / closed).

    def _end(self, ticket: int, outcome: int) -> None:
        self._running.pop(ticket, None)
        self._after(self._release(ticket, outcome))

    def _after(self, started: list[int] | None) -> None:
        """Starts the waiters the core named (a cancelled one is released at once, which may
        name more); then wakes close() if nothing runs."""
        waiters = self._waiters
        while started:
            more: list[int] = []
            for t in started:
                fut = waiters.pop(t)
                if fut.cancelled():
                    self._running.pop(t, None)
                    more += self._release(t, CANCELLED) or ()
                else:
                    fut.set_result(None)
            started = more
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def _fail(self, tickets: list[int], reason: str) -> None:
        waiters = self._waiters
        for t in tickets:
            fut = waiters.pop(t, None)
            if fut is not None and not fut.cancelled():
                fut.set_exception(self._refusal(reason, None))

    def _submitted_done(
        self, ticket: int, fut: asyncio.Future[None] | None, task: asyncio.Task[Any]
    ) -> None:
        if fut is not None:
            if ticket in self._waiters:  # cancelled before its turn
                self._gave_up(ticket, fut)
                return
            if fut.cancelled() or fut.exception() is not None:
                return  # ended by the core while waiting
        if task.cancelled():
            self._end(ticket, CANCELLED)
        else:
            exc = task.exception()
            self._end(ticket, SUCCESS if exc is None else failure(exc))

    async def _run_after(
        self,
        ticket: int,
        fut: asyncio.Future[None],
        fn: Callable[..., Awaitable[T]],
        args: Any,
        kwargs: Any,
    ) -> T:
        await fut
        self._running[ticket] = _current_task()
        return await fn(*args, **kwargs)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """A timer on ``loop`` for the next waiter's timeout (replacing one on another loop)."""
        if self._timer is not None:
            self._timer.cancel()
        delay = self._core.next_timeout()
        self._timer = None if delay is None else loop.call_later(delay + 0.001, self._tick, loop)
        self._timer_loop = loop

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self.check_timeouts()
        if self._waiters and not loop.is_closed():
            self._arm(loop)


def _check_size(param: str, size: Any) -> None:
    if size.__class__ is not int or not 0 <= size <= _MAX_SIZE:
        raise size_error(param, size)


def default_size_of(*args: Any, **kwargs: Any) -> int:
    return default_size(args, kwargs)


async def _call(fn: Callable[..., Awaitable[T]], args: Any, kwargs: Any) -> T:
    return await fn(*args, **kwargs)
