"""The ``_sync`` twins' one helper: the result of a call that may be sync or async (a custom
algorithm's ``check``, a strategy handler's ``apply_strategy``), had without an event loop."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any

__all__ = ["resolve"]


async def _wait(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def resolve(value: object, what: str) -> Any:
    """``value``, awaited on a loop of its own if it is awaitable; inside a running loop an
    awaitable cannot be waited for here, so that is a ``RuntimeError`` naming ``what``."""
    if not inspect.isawaitable(value):
        return value
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_wait(value))
    if inspect.iscoroutine(value):
        value.close()
    raise RuntimeError(
        f"{what} is async: inside an event loop, await the engine's async method instead of "
        "its _sync twin"
    )
