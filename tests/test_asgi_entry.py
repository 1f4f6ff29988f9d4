"""``RateLimitMiddleware``'s native entry (``AsgiEntry.__call__``): an in-memory HTTP request is
decided natively and the app's own coroutine is returned, with no Python frame of the middleware.
The same object must still be every kind of ASGI app a server or framework may take it for."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from uvicorn_thread import serving

from seawall import RateLimitMiddleware
from seawall.testing import ManualClock

SCOPE = {
    "type": "http",
    "method": "GET",
    "path": "/",
    "headers": [(b"host", b"x")],
    "client": ("203.0.113.7", 5000),
    "query_string": b"",
}


async def inner(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


def call(app: Any, scope: Any) -> list[dict[str, Any]]:
    """Runs one ASGI 3 call of ``app``; the messages sent."""
    return collect(lambda receive, send: app(scope, receive, send))


def collect(call: Any) -> list[dict[str, Any]]:
    """Runs one ASGI call to its end; the messages sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(call(receive, send))
    return sent


def test_an_admitted_request_runs_the_apps_own_coroutine() -> None:
    mw = RateLimitMiddleware(inner, limits="5/minute", clock=ManualClock())
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    coroutine = mw(dict(SCOPE), None, send)
    assert coroutine.cr_code is inner.__code__  # type: ignore[attr-defined]
    asyncio.run(coroutine)  # type: ignore[arg-type]
    assert sent[0]["headers"] == [
        (b"x-app", b"1"),
        (b"x-ratelimit-limit", b"5"),
        (b"x-ratelimit-remaining", b"4"),
        (b"x-ratelimit-reset", b"12"),
    ]
    assert sent[1] == {"type": "http.response.body", "body": b"ok"}


def test_header_values_follow_each_decision_while_unchanged_ones_are_shared() -> None:
    clock = ManualClock()
    mw = RateLimitMiddleware(inner, limits="3/minute", clock=clock)
    starts = [call(mw, dict(SCOPE))[0] for _ in range(4)]
    values = [dict(m["headers"]) for m in starts[:3]]
    assert [v[b"x-ratelimit-remaining"] for v in values] == [b"2", b"1", b"0"]
    assert {v[b"x-ratelimit-limit"] for v in values} == {b"3"}
    assert [v[b"x-ratelimit-reset"] for v in values] == [b"20", b"40", b"60"]
    # The tuple of an unchanged value is one object; a moved value gets a new one.
    limit_items = [m["headers"][1] for m in starts[:3]]
    assert limit_items[0] is limit_items[1] is limit_items[2]
    assert starts[0]["headers"][2] is not starts[1]["headers"][2]
    assert starts[3]["status"] == 429
    clock.advance(60)
    again = dict(call(mw, dict(SCOPE))[0]["headers"])
    assert again[b"x-ratelimit-remaining"] == b"2"


def test_a_refusal_and_a_non_http_scope_go_through_python() -> None:
    mw = RateLimitMiddleware(inner, limits="1/minute", clock=ManualClock())
    call(mw, dict(SCOPE))
    refused = call(mw, dict(SCOPE))
    assert refused[0]["status"] == 429
    assert b"Rate limit exceeded" in refused[1]["body"]
    seen: list[str] = []

    async def lifespan_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    lifespan = RateLimitMiddleware(lifespan_app, limits="1/minute")
    call(lifespan, {"type": "lifespan"})
    assert seen == ["lifespan"]


def test_called_with_the_scope_alone_it_is_an_asgi2_app() -> None:
    mw = RateLimitMiddleware(inner, limits="5/minute", clock=ManualClock())
    instance = mw(dict(SCOPE))  # type: ignore[call-arg]
    sent = collect(instance)
    assert dict(sent[0]["headers"])[b"x-ratelimit-remaining"] == b"4"
    with pytest.raises(TypeError, match="receive, send"):
        mw(dict(SCOPE), inner)  # type: ignore[call-overload]


def test_a_middleware_in_a_reference_cycle_is_collected() -> None:
    class App:
        middleware: Any = None

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await inner(scope, receive, send)

    app = App()
    mw = RateLimitMiddleware(app, limits="5/minute")
    app.middleware = mw  # the app leads back to the middleware that holds it
    call(mw, dict(SCOPE))
    dead = weakref.ref(mw)
    del app, mw
    gc.collect()
    assert dead() is None


def starlette_app() -> Starlette:
    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", hello)])


@pytest.mark.parametrize("interface", ["auto", "asgi3", "asgi2"])
def test_served_directly_by_uvicorn(interface: Any) -> None:
    app = RateLimitMiddleware(starlette_app(), limits="2/minute")
    with (
        serving(app, interface=interface) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        first, second, third = (client.get("/") for _ in range(3))
    assert (first.status_code, first.text) == (200, "hello")
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert second.headers["x-ratelimit-remaining"] == "0"
    assert third.status_code == 429
    assert int(third.headers["retry-after"]) >= 1
