"""``seawall.asgi.ConcurrencyLimitMiddleware``: load shedding in front of an ASGI app.

Pure ASGI. Each HTTP request takes a permit from a :class:`seawall.ConcurrencyLimiter` (one
native call) and returns it with the response's outcome (one more): the limit adapts to how the
app's responses go, and when it and its queue are full the request is answered ``503`` with
``Retry-After`` without calling the app. Shedding is 503 (the server is overloaded; the client
did nothing wrong); rate limiting is 429.

How a request's outcome is counted:

* a response whose status is in ``dropped_status`` (default 503 and 504: the app or a proxy
  behind it shed or timed out) is the loss signal (**dropped**), and so is an exception from the
  app;
* any other response, 5xx included, is a **success** whose RTT (admission to the app's return,
  the whole body sent) is a sample;
* a request whose client disconnected before its response ended, or that was cancelled (the
  server shutting down), is **ignored**, as is one to which the app sent no whole response.

Health and metrics paths (``exempt_paths``, exact matches) bypass the limit, so that an
orchestrator does not restart a server for shedding load; websockets and lifespan pass through.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from seawall._seawall import AIMDLimit, GradientLimit
from seawall.concurrency import ConcurrencyLimiter
from seawall.errors import Overloaded
from seawall.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ConcurrencyLimitMiddleware"]


class ConcurrencyLimitMiddleware:
    """Adaptive concurrency limit for an ASGI app:
    ``app.add_middleware(ConcurrencyLimitMiddleware, limit=GradientLimit(max_limit=100))``.

    ``limit``, ``max_queue``, ``queue_timeout``, ``partitions`` and ``clock`` are the
    :class:`seawall.ConcurrencyLimiter`'s (available as ``.limiter``, for its ``stats()``).
    ``partition_func(scope)`` names a request's partition (``None``, or a name not in
    ``partitions``: no partition, so it only borrows). A shed request gets ``status_code``
    (default 503) with ``Retry-After: retry_after`` (``None``: no header) and a JSON body.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: GradientLimit | AIMDLimit | int | None = None,
        max_queue: int = 0,
        queue_timeout: float | None = None,
        status_code: int = 503,
        retry_after: int | None = 1,
        exempt_paths: Iterable[str] = ("/health", "/healthz", "/metrics"),
        dropped_status: Iterable[int] = (503, 504),
        partition_func: Callable[[Scope], str | None] | None = None,
        partitions: Mapping[str, float] | None = None,
        clock: Any = None,
    ) -> None:
        if isinstance(status_code, bool) or not isinstance(status_code, int):
            raise TypeError(f"status_code must be an int, got {type(status_code).__name__}")
        if not 400 <= status_code <= 599:
            raise ValueError(f"status_code must be from 400 to 599, got {status_code}")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise ValueError(
                f"retry_after must be an int, at least 0, or None; got {retry_after!r}"
            )
        if isinstance(exempt_paths, str):
            raise TypeError("exempt_paths must be an iterable of paths, not one str")
        if partition_func is not None and not callable(partition_func):
            raise TypeError("partition_func must be callable or None")
        self.app = app
        self.limiter = ConcurrencyLimiter(
            limit,
            max_queue=max_queue,
            queue_timeout=queue_timeout,
            partitions=partitions,
            clock=clock,
        )
        self._max_queue = max_queue
        self._exempt = frozenset(exempt_paths)
        self._dropped = frozenset(dropped_status)
        self._partition_func = partition_func
        self._partitions = frozenset(partitions or ())
        body = json.dumps({"detail": "Service overloaded, try again later"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode()))
        self._shed_start: Message = {
            "type": "http.response.start",
            "status": status_code,
            "headers": headers,
        }
        self._shed_body: Message = {"type": "http.response.body", "body": body}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self._exempt:
            await self.app(scope, receive, send)
            return
        partition = None
        if self._partition_func is not None:
            partition = self._partition_func(scope)
            if partition not in self._partitions:
                partition = None
        permit = self.limiter.try_acquire(partition)
        if permit is None:
            if self._max_queue == 0:
                await self._shed(send)
                return
            try:
                permit = await self.limiter.acquire(partition)
            except Overloaded:
                await self._shed(send)
                return
        status = 0
        finished = False
        disconnected = False

        async def send_status(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        async def receive_disconnect() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        try:
            await self.app(scope, receive_disconnect, send_status)
        except asyncio.CancelledError:
            permit.ignore()
            raise
        except BaseException:
            if disconnected and not finished:
                permit.ignore()
            else:
                permit.dropped()
            raise
        if not finished:  # no response, or the client left before it ended
            permit.ignore()
        elif status in self._dropped:
            permit.dropped()
        else:
            permit.success()

    async def _shed(self, send: Send) -> None:
        await send(self._shed_start)
        await send(self._shed_body)
