"""seawall.RateLimitMiddleware in a real uvicorn server on 127.0.0.1: real HTTP, real sockets."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from uvicorn_thread import serving

from seawall import RateLimitMiddleware, Rule
from seawall.testing import ManualClock

websockets_client = pytest.importorskip("websockets.sync.client")
websockets_exceptions = pytest.importorskip("websockets.exceptions")


def make_app(events: list[str], **options: Any) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    async def hello(request: Request) -> Response:
        events.append("hello")
        return PlainTextResponse("hello")

    async def digest(request: Request) -> Response:
        body = await request.body()
        return JSONResponse({"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(f"echo:{text}")

    app = Starlette(
        routes=[
            Route("/", hello),
            Route("/limited", hello),
            Route("/digest", digest, methods=["POST"]),
            WebSocketRoute("/ws", echo),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(RateLimitMiddleware, **options)
    return app


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    with serving(app, lifespan="on") as port:
        yield f"127.0.0.1:{port}"


CLOCK = ManualClock(start=1_800_000_000.0)
EVENTS: list[str] = []


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    app = make_app(
        EVENTS,
        limits="1000/minute",
        rules=[("/limited", "3/minute")],
        key="jsonrpc:params._client_id",
        clock=CLOCK,
    )
    with serve(app) as address:
        yield address
    assert EVENTS[0] == "startup" and EVENTS[-1] == "shutdown"


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{server}", trust_env=False, timeout=30) as client:
        yield client


def test_lifespan_ran_through_the_middleware(server: str) -> None:
    assert EVENTS[0] == "startup"


def test_limits_over_real_http(client: httpx.Client) -> None:
    calls_before = EVENTS.count("hello")
    responses = [client.get("/limited") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert all(r.headers["x-ratelimit-limit"] == "3" for r in responses)
    denied = responses[-1]
    assert denied.headers["retry-after"] == "20"
    assert denied.json() == {
        "error": {"code": 429, "message": "Rate limit exceeded", "retry_after": 20}
    }
    assert EVENTS.count("hello") == calls_before + 3
    # A spoofed X-Forwarded-For from 127.0.0.1 (not a trusted proxy) buys nothing.
    assert client.get("/limited", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 429
    CLOCK.advance(20)
    assert client.get("/limited").status_code == 200
    # Keep-alive: the same connection still serves after a 429.
    assert client.get("/").text == "hello"


def rpc_body(client_id: str, size: int) -> bytes:
    head = json.dumps({"jsonrpc": "2.0", "id": 1, "params": {"_client_id": client_id}})[:-1]
    return (head + ', "pad": "' + "x" * size + '"}').encode()


def test_a_large_body_reaches_the_app_unchanged(client: httpx.Client) -> None:
    for size in (100, 1_000_000):
        body = rpc_body("big", size)
        r = client.post("/digest", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200
        assert r.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    def chunks() -> Iterator[bytes]:
        body = rpc_body("chunked", 300_000)
        for i in range(0, len(body), 65_000):
            yield body[i : i + 65_000]

    expected = b"".join(chunks())
    r = client.post("/digest", content=chunks())  # chunked transfer encoding
    assert r.json() == {"length": len(expected), "sha256": hashlib.sha256(expected).hexdigest()}


def test_jsonrpc_keys_over_real_http() -> None:
    app = make_app([], limits="1/minute", key="jsonrpc:params._client_id", clock=CLOCK)
    with serve(app) as address, httpx.Client(base_url=f"http://{address}", trust_env=False) as c:
        assert c.post("/digest", content=rpc_body("a", 10)).status_code == 200
        assert c.post("/digest", content=rpc_body("a", 10)).status_code == 429
        assert c.post("/digest", content=rpc_body("b", 10)).status_code == 200


def test_websocket_passes_through(server: str) -> None:
    with websockets_client.connect(f"ws://{server}/ws", proxy=None) as ws:
        for text in ("one", "two"):
            ws.send(text)
            assert ws.recv() == f"echo:{text}"


def test_websocket_handshakes_limited_when_asked() -> None:
    app = make_app([], limits="1/minute", websockets=True, clock=CLOCK)
    with serve(app) as address:
        with websockets_client.connect(f"ws://{address}/ws", proxy=None) as ws:
            ws.send("hi")
            assert ws.recv() == "echo:hi"
        # uvicorn answers a websocket closed before it was accepted with HTTP 403.
        with pytest.raises(websockets_exceptions.InvalidStatus) as refused:
            websockets_client.connect(f"ws://{address}/ws", proxy=None)
        assert refused.value.response.status_code == 403


def test_behind_a_trusted_proxy_only_its_header_is_read() -> None:
    # 127.0.0.1 plays an nginx that writes X-Forwarded-For and passes the client's own
    # Forwarded through: a new Forwarded per request must not buy a new budget.
    app = make_app([], limits="2/minute", trusted_proxies=["127.0.0.1"], clock=CLOCK)
    with serve(app) as address, httpx.Client(base_url=f"http://{address}", trust_env=False) as c:
        statuses = [
            c.get(
                "/", headers={"X-Forwarded-For": "203.0.113.7", "Forwarded": f"for=6.6.6.{i}"}
            ).status_code
            for i in range(4)
        ]
        assert statuses == [200, 200, 429, 429]
        # Another client behind the same proxy has its own budget.
        assert c.get("/", headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 200


def test_head_spends_a_get_rule_over_real_http() -> None:
    events: list[str] = []
    app = make_app(events, rules=[Rule("/limited", "2/minute", methods=["GET"])], clock=CLOCK)
    with serve(app) as address, httpx.Client(base_url=f"http://{address}", trust_env=False) as c:
        assert [c.head("/limited").status_code for _ in range(4)] == [200, 200, 429, 429]
    assert events.count("hello") == 2
