"""What ``Backpressure.slot()`` returns, and how a handler finds the task running an item (for
``close(cancel_running=True)``) cheaply on every admission. Private to seawall.backpressure."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, Any

from seawall.errors import Overloaded

if TYPE_CHECKING:
    from seawall.backpressure import Backpressure

__all__ = ["CANCELLED", "FAILURE", "LOST", "NO_LOOP", "SUCCESS", "Slot", "failure", "find_task"]

#: How an item ended, as the native core takes it (LOST: a failure that is the loss signal for an
#: adaptive ``max_concurrency``).
SUCCESS, FAILURE, CANCELLED, LOST = 0, 1, 2, 3
_LOSSES = (Overloaded, TimeoutError, asyncio.TimeoutError)


def failure(exc: BaseException | None) -> int:
    """How an item that raised ``exc`` ended: lost if it was shed or timed out downstream
    (:class:`~seawall.Overloaded`, :class:`TimeoutError`), else failed."""
    return LOST if isinstance(exc, _LOSSES) else FAILURE


#: No loop seen yet: asyncio knows no current task for it.
NO_LOOP = object()

_CancelledError = asyncio.CancelledError
_current_task = asyncio.current_task
_current_tasks: dict[Any, asyncio.Task[Any]] | None = getattr(asyncio.tasks, "_current_tasks", None)


def find_task(bp: Backpressure) -> asyncio.Task[Any] | None:
    """The running task, and how ``bp`` finds it next time: the loop it runs on, cached
    (``get_running_loop()`` is ~100 ns on CPython 3.11), and asyncio's own map of current tasks
    read directly where it is the one ``current_task()`` reads (which is a Python function on
    3.11), checked here."""
    loop = asyncio.get_running_loop()
    task = _current_task(loop)
    fast = _current_tasks
    bp._loop = loop
    if fast is not None and task is not None and fast.get(loop) is task:
        bp._task_of = fast.get
    else:
        bp._task_of = _current_task
    return task


class Slot:
    """What ``bp.slot()`` returns: an async context manager holding one slot."""

    __slots__ = ("_bp", "_size", "_ticket")

    def __init__(self, bp: Backpressure, size: int) -> None:
        self._bp = bp
        self._size = size
        self._ticket = -1

    async def __aenter__(self) -> None:
        bp = self._bp
        r = bp._admit(self._size)
        if r.__class__ is not int:
            r = await bp._wait(r)
        self._ticket = r
        bp._running[r] = bp._task_of(bp._loop) or find_task(bp)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        bp = self._bp
        t = self._ticket
        del bp._running[t]
        if exc_type is None:
            started = bp._release(t, SUCCESS)
        else:
            started = bp._release(
                t, CANCELLED if issubclass(exc_type, _CancelledError) else failure(exc)
            )
        if started is not None or bp._idle is not None:
            bp._after(started)
