"""RateLimitMiddleware edge cases from issue 11: HEAD under GET rules, key namespaces, query keys
of invalid UTF-8, one ``max_keys`` for the whole middleware, the app's messages left untouched,
bad arguments named, and configurations that limit nothing refused."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from seawall import RateLimitMiddleware, Rule, rate_limit
from seawall.fastapi import limit
from seawall.testing import ManualClock
from seawall.types import Message, Scope

CLIENT = ("203.0.113.7", 1234)
T0 = 1_800_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=T0)


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


async def drive(app: Any, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def ok(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def http(app: Any, client: tuple[str, int] = CLIENT) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


# --- item 5: HEAD is served by the GET handler, so a GET rule holds it too -------------------


def test_head_spends_the_budget_of_a_get_rule(clock: ManualClock) -> None:
    calls: list[str] = []

    async def search(request: Request) -> Response:
        calls.append(request.method)
        return PlainTextResponse("results")

    app = Starlette(routes=[Route("/search", search, methods=["GET"])])
    app.add_middleware(
        RateLimitMiddleware, rules=[Rule("/search", "2/minute", methods=["GET"])], clock=clock
    )

    async def scenario() -> None:
        async with http(app) as client:
            statuses = [(await client.head("/search")).status_code for _ in range(7)]
            assert statuses == [200, 200, 429, 429, 429, 429, 429]
            assert (await client.get("/search")).status_code == 429

    run(scenario)
    assert calls == ["HEAD", "HEAD"]


def test_a_rule_for_head_alone_does_not_cover_get(clock: ManualClock) -> None:
    mw = RateLimitMiddleware(ok, rules=[Rule("/x", "1/minute", methods=["HEAD"])], clock=clock)
    assert [asyncio.run(drive(mw, scope_of("/x")))[0]["status"] for _ in range(3)] == [200] * 3


# --- item 6: key_func keys have their own namespace -----------------------------------------


def test_a_key_func_value_cannot_spend_an_ip_budget(clock: ManualClock) -> None:
    def by_header(request: Request) -> str | None:
        return request.headers.get("x-user")

    async def hello(request: Request) -> Response:
        return PlainTextResponse("hi")

    app = Starlette(routes=[Route("/", hello)])
    app.add_middleware(RateLimitMiddleware, limits="1/minute", key_func=by_header, clock=clock)

    async def scenario() -> None:
        async with http(app) as attacker:
            for _ in range(3):
                await attacker.get("/", headers={"x-user": "ip:198.51.100.7"})
        async with http(app, ("198.51.100.7", 1)) as victim:
            assert (await victim.get("/")).status_code == 200
            assert (await victim.get("/")).status_code == 429

    run(scenario)


def test_a_key_func_value_keeps_exempt_clients_and_reset_by_key(clock: ManualClock) -> None:
    mw = RateLimitMiddleware(
        ok,
        limits="1/minute",
        key_func=lambda request: request.headers.get("x-user"),
        exempt_clients=["admin"],
        clock=clock,
    )
    admin = scope_of(headers=[(b"x-user", b"admin")])
    assert [asyncio.run(drive(mw, admin))[0]["status"] for _ in range(3)] == [200] * 3
    alice = scope_of(headers=[(b"x-user", b"alice")])
    assert [asyncio.run(drive(mw, alice))[0]["status"] for _ in range(2)] == [200, 429]
    mw.limiter.reset("fn:alice")
    assert asyncio.run(drive(mw, alice))[0]["status"] == 200


def test_the_fastapi_dependency_namespaces_key_func_keys_too(clock: ManualClock) -> None:
    from fastapi import Depends, FastAPI

    dependency = limit(
        "1/minute", key_func=lambda request: request.headers.get("x-user"), clock=clock
    )
    app = FastAPI()

    @app.get("/", dependencies=[Depends(dependency)])
    async def index() -> str:
        return "ok"

    async def scenario() -> None:
        async with http(app) as attacker:
            await attacker.get("/", headers={"x-user": "ip:198.51.100.7"})
        async with http(app, ("198.51.100.7", 1)) as victim:
            assert (await victim.get("/")).status_code == 200

    run(scenario)


# --- item 7: query keys keep invalid UTF-8 apart --------------------------------------------


def test_query_values_of_invalid_utf8_stay_apart(clock: ManualClock) -> None:
    mw = RateLimitMiddleware(ok, limits="1/minute", key="query:api_key", clock=clock)
    ff = mw.limiter.key_for(scope_of(query=b"api_key=%ff"))
    fe = mw.limiter.key_for(scope_of(query=b"api_key=%fe"))
    assert ff != fe
    assert mw.limiter.key_for(scope_of(query=b"api_key=caf%C3%A9")) == "query:caf\u00e9"
    for query in (b"api_key=%ff", b"api_key=%fe"):
        assert asyncio.run(drive(mw, scope_of(query=query)))[0]["status"] == 200
    assert asyncio.run(drive(mw, scope_of(query=b"api_key=%ff")))[0]["status"] == 429
    # The same rule as header keys: the hex of the bytes, in a namespace no text can reach.
    header = RateLimitMiddleware(ok, limits="1/minute", key="header:x-key")
    assert header.limiter.key_for(scope_of(headers=[(b"x-key", b"\xff")])) == "header-hex:ff"
    assert ff == "query-hex:ff"
    assert mw.limiter.key_for(scope_of(query=b"api_key=0xff")) == "query:0xff"


# --- item 20: max_keys bounds the middleware as a whole -------------------------------------


def test_max_keys_bounds_every_rule_and_the_default_together(clock: ManualClock) -> None:
    mw = RateLimitMiddleware(
        ok,
        limits="1/hour",
        rules=[(f"/r{i}", "1/hour") for i in range(4)],
        max_keys=20,
        clock=clock,
    )
    for n in range(60):
        client = (f"198.51.{n // 250}.{n % 250}", 1)
        for path in ("/r0", "/r1", "/r2", "/r3", "/other"):
            asyncio.run(drive(mw, scope_of(path, client=client)))
    assert 0 < len(mw.limiter) <= 20


# --- item 23: the app's response start message is not changed -------------------------------


def test_a_shared_prepared_start_message_is_left_alone(clock: ManualClock) -> None:
    start: Message = {"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]}
    body: Message = {"type": "http.response.body", "body": b"ok"}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send(start)
        await send(body)

    mw = RateLimitMiddleware(app, limits="5/minute", clock=clock)
    for remaining in (b"4", b"3", b"2"):
        sent = asyncio.run(drive(mw, scope_of()))
        assert sent[0]["headers"] == [
            (b"x-app", b"1"),
            (b"x-ratelimit-limit", b"5"),
            (b"x-ratelimit-remaining", remaining),
            (b"x-ratelimit-reset", sent[0]["headers"][3][1]),
        ]
        assert sent[0] is not start
        assert start == {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"x-app", b"1")],
        }


def test_the_admitted_send_takes_any_header_sequence_and_passes_other_messages_as_they_are(
    clock: ManualClock,
) -> None:
    """The send an admitted app gets (native): headers given as a tuple or not at all are
    extended into a new list; a body message, or any other, reaches the server as the very
    object the app sent; a message without a type is the app's error, a KeyError."""
    trailer: Message = {"type": "http.response.trailers", "headers": [(b"x-t", b"1")]}
    body: Message = {"type": "http.response.body", "body": b"ok"}
    starts: list[Message] = [
        {"type": "http.response.start", "status": 200, "headers": ((b"x-app", b"1"),)},
        {"type": "http.response.start", "status": 204},
    ]
    for start in starts:
        app_headers = list(start.get("headers", ()))

        async def app(scope: Scope, receive: Any, send: Any, start: Message = start) -> None:
            await send(start)
            await send(body)
            await send(trailer)

        mw = RateLimitMiddleware(app, limits="5/minute", clock=clock)
        sent = asyncio.run(drive(mw, scope_of()))
        assert [name for name, _ in sent[0]["headers"]] == [name for name, _ in app_headers] + [
            b"x-ratelimit-limit",
            b"x-ratelimit-remaining",
            b"x-ratelimit-reset",
        ]
        assert sent[0]["status"] == start["status"]
        assert sent[1] is body and sent[2] is trailer
        assert list(start.get("headers", ())) == app_headers

    async def untyped(scope: Scope, receive: Any, send: Any) -> None:
        await send({"status": 200})

    mw = RateLimitMiddleware(untyped, limits="5/minute", clock=clock)
    with pytest.raises(KeyError, match="type"):
        asyncio.run(drive(mw, scope_of()))


