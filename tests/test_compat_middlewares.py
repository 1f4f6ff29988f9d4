"""The seeds' middlewares and decorators on seawall: snowflake (000), mahavishnu (001),
fastmcp_example (004), on real FastAPI / Starlette apps through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import inspect
import pickle
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from seawall import SeawallError
from seawall.compat import fastmcp_example, snowflake
from seawall.compat.mahavishnu import rate_limit as mahavishnu
from seawall.testing import ManualClock

CLIENT = ("203.0.113.7", 1234)
T0 = 1_800_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=T0)


def http(app: Any, client: tuple[str, int] = CLIENT) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


# --- seed 000: snowflake --------------------------------------------------------------------


def snowflake_app(middleware: snowflake.RateLimitMiddleware, seen: list[str | None]) -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, str | None]:
        seen.append(snowflake.current_client_id.get())
        return {"client": snowflake.current_client_id.get()}

    @app.get("/tool")
    @snowflake.rate_limit(requests_per_minute=2)
    async def tool() -> str:
        return "tool"

    app.middleware("http")(middleware)  # the seed's way of adding it
    return app


def test_snowflake_middleware(clock: ManualClock) -> None:
    seen: list[str | None] = []
    middleware = snowflake.RateLimitMiddleware(requests_per_second=1.0, burst_size=3, clock=clock)
    app = snowflake_app(middleware, seen)

    async def scenario() -> None:
        async with http(app) as client:
            responses = [await client.get("/") for _ in range(3)]
            assert [r.headers["x-ratelimit-remaining"] for r in responses] == ["2", "1", "0"]
            assert all(r.headers["x-ratelimit-limit"] == "3" for r in responses)
            # Epoch seconds, as the original's: full again 3 s from now.
            assert responses[-1].headers["x-ratelimit-reset"] == str(int(T0) + 3)
            assert responses[0].json() == {"client": "203.0.113.7"}
            denied = await client.get("/")
            assert denied.status_code == 429
            assert denied.json() == {
                "error": {"code": 429, "message": "Rate limit exceeded", "retry_after": 1}
            }
            assert denied.headers["retry-after"] == "1"  # the real wait, not the seed's 60
            assert denied.headers["x-ratelimit-remaining"] == "0"
            # Never X-Forwarded-For: a client cannot pick a fresh key.
            r = await client.get("/", headers={"X-Forwarded-For": "198.51.100.1"})
            assert r.status_code == 429
            # The seed's other key sources: X-Client-ID, then the client_id query parameter.
            assert (await client.get("/", headers={"X-Client-ID": "c1"})).json() == {"client": "c1"}
            assert (await client.get("/?client_id=q1")).json() == {"client": "q1"}
            clock.advance(1.0)
            assert (await client.get("/")).status_code == 200

    run(scenario)
    assert seen == ["203.0.113.7"] * 3 + ["c1", "q1", "203.0.113.7"]
    assert snowflake.current_client_id.get() is None  # reset after each request


def test_snowflake_key_func_and_rate(clock: ManualClock) -> None:
    async def by_tenant(request: Request) -> str:
        return request.headers.get("x-tenant", "none")

    middleware = snowflake.RateLimitMiddleware(
        requests_per_second=0.5, burst_size=1, key_func=by_tenant, clock=clock
    )
    app = snowflake_app(middleware, [])

    async def scenario() -> None:
        async with http(app) as client:
            assert (await client.get("/", headers={"x-tenant": "t1"})).status_code == 200
            denied = await client.get("/", headers={"x-tenant": "t1"})
            assert denied.status_code == 429 and denied.headers["retry-after"] == "2"
            assert (await client.get("/", headers={"x-tenant": "t2"})).status_code == 200

    run(scenario)


def test_snowflake_long_client_ids_are_capped(clock: ManualClock) -> None:
    middleware = snowflake.RateLimitMiddleware(clock=clock)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [(b"x-client-id", b"x" * 5000)],
        "client": CLIENT,
    }
    key = middleware._default_key_func(Request(scope))
    assert key.startswith("sha256:") and len(key) < 100


def test_snowflake_rate_limit_decorator(seawall_clock: ManualClock) -> None:
    # Both follow the default clock, which the seawall_clock fixture moves by hand.
    app = snowflake_app(snowflake.RateLimitMiddleware(burst_size=100), [])

    async def scenario() -> None:
        async with http(app) as client:
            assert (await client.get("/tool")).status_code == 200
            assert (await client.get("/tool")).status_code == 200
            denied = await client.get("/tool")
            assert denied.status_code == 429
            assert denied.json() == {"detail": "Rate limit exceeded for this operation"}
            assert denied.headers["retry-after"] == "30"
            # Another client (via X-Client-ID, through current_client_id) has its own budget.
            assert (await client.get("/tool", headers={"X-Client-ID": "c2"})).status_code == 200
            seawall_clock.advance(30)
            assert (await client.get("/tool")).status_code == 200

    run(scenario)


def test_snowflake_rate_limit_outside_a_request(seawall_clock: ManualClock) -> None:
    @snowflake.rate_limit(requests_per_minute=1)
    async def handler(x: int) -> int:
        return x

    assert inspect.iscoroutinefunction(handler)

    async def scenario() -> None:
        assert await handler(1) == 1
        with pytest.raises(HTTPException) as refused:
            await handler(2)  # no current_client_id: the seed's "unknown"
        assert refused.value.status_code == 429
        token = snowflake.current_client_id.set("someone")
        try:
            assert await handler(3) == 3
        finally:
            snowflake.current_client_id.reset(token)

    asyncio.run(scenario())
    with pytest.raises(ValueError, match="requests_per_minute"):
        snowflake.rate_limit(0)
    with pytest.raises(ValueError, match="burst_size"):
        snowflake.RateLimitMiddleware(burst_size=0)
    with pytest.raises(ValueError, match="requests_per_second"):
        snowflake.RateLimitMiddleware(requests_per_second=0)
    assert {"RateLimitMiddleware", "current_client_id", "rate_limit"} <= set(snowflake.__all__)


# --- seed 001: mahavishnu -------------------------------------------------------------------


def starlette_app(calls: list[str], middleware: type, **options: Any) -> Starlette:
    async def hello(request: Request) -> Response:
        calls.append(request.url.path)
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/{path:path}", hello)])
    app.add_middleware(middleware, **options)
    return app


def test_mahavishnu_middleware(clock: ManualClock) -> None:
    calls: list[str] = []
    config = mahavishnu.RateLimitConfig(
        requests_per_minute=3,
        burst_size=3,
        exempt_ips={"10.0.0.0/8"},
        exempt_user_ids={"admin_user"},
    )
    app = starlette_app(
        calls,
        mahavishnu.RateLimitMiddleware,
        config=config,
        user_id_header="X-User-ID",
        clock=clock,
    )

    async def scenario() -> None:
        async with http(app) as client:
            responses = [await client.get("/") for _ in range(3)]
            assert [r.status_code for r in responses] == [200] * 3
            assert responses[0].headers["x-ratelimit-limit"] == "3"
            denied = await client.get("/")
            assert denied.status_code == 429
            body = denied.json()
            assert set(body) == {"error", "retry_after", "reset_time"}
            assert body["error"] == "Rate limit exceeded"
            assert body["retry_after"] == int(denied.headers["retry-after"]) == 60  # exact log
            assert body["reset_time"] == pytest.approx(T0 + 60)
            # No proxy header changes the key (no trusted proxies configured).
            r = await client.get(
                "/", headers={"X-Forwarded-For": "1.2.3.4", "X-Real-IP": "1.2.3.5"}
            )
            assert r.status_code == 429
            # The user id from the configured header: its own budget, and exemptions.
            for _ in range(5):
                r = await client.get("/", headers={"X-User-ID": "admin_user"})
                assert r.status_code == 200
            assert (await client.get("/", headers={"X-User-ID": "u1"})).status_code == 200
        async with http(app, ("10.1.2.3", 1)) as internal:
            for _ in range(5):
                assert (await internal.get("/")).status_code == 200
        config.enabled = False  # the switch works at once
        async with http(app) as client:
            r = await client.get("/")
            assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers

    run(scenario)
    assert len(calls) == 3 + 5 + 1 + 5 + 1


def test_mahavishnu_middleware_ignores_a_client_chosen_user_id(clock: ManualClock) -> None:
    config = mahavishnu.RateLimitConfig(
        requests_per_minute=1, burst_size=1, exempt_user_ids={"admin_user"}
    )
    app = starlette_app([], mahavishnu.RateLimitMiddleware, config=config, clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            assert (await client.get("/")).status_code == 200
            for user in ("admin_user", "fresh-1", "fresh-2"):
                r = await client.get("/", headers={"X-User-ID": user})
                assert r.status_code == 429, user

    run(scenario)


def test_mahavishnu_middleware_defaults_and_limiter_config(clock: ManualClock) -> None:
    limiter = mahavishnu.RateLimiter(per_minute=2, burst_size=2)
    app = starlette_app([], mahavishnu.RateLimitMiddleware, limiter=limiter, clock=clock)
    default_app = starlette_app([], mahavishnu.RateLimitMiddleware, clock=clock)

    async def scenario() -> None:
        async with http(app) as client:
            assert [(await client.get("/")).status_code for _ in range(3)] == [200, 200, 429]
        async with http(default_app) as client:
            statuses = [(await client.get("/")).status_code for _ in range(11)]
            assert statuses == [200] * 10 + [429]  # the default burst of 10

    run(scenario)


def test_mahavishnu_middleware_trusted_proxies(clock: ManualClock) -> None:
    config = mahavishnu.RateLimitConfig(requests_per_minute=1, burst_size=1)
    app = starlette_app(
        [], mahavishnu.RateLimitMiddleware, config=config, trusted_proxies=["10.0.0.1"], clock=clock
    )

    async def scenario() -> None:
        async with http(app, ("10.0.0.1", 1)) as proxy:
            for client, status in [
                ("198.51.100.1", 200),
                ("198.51.100.1", 429),
                ("198.51.100.2", 200),
            ]:
                r = await proxy.get("/", headers={"X-Forwarded-For": client})
                assert r.status_code == status

    run(scenario)


def test_mahavishnu_middleware_reads_the_configured_proxy_header(clock: ManualClock) -> None:
    # A proxy that writes only X-Real-IP: the client's own X-Forwarded-For is never read.
    config = mahavishnu.RateLimitConfig(requests_per_minute=1, burst_size=1)
    app = starlette_app(
        [],
        mahavishnu.RateLimitMiddleware,
        config=config,
        trusted_proxies=["10.0.0.1"],
        proxy_header="X-Real-IP",
        clock=clock,
    )

    async def scenario() -> None:
        async with http(app, ("10.0.0.1", 1)) as proxy:
            for i, (client, status) in enumerate(
                [("198.51.100.1", 200), ("198.51.100.1", 429), ("198.51.100.2", 200)]
            ):
                headers = {"X-Real-IP": client, "X-Forwarded-For": f"6.6.6.{i}"}
                r = await proxy.get("/", headers=headers)
                assert r.status_code == status

    run(scenario)


def test_mahavishnu_rate_limit_decorator(clock: ManualClock) -> None:
    @mahavishnu.rate_limit(requests_per_minute=2, burst_size=2, clock=clock)
    async def protected_function() -> str:
        return "done"

    @mahavishnu.rate_limit(requests_per_minute=1, burst_size=1, clock=clock)
    async def endpoint(request: Request) -> str:
        return "ok"

    @mahavishnu.rate_limit(
        requests_per_minute=1,
        burst_size=1,
        key_func=lambda request: request.headers["x-key"],
        clock=clock,
    )
    async def keyed(request: Request) -> str:
        return "ok"

    def request_from(host: str, headers: list[tuple[bytes, bytes]] | None = None) -> Request:
        return Request({"type": "http", "headers": headers or [], "client": (host, 1)})

    assert inspect.iscoroutinefunction(protected_function)

    async def scenario() -> None:
        # No Request among the arguments: one budget for the function (the seed skipped it).
        assert await protected_function() == "done"
        assert await protected_function() == "done"
        with pytest.raises(mahavishnu.RateLimitError) as refused:
            await protected_function()
        error = refused.value
        assert str(error) == "Rate limit exceeded for protected_function"
        assert error.retry_after == 60 and isinstance(error.retry_after, int)  # the exact log
        assert isinstance(error, SeawallError)
        again = pickle.loads(pickle.dumps(error))
        assert (again.message, again.retry_after, again.key) == (
            error.message,
            60,
            error.key,
        )
        # With a Request: its peer address (never X-User-ID / X-Forwarded-For from the client).
        assert await endpoint(request_from("198.51.100.1")) == "ok"
        spoof = [(b"x-forwarded-for", b"1.1.1.1"), (b"x-user-id", b"admin")]
        with pytest.raises(mahavishnu.RateLimitError):
            await endpoint(request_from("198.51.100.1", spoof))
        assert await endpoint(request=request_from("198.51.100.2")) == "ok"
        # key_func of the request.
        assert await keyed(request_from("198.51.100.1", [(b"x-key", b"k1")])) == "ok"
        assert await keyed(request_from("198.51.100.1", [(b"x-key", b"k2")])) == "ok"
        with pytest.raises(mahavishnu.RateLimitError):
            await keyed(request_from("198.51.100.9", [(b"x-key", b"k1")]))

    asyncio.run(scenario())
    assert {"RateLimitMiddleware", "RateLimitError", "rate_limit"} <= set(mahavishnu.__all__)


# --- seed 004: fastmcp_example --------------------------------------------------------------


def test_fastmcp_example_middleware(clock: ManualClock) -> None:
    calls: list[str] = []
    service = fastmcp_example.RateLimiterService(clock=clock)
    app = starlette_app(
        calls, fastmcp_example.RateLimitMiddleware, limiter=service, limit=2, window=60
    )

    async def scenario() -> None:
        async with http(app) as client:
            first = await client.get("/")
            assert first.headers["x-ratelimit-limit"] == "2"
            assert first.headers["x-ratelimit-remaining"] == "1"
            assert first.headers["x-ratelimit-reset"] == str(int(T0) + 60)  # epoch seconds
            await client.get("/")
            denied = await client.get("/")
            assert denied.status_code == 429
            assert denied.json() == {
                "error": "Rate limit exceeded",
                "retry_after": 60,
                "limit": 2,
                "window": 60,
            }
            assert denied.headers["retry-after"] == "60"
            assert int(denied.headers["content-length"]) == len(denied.content)
            r = await client.get("/", headers={"X-Forwarded-For": "198.51.100.1"})
            assert r.status_code == 429
        async with http(app, ("198.51.100.2", 1)) as other:
            assert (await other.get("/")).status_code == 200

    run(scenario)
    assert len(calls) == 3
    # Keyed http_{ip} in the shared service, so other code can see (or reset) it.
    assert service.check_and_record("http_203.0.113.7", 2, 60)[0] is False
    assert service.reset("http_203.0.113.7")
    assert service.check_and_record("http_203.0.113.7", 2, 60)[0] is True


def test_fastmcp_example_middleware_defaults_and_lifespan() -> None:
    events: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        events.append(scope["type"])

    middleware = fastmcp_example.RateLimitMiddleware(app)
    assert (middleware.limit, middleware.window) == (20, 60)
    assert isinstance(middleware.limiter, fastmcp_example.RateLimiterService)
    asyncio.run(middleware({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert events == ["lifespan"]
    with pytest.raises(ValueError, match="limit"):
        fastmcp_example.RateLimitMiddleware(app, limit=0)
    with pytest.raises(ValueError, match="window"):
        fastmcp_example.RateLimitMiddleware(app, window=0)


def test_fastmcp_example_middleware_leaves_a_shared_start_message_alone() -> None:
    start = {"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start)
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = fastmcp_example.RateLimitMiddleware(app, limit=5)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [],
        "client": ("192.0.2.1", 1),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for remaining in (b"4", b"3"):
        sent.clear()
        asyncio.run(middleware(scope, None, send))  # type: ignore[arg-type]
        assert dict(sent[0]["headers"])[b"x-ratelimit-remaining"] == remaining
        assert len(sent[0]["headers"]) == 4
    assert start["headers"] == [(b"x-app", b"1")]


# --- store= on a real Redis (issue 13) ------------------------------------------------------


def _seen(r: httpx.Response) -> tuple[Any, ...]:
    """What a client sees of a rate-limited response."""
    names = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after")
    return (r.status_code, r.content, *(r.headers.get(n) for n in names))


def test_snowflake_middleware_on_redis_answers_as_memory(
    clock: ManualClock, redis_url: str, redis_prefix: str
) -> None:
    """The same requests through a memory app and two Redis apps (two workers: same Redis and
    prefix, alternating): status, body and headers equal, the budget shared between workers."""
    memory = snowflake_app(
        snowflake.RateLimitMiddleware(requests_per_second=1.0, burst_size=3, clock=clock), []
    )
    workers = [
        snowflake_app(
            snowflake.RateLimitMiddleware(
                requests_per_second=1.0,
                burst_size=3,
                clock=clock,
                store=redis_url,
                key_prefix=redis_prefix,
            ),
            [],
        )
        for _ in range(2)
    ]
    gaps = [0, 0, 0, 0, 0.5, 0.5, 0, 2.25, 0, 0, 0, 0, 10, 0]

    async def scenario() -> None:
        async with http(memory) as m, http(workers[0]) as w0, http(workers[1]) as w1:
            for i, gap in enumerate(gaps):
                clock.advance(gap)
                ours = await m.get("/")
                theirs = await (w0, w1)[i % 2].get("/")
                assert _seen(theirs) == _seen(ours)
            clock.advance(10)  # full again: a burst of 3 between the two workers
            statuses = [(await w.get("/")).status_code for w in (w0, w1, w0, w1)]
            assert statuses == [200, 200, 200, 429]

    run(scenario)


def test_snowflake_decorator_on_redis_is_shared(
    seawall_clock: ManualClock, redis_url: str, redis_prefix: str
) -> None:
    """``rate_limit(store=...)``: the same handler in two workers spends one budget."""

    def worker() -> Callable[[], Awaitable[str]]:
        @snowflake.rate_limit(requests_per_minute=2, store=redis_url, key_prefix=redis_prefix)
        async def handler() -> str:
            return "ok"

        return handler

    one, two = worker(), worker()

    async def scenario() -> None:
        token = snowflake.current_client_id.set("tenant-1")
        try:
            assert await one() == "ok" and await two() == "ok"
            with pytest.raises(HTTPException) as refused:
                await one()
            assert refused.value.status_code == 429
            assert refused.value.headers == {"Retry-After": "30"}
            seawall_clock.advance(30)
            assert await two() == "ok"
        finally:
            snowflake.current_client_id.reset(token)

    run(scenario)


def test_fastmcp_example_middleware_on_redis(
    clock: ManualClock, redis_url: str, redis_prefix: str
) -> None:
    """Seed 004's middleware on Redis-backed services: two workers' apps share each client's
    log, and a client sees what the memory service would show it."""
    memory = starlette_app(
        [],
        fastmcp_example.RateLimitMiddleware,
        limiter=fastmcp_example.RateLimiterService(clock=clock),
        limit=3,
        window=10,
    )
    workers = [
        starlette_app(
            [],
            fastmcp_example.RateLimitMiddleware,
            limiter=fastmcp_example.RateLimiterService(
                clock=clock, store=redis_url, key_prefix=redis_prefix
            ),
            limit=3,
            window=10,
        )
        for _ in range(2)
    ]
    gaps = [0, 0, 0, 0, 4.5, 0, 5.5, 0, 0, 0, 0.001, 30, 0]

    async def scenario() -> None:
        async with http(memory) as m, http(workers[0]) as w0, http(workers[1]) as w1:
            for i, gap in enumerate(gaps):
                clock.advance(gap)
                ours = await m.get("/")
                theirs = await (w0, w1)[i % 2].get("/")
                assert _seen(theirs) == _seen(ours)

    run(scenario)


def test_fastmcp_example_middleware_makes_a_redis_service(
    seawall_clock: ManualClock, redis_url: str, redis_prefix: str
) -> None:
    calls: list[str] = []
    options = {"limit": 2, "window": 60, "store": redis_url, "key_prefix": redis_prefix}
    apps = [starlette_app(calls, fastmcp_example.RateLimitMiddleware, **options) for _ in "ab"]

    async def scenario() -> None:
        async with http(apps[0]) as a, http(apps[1]) as b:
            statuses = [(await c.get("/")).status_code for c in (a, b, a, b)]
            assert statuses == [200, 200, 429, 429]

    run(scenario)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="on_error"):
        fastmcp_example.RateLimitMiddleware(PlainTextResponse("x"), on_error="deny")


def test_mahavishnu_middleware_on_redis_answers_as_memory(
    clock: ManualClock, redis_url: str, redis_prefix: str
) -> None:
    """Seed 001's middleware on ``seawall.RateLimitMiddleware``'s Redis store: the four limits
    shared by two workers' apps (same Redis and prefix), every response as memory shows it,
    exemptions included."""
    config = mahavishnu.RateLimitConfig(
        requests_per_minute=4, requests_per_hour=6, burst_size=2, exempt_user_ids={"admin"}
    )
    common = {"config": config, "user_id_header": "X-User-ID", "clock": clock}
    memory = starlette_app([], mahavishnu.RateLimitMiddleware, **common)
    workers = [
        starlette_app(
            [],
            mahavishnu.RateLimitMiddleware,
            store=redis_url,
            key_prefix=redis_prefix,
            **common,
        )
        for _ in range(2)
    ]
    gaps = [0, 0, 0, 30, 0, 1, 14, 0, 15, 0, 60, 0, 0, 600, 0]

    async def scenario() -> None:
        async with http(memory) as m, http(workers[0]) as w0, http(workers[1]) as w1:
            for i, gap in enumerate(gaps):
                clock.advance(gap)
                headers = {"X-User-ID": "admin"} if i == 5 else {}
                ours = await m.get("/", headers=headers)
                theirs = await (w0, w1)[i % 2].get("/", headers=headers)
                assert _seen(theirs) == _seen(ours), i
            assert {(await w.get("/")).status_code for w in (w0, w1)} == {429}

    run(scenario)


def test_mahavishnu_middleware_store_checks_and_redis_down(clock: ManualClock) -> None:
    from redis_servers import free_port

    nowhere = f"redis://127.0.0.1:{free_port()}"  # nothing listens: every call fails at once
    app = starlette_app(
        [],
        mahavishnu.RateLimitMiddleware,
        store=nowhere,
        on_error="deny",
        connect_timeout=0.2,
        command_timeout=0.2,
        clock=clock,
    )

    async def scenario() -> None:
        async with http(app) as client:
            r = await client.get("/")
            assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
            assert "x-ratelimit-limit" not in r.headers  # no budget is known

    run(scenario)
    with pytest.raises(ValueError, match="key_prefix"):
        mahavishnu.RateLimitMiddleware(PlainTextResponse("x"), key_prefix="x:")
    with pytest.raises(TypeError, match="store"):
        mahavishnu.RateLimitMiddleware(PlainTextResponse("x"), store=5)  # type: ignore[arg-type]
    on_redis = mahavishnu.RateLimiter(store=nowhere)
    with pytest.raises(ValueError, match="store="):
        mahavishnu.RateLimitMiddleware(PlainTextResponse("x"), limiter=on_redis)
    mahavishnu.RateLimitMiddleware(PlainTextResponse("x"), limiter=on_redis, store=nowhere)


# --- Redis down: what the seeds' middlewares show a client ------------------------------------

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def _nowhere() -> str:
    from redis_servers import free_port

    return f"redis://127.0.0.1:{free_port()}"  # nothing listens: every call fails at once


DOWN: dict[str, Any] = {"connect_timeout": 0.2, "command_timeout": 0.2}


@pytest.mark.parametrize("seed", ["snowflake", "fastmcp_example"])
@pytest.mark.parametrize(
    ("on_error", "statuses"),
    [("allow", [200, 200, 200]), ("deny", [503, 503, 503]), ("local", [200, 200, 429])],
)
def test_seed_middlewares_while_redis_is_down(
    clock: ManualClock, seed: str, on_error: str, statuses: list[int]
) -> None:
    """Redis down: admitted requests carry no rate-limit header (no budget stands behind them),
    ``deny`` is a 503 with ``Retry-After``, ``local`` a 429 with only ``Retry-After`` once this
    process's own copy of the limit (2) is spent."""
    options: dict[str, Any] = {"store": _nowhere(), "on_error": on_error, "clock": clock, **DOWN}
    if seed == "snowflake":
        seen: list[str | None] = []
        app: Any = snowflake_app(
            snowflake.RateLimitMiddleware(requests_per_second=0.01, burst_size=2, **options), seen
        )
    else:
        app = starlette_app(
            [],
            fastmcp_example.RateLimitMiddleware,
            limiter=fastmcp_example.RateLimiterService(**options),
            limit=2,
            window=60,
        )

    async def scenario() -> None:
        async with http(app) as client:
            responses = [await client.get("/") for _ in statuses]
        assert [r.status_code for r in responses] == statuses
        for r in responses:
            assert not any(n in r.headers for n in RATE_HEADERS), r.headers
            if r.status_code != 200:
                assert int(r.headers["retry-after"]) >= 1

    run(scenario)


def test_a_redis_decision_says_whether_on_error_made_it(redis_url: str, redis_prefix: str) -> None:
    from seawall import Limiter

    up = Limiter("2/minute", store=redis_url, key_prefix=redis_prefix)
    assert up.hit("k").fallback is False
    down = Limiter("2/minute", store=_nowhere(), on_error="deny", **DOWN)
    assert down.hit("k").fallback is True
    assert Limiter("2/minute").hit("k").fallback is False

    async def scenario() -> None:
        assert (await down.ahit("k")).fallback is True
        assert (await up.ahit("k")).fallback is False

    run(scenario)
