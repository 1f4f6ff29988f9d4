"""seawall.mcp over streamable HTTP: real FastMCP apps under uvicorn on 127.0.0.1, real clients.

Issue 11, item 3: over HTTP the default key is the authenticated principal, else the client
address (through ``trusted_proxies`` only), never a value the client writes: rotating
``Mcp-Session-Id`` or ``_meta.client_id`` gives nothing, and ``stateless_http=True`` (a new
session per request) is limited like any other deployment. ``key="session"`` uses only sessions
the server issued.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

fastmcp = pytest.importorskip("fastmcp")
uvicorn = pytest.importorskip("uvicorn")

from fastmcp import Client, FastMCP  # noqa: E402
from fastmcp.client.transports import StreamableHttpTransport  # noqa: E402
from fastmcp.server.auth.providers.jwt import StaticTokenVerifier  # noqa: E402
from uvicorn_thread import serving  # noqa: E402

from seawall.mcp import ToolRateLimitMiddleware, rate_limit_tool, reset_tool_stats  # noqa: E402
from seawall.mcp import _identity as mcp_identity  # noqa: E402
from seawall.testing import ManualClock  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_stats() -> None:
    reset_tool_stats()
    mcp_identity._warned.clear()


@contextmanager
def serve(mcp: FastMCP, *, stateless_http: bool = False) -> Iterator[str]:
    """Run ``mcp``'s streamable HTTP app under uvicorn on 127.0.0.1; yields the endpoint URL."""
    app = mcp.http_app(stateless_http=stateless_http)
    with serving(app, lifespan="on") as port:
        yield f"http://127.0.0.1:{port}/mcp"


def client(
    url: str, *, headers: dict[str, str] | None = None, mode: str = "auto", auth: str | None = None
) -> Client[Any]:
    transport = StreamableHttpTransport(url, headers=headers, auth=auth)
    return Client(transport, mode=mode)  # type: ignore[arg-type]


def refused(result: Any) -> bool:
    data = result.data
    return bool(result.is_error or (isinstance(data, dict) and data.get("rate_limited")))


async def calls(c: Client[Any], tool: str, n: int, meta: dict[str, Any] | None = None) -> int:
    """How many of ``n`` calls of ``tool`` were admitted."""
    results = [await c.call_tool(tool, {}, meta=meta, raise_on_error=False) for _ in range(n)]
    return sum(not refused(r) for r in results)


def server(clock: ManualClock, where: str, **options: Any) -> FastMCP:
    """A server whose tool ``ping`` allows 3 calls a minute, by the decorator or the middleware."""
    auth = options.pop("auth", None)
    middleware = (
        [ToolRateLimitMiddleware("3/minute", clock=clock, **options)] if where == "mw" else []
    )
    mcp = FastMCP("http", middleware=middleware, auth=auth)

    if where == "mw":

        @mcp.tool()
        def ping() -> dict[str, Any]:
            return {"ok": True}

    else:

        @mcp.tool()
        @rate_limit_tool("3/minute", clock=clock, **options)
        def ping() -> dict[str, Any]:
            return {"ok": True}

    return mcp


WHERE = ["decorator", "mw"]


@pytest.mark.parametrize("where", WHERE)
async def test_rotating_session_header_and_client_id_over_modern_http(where: str) -> None:
    # 2026-07-28: no session is issued, so Mcp-Session-Id is whatever the client writes.
    clock = ManualClock(0)
    with serve(server(clock, where)) as url:
        admitted = 0
        for i in range(6):
            async with client(url, headers={"Mcp-Session-Id": f"forged-{i}"}) as c:
                admitted += await calls(c, "ping", 1, meta={"client_id": f"client-{i}"})
    assert admitted == 3


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stateless_http_is_limited(where: str, mode: str) -> None:
    # Every request is a new session: keyed on it, nothing would ever be limited.
    clock = ManualClock(0)
    with serve(server(clock, where), stateless_http=True) as url:
        async with client(url, mode=mode) as c:
            assert await calls(c, "ping", 6) == 3


@pytest.mark.parametrize("where", WHERE)
async def test_clients_at_one_address_share_its_budget(where: str) -> None:
    clock = ManualClock(0)
    with serve(server(clock, where)) as url:
        async with client(url, mode="legacy") as c1, client(url) as c2:
            assert await calls(c1, "ping", 2) == 2
            assert await calls(c2, "ping", 2) == 1
        clock.advance(60)
        async with client(url) as c3:
            assert await calls(c3, "ping", 4) == 3


@pytest.mark.parametrize("where", WHERE)
async def test_session_key_uses_server_issued_sessions_only(where: str, caplog: Any) -> None:
    clock = ManualClock(0)
    mcp = server(clock, where, key="session")
    with serve(mcp) as url:  # stateful, handshake-era: the server issues Mcp-Session-Id
        async with client(url, mode="legacy") as c1, client(url, mode="legacy") as c2:
            assert await calls(c1, "ping", 4) == 3
            assert await calls(c2, "ping", 4) == 3  # a new session, a new budget (documented)
    assert not [r for r in caplog.records if r.name == "seawall.mcp"]
    clock.advance(60)
    with serve(mcp, stateless_http=True) as url:  # no session issued: the client address
        async with client(url, mode="legacy") as c1, client(url) as c2:
            assert await calls(c1, "ping", 2) == 2
            assert await calls(c2, "ping", 2) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "seawall.mcp"]
    assert len(warnings) == 1 and "no session" in warnings[0]


TOKENS = {
    "token-alice": {"client_id": "alice", "scopes": []},
    "token-bob": {"client_id": "bob", "scopes": []},
    # A principal that spells an address's key spends its own budget, not the address's.
    "token-ip": {"client_id": "ip:127.0.0.1", "scopes": []},
}


@pytest.mark.parametrize("where", WHERE)
async def test_authenticated_principal_is_the_key(where: str) -> None:
    clock = ManualClock(0)
    mcp = server(clock, where, auth=StaticTokenVerifier(tokens=TOKENS))
    with serve(mcp) as url:
        admitted = 0
        for i in range(4):  # alice, rotating sessions and client ids, from one address
            async with client(url, auth="token-alice", headers={"Mcp-Session-Id": f"s{i}"}) as c:
                admitted += await calls(c, "ping", 1, meta={"client_id": f"c{i}"})
        assert admitted == 3
        async with client(url, auth="token-bob") as c:  # bob, same address: his own budget
            assert await calls(c, "ping", 4) == 3
        async with client(url, auth="token-ip", mode="legacy") as c:
            assert await calls(c, "ping", 4) == 3


@pytest.mark.parametrize("where", WHERE)
async def test_forwarded_address_only_from_trusted_proxies(where: str) -> None:
    clock = ManualClock(0)
    with serve(server(clock, where)) as url:  # no trusted proxies: X-Forwarded-For is ignored
        admitted = 0
        for i in range(6):
            async with client(url, headers={"X-Forwarded-For": f"203.0.113.{i}"}) as c:
                admitted += await calls(c, "ping", 1)
        assert admitted == 3
    clock.advance(60)
    trusted = server(clock, where, trusted_proxies=["127.0.0.0/8"])
    with serve(trusted) as url:
        for i in range(2):  # each forwarded client has its own budget
            async with client(url, headers={"X-Forwarded-For": f"203.0.113.{i}"}) as c:
                assert await calls(c, "ping", 4) == 3


@pytest.mark.parametrize("where", WHERE)
async def test_only_the_configured_proxy_header_is_read(where: str) -> None:
    # The proxy writes X-Real-IP; the X-Forwarded-For a client sends through it is never read.
    clock = ManualClock(0)
    options = {"trusted_proxies": ["127.0.0.0/8"], "proxy_header": "X-Real-IP"}
    with serve(server(clock, where, **options)) as url:
        admitted = 0
        for i in range(6):
            headers = {"X-Real-IP": "203.0.113.9", "X-Forwarded-For": f"6.6.6.{i}"}
            async with client(url, headers=headers) as c:
                admitted += await calls(c, "ping", 1)
        assert admitted == 3
    with pytest.raises(ValueError, match="proxy_header"):
        server(clock, where, trusted_proxies=["127.0.0.1"], proxy_header="Not A Header")


@pytest.mark.parametrize("where", WHERE)
async def test_client_id_opt_in_is_namespaced(where: str) -> None:
    # A client id that spells the address's key does not spend the address's budget.
    clock = ManualClock(0)
    with serve(server(clock, where, key="client-id")) as url:
        async with client(url) as c:
            assert await calls(c, "ping", 4, meta={"client_id": "ip:127.0.0.1"}) == 3
            assert await calls(c, "ping", 4) == 3  # no client id: the address
            assert await calls(c, "ping", 4, meta={"client_id": "other"}) == 3


@pytest.mark.parametrize("where", WHERE)
async def test_address_and_principal_keys(where: str, caplog: Any) -> None:
    clock = ManualClock(0)
    by_address = server(clock, where, key="address", auth=StaticTokenVerifier(tokens=TOKENS))
    with serve(by_address) as url:  # authenticated, but limited by address all the same
        async with client(url, auth="token-alice") as a, client(url, auth="token-bob") as b:
            assert await calls(a, "ping", 2) == 2
            assert await calls(b, "ping", 2) == 1
    assert not [r for r in caplog.records if r.name == "seawall.mcp"]
    clock.advance(60)
    with serve(server(clock, where, key="principal")) as url:  # no auth: the address, warned
        async with client(url) as c1, client(url, mode="legacy") as c2:
            assert await calls(c1, "ping", 2) == 2
            assert await calls(c2, "ping", 2) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "seawall.mcp"]
    assert len(warnings) == 1 and "not authenticated" in warnings[0]
