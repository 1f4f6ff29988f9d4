"""seawall.RateLimitMiddleware on real Starlette and FastAPI apps, through httpx's ASGI transport,
and on raw ASGI apps where the exact messages matter (body replay, streaming, lifespan, websocket).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import seawall
from seawall import RateLimitMiddleware, Rule
from seawall.testing import ManualClock
from seawall.types import Message, Scope

CLIENT = ("203.0.113.7", 1234)
T0 = 1_800_000_000.0  # a whole minute: windows start with the test


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=T0)


def starlette_app(calls: list[str], **options: Any) -> Starlette:
    """Every path answers "hello"; ``/echo`` answers the request body; ``/stream`` streams."""

    async def hello(request: Request) -> Response:
        calls.append(request.url.path)
        return PlainTextResponse("hello")

    async def echo(request: Request) -> Response:
        calls.append(request.url.path)
        return Response(await request.body(), media_type="application/octet-stream")

    async def stream(request: Request) -> Response:
        calls.append(request.url.path)

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"chunk{i};".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(
        routes=[
            Route("/echo", echo, methods=["POST"]),
            Route("/stream", stream),
            Route("/{path:path}", hello, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )
    app.add_middleware(RateLimitMiddleware, **options)
    return app


def http(app: Any, client: tuple[str, int] = CLIENT) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def scope_of(
    path: str = "/",
    client: tuple[str, int] | None = CLIENT,
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "GET",
    query: bytes = b"",
) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers or [],
        "client": client,
        "server": ("testserver", 80),
    }


class RawApp:
    """A raw ASGI app that records what it receives and sends what it is told to."""

    def __init__(self, response: list[Message] | None = None, read_body: bool = True) -> None:
        self.calls = 0
        self.received: list[Message] = []
        self.read_body = read_body
        self.response = response or [
            {"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]},
            {"type": "http.response.body", "body": b"ok"},
        ]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.calls += 1
        while self.read_body:
            message = await receive()
            self.received.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        for message in self.response:
            await send(message)


async def drive(app: Any, scope: Scope, messages: list[Message]) -> list[Message]:
    """Call ``app`` with ``messages`` to receive (then a disconnect); returns what it sent."""
    inbox = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


# --- limits, headers, the 429 ---------------------------------------------------------------


def test_limit_headers_and_the_real_retry_after(clock: ManualClock) -> None:
    calls: list[str] = []
    app = starlette_app(calls, limits="3/minute", clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            for remaining in (2, 1, 0):
                r = await client.get("/")
                assert r.status_code == 200 and r.text == "hello"
                assert r.headers["x-ratelimit-limit"] == "3"
                assert r.headers["x-ratelimit-remaining"] == str(remaining)
                assert "retry-after" not in r.headers
            # GCRA, 3 per minute: the key is fresh again 20 s per request used, from now.
            assert r.headers["x-ratelimit-reset"] == "60"
            denied = await client.get("/")
            assert denied.status_code == 429
            assert denied.headers["retry-after"] == "20"  # the next admission, not a constant
            assert denied.headers["x-ratelimit-limit"] == "3"
            assert denied.headers["x-ratelimit-remaining"] == "0"
            assert denied.headers["content-type"] == "application/json"
            assert int(denied.headers["content-length"]) == len(denied.content)
            assert denied.json() == {
                "error": {"code": 429, "message": "Rate limit exceeded", "retry_after": 20}
            }
            clock.advance(19.5)
            again = await client.get("/")
            assert again.status_code == 429 and again.headers["retry-after"] == "1"  # rounded up
            clock.advance(0.5)
            assert (await client.get("/")).status_code == 200

    run(scenario)
    assert len(calls) == 4  # never called for the three refusals


def test_fastapi_app(clock: ManualClock) -> None:
    app = FastAPI()
    calls: list[int] = []

    @app.get("/items/{item}")
    async def item(item: int) -> dict[str, int]:
        calls.append(item)
        return {"item": item}

    app.add_middleware(RateLimitMiddleware, limits="2/minute", clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            assert (await client.get("/items/1")).json() == {"item": 1}
            ok = await client.get("/items/2")
            assert ok.status_code == 200 and ok.headers["x-ratelimit-remaining"] == "0"
            denied = await client.get("/items/3")
            assert denied.status_code == 429 and denied.headers["retry-after"] == "30"
            assert denied.json()["error"]["retry_after"] == 30

    run(scenario)
    assert calls == [1, 2]


def test_header_modes(clock: ManualClock) -> None:
    async def scenario() -> None:
        for mode, present, absent in [
            ("x-ratelimit", {"x-ratelimit-limit"}, {"ratelimit", "ratelimit-policy"}),
            ("draft", {"ratelimit", "ratelimit-policy"}, {"x-ratelimit-limit"}),
            ("both", {"x-ratelimit-limit", "ratelimit", "ratelimit-policy"}, set()),
            ("none", set(), {"x-ratelimit-limit", "ratelimit", "ratelimit-policy"}),
        ]:
            app = starlette_app([], limits="10/minute", headers=mode, clock=clock)
            async with http(app) as client:
                r = await client.get("/")
                assert r.status_code == 200
                assert present <= set(r.headers) and not absent & set(r.headers), mode
                if mode == "draft":
                    assert r.headers["ratelimit-policy"] == '"default";q=10;w=60'
                    assert r.headers["ratelimit"] == '"default";r=9;t=6'

    run(scenario)


def test_error_body(clock: ManualClock) -> None:
    def body(retry_after: int) -> dict[str, Any]:
        return {"detail": "slow down", "wait": retry_after}

    async def scenario() -> None:
        for error_body, expected in [
            (body, b'{"detail":"slow down","wait":60}'),
            (lambda retry_after: b"no", b"no"),
        ]:
            app = starlette_app([], limits="1/minute", error_body=error_body, clock=clock)
            async with http(app) as client:
                await client.get("/")
                denied = await client.get("/")
                assert denied.status_code == 429 and denied.content == expected
                assert denied.headers["content-length"] == str(len(expected))
                assert denied.headers["retry-after"] == "60"

    run(scenario)


def test_a_failing_error_body_still_sends_the_429(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(retry_after: int) -> bytes:
        raise RuntimeError("boom")

    app = starlette_app([], limits="1/minute", error_body=broken, clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            await client.get("/")
            denied = await client.get("/")
            assert denied.status_code == 429 and denied.json()["error"]["code"] == 429

    with caplog.at_level(logging.ERROR, logger="seawall.asgi"):
        run(scenario)
    assert "error_body failed" in caplog.text


# --- rules ----------------------------------------------------------------------------------

SEED_003_RULES = [
    ("/auth/login", "5/minute;20/hour;100/day"),
    ("/api/*", "100/minute;1000/hour;10000/day"),
    ("/call/*", "500/minute;5000/hour;50000/day"),
]


def test_seed_003_rule_table(clock: ManualClock) -> None:
    calls: list[str] = []
    app = starlette_app(
        calls,
        rules=SEED_003_RULES,
        limits="20/minute;200/hour;1000/day",
        headers="both",
        clock=clock,
    )

    async def scenario() -> None:
        async with http(app) as client:
            for _ in range(5):
                assert (await client.post("/auth/login")).status_code == 200
            denied = await client.post("/auth/login")
            assert denied.status_code == 429 and denied.headers["x-ratelimit-limit"] == "5"
            # Other rules and the default are other budgets.
            api = await client.get("/api/v1/users/7")
            assert api.status_code == 200 and api.headers["x-ratelimit-limit"] == "100"
            assert api.headers["ratelimit-policy"] == '"/api/*";q=100;w=60'
            call = await client.get("/call/abc/stream")
            assert call.headers["x-ratelimit-limit"] == "500"
            other = [await client.get(f"/page/{i}") for i in range(21)]
            assert [r.status_code for r in other] == [200] * 20 + [429]
            assert other[0].headers["ratelimit-policy"] == '"default";q=20;w=60'
            # "/api" alone is not under "/api/*": the default applies (and is spent).
            assert (await client.get("/api")).status_code == 429

    run(scenario)
    assert calls.count("/auth/login") == 5


def test_rule_objects_methods_and_names(clock: ManualClock) -> None:
    app = starlette_app(
        [],
        rules=[
            Rule("/items", "1/minute", methods=["post"], name="writes"),
            Rule("/v?/items/*", "2/minute"),
        ],
        headers="draft",
        clock=clock,
    )

    async def scenario() -> None:
        async with http(app) as client:
            first = await client.post("/items")
            assert first.headers["ratelimit-policy"] == '"writes";q=1;w=60'
            assert (await client.post("/items")).status_code == 429
            # GET matches no rule and there is no default: passed through, no headers.
            got = await client.get("/items")
            assert got.status_code == 200 and "ratelimit" not in got.headers
            assert [(await client.get("/v1/items/x")).status_code for _ in range(3)] == [
                200,
                200,
                429,
            ]
            assert (await client.get("/v10/items/x")).status_code == 200  # "?" is one character

    run(scenario)


def test_rule_validation() -> None:
    assert Rule("/a", "1/minute", methods=("get", "Put")).methods == ("GET", "PUT")
    with pytest.raises(TypeError, match="rules"):
        RateLimitMiddleware(RawApp(), rules=["/a"])
    with pytest.raises(TypeError, match=r"Rule\.methods"):
        Rule("/a", "1/minute", methods=[1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="fortnight"):
        RateLimitMiddleware(RawApp(), rules=[("/a", "1/fortnight")])


def test_global_and_per_client_limits_together(clock: ManualClock) -> None:
    app = starlette_app([], limits="2/minute", global_limits="3/minute", clock=clock)

    async def scenario() -> None:
        a, b = http(app, ("198.51.100.1", 1)), http(app, ("198.51.100.2", 1))
        async with a, b:
            assert (await a.get("/")).status_code == 200
            assert (await a.get("/")).status_code == 200
            assert (await a.get("/")).status_code == 429  # a's own limit; spends no global budget
            assert (await b.get("/")).status_code == 200  # the third of the global three
            denied = await b.get("/")
            assert denied.status_code == 429  # b has its own budget left, the server has not
            assert denied.headers["x-ratelimit-limit"] == "3"
            assert int(denied.headers["retry-after"]) == 20

    run(scenario)


# --- exemptions and the bypass --------------------------------------------------------------


def test_exempt_ips_and_clients(clock: ManualClock) -> None:
    calls: list[str] = []
    app = starlette_app(
        calls,
        limits="1/minute",
        key="header:X-Client-ID",
        exempt_ips=["10.0.0.0/8", "2001:db8::1"],
        exempt_clients=["admin"],
        clock=clock,
    )

    async def scenario() -> None:
        for peer in (("10.20.30.40", 1), ("2001:db8::1", 1)):
            async with http(app, peer) as internal:
                for _ in range(3):
                    r = await internal.get("/")
                    assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
        async with http(app) as client:
            for _ in range(3):
                assert (await client.get("/", headers={"X-Client-ID": "admin"})).status_code == 200
            assert (await client.get("/", headers={"X-Client-ID": "bob"})).status_code == 200
            assert (await client.get("/", headers={"X-Client-ID": "bob"})).status_code == 429
            assert (await client.get("/", headers={"X-Client-ID": "Admin"})).status_code == 200
            assert (await client.get("/", headers={"X-Client-ID": "Admin"})).status_code == 429

    run(scenario)


def test_bypass_needs_the_secret(clock: ManualClock) -> None:
    app = starlette_app(
        [],
        limits="1/minute",
        bypass_header="X-Internal-Service",
        bypass_secret="s3cret-token",
        clock=clock,
    )

    async def scenario() -> None:
        async with http(app) as client:
            for _ in range(3):
                r = await client.get("/", headers={"X-Internal-Service": "s3cret-token"})
                assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
            assert (await client.get("/")).status_code == 200
            for value in ["", "true", "1", "s3cret-toke", "s3cret-token ", "S3CRET-TOKEN"]:
                r = await client.get("/", headers={"X-Internal-Service": value})
                assert r.status_code == 429, value
            assert (await client.get("/", headers={"X-Other": "s3cret-token"})).status_code == 429

    run(scenario)


def test_bad_configuration_names_the_parameter() -> None:
    app = RawApp()
    for options, match in [
        ({"trusted_proxies": ["not-a-cidr"]}, "trusted_proxies"),
        ({"exempt_ips": ["300.1.1.1"]}, "exempt_ips"),
        ({"bypass_secret": "x"}, "bypass"),
        ({"key": "cookie:session"}, "key"),
        ({"draft_version": 9}, "draft_version"),
        ({"headers": "all"}, "headers"),
        ({"ipv6_prefix": 129}, "ipv6_prefix"),
        ({"max_body_bytes": -1}, "max_body_bytes"),
    ]:
        with pytest.raises(ValueError, match=match):
            RateLimitMiddleware(app, limits="1/second", **options)
    for options, match in [
        ({"key_func": "ip"}, "key_func"),
        ({"error_body": b"{}"}, "error_body"),
        ({"websockets": 1}, "websockets"),
        ({"limits": 10}, "limits"),
        ({"trusted_proxies": [1]}, "trusted_proxies"),
    ]:
        with pytest.raises(TypeError, match=match):
            RateLimitMiddleware(app, **options)


# --- keys -----------------------------------------------------------------------------------


def test_header_key(clock: ManualClock) -> None:
    app = starlette_app([], limits="1/minute", key="header:X-Client-ID", clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            assert (await client.get("/", headers={"X-Client-ID": "a"})).status_code == 200
            assert (await client.get("/", headers={"X-Client-ID": "a"})).status_code == 429
            assert (await client.get("/", headers={"X-Client-ID": "b"})).status_code == 200
            assert (await client.get("/")).status_code == 200  # no header: the IP's budget
            assert (await client.get("/")).status_code == 429

    run(scenario)
    middleware = RateLimitMiddleware(RawApp(), limits="1/minute", key="header:X-Client-ID")
    key_for = middleware.limiter.key_for
    assert key_for(scope_of(headers=[(b"x-client-id", b"abc")])) == "header:abc"
    assert key_for(scope_of()) == "ip:203.0.113.7"
    long_id = key_for(scope_of(headers=[(b"x-client-id", b"x" * 10_000)]))
    assert len(long_id) <= 256 and "xxxx" not in long_id  # capped: a digest, not the id


def test_authorization_is_hashed(clock: ManualClock) -> None:
    token = "Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.sig"
    middleware = RateLimitMiddleware(RawApp(), limits="1/minute", key="header:Authorization")
    key = middleware.limiter.key_for(scope_of(headers=[(b"authorization", token.encode())]))
    assert key.startswith("auth:") and len(key) == len("auth:") + 64
    assert "eyJ" not in key and "c2Vj" not in key and "Bearer" not in key
    other = middleware.limiter.key_for(scope_of(headers=[(b"authorization", b"Bearer other")]))
    assert other != key
    app = starlette_app([], limits="1/minute", key="header:authorization", clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            assert (await client.get("/", headers={"Authorization": token})).status_code == 200
            assert (await client.get("/", headers={"Authorization": token})).status_code == 429
            r = await client.get("/", headers={"Authorization": "Bearer other"})
            assert r.status_code == 200

    run(scenario)


def test_query_and_mcp_session_keys(clock: ManualClock) -> None:
    query = RateLimitMiddleware(RawApp(), limits="1/minute", key="query:api_key")
    assert query.limiter.key_for(scope_of(query=b"x=1&api_key=k1")) == "query:k1"
    assert query.limiter.key_for(scope_of(query=b"x=1")) == "ip:203.0.113.7"
    mcp = RateLimitMiddleware(RawApp(), limits="1/minute", key="mcp-session")
    # A session id is a key only once the server has issued it.
    assert mcp.limiter.key_for(scope_of(headers=[(b"mcp-session-id", b"s-1")])) == (
        "ip:203.0.113.7"
    )
    mcp.limiter.issue_session(b"s-1")
    assert mcp.limiter.key_for(scope_of(headers=[(b"mcp-session-id", b"s-1")])) == "mcp:s-1"

    async def issuing(request: Request) -> Response:
        return PlainTextResponse("ok", headers={"Mcp-Session-Id": request.query_params["issue"]})

    async def scenario() -> None:
        app = starlette_app([], limits="1/minute", key="query:api_key", clock=clock)
        async with http(app) as client:
            assert (await client.get("/?api_key=k1")).status_code == 200
            assert (await client.get("/?api_key=k1")).status_code == 429
            assert (await client.get("/?api_key=k2")).status_code == 200
        app = Starlette(routes=[Route("/mcp", issuing, methods=["POST"])])
        app.add_middleware(RateLimitMiddleware, limits="1/minute", key="mcp-session", clock=clock)
        async with http(app) as client:
            # Opening sessions s1 and s2 spends the client address's budget.
            assert (await client.post("/mcp?issue=s1")).status_code == 200
            assert (await client.post("/mcp?issue=s2")).status_code == 429
            s1 = {"Mcp-Session-Id": "s1"}
            assert (await client.post("/mcp?issue=s1", headers=s1)).status_code == 200
            assert (await client.post("/mcp?issue=s1", headers=s1)).status_code == 429
            made_up = {"Mcp-Session-Id": "s2"}
            assert (await client.post("/mcp?issue=s2", headers=made_up)).status_code == 429

    run(scenario)


def rpc(client_id: str, pad: int = 0) -> bytes:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "query", "_client_id": client_id, "pad": "é" * pad},
    }
    # Not what json.dumps would write back: the replay must be these bytes, not a re-encoding.
    return json.dumps(body, indent=3, ensure_ascii=False).encode()


def test_jsonrpc_key_and_the_body_replayed(clock: ManualClock) -> None:
    calls: list[str] = []
    app = starlette_app(calls, limits="1/minute", key="jsonrpc:params._client_id", clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            for client_id, status in [("a", 200), ("a", 429), ("b", 200)]:
                body = rpc(client_id)
                r = await client.post("/echo", content=body)
                assert r.status_code == status
                if status == 200:
                    assert r.content == body
            # Not JSON, or no such field: the IP's budget (and the body still reaches the app).
            assert (
                await client.post("/echo", content=b"\xff not json")
            ).content == b"\xff not json"
            assert (await client.post("/echo", content=b"{}")).status_code == 429

    run(scenario)
    assert calls == ["/echo"] * 3


def test_a_body_over_max_body_bytes_is_replayed_intact_and_keyed_by_ip(clock: ManualClock) -> None:
    app = starlette_app(
        [], limits="1/minute", key="jsonrpc:params._client_id", max_body_bytes=1024, clock=clock
    )
    big = rpc("a", pad=100_000)
    assert len(big) > 200_000

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 7000):
            yield big[i : i + 7000]

    async def scenario() -> None:
        async with http(app) as client:
            r = await client.post("/echo", content=chunks())
            assert r.status_code == 200 and r.content == big
            # The big body spent the IP's budget, not client "a"'s.
            assert (await client.post("/echo", content=b"")).status_code == 429
            assert (await client.post("/echo", content=rpc("a"))).status_code == 200

    run(scenario)


def test_a_streamed_body_in_chunks(clock: ManualClock) -> None:
    app = starlette_app([], limits="5/minute", key="jsonrpc:params._client_id", clock=clock)
    body = rpc("streamer", pad=3000)
    pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    assert len(pieces) > 5

    async def chunks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async def scenario() -> None:
        async with http(app) as client:
            r = await client.post("/echo", content=chunks())
            assert r.status_code == 200 and r.content == body

    run(scenario)


@pytest.mark.parametrize("max_body_bytes", [0, 10, 65536])
def test_replay_keeps_every_message_and_its_framing(max_body_bytes: int) -> None:
    """The app receives exactly the messages the server sent: same bodies, same ``more_body``,
    then whatever comes next (here a disconnect) from the live channel."""
    messages: list[Message] = [
        {"type": "http.request", "body": b'{"params": {"_c', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b'lient_id": "x"}}', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
    ]
    expected = [dict(m) for m in messages]
    app = RawApp()
    middleware = RateLimitMiddleware(
        app, limits="5/minute", key="jsonrpc:params._client_id", max_body_bytes=max_body_bytes
    )
    sent = asyncio.run(drive(middleware, scope_of(method="POST"), messages))
    assert app.received == expected
    assert sent[0]["status"] == 200


def test_a_disconnect_while_reading_reaches_the_app() -> None:
    app = RawApp()
    middleware = RateLimitMiddleware(app, limits="5/minute", key="jsonrpc:params._client_id")
    messages: list[Message] = [
        {"type": "http.request", "body": b'{"par', "more_body": True},
        {"type": "http.disconnect"},
    ]
    asyncio.run(drive(middleware, scope_of(method="POST"), messages))
    assert app.received == messages


def test_key_func_sync_and_async(clock: ManualClock) -> None:
    def sync_key(request: Request) -> str | None:
        return request.headers.get("x-user")

    async def async_key(request: Request) -> str | None:
        await asyncio.sleep(0)
        return request.headers.get("x-user")

    async def scenario() -> None:
        for key_func in (sync_key, async_key):
            app = starlette_app([], limits="1/minute", key_func=key_func, clock=clock)
            async with http(app) as client:
                assert (await client.get("/", headers={"x-user": "u1"})).status_code == 200
                assert (await client.get("/", headers={"x-user": "u1"})).status_code == 429
                assert (await client.get("/", headers={"x-user": "u2"})).status_code == 200
                assert (await client.get("/")).status_code == 200  # None: the IP
                assert (await client.get("/")).status_code == 429

    run(scenario)


def test_key_func_reading_the_body_leaves_it_for_the_app(clock: ManualClock) -> None:
    seen: list[bytes] = []

    async def by_body(request: Request) -> str:
        body = await request.body()
        seen.append(body)
        return "k:" + hashlib.sha256(body).hexdigest()[:8]

    app = starlette_app([], limits="1/minute", key_func=by_body, clock=clock)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first,"
        yield b"second"

    async def scenario() -> None:
        async with http(app) as client:
            r = await client.post("/echo", content=chunks())
            assert r.status_code == 200 and r.content == b"first,second"
            assert (await client.post("/echo", content=b"first,second")).status_code == 429

    run(scenario)
    assert seen == [b"first,second", b"first,second"]


def test_key_func_must_return_a_str() -> None:
    app = RawApp()
    middleware = RateLimitMiddleware(app, limits="1/minute", key_func=lambda request: 42)
    with pytest.raises(TypeError, match="key_func must return a str"):
        asyncio.run(drive(middleware, scope_of(), []))
    assert app.calls == 0


# --- proxies and malformed headers ----------------------------------------------------------


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(clock: ManualClock) -> None:
    app = starlette_app([], limits="2/minute", clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            statuses = [
                (await client.get("/", headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code
                for i in range(5)
            ]
            assert statuses == [200, 200, 429, 429, 429]
            r = await client.get("/", headers={"X-Real-IP": "198.51.100.77"})
            assert r.status_code == 429
            r = await client.get("/", headers={"Forwarded": "for=198.51.100.78"})
            assert r.status_code == 429

    run(scenario)


def test_trusted_proxy_right_most_untrusted_address(clock: ManualClock) -> None:
    middleware = RateLimitMiddleware(
        RawApp(), limits="1/minute", trusted_proxies=["10.0.0.0/8", "2001:db8:ffff::/48"]
    )
    proxy = ("10.0.0.1", 443)

    def key(headers: list[tuple[bytes, bytes]], peer: tuple[str, int] = proxy) -> str:
        return middleware.limiter.key_for(scope_of(client=peer, headers=headers))

    # The left-most entry is whatever the client wrote; the right-most untrusted is what the
    # trusted proxy saw.
    assert key([(b"x-forwarded-for", b"1.1.1.1, 198.51.100.1")]) == "ip:198.51.100.1"
    assert key([(b"x-forwarded-for", b"198.51.100.1, 10.0.0.5")]) == "ip:198.51.100.1"
    assert key([(b"x-forwarded-for", b"198.51.100.1")], ("2001:db8:ffff::1", 1)) == (
        "ip:198.51.100.1"
    )
    # Only the configured header is read (X-Forwarded-For by default).
    assert key([(b"forwarded", b"for=198.51.100.2")]) == "ip:10.0.0.1"
    assert key([(b"x-real-ip", b"198.51.100.3")]) == "ip:10.0.0.1"
    assert key([]) == "ip:10.0.0.1"
    forwarded = RateLimitMiddleware(
        RawApp(), limits="1/minute", trusted_proxies=["10.0.0.0/8"], proxy_header="Forwarded"
    )
    for headers, client in [
        (
            [(b"forwarded", b'for=198.51.100.2;proto=https, for="[2001:db8::1]:4711"')],
            "2001:db8::/64",
        ),
        ([(b"forwarded", b"for=198.51.100.2, for=10.0.0.3")], "198.51.100.2"),
    ]:
        assert forwarded.limiter.key_for(scope_of(client=proxy, headers=headers)) == f"ip:{client}"
    real_ip = RateLimitMiddleware(
        RawApp(), limits="1/minute", trusted_proxies=["10.0.0.0/8"], proxy_header="X-Real-IP"
    )
    headers = [(b"x-real-ip", b"198.51.100.3")]
    assert real_ip.limiter.key_for(scope_of(client=proxy, headers=headers)) == "ip:198.51.100.3"
    # An untrusted peer's proxy headers count for nothing.
    untrusted = ("203.0.113.7", 1)
    for headers in (
        [(b"x-forwarded-for", b"198.51.100.1")],
        [(b"forwarded", b"for=198.51.100.1")],
        [(b"x-real-ip", b"198.51.100.1")],
    ):
        assert key(headers, untrusted) == "ip:203.0.113.7"

    app = starlette_app([], limits="1/minute", trusted_proxies=["10.0.0.0/8"], clock=clock)

    async def scenario() -> None:
        async with http(app, proxy) as via_proxy:
            for client, status in [("198.51.100.1", 200), ("198.51.100.1", 429)]:
                r = await via_proxy.get("/", headers={"X-Forwarded-For": f"6.6.6.6, {client}"})
                assert r.status_code == status
            r = await via_proxy.get("/", headers={"X-Forwarded-For": "198.51.100.1, 198.51.100.2"})
            assert r.status_code == 200

    run(scenario)


MALFORMED: list[list[tuple[bytes, bytes]]] = [
    [(b"x-forwarded-for", b"\xff\xfe\xfd")],
    [(b"x-forwarded-for", b"1.2.3.4, \xff\xfe")],
    [(b"x-forwarded-for", b"\xc3\x28, 198.51.100.9")],
    [(b"x-forwarded-for", b"1.2.3.4," * 1400)],  # about 10 KB
    [(b"x-forwarded-for", b", ".join([b"198.51.100.250"] * 700))],  # 10 KB of one client
    [(b"x-forwarded-for", b"garbage")],
    [(b"x-forwarded-for", b"999.1.1.1")],
    [(b"x-forwarded-for", b"1.2.3")],
    [(b"x-forwarded-for", b"2001:db8::zz")],
    [(b"x-forwarded-for", b"2001:db8::5, 198.51.100.7, ::ffff:198.51.100.8")],
    [(b"x-forwarded-for", b"198.51.100.7, [2001:db8::9]:8080")],
    [(b"x-forwarded-for", b"")],
    [(b"x-forwarded-for", b",,,")],
    [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-for", b"garbage")],
    [(b"forwarded", b'for="[2001:db8::1')],
    [(b"forwarded", b"for=unknown")],
    [(b"forwarded", b'for="_hidden";by=_x')],
    [(b"forwarded", b";;;===,,,")],
    [(b"forwarded", b"\xff" * 10_000)],
    [(b"x-real-ip", b"not an ip")],
    [(b"x-real-ip", b"\x00\x01")],
    [(b"x-real-ip", b"1.2.3.4" * 2000)],
]


def assert_ip_key(key: str) -> None:
    assert key.startswith("ip:"), key
    address = key[3:]
    if "/" in address:
        ipaddress.ip_network(address)
    else:
        ipaddress.ip_address(address)


@pytest.mark.parametrize("proxy_header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
@pytest.mark.parametrize("headers", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_proxy_headers_never_crash_nor_choose_the_key(
    headers: list[tuple[bytes, bytes]], proxy_header: str
) -> None:
    middleware = RateLimitMiddleware(
        RawApp(), limits="1/minute", trusted_proxies=["10.0.0.0/8"], proxy_header=proxy_header
    )
    untrusted = middleware.limiter.key_for(scope_of(client=CLIENT, headers=headers))
    assert untrusted == "ip:203.0.113.7"
    # From a trusted proxy: always an IP key (the proxy's own when nothing there is valid).
    trusted = middleware.limiter.key_for(scope_of(client=("10.0.0.1", 1), headers=headers))
    assert_ip_key(trusted)
    # And the request itself goes through the middleware like any other.
    app = RawApp()
    middleware = RateLimitMiddleware(
        app, limits="1/minute", trusted_proxies=["10.0.0.0/8"], proxy_header=proxy_header
    )
    for peer in (CLIENT, ("10.0.0.1", 1)):
        sent = asyncio.run(drive(middleware, scope_of(client=peer, headers=headers), []))
        assert sent[0]["status"] == 200
    assert app.calls == 2


def test_malformed_peers() -> None:
    middleware = RateLimitMiddleware(RawApp(), limits="1/minute")
    for peer in (None, ("not-an-ip", 1), ("", 0)):
        key = middleware.limiter.key_for(scope_of(client=peer))
        assert key.startswith("ip:")
    assert middleware.limiter.key_for(scope_of(client=("::ffff:203.0.113.9", 1))) == (
        "ip:203.0.113.9"
    )


def test_ipv6_clients_grouped_by_prefix(clock: ManualClock) -> None:
    middleware = RateLimitMiddleware(RawApp(), limits="1/minute")
    key = middleware.limiter.key_for(scope_of(client=("2001:db8:1:2::1", 1)))
    assert key == "ip:2001:db8:1:2::/64"
    app = starlette_app([], limits="1/minute", clock=clock)
    app128 = starlette_app([], limits="1/minute", ipv6_prefix=128, clock=clock)

    async def scenario() -> None:
        async with http(app, ("2001:db8:1:2::1", 1)) as a:
            assert (await a.get("/")).status_code == 200
        async with http(app, ("2001:db8:1:2:ffff:ffff:ffff:ffff", 1)) as same_64:
            assert (await same_64.get("/")).status_code == 429
        async with http(app, ("2001:db8:1:3::1", 1)) as other_64:
            assert (await other_64.get("/")).status_code == 200
        async with http(app128, ("2001:db8:1:2::1", 1)) as a:
            assert (await a.get("/")).status_code == 200
        async with http(app128, ("2001:db8:1:2::2", 1)) as b:
            assert (await b.get("/")).status_code == 200

    run(scenario)


# --- responses: streaming and untouched messages --------------------------------------------


def test_streaming_response_gets_headers_and_every_chunk(clock: ManualClock) -> None:
    calls: list[str] = []
    app = starlette_app(calls, limits="1/minute", clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            async with client.stream("GET", "/stream") as r:
                assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == "0"
                received = [chunk async for chunk in r.aiter_raw()]
            assert b"".join(received) == b"chunk0;chunk1;chunk2;"
            assert (await client.get("/stream")).status_code == 429

    run(scenario)
    assert calls == ["/stream"]


def test_only_the_response_start_is_changed() -> None:
    app_headers = [(b"content-type", b"text/event-stream"), (b"x-app", b"1")]
    response: list[Message] = [
        {"type": "http.response.start", "status": 200, "headers": app_headers, "trailers": False},
        {"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True},
        {"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True},
        {"type": "http.response.body", "body": b"", "more_body": False},
    ]
    originals = [dict(m) for m in response[1:]]
    app = RawApp(response=response, read_body=False)
    sent = asyncio.run(drive(RateLimitMiddleware(app, limits="5/minute"), scope_of(), []))
    assert sent[0]["headers"] == [
        *app_headers,
        (b"x-ratelimit-limit", b"5"),
        (b"x-ratelimit-remaining", b"4"),
        (b"x-ratelimit-reset", b"12"),
    ]
    assert sent[0]["status"] == 200 and sent[0]["trailers"] is False
    assert app_headers == [(b"content-type", b"text/event-stream"), (b"x-app", b"1")]
    assert sent[1:] == originals


def test_no_limit_applies_means_untouched() -> None:
    app = RawApp(read_body=False)
    middleware = RateLimitMiddleware(app, rules=[("/limited", "1/minute")])
    sent = asyncio.run(drive(middleware, scope_of("/free"), []))
    assert sent == app.response


# --- other scopes: lifespan and websockets --------------------------------------------------


def test_lifespan_passes_through() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(routes=[], lifespan=lifespan)
    app.add_middleware(RateLimitMiddleware, limits="1/minute", websockets=True)
    messages: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = asyncio.run(drive(app, {"type": "lifespan", "asgi": {"version": "3.0"}}, messages))
    assert events == ["startup", "shutdown"]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def echo_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(f"echo:{text}")
    await websocket.close()


def websocket_app(**options: Any) -> Starlette:
    app = Starlette(routes=[WebSocketRoute("/ws", echo_socket)])
    app.add_middleware(RateLimitMiddleware, **options)
    return app


def websocket_scope(client: tuple[str, int] = CLIENT) -> Scope:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": client,
        "server": ("testserver", 80),
        "subprotocols": [],
    }


def websocket_session() -> list[Message]:
    return [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hi"},
        {"type": "websocket.disconnect", "code": 1000},
    ]


def test_websockets_pass_through_by_default(clock: ManualClock) -> None:
    app = websocket_app(limits="1/minute", clock=clock)
    for _ in range(3):
        sent = asyncio.run(drive(app, websocket_scope(), websocket_session()))
        assert [m["type"] for m in sent] == [
            "websocket.accept",
            "websocket.send",
            "websocket.close",
        ]
        assert sent[1]["text"] == "echo:hi"


def test_websocket_handshakes_limited_when_asked(clock: ManualClock) -> None:
    app = websocket_app(limits="2/minute", websockets=True, clock=clock)
    for _ in range(2):
        sent = asyncio.run(drive(app, websocket_scope(), websocket_session()))
        assert sent[1]["text"] == "echo:hi"
    sent = asyncio.run(drive(app, websocket_scope(), websocket_session()))
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "Rate limit exceeded"}]
    # Another client, and the same client later, are admitted.
    assert asyncio.run(drive(app, websocket_scope(("198.51.100.1", 1)), websocket_session()))[
        0
    ] == {"type": "websocket.accept", "subprotocol": None, "headers": []}
    clock.advance(30)
    sent = asyncio.run(drive(app, websocket_scope(), websocket_session()))
    assert sent[1]["text"] == "echo:hi"


# --- the package surface --------------------------------------------------------------------


def test_exports() -> None:
    assert seawall.RateLimitMiddleware is RateLimitMiddleware and seawall.Rule is Rule
    assert seawall.__all__ == sorted(seawall.__all__)
    assert {
        "RateLimitMiddleware",
        "Rule",
        "rate_limit",
        "RateLimitExceeded",
        "SeawallError",
    } <= set(seawall.__all__)


def test_import_seawall_needs_no_web_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, seawall, seawall.asgi; "
        "print(sorted(m for m in ('starlette', 'fastapi', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "[]"


def test_the_denied_path_logs_at_debug_only(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = starlette_app([], limits="1/minute", clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            await client.get("/")
            await client.get("/")

    with caplog.at_level(logging.DEBUG, logger="seawall.asgi"):
        run(scenario)
    records = [r for r in caplog.records if r.name == "seawall.asgi"]
    assert [r.levelno for r in records] == [logging.DEBUG]


def test_json_error_body_matches_seed_000_shape(clock: ManualClock) -> None:
    app = starlette_app([], limits="1/hour", clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            await client.get("/")
            denied = await client.get("/")
            assert denied.status_code == 429
            assert denied.json() == {
                "error": {"code": 429, "message": "Rate limit exceeded", "retry_after": 3600}
            }
            assert denied.headers["retry-after"] == "3600"

    run(scenario)


def test_json_response_app_keeps_its_own_headers(clock: ManualClock) -> None:
    async def data(request: Request) -> Response:
        return JSONResponse({"ok": True}, headers={"X-Custom": "yes"})

    app = Starlette(routes=[Route("/", data)])
    app.add_middleware(RateLimitMiddleware, limits="5/second", clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            r = await client.get("/")
            assert r.json() == {"ok": True}
            assert r.headers["x-custom"] == "yes" and r.headers["x-ratelimit-limit"] == "5"
            assert int(r.headers["content-length"]) == len(r.content)

    run(scenario)


def test_websocket_key_func_sees_the_handshake(clock: ManualClock) -> None:
    seen: list[tuple[str, str]] = []

    def by_token(request: Request) -> str | None:
        seen.append((request.method, request.url.path))
        return request.query_params.get("token")

    app = websocket_app(limits="1/minute", websockets=True, key_func=by_token, clock=clock)

    def connect(query: bytes) -> list[Message]:
        scope = websocket_scope()
        scope["query_string"] = query
        return asyncio.run(drive(app, scope, websocket_session()))

    assert connect(b"token=a")[0]["type"] == "websocket.accept"
    assert connect(b"token=a")[0] == {
        "type": "websocket.close",
        "code": 1008,
        "reason": "Rate limit exceeded",
    }
    assert connect(b"token=b")[0]["type"] == "websocket.accept"
    assert seen == [("GET", "/ws")] * 3


def test_exempt_clients_match_a_key_func_result(clock: ManualClock) -> None:
    app = starlette_app(
        [],
        limits="1/minute",
        key_func=lambda request: request.headers.get("x-user"),
        exempt_clients=["vip"],
        clock=clock,
    )

    async def scenario() -> None:
        async with http(app) as client:
            for _ in range(3):
                assert (await client.get("/", headers={"x-user": "vip"})).status_code == 200
            assert (await client.get("/", headers={"x-user": "pleb"})).status_code == 200
            assert (await client.get("/", headers={"x-user": "pleb"})).status_code == 429

    run(scenario)