def test_an_admitted_send_in_a_reference_cycle_is_collected(clock: ManualClock) -> None:
    """The native send an admitted app gets holds the server's ``send``; when that ``send``
    leads back to it (an app keeping it in its request, its request in the scope), the cycle
    must still be collected, as the Python closure it replaced was."""
    import gc
    import weakref

    class ServerSend:
        kept: Any = None

        def __call__(self, message: Message) -> None:
            return None

    mw = RateLimitMiddleware(ok, limits="5/minute", clock=clock)
    server_send = ServerSend()
    admitted = mw.limiter.check_send(scope_of(), server_send)
    assert admitted is not None and not isinstance(admitted, tuple)
    server_send.kept = admitted
    gone = weakref.ref(server_send)
    del server_send, admitted
    gc.collect()
    assert gone() is None


# --- item 26: every bad argument is a ValueError or TypeError naming it ----------------------

BAD_MIDDLEWARE_ARGUMENTS: list[tuple[str, Any]] = [
    ("headers", None),
    ("headers", 1),
    ("key", None),
    ("key", 1),
    ("algorithm", None),
    ("algorithm", "nope"),
    ("ipv6_prefix", None),
    ("ipv6_prefix", "64"),
    ("ipv6_prefix", 1.5),
    ("max_key_length", None),
    ("max_key_length", 8),
    ("draft_version", None),
    ("draft_version", "11"),
    ("max_keys", None),
    ("max_keys", 0),
    ("max_keys", True),
    ("bypass_header", 5),
    ("bypass_secret", 5),
    ("trusted_proxies", None),
    ("trusted_proxies", 5),
    ("exempt_ips", None),
    ("exempt_ips", [None]),
    ("exempt_clients", None),
    ("exempt_clients", [1]),
    ("rules", None),
    ("rules", [("/a",)]),
    ("rules", [(None, "1/minute")]),
    ("global_limits", 5),
    ("max_body_bytes", None),
    ("websockets", None),
    ("clock", "now"),
    ("proxy_header", None),
]


