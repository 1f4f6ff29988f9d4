"""``RateLimitMiddleware`` and ``seawall.fastapi.limit`` on a Redis store, in one process.

Real redis-servers (tests/conftest.py), real Starlette and FastAPI apps called through httpx's
ASGI transport. Several apps on one Redis and prefix stand for several workers (the real worker
processes are in tests/test_workers_redis.py). The middleware on Redis must answer exactly as
the memory one does (same statuses, same headers, on the same manual clock), decide a request's
global, route and per-client limits in one script call, share calls between concurrent
requests, and show a client only what is true while Redis is down.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_servers import RedisServer, command
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import seawall.fastapi
from seawall import RateLimitMiddleware
from seawall.testing import ManualClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hi")


def app_with(**options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/", hello),
            Route("/login", hello, methods=["GET", "POST"]),
            Route("/other", hello),
        ]
    )
    app.add_middleware(RateLimitMiddleware, **options)
    return app


def client(app: Any, ip: str = "192.0.2.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def script_calls(url: str) -> int:
    port = int(re.search(r":(\d+)/", url).group(1))  # type: ignore[union-attr]
    info = command(port, "INFO", "commandstats")
    text = info.decode() if isinstance(info, bytes) else str(info)
    calls = 0
    for name in ("fcall", "evalsha", "eval"):
        m = re.search(rf"cmdstat_{name}:calls=(\d+)", text)
        calls += int(m.group(1)) if m else 0
    return calls


def visible(r: httpx.Response) -> tuple[int, dict[str, str]]:
    """What a client sees of a limited response: the status and seawall's headers."""
    names = (*RATE_HEADERS, "ratelimit", "ratelimit-policy", "retry-after")
    return r.status_code, {n: r.headers[n] for n in names if n in r.headers}


CONFIG: dict[str, Any] = {
    "limits": "5/minute; 8/hour",
    "rules": [("/login", "2/minute", ["POST"], "login")],
    "global_limits": "12/minute",
    "headers": "both",
}


#: Requests (path, method, client, seconds before it) for the side-by-side property tests.
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["/", "/login", "/other"]),
        st.sampled_from(["GET", "POST"]),
        st.sampled_from(["192.0.2.1", "192.0.2.2", "2001:db8::1"]),
        st.integers(min_value=0, max_value=40),
    ),
    min_size=1,
    max_size=30,
)


def answers_as_memory_does(steps: list[tuple[str, str, str, int]], **store: Any) -> None:
    """The middleware of :data:`CONFIG` on ``store`` answers each of ``steps`` with the status
    and the rate-limit headers the memory one gives, on one manual clock."""
    clock = ManualClock()
    memory = app_with(**CONFIG, clock=clock)
    shared = app_with(**CONFIG, clock=clock, **store)

    async def run() -> None:
        for path, method, ip, advance in steps:
            clock.advance(advance)
            async with client(memory, ip) as m, client(shared, ip) as r:
                a = await m.request(method, path)
                b = await r.request(method, path)
            assert visible(b) == visible(a), (path, method, ip)

    asyncio.run(run())


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_redis_answers_as_memory_does(
    redis_url: str, steps: list[tuple[str, str, str, int]]
) -> None:
    """Every status and every rate-limit header the same, request by request, on one clock."""
    answers_as_memory_does(steps, store=redis_url, key_prefix=f"t:eq:{uuid.uuid4().hex}:")


async def test_two_apps_on_one_redis_share_every_budget(redis_url: str, redis_prefix: str) -> None:
    """Two apps (two workers) on one Redis and prefix: per-client, route and global budgets are
    each spent once across both, exactly."""
    options = {
        "limits": "4/minute",
        "rules": [("/login", "2/minute")],
        "global_limits": "7/minute",
        "store": redis_url,
        "key_prefix": redis_prefix,
    }
    workers = [app_with(**options), app_with(**options)]
    statuses: list[int] = []
    for i in range(6):  # one client: its default budget (4) binds
        async with client(workers[i % 2]) as c:
            statuses.append((await c.get("/")).status_code)
    assert statuses == [200] * 4 + [429] * 2
    login = []
    for i in range(4):  # another client on the rule's budget (2)
        async with client(workers[i % 2], "192.0.2.9") as c:
            login.append((await c.get("/login")).status_code)
    assert login == [200, 200, 429, 429]
    # The global budget (7) has 6 admitted so far: one more for anyone, then none.
    others = []
    for i in range(3):
        async with client(workers[i % 2], f"198.51.100.{i}") as c:
            others.append((await c.get("/other")).status_code)
    assert others == [200, 429, 429]


async def test_concurrent_requests_share_script_calls(redis_url: str, redis_prefix: str) -> None:
    """The requests that arrive while others are in flight ride one script call between them."""
    app = app_with(limits="1000/minute", store=redis_url, key_prefix=redis_prefix)
    async with client(app) as c:
        assert (await c.get("/")).status_code == 200  # connects
        before = script_calls(redis_url)
        responses = await asyncio.gather(*(c.get("/") for _ in range(40)))
        after = script_calls(redis_url)
    assert all(r.status_code == 200 for r in responses)
    assert [int(r.headers["x-ratelimit-remaining"]) for r in responses].count(0) == 0
    assert 1 <= after - before < 40, "40 decisions should take fewer than 40 script calls"


