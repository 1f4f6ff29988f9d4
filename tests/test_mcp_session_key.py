"""``RateLimitMiddleware(key="mcp-session")`` keys by a session only where the server issued it,
on real FastMCP streamable-HTTP apps (stateful and stateless) and on a raw ASGI app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.middleware import Middleware

from seawall import RateLimitMiddleware
from seawall.testing import ManualClock
from seawall.types import Message, Scope

fastmcp = pytest.importorskip("fastmcp")

CLIENT = ("203.0.113.7", 1234)
T0 = 1_800_000_000.0
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=T0)


def initialize(request_id: int) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            },
        }
    ).encode()


def ping(request_id: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}).encode()


def mcp_app(clock: ManualClock, stateless: bool) -> Any:
    server = fastmcp.FastMCP("sessions")

    @server.tool
    def echo(text: str) -> str:
        return text

    return server.http_app(
        path="/mcp",
        stateless_http=stateless,
        json_response=True,
        middleware=[
            Middleware(RateLimitMiddleware, limits="2/minute", key="mcp-session", clock=clock)
        ],
    )


async def post(client: httpx.AsyncClient, body: bytes, session: str | None) -> httpx.Response:
    headers = dict(HEADERS)
    if session is not None:
        headers["Mcp-Session-Id"] = session
    return await client.post("/mcp", content=body, headers=headers)


def test_rotating_session_ids_on_a_stateless_server_share_the_client_budget(
    clock: ManualClock,
) -> None:
    app = mcp_app(clock, stateless=True)

    async def scenario() -> list[int]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=CLIENT)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                return [
                    (await post(c, initialize(i), f"made-up-{i}")).status_code for i in range(5)
                ]

    assert asyncio.run(scenario()) == [200, 200, 429, 429, 429]


def test_only_server_issued_sessions_get_their_own_budget(clock: ManualClock) -> None:
    app = mcp_app(clock, stateless=False)

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=CLIENT)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                # Opening a session spends the client address's budget (1 of 2).
                opened = await post(c, initialize(1), None)
                assert opened.status_code == 200
                session = opened.headers["mcp-session-id"]
                # The issued session has a budget of its own.
                assert [(await post(c, ping(i), session)).status_code for i in range(3)] == [
                    200,
                    200,
                    429,
                ]
                # Ids the server never issued are the client address again: its last request,
                # then refusals, however many ids are made up.
                made_up = [(await post(c, ping(i), f"made-up-{i}")).status_code for i in range(4)]
                assert made_up == [404, 429, 429, 429]

    asyncio.run(scenario())


async def drive(app: Any, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def scope_of(session: bytes | None) -> Scope:
    headers = [] if session is None else [(b"mcp-session-id", session)]
    return {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "query_string": b"",
        "headers": headers,
        "client": CLIENT,
    }


def test_a_raw_app_that_never_issues_sessions(clock: ManualClock) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    mw = RateLimitMiddleware(app, limits="2/minute", key="mcp-session", clock=clock)
    statuses = [asyncio.run(drive(mw, scope_of(b"s-%d" % i)))[0]["status"] for i in range(4)]
    assert statuses == [200, 200, 429, 429]
    assert mw.limiter.key_for(scope_of(b"s-9")) == "ip:203.0.113.7"


def test_issued_ids_are_remembered_within_a_bound(clock: ManualClock) -> None:
    issued = iter(range(1_000_000))

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        session = b"sid-%d" % next(issued)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"mcp-session-id", session)],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    mw = RateLimitMiddleware(app, limits="1000/minute", key="mcp-session", max_keys=8, clock=clock)
    for _ in range(20):
        asyncio.run(drive(mw, scope_of(None)))
    assert mw.limiter.key_for(scope_of(b"sid-19")) == "mcp:sid-19"
    assert mw.limiter.key_for(scope_of(b"sid-0")) == "ip:203.0.113.7"
