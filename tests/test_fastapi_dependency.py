"""seawall.fastapi.limit: a per-endpoint limit as a FastAPI dependency."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse

from seawall import RateLimitMiddleware
from seawall.fastapi import RateLimitDependency, limit
from seawall.testing import ManualClock

CLIENT = ("203.0.113.7", 1234)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_800_000_000.0)


def http(app: Any, client: tuple[str, int] = CLIENT) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def test_limit_headers_and_429(clock: ManualClock) -> None:
    app = FastAPI()
    calls: list[str] = []

    @app.get("/search", dependencies=[Depends(limit("2/minute", clock=clock))])
    async def search(q: str) -> dict[str, str]:
        calls.append(q)
        return {"q": q}

    async def scenario() -> None:
        async with http(app) as client:
            first = await client.get("/search?q=a")
            assert first.json() == {"q": "a"}
            assert first.headers["x-ratelimit-limit"] == "2"
            assert first.headers["x-ratelimit-remaining"] == "1"
            assert first.headers["x-ratelimit-reset"] == "30"
            await client.get("/search?q=b")
            denied = await client.get("/search?q=c")
            assert denied.status_code == 429
            assert denied.json() == {"detail": "Rate limit exceeded"}
            assert denied.headers["retry-after"] == "30"
            assert denied.headers["x-ratelimit-remaining"] == "0"
            assert int(denied.headers["content-length"]) == len(denied.content)
            clock.advance(30)
            assert (await client.get("/search?q=d")).status_code == 200

    run(scenario)
    assert calls == ["a", "b", "d"]  # the endpoint never ran for the refusal


def test_each_limit_is_a_budget_and_reuse_shares_it(clock: ManualClock) -> None:
    app = FastAPI()
    shared = limit("2/minute", clock=clock)

    @app.get("/a", dependencies=[Depends(shared)])
    async def a() -> str:
        return "a"

    @app.get("/b", dependencies=[Depends(shared)])
    async def b() -> str:
        return "b"

    @app.get("/c", dependencies=[Depends(limit("1/minute", clock=clock))])
    async def c() -> str:
        return "c"

    async def scenario() -> None:
        async with http(app) as client:
            assert (await client.get("/a")).status_code == 200
            assert (await client.get("/b")).status_code == 200
            assert (await client.get("/a")).status_code == 429
            assert (await client.get("/c")).status_code == 200
            assert (await client.get("/c")).status_code == 429

    run(scenario)


def test_router_dependency_and_detail(clock: ManualClock) -> None:
    router = APIRouter(dependencies=[Depends(limit("1/hour", detail={"why": "slow"}, clock=clock))])

    @router.get("/x")
    async def x() -> str:
        return "x"

    app = FastAPI()
    app.include_router(router)

    async def scenario() -> None:
        async with http(app) as client:
            assert (await client.get("/x")).status_code == 200
            denied = await client.get("/x")
            assert denied.status_code == 429 and denied.json() == {"detail": {"why": "slow"}}
            assert denied.headers["retry-after"] == "3600"

    run(scenario)


def test_key_func_sync_and_async(clock: ManualClock) -> None:
    def user(request: Request) -> str | None:
        return request.headers.get("x-user")

    async def async_user(request: Request) -> str | None:
        return request.headers.get("x-user")

    app = FastAPI()

    @app.get("/sync", dependencies=[Depends(limit("1/minute", key_func=user, clock=clock))])
    async def sync_route() -> str:
        return "ok"

    @app.get("/async", dependencies=[Depends(limit("1/minute", key_func=async_user, clock=clock))])
    async def async_route() -> str:
        return "ok"

    async def scenario() -> None:
        async with http(app) as client:
            for path in ("/sync", "/async"):
                assert (await client.get(path, headers={"x-user": "u1"})).status_code == 200
                assert (await client.get(path, headers={"x-user": "u1"})).status_code == 429
                assert (await client.get(path, headers={"x-user": "u2"})).status_code == 200
                assert (await client.get(path)).status_code == 200  # None: the client IP
                assert (await client.get(path)).status_code == 429

    run(scenario)


def test_clients_found_as_the_middleware_finds_them(clock: ManualClock) -> None:
    proxies = ["10.0.0.0/8"]
    dependency = limit("1/minute", trusted_proxies=proxies, clock=clock)
    assert isinstance(dependency, RateLimitDependency)
    middleware = RateLimitMiddleware(FastAPI(), limits="1/minute", trusted_proxies=proxies)
    for peer, headers in [
        (("10.0.0.1", 1), [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.1")]),
        (("203.0.113.7", 1), [(b"x-forwarded-for", b"198.51.100.1")]),
        (("2001:db8:1:2::9", 1), []),
        (("10.0.0.1", 1), [(b"x-forwarded-for", b"\xff\xfe garbage")]),
    ]:
        scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "client": peer}
        assert dependency.limiter.key_for(scope) == middleware.limiter.key_for(scope)

    app = FastAPI()

    @app.get("/", dependencies=[Depends(dependency)])
    async def root() -> str:
        return "ok"

    async def scenario() -> None:
        async with http(app) as direct:
            assert (await direct.get("/")).status_code == 200
            spoofed = await direct.get("/", headers={"X-Forwarded-For": "198.51.100.5"})
            assert spoofed.status_code == 429
        async with http(app, ("10.0.0.1", 1)) as proxy:
            for client, status in [
                ("198.51.100.1", 200),
                ("198.51.100.1", 429),
                ("198.51.100.2", 200),
            ]:
                r = await proxy.get("/", headers={"X-Forwarded-For": client})
                assert r.status_code == status

    run(scenario)


def test_headers_off_and_draft(clock: ManualClock) -> None:
    app = FastAPI()

    @app.get("/quiet", dependencies=[Depends(limit("5/minute", headers=False, clock=clock))])
    async def quiet() -> str:
        return "ok"

    @app.get("/draft", dependencies=[Depends(limit("5/minute", headers="draft", clock=clock))])
    async def draft() -> str:
        return "ok"

    async def scenario() -> None:
        async with http(app) as client:
            r = await client.get("/quiet")
            assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
            r = await client.get("/draft")
            assert r.headers["ratelimit-policy"] == '"default";q=5;w=60'
            assert "x-ratelimit-limit" not in r.headers

    run(scenario)


def test_an_endpoint_returning_its_own_response(clock: ManualClock) -> None:
    app = FastAPI()

    @app.get("/raw", dependencies=[Depends(limit("1/minute", clock=clock))])
    async def raw() -> PlainTextResponse:
        return PlainTextResponse("raw")

    async def scenario() -> None:
        async with http(app) as client:
            assert (await client.get("/raw")).text == "raw"
            assert (await client.get("/raw")).status_code == 429

    run(scenario)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="fortnight"):
        limit("1/fortnight")
    with pytest.raises(ValueError, match="trusted_proxies"):
        limit("1/minute", trusted_proxies=["nope"])
    with pytest.raises(TypeError, match="key_func"):
        limit("1/minute", key_func="ip")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="headers"):
        limit("1/minute", headers=1.5)  # type: ignore[arg-type]


def test_import_seawall_does_not_import_fastapi() -> None:
    code = "import sys, seawall; print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
