"""``BackpressureManager`` and ``with_backpressure`` (3.4): handlers by name, and a decorator that
runs each call through one. Private; ``backpressure_handler`` re-exports both."""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from seawall.compat.voicehive._backpressure_config import BackpressureConfig
from seawall.compat.voicehive._backpressure_core import BackpressureHandler
from seawall.compat.voicehive._backpressure_types import BackpressureDroppedError, BackpressureStats

__all__ = ["BackpressureManager", "with_backpressure"]

F = TypeVar("F", bound=Callable[..., Any])


class BackpressureManager:
    """The handlers of a service by name. ``redis_client`` is accepted and unused (as the
    service's); ``clock`` is given to every handler made here."""

    def __init__(self, redis_client: Any = None, *, clock: Any = None) -> None:
        self.redis_client = redis_client
        self.clock = clock
        self.handlers: dict[str, BackpressureHandler] = {}

    def create_handler(
        self, name: str, config: BackpressureConfig | None = None
    ) -> BackpressureHandler:
        """The handler ``name``, made with ``config`` (default: ``BackpressureConfig()``) the
        first time; later calls return the same handler (its queue and counts are shared)."""
        found = self.handlers.get(name)
        if found is not None:
            return found
        handler = BackpressureHandler(
            name, config or BackpressureConfig(), self.redis_client, clock=self.clock
        )
        self.handlers[name] = handler
        return handler

    def get_handler(self, name: str) -> BackpressureHandler | None:
        return self.handlers.get(name)

    async def get_all_stats(self) -> dict[str, BackpressureStats]:
        """``{name: BackpressureStats}`` for every handler."""
        return {name: h.stats() for name, h in self.handlers.items()}

    async def shutdown_all(self) -> None:
        for handler in list(self.handlers.values()):
            await handler.shutdown()


def with_backpressure(
    handler_name: str,
    config: BackpressureConfig | None = None,
    manager: BackpressureManager | None = None,
) -> Callable[[F], F]:
    """Runs every call of an ``async def`` through a handler and returns its own result; a
    refused call (dropped or blocked) raises :class:`BackpressureDroppedError`. With
    ``manager``: its handler ``handler_name`` (made with ``config`` if missing), so it shows in
    ``get_all_stats()``; without: one handler per decorated function (not one per call)."""

    def decorate(func: F) -> F:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"with_backpressure decorates async functions, got {func!r}")
        own = (
            None
            if manager is not None
            else BackpressureHandler(handler_name, config or BackpressureConfig())
        )
        ids = itertools.count(1)

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            handler = own or cast(BackpressureManager, manager).create_handler(handler_name, config)
            task = await handler.submit_task(f"{handler_name}-{next(ids)}", func, *args, **kwargs)
            if task is None:
                raise BackpressureDroppedError(handler_name)
            return await task

        wrapper.backpressure_handler = own  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate
