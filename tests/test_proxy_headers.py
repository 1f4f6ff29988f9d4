"""Who the client is behind a trusted proxy: one configured header is read (``proxy_header``), RFC
7239 ``Forwarded`` is parsed properly, and IPv4-mapped networks in the config match IPv4 peers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from seawall import RateLimitMiddleware
from seawall.fastapi import limit
from seawall.testing import ManualClock
from seawall.types import Scope

PROXY = ("10.0.0.1", 443)
T0 = 1_800_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=T0)


def scope_of(headers: list[tuple[bytes, bytes]], client: tuple[str, int] = PROXY) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": client,
        "server": ("testserver", 80),
    }


async def ok(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def middleware(**options: Any) -> RateLimitMiddleware:
    return RateLimitMiddleware(ok, limits="2/minute", trusted_proxies=["10.0.0.1"], **options)


def key_of(mw: RateLimitMiddleware, headers: list[tuple[bytes, bytes]]) -> str:
    return mw.limiter.key_for(scope_of(headers))


def starlette_app(calls: list[str], **options: Any) -> Starlette:
    async def hello(request: Request) -> Response:
        calls.append(request.url.path)
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/{path:path}", hello)])
    app.add_middleware(RateLimitMiddleware, **options)
    return app


def via_proxy(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=PROXY), base_url="http://testserver"
    )


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


# --- item 1: one configured header, not the first present -----------------------------------


def test_a_client_written_forwarded_header_passed_through_is_not_read(clock: ManualClock) -> None:
    """nginx's ``$proxy_add_x_forwarded_for``, ALBs and Caddy write ``X-Forwarded-For`` and pass
    the client's own ``Forwarded`` through: reading ``Forwarded`` first gave a fresh budget per
    request."""
    calls: list[str] = []
    app = starlette_app(calls, limits="2/minute", trusted_proxies=["10.0.0.1"], clock=clock)

    async def scenario() -> None:
        async with via_proxy(app) as client:
            statuses = [
                (
                    await client.get(
                        "/",
                        headers={"X-Forwarded-For": "203.0.113.7", "Forwarded": f"for=6.6.6.{i}"},
                    )
                ).status_code
                for i in range(6)
            ]
            assert statuses == [200, 200, 429, 429, 429, 429]

    run(scenario)
    assert len(calls) == 2


def test_a_client_written_forwarded_header_cannot_claim_an_exempt_address(
    clock: ManualClock,
) -> None:
    calls: list[str] = []
    app = starlette_app(
        calls,
        limits="1/minute",
        trusted_proxies=["10.0.0.1"],
        exempt_ips=["6.6.6.0/24"],
        clock=clock,
    )

    async def scenario() -> None:
        async with via_proxy(app) as client:
            headers = {"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=6.6.6.6"}
            assert (await client.get("/", headers=headers)).status_code == 200
            assert (await client.get("/", headers=headers)).status_code == 429

    run(scenario)


def test_the_default_reads_x_forwarded_for_only() -> None:
    mw = middleware()
    assert key_of(mw, [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7")]) == "ip:203.0.113.7"
    assert key_of(mw, [(b"forwarded", b"for=203.0.113.8")]) == "ip:10.0.0.1"
    assert key_of(mw, [(b"x-real-ip", b"203.0.113.9")]) == "ip:10.0.0.1"
    assert key_of(mw, [(b"forwarded", b"for=6.6.6.6"), (b"x-forwarded-for", b"203.0.113.7")]) == (
        "ip:203.0.113.7"
    )


def test_a_proxy_writing_x_real_ip_with_the_client_sending_x_forwarded_for() -> None:
    mw = middleware(proxy_header="X-Real-IP")
    for i in range(3):
        headers = [(b"x-forwarded-for", f"6.6.6.{i}".encode()), (b"x-real-ip", b"203.0.113.7")]
        assert key_of(mw, headers) == "ip:203.0.113.7"
    assert key_of(mw, [(b"x-forwarded-for", b"6.6.6.6")]) == "ip:10.0.0.1"


def test_forwarded_alone_when_chosen() -> None:
    mw = middleware(proxy_header="Forwarded")
    headers = [(b"x-forwarded-for", b"6.6.6.6"), (b"forwarded", b"for=203.0.113.7;proto=https")]
    assert key_of(mw, headers) == "ip:203.0.113.7"
    assert key_of(mw, [(b"x-forwarded-for", b"6.6.6.6")]) == "ip:10.0.0.1"


def test_any_header_name() -> None:
    mw = middleware(proxy_header="CF-Connecting-IP")
    headers = [(b"x-forwarded-for", b"6.6.6.6"), (b"cf-connecting-ip", b"203.0.113.7")]
    assert key_of(mw, headers) == "ip:203.0.113.7"
    assert key_of(mw, [(b"x-real-ip", b"6.6.6.6")]) == "ip:10.0.0.1"


def test_the_fastapi_dependency_takes_the_same_option(clock: ManualClock) -> None:
    dependency = limit("1/minute", trusted_proxies=["10.0.0.1"], proxy_header="X-Real-IP")
    app = FastAPI()

    @app.get("/", dependencies=[Depends(dependency)])
    async def index() -> str:
        return "ok"

    async def scenario() -> None:
        async with via_proxy(app) as client:
            headers = {"X-Real-IP": "203.0.113.7"}
            assert (
                await client.get("/", headers={**headers, "X-Forwarded-For": "6.6.6.1"})
            ).status_code == 200
            assert (
                await client.get("/", headers={**headers, "X-Forwarded-For": "6.6.6.2"})
            ).status_code == 429

    run(scenario)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("", ValueError),
        ("X Forwarded For", ValueError),
        ("x-forwarded-for:", ValueError),
        ("caf\u00e9", ValueError),
        (None, TypeError),
        (5, TypeError),
        (b"x-forwarded-for", TypeError),
    ],
)
def test_a_bad_proxy_header_is_refused_by_name(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="proxy_header"):
        middleware(proxy_header=value)
    with pytest.raises(error, match="proxy_header"):
        limit("1/minute", proxy_header=value)


HEADER_NAMES = st.sampled_from(
    [b"x-forwarded-for", b"forwarded", b"x-real-ip", b"cf-connecting-ip", b"host"]
)
HEADER_VALUES = st.one_of(
    st.binary(max_size=40),
    st.lists(
        st.one_of(
            st.ip_addresses().map(str),
            st.just("10.0.0.5"),
            st.just("for=198.51.100.4"),
            st.just('for="[2001:db8::1]:80"'),
        ),
        max_size=5,
    ).map(lambda hops: ", ".join(hops).encode()),
)


@settings(max_examples=300, deadline=None)
@given(
    chosen=st.sampled_from(["X-Forwarded-For", "Forwarded", "X-Real-IP", "CF-Connecting-IP"]),
    headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6),
)
def test_other_headers_from_a_trusted_proxy_never_change_the_client(
    chosen: str, headers: list[tuple[bytes, bytes]]
) -> None:
    mw = RateLimitMiddleware(
        ok, limits="1/minute", trusted_proxies=["10.0.0.0/8"], proxy_header=chosen
    )
    only = [(n, v) for n, v in headers if n == chosen.lower().encode()]
    assert key_of(mw, headers) == key_of(mw, only)


@settings(max_examples=300, deadline=None)
@given(
    chosen=st.sampled_from(["X-Forwarded-For", "Forwarded", "X-Real-IP", "CF-Connecting-IP"]),
    peer=st.ip_addresses(v=4).map(str).filter(lambda a: not a.startswith("10.")),
    headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6),
)
def test_proxy_headers_from_untrusted_peers_never_change_the_client(
    chosen: str, peer: str, headers: list[tuple[bytes, bytes]]
) -> None:
    mw = RateLimitMiddleware(
        ok, limits="1/minute", trusted_proxies=["10.0.0.0/8"], proxy_header=chosen
    )
    assert mw.limiter.key_for(scope_of(headers, (peer, 1))) == f"ip:{peer}"


# --- item 2: RFC 7239 quoted strings --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (b'for=203.0.113.7;host="a,for=9.9.9.9"', "ip:203.0.113.7"),
        (b'for=203.0.113.7;host="a;for=9.9.9.9"', "ip:203.0.113.7"),
        (b'for=203.0.113.7;host="a\\",for=9.9.9.9"', "ip:203.0.113.7"),
        (b'host="x,for=9.9.9.9", for=203.0.113.7', "ip:203.0.113.7"),
        (b'for="[2001:db8:cafe::17]:4711"', "ip:2001:db8:cafe::/64"),
        (b'for="203.0.113.7:8080"', "ip:203.0.113.7"),
        (b'for="\\2\\0\\3.0.113.7"', "ip:203.0.113.7"),
        (b"FOR=203.0.113.7;Proto=https", "ip:203.0.113.7"),
        (b"for=198.51.100.1, for=10.0.0.1", "ip:198.51.100.1"),
        # Not addresses: the walk ends at the last trusted hop.
        (b"for=unknown", "ip:10.0.0.1"),
        (b'for="_hidden"', "ip:10.0.0.1"),
        (b"for=_hidden", "ip:10.0.0.1"),
        (b"for=198.51.100.1, for=unknown", "ip:10.0.0.1"),
        (b"for=198.51.100.1, proto=https", "ip:10.0.0.1"),
        (b'for="203.0.113.7', "ip:10.0.0.1"),
        (b'for=9.9.9.9, for=203.0.113.7;host="unterminated', "ip:10.0.0.1"),
        (b"for=2001:db8::1", "ip:10.0.0.1"),
    ],
)
def test_forwarded_is_parsed_as_rfc_7239(value: bytes, key: str) -> None:
    mw = middleware(proxy_header="Forwarded")
    assert key_of(mw, [(b"forwarded", value)]) == key


def test_a_quoted_comma_does_not_choose_the_key(clock: ManualClock) -> None:
    calls: list[str] = []
    app = starlette_app(
        calls,
        limits="1/minute",
        trusted_proxies=["10.0.0.1"],
        proxy_header="Forwarded",
        clock=clock,
    )

    async def scenario() -> None:
        async with via_proxy(app) as client:
            for i, status in enumerate([200, 429, 429]):
                value = f'for=203.0.113.7;host="a,for=9.9.9.{i}"'
                assert (await client.get("/", headers={"Forwarded": value})).status_code == status

    run(scenario)


# --- item 29: IPv4-mapped networks ----------------------------------------------------------


def test_ipv4_mapped_networks_match_the_ipv4_peers_they_map(clock: ManualClock) -> None:
    mw = RateLimitMiddleware(
        ok,
        limits="1/minute",
        trusted_proxies=["::ffff:10.0.0.0/104"],
        exempt_ips=["::ffff:203.0.113.0/120"],
        clock=clock,
    )

    async def statuses(client: tuple[str, int], headers: list[tuple[bytes, bytes]]) -> list[int]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        for _ in range(3):
            await mw(scope_of(headers, client), receive, send)
        return [m["status"] for m in sent if m["type"] == "http.response.start"]

    # The exempt network covers 203.0.113.0/24, whether the peer shows as IPv4 or mapped.
    assert asyncio.run(statuses(("203.0.113.7", 1), [])) == [200, 200, 200]
    assert asyncio.run(statuses(("::ffff:203.0.113.8", 1), [])) == [200, 200, 200]
    assert asyncio.run(statuses(("203.0.114.7", 1), [])) == [200, 429, 429]
    # The proxy network is trusted for 10.0.0.0/8.
    xff = [(b"x-forwarded-for", b"198.51.100.1")]
    assert key_of(mw, xff) == "ip:198.51.100.1"


def test_networks_wider_than_the_mapped_range_stay_ipv6_only() -> None:
    mw = RateLimitMiddleware(ok, limits="1/minute", trusted_proxies=["::/0"])
    xff = [(b"x-forwarded-for", b"198.51.100.1")]
    assert key_of(mw, xff) == "ip:10.0.0.1"
    assert mw.limiter.key_for(scope_of(xff, ("2001:db8::1", 1))) == "ip:198.51.100.1"