async def test_one_script_call_per_request(redis_url: str, redis_prefix: str) -> None:
    """Global, route and per-client limits of one request: one call, whatever their number."""
    app = app_with(
        limits="5/minute; 50/hour",
        rules=[("/login", "2/minute; 20/hour")],
        global_limits="100/minute; 1000/hour",
        store=redis_url,
        key_prefix=redis_prefix,
    )
    async with client(app) as c:
        await c.get("/")  # connects
        for path in ("/", "/login", "/", "/login"):
            before = script_calls(redis_url)
            await c.get(path)
            assert script_calls(redis_url) - before == 1


def redis_keys(url: str, prefix: str) -> list[str]:
    port = int(re.search(r":(\d+)/", url).group(1))  # type: ignore[union-attr]
    keys = command(port, "KEYS", f"{prefix}*")
    assert isinstance(keys, list)
    return sorted(k.decode() if isinstance(k, bytes) else str(k) for k in keys)


async def test_keys_share_a_cluster_tag_per_request(redis_url: str, redis_prefix: str) -> None:
    """Without global limits a client's keys are tagged by the client (spread over a cluster);
    with them, every key shares the global key's tag (a request touches both)."""
    spread = app_with(limits="5/minute", store=redis_url, key_prefix=redis_prefix + "a:")
    async with client(spread) as c:
        await c.get("/")
    assert redis_keys(redis_url, redis_prefix + "a:") == [
        f"{redis_prefix}a:{{ip:192.0.2.1}}:http:d:gcra:5/60s"
    ]
    tagged = app_with(
        limits="5/minute", global_limits="9/minute", store=redis_url, key_prefix=redis_prefix + "b:"
    )
    async with client(tagged) as c:
        await c.get("/")
    assert redis_keys(redis_url, redis_prefix + "b:") == [
        f"{redis_prefix}b:{{http}}:c12:ip:192.0.2.1:d:gcra:5/60s",
        f"{redis_prefix}b:{{http}}:global:gcra:9/60s",
    ]


async def test_on_a_cluster_global_and_client_limits_decide_together(
    redis_cluster_url: str, redis_prefix: str
) -> None:
    app = app_with(
        limits="3/minute",
        global_limits="100/minute",
        store=redis_cluster_url,
        key_prefix=redis_prefix,
    )
    statuses = []
    for _ in range(5):
        async with client(app) as c:
            statuses.append((await c.get("/")).status_code)
    assert statuses == [200, 200, 200, 429, 429]


# --------------------------------------------------------------------------------------------
# Redis down: what each on_error shows a client


def down_app(server: RedisServer, on_error: str, **extra: Any) -> Starlette:
    return app_with(
        limits="2/minute",
        store=server.url,
        on_error=on_error,
        connect_timeout=0.2,
        command_timeout=0.2,
        **extra,
    )


async def test_deny_answers_503_with_retry_after(redis_server: RedisServer) -> None:
    app = down_app(redis_server, "deny")
    async with client(app) as c:
        assert (await c.get("/")).status_code == 200
        redis_server.kill()
        r = await c.get("/")
    assert r.status_code == 503
    assert int(r.headers["retry-after"]) >= 1
    assert not any(n in r.headers for n in RATE_HEADERS), "no budget is known"
    assert r.json()["error"]["code"] == 503


