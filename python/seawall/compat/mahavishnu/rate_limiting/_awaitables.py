"""The ``_sync`` twins' one helper: the result of a call that may be sync or async (a custom
algorithm's ``check``, a strategy handler's ``apply_strategy``), had without awaiting it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Coroutine
from typing import Any

__all__ = ["resolve"]


async def _wait(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def resolve(value: object, what: str) -> Any:
    """``value``, or what it gives when awaited. Outside an event loop an awaitable runs on a
    loop of its own; inside one (a ``_sync`` twin called from async code) a coroutine that
    finishes without waiting for anything (as the seed's handler does) is run to its end here,
    and one that would wait is a ``RuntimeError`` naming ``what``."""
    if not inspect.isawaitable(value):
        return value
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_wait(value))
    if isinstance(value, Coroutine):
        try:
            value.send(None)
        except StopIteration as done:
            return done.value
        value.close()
    raise RuntimeError(
        f"{what} waits for something: inside an event loop, await the engine's async method "
        "instead of its _sync twin"
    )