@pytest.mark.parametrize(("name", "value"), BAD_MIDDLEWARE_ARGUMENTS)
def test_bad_middleware_arguments_are_named(name: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        RateLimitMiddleware(ok, limits="1/minute", **{name: value})
    assert name in str(caught.value), str(caught.value)


BAD_DEPENDENCY_ARGUMENTS: list[tuple[str, Any]] = [
    ("headers", None),
    ("headers", 1),
    ("algorithm", None),
    ("ipv6_prefix", None),
    ("max_key_length", None),
    ("max_keys", None),
    ("trusted_proxies", None),
    ("exempt_ips", None),
    ("key_func", "ip"),
    ("clock", "now"),
    ("proxy_header", None),
]


@pytest.mark.parametrize(("name", "value"), BAD_DEPENDENCY_ARGUMENTS)
def test_bad_dependency_arguments_are_named(name: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        limit("1/minute", **{name: value})
    assert name in str(caught.value), str(caught.value)
    with pytest.raises((TypeError, ValueError), match="limits"):
        limit(None)  # type: ignore[arg-type]


BAD_DECORATOR_ARGUMENTS: list[tuple[str, Any]] = [
    ("limits", None),
    ("limits", 5),
    ("key", "user"),
    ("algorithm", None),
    ("algorithm", "nope"),
    ("on_limit", None),
    ("max_keys", None),
    ("max_keys", 0),
    ("clock", "now"),
]


@pytest.mark.parametrize(("name", "value"), BAD_DECORATOR_ARGUMENTS)
def test_bad_decorator_arguments_are_named(name: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        rate_limit(**{name: value})
    assert name in str(caught.value), str(caught.value)


def test_a_context_variable_key_is_still_accepted() -> None:
    var: contextvars.ContextVar[str | None] = contextvars.ContextVar("v", default=None)
    assert callable(rate_limit("1/minute", key=var))


BAD_RULE_ARGUMENTS: list[dict[str, Any]] = [
    {"path": None, "limits": "1/minute"},
    {"path": "/a", "limits": None},
    {"path": "/a", "limits": 5},
    {"path": "/a", "limits": "1/minute", "methods": [None]},
    {"path": "/a", "limits": "1/minute", "name": 5},
]


@pytest.mark.parametrize("arguments", BAD_RULE_ARGUMENTS)
def test_bad_rule_arguments_are_named(arguments: dict[str, Any]) -> None:
    bad = next(n for n, v in arguments.items() if v is None or v in (5, [None]))
    with pytest.raises((TypeError, ValueError)) as caught:
        Rule(**arguments)
    assert bad in str(caught.value), str(caught.value)


# --- item 30: configurations that limit nothing ---------------------------------------------


def test_a_middleware_without_any_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limits"):
        RateLimitMiddleware(ok)
    with pytest.raises(ValueError, match="limits"):
        RateLimitMiddleware(ok, rules=[])


@pytest.mark.parametrize("path", ["api/*", "search", "", " /api"])
def test_a_rule_path_without_a_leading_slash_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        Rule(path, "1/minute")
    with pytest.raises(ValueError, match="path"):
        RateLimitMiddleware(ok, rules=[(path, "1/minute")])


def test_a_rule_with_no_methods_is_refused() -> None:
    with pytest.raises(ValueError, match="methods"):
        Rule("/a", "1/minute", methods=[])


def test_leading_globs_are_still_rules() -> None:
    mw = RateLimitMiddleware(ok, rules=[Rule("*/search", "1/minute")])
    statuses = [asyncio.run(drive(mw, scope_of("/v1/search")))[0]["status"] for _ in range(2)]
    assert statuses == [200, 429]