async def test_allow_passes_without_rate_limit_headers(redis_server: RedisServer) -> None:
    app = down_app(redis_server, "allow")
    async with client(app) as c:
        redis_server.kill()
        responses = [await c.get("/") for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    for r in responses:
        assert not any(n in r.headers for n in (*RATE_HEADERS, "retry-after"))


async def test_local_limits_in_this_process_and_shows_only_retry_after(
    redis_server: RedisServer,
) -> None:
    app = down_app(redis_server, "local", clock=ManualClock())
    async with client(app) as c:
        redis_server.kill()
        responses = [await c.get("/") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 429, 429]
    assert not any(n in responses[0].headers for n in RATE_HEADERS)
    refused = responses[2]
    assert int(refused.headers["retry-after"]) >= 1
    assert not any(n in refused.headers for n in RATE_HEADERS), "a process's budget, not the app's"


async def test_redis_back_decides_again(redis_server: RedisServer) -> None:
    app = down_app(redis_server, "deny", breaker_recovery=0.01)
    async with client(app) as c:
        redis_server.kill()
        assert (await c.get("/")).status_code == 503
        redis_server.restart()
        statuses = set()
        for _ in range(200):  # the breaker's next probe lets one through, bounded
            r = await c.get("/")
            statuses.add(r.status_code)
            if r.status_code == 200:
                break
            await asyncio.sleep(0.02)
    assert 200 in statuses
    assert "x-ratelimit-limit" in r.headers


# --------------------------------------------------------------------------------------------
# The FastAPI dependency


def fastapi_app(**options: Any) -> FastAPI:
    app = FastAPI()
    dep = seawall.fastapi.limit("3/minute", **options)

    @app.get("/search", dependencies=[Depends(dep)])
    async def search() -> dict[str, str]:
        return {"ok": "yes"}

    return app


async def test_fastapi_dependency_on_redis_is_shared_by_workers(
    redis_url: str, redis_prefix: str
) -> None:
    apps = [fastapi_app(store=redis_url, key_prefix=redis_prefix) for _ in range(2)]
    statuses = []
    for i in range(5):
        async with client(apps[i % 2]) as c:
            r = await c.get("/search")
            statuses.append(r.status_code)
    assert statuses == [200, 200, 200, 429, 429]
    assert r.headers["retry-after"]


async def test_fastapi_dependency_deny_is_503(redis_server: RedisServer) -> None:
    app = fastapi_app(
        store=redis_server.url, on_error="deny", connect_timeout=0.2, command_timeout=0.2
    )
    redis_server.kill()
    async with client(app) as c:
        r = await c.get("/search")
    assert r.status_code == 503
    assert int(r.headers["retry-after"]) >= 1
    assert "x-ratelimit-limit" not in r.headers


# --------------------------------------------------------------------------------------------
# Arguments


@pytest.mark.parametrize(
    ("option", "value"),
    [("on_error", "deny"), ("key_prefix", "x:"), ("command_timeout", 0.5)],
)
def test_redis_options_with_the_memory_store_are_refused(option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=option):
        RateLimitMiddleware(hello, limits="1/second", **{option: value})
    with pytest.raises(ValueError, match=option):
        seawall.fastapi.limit("1/second", **{option: value})


def test_bad_redis_arguments_are_named(redis_url: str) -> None:
    with pytest.raises(ValueError, match="on_error"):
        RateLimitMiddleware(hello, limits="1/second", store=redis_url, on_error="maybe")
    with pytest.raises(ValueError, match="key_prefix"):
        RateLimitMiddleware(hello, limits="1/second", store=redis_url, key_prefix="a{b}")
    with pytest.raises(ValueError, match="store"):
        RateLimitMiddleware(hello, limits="1/second", store="redis://127.0.0.1:99999/0")
    with pytest.raises(TypeError, match="store"):
        RateLimitMiddleware(hello, limits="1/second", store=6379)  # type: ignore[arg-type]


def test_a_redis_store_does_not_warn_of_workers(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    with caplog.at_level(logging.WARNING, logger="seawall"):
        RateLimitMiddleware(hello, limits="1/second", store=redis_url)
        seawall.fastapi.limit("1/second", store=redis_url)
    assert not [r for r in caplog.records if "worker" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="seawall"):
        RateLimitMiddleware(hello, limits="1/second")
    assert [r for r in caplog.records if "store=" in r.getMessage()]


def scope(ip: str = "192.0.2.1", path: str = "/") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [],
        "client": (ip, 1234),
    }


def test_sync_check_reset_and_stats_on_redis(redis_url: str, redis_prefix: str) -> None:
    """The native limiter's sync ``check`` waits for Redis on the calling thread; ``reset``
    forgets a client in Redis; ``store_stats`` counts what the store did."""
    middleware = RateLimitMiddleware(
        hello, limits="2/minute", store=redis_url, key_prefix=redis_prefix
    )
    native = middleware.limiter
    assert native.is_async and native.store == redis_url
    results = [native.check(scope()) for _ in range(3)]
    assert [r[0] for r in results if r is not None] == [True, True, False]
    assert results[2] is not None and results[2][3] == 429
    native.reset("ip:192.0.2.1")
    again = native.check(scope())
    assert again is not None and again[0] is True
    stats = native.store_stats()
    assert stats is not None
    assert (stats["decisions"], stats["limited"], stats["errors"]) == (4, 1, 0)
    assert stats["breaker"] == "closed"
    assert RateLimitMiddleware(hello, limits="2/minute").limiter.store_stats() is None


def test_reset_while_redis_is_down_raises(redis_server: RedisServer) -> None:
    middleware = RateLimitMiddleware(
        hello, limits="2/minute", store=redis_server.url, connect_timeout=0.2, command_timeout=0.2
    )
    redis_server.kill()
    with pytest.raises(OSError, match="Redis reset failed"):
        middleware.limiter.reset("ip:192.0.2.1")


async def test_client_keys_with_braces_stay_in_one_slot_on_a_cluster(
    redis_cluster_url: str, redis_prefix: str
) -> None:
    """A client writes its key (a header): braces in it must not move its keys out of the
    request's hash tag (a CROSSSLOT refusal would let everything through under on_error)."""
    for global_limits in (None, "100/minute"):
        app = app_with(
            limits="2/minute",
            global_limits=global_limits,
            key="header:X-Client",
            store=redis_cluster_url,
            key_prefix=f"{redis_prefix}{global_limits is None}:",
            on_error="deny",
        )
        for value in ("a}b{c", "{x}", "}", "{"):
            statuses = []
            for _ in range(3):
                async with client(app) as c:
                    r = await c.get("/", headers={"X-Client": value})
                    statuses.append(r.status_code)
            assert statuses == [200, 200, 429], (global_limits, value, statuses)
