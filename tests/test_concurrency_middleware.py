"""ConcurrencyLimitMiddleware with real Starlette and FastAPI apps (httpx's ASGI transport) and
one real uvicorn server on 127.0.0.1: shedding, outcomes, the queue, partitions, exemptions."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn_thread import serving

from seawall import AIMDLimit, ConcurrencyLimitMiddleware
from seawall.testing import ManualClock
from seawall.types import Message, Scope


class Gate:
    """Holds requests in the app until opened: requests in flight without any sleeping."""

    def __init__(self) -> None:
        self.inside = 0
        self.event = asyncio.Event()

    async def hold(self) -> None:
        self.inside += 1
        await self.event.wait()


def starlette_app(gate: Gate) -> Starlette:
    async def slow(request: Request) -> Response:
        await gate.hold()
        return PlainTextResponse("done")

    async def status(request: Request) -> Response:
        return PlainTextResponse("status", status_code=int(request.path_params["code"]))

    async def boom(request: Request) -> Response:
        raise RuntimeError("app failure")

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/slow", slow),
            Route("/status/{code:int}", status),
            Route("/boom", boom),
            Route("/health", health),
        ]
    )


def client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def until(predicate: Any) -> None:
    """Lets the event loop run until ``predicate()`` holds (no sleeping on time)."""
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def test_sheds_with_503_and_retry_after_when_full() -> None:
    gate = Gate()
    app = ConcurrencyLimitMiddleware(starlette_app(gate), limit=2, clock=ManualClock())

    async def scenario() -> None:
        async with client(app) as c:
            held = [asyncio.create_task(c.get("/slow")) for _ in range(2)]
            await until(lambda: gate.inside == 2)
            shed = await c.get("/slow")
            assert shed.status_code == 503
            assert shed.headers["retry-after"] == "1"
            assert shed.json() == {"detail": "Service overloaded, try again later"}
            assert (await c.get("/health")).status_code == 200  # exempt while full
            gate.event.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]

    asyncio.run(scenario())
    stats = app.limiter.stats()
    assert (stats["rejected"], stats["successes"], stats["in_flight"]) == (1, 2, 0)


def test_outcomes_feed_the_limit() -> None:
    app = ConcurrencyLimitMiddleware(
        starlette_app(Gate()), limit=AIMDLimit(10), clock=ManualClock()
    )

    async def scenario() -> None:
        async with client(app) as c:
            codes = [
                (await c.get(path)).status_code
                for path in (
                    "/status/200",
                    "/status/500",
                    "/status/404",
                    "/status/503",
                    "/status/504",
                    "/boom",
                )
            ]
            assert codes == [200, 500, 404, 503, 504, 500]

    asyncio.run(scenario())
    stats = app.limiter.stats()
    # 200, 500 and 404 are successes (app-limited: one request at a time, no increase); 503, 504
    # and the exception are the loss signal, each admitted after the last cut: 10 * 0.9**3 = 7.29.
    assert (stats["successes"], stats["dropped"], stats["ignored"]) == (3, 3, 0)
    assert app.limiter.limit == 7


def test_queue_waits_then_sheds_past_it() -> None:
    gate = Gate()
    app = ConcurrencyLimitMiddleware(starlette_app(gate), limit=1, max_queue=1, clock=ManualClock())

    async def scenario() -> None:
        async with client(app) as c:
            first = asyncio.create_task(c.get("/slow"))
            await until(lambda: gate.inside == 1)
            queued = asyncio.create_task(c.get("/slow"))
            await until(lambda: app.limiter.queued == 1)
            assert (await c.get("/slow")).status_code == 503
            gate.event.set()
            assert (await first).status_code == 200
            assert (await queued).status_code == 200

    asyncio.run(scenario())
    assert app.limiter.stats()["acquired"] == 2


def test_queue_timeout_sheds_on_the_manual_clock() -> None:
    gate = Gate()
    clock = ManualClock()
    app = ConcurrencyLimitMiddleware(
        starlette_app(gate), limit=1, max_queue=2, queue_timeout=1.0, retry_after=3, clock=clock
    )

    async def scenario() -> None:
        async with client(app) as c:
            first = asyncio.create_task(c.get("/slow"))
            await until(lambda: gate.inside == 1)
            waiting = asyncio.create_task(c.get("/slow"))
            await until(lambda: app.limiter.queued == 1)
            clock.advance(1.5)
            gate.event.set()  # the first request's release expires the waiter
            assert (await first).status_code == 200
            late = await waiting
            assert late.status_code == 503 and late.headers["retry-after"] == "3"

    asyncio.run(scenario())
    assert app.limiter.stats()["timed_out"] == 1


def test_partitions_keep_room_for_critical_requests() -> None:
    gate = Gate()
    app = ConcurrencyLimitMiddleware(
        starlette_app(gate),
        limit=4,
        partitions={"critical": 0.5},
        partition_func=lambda scope: dict(scope["headers"]).get(b"x-priority", b"").decode(),
        clock=ManualClock(),
    )

    async def scenario() -> None:
        async with client(app) as c:
            batch = [asyncio.create_task(c.get("/slow")) for _ in range(2)]
            await until(lambda: gate.inside == 2)
            assert (await c.get("/slow")).status_code == 503  # the other 2 are critical's
            critical = [
                asyncio.create_task(c.get("/slow", headers={"x-priority": "critical"}))
                for _ in range(2)
            ]
            await until(lambda: gate.inside == 4)
            gate.event.set()
            results = await asyncio.gather(*batch, *critical)
            assert [r.status_code for r in results] == [200] * 4

    asyncio.run(scenario())


def test_fastapi_app() -> None:
    api = FastAPI()

    @api.get("/items/{item}")
    async def item(item: int) -> dict[str, int]:
        return {"item": item}

    api.add_middleware(ConcurrencyLimitMiddleware, limit=5, clock=ManualClock())

    async def scenario() -> None:
        async with client(api) as c:
            assert (await c.get("/items/3")).json() == {"item": 3}
            assert (await c.get("/missing")).status_code == 404

    asyncio.run(scenario())


def test_client_disconnect_and_cancellation_are_ignored() -> None:
    async def stream(request: Request) -> Response:
        async def chunks() -> Any:
            yield b"first"
            await asyncio.Event().wait()  # the client leaves before the rest

        return StreamingResponse(chunks())

    app = ConcurrencyLimitMiddleware(
        Starlette(routes=[Route("/stream", stream)]), limit=AIMDLimit(5), clock=ManualClock()
    )
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/stream",
        "raw_path": b"/stream",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def scenario() -> None:
        left = asyncio.Event()

        async def receive() -> Message:
            if not left.is_set():
                left.set()
                return {"type": "http.request", "body": b"", "more_body": False}
            await until(lambda: len(sent) >= 2)
            return {"type": "http.disconnect"}

        await app(scope, receive, send)  # Starlette ends the stream on the disconnect
        assert app.limiter.stats()["ignored"] == 1

        async def never() -> Message:
            await asyncio.Event().wait()
            raise AssertionError

        task = asyncio.create_task(app(scope, never, send))
        await until(lambda: app.limiter.in_flight == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    stats = app.limiter.stats()
    assert (stats["ignored"], stats["dropped"], stats["in_flight"]) == (2, 0, 0)
    assert app.limiter.limit == 5


@contextmanager
def serve(app: Any) -> Iterator[str]:
    with serving(app, proxy_headers=True) as port:
        yield f"http://127.0.0.1:{port}"


def test_real_uvicorn_sheds_over_http() -> None:
    gate = Gate()
    inner = starlette_app(gate)

    async def opener(scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("path") == "/open":
            gate.event.set()
        await inner(scope, receive, send)

    app = ConcurrencyLimitMiddleware(opener, limit=2, exempt_paths=("/open", "/health"))
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(c.get("/slow").status_code))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while gate.inside < 2 and time.monotonic() < deadline:  # polling the server
            time.sleep(0.01)
        shed = c.get("/slow")
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
        assert c.get("/open").status_code == 404  # exempt: reaches the app while full
        for t in threads:
            t.join(timeout=10)
        assert results == [200, 200]
    assert app.limiter.stats()["successes"] == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"status_code": 200}, ValueError, "status_code must be from 400 to 599"),
        ({"status_code": "503"}, TypeError, "status_code must be an int"),
        ({"retry_after": -1}, ValueError, "retry_after must be an int"),
        ({"exempt_paths": "/health"}, TypeError, "exempt_paths must be an iterable"),
        ({"partition_func": 3}, TypeError, "partition_func must be callable"),
        ({"limit": 0}, ValueError, "limit must be at least 1"),
        ({"max_queue": -2}, ValueError, "max_queue"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ConcurrencyLimitMiddleware(starlette_app(Gate()), **kwargs)
