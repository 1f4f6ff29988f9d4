"""Seed 003's rate_limit_middleware (3.2) on real Starlette / FastAPI apps: the 429 (B18, defect
2), the token-only internal bypass (B5, defect 1), client identity (B4, defects 3 and 13),
excluded paths (B20), the exception handler."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from seawall.compat.voicehive.rate_limit_middleware import (
    RateLimitExceededError,
    RateLimitMiddleware,
    create_rate_limit_rules,
    rate_limit_exception_handler,
)
from seawall.compat.voicehive.rate_limiter import RateLimitConfig, RateLimiter
from seawall.testing import ManualClock

pytestmark = pytest.mark.anyio
T0 = 1_800_000_000.0
TOKENS = {"tts-router": "s3cret-token"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def app(clock: ManualClock, **kwargs: Any) -> Starlette:
    kwargs.setdefault("rules", [])
    kwargs.setdefault("default_config", RateLimitConfig(requests_per_minute=2))
    routes = [Route("/{path:path}", whoami)]
    return Starlette(
        routes=routes, middleware=[Middleware(RateLimitMiddleware, clock=clock, **kwargs)]
    )


def client(asgi: Any, ip: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=asgi, client=(ip, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_a_refusal_is_a_429_with_the_service_body_and_headers() -> None:
    clock = ManualClock(T0)
    async with client(app(clock)) as c:
        ok = await c.get("/x")
        assert ok.status_code == 200
        assert ok.headers["X-RateLimit-Limit"] == "2" and ok.headers["X-RateLimit-Remaining"] == "1"
        await c.get("/x")
        clock.advance(15.2)
        refused = await c.get("/x")
    assert refused.status_code == 429  # defect 2: the service only added headers
    assert refused.headers["Retry-After"] == "45"  # 60 - 15.2, rounded up
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.json() == {
        "error": {
            "code": "RATE_LIMIT_EXCEEDED",
            "message": "Rate limit exceeded",
            "retry_after": 45,
            "limit": 2,
            "reset_time": int(T0 + 15.2 + 45),
        }
    }


async def test_forged_internal_headers_are_limited_and_only_the_token_bypasses() -> None:
    asgi = app(ManualClock(T0), internal_service_tokens=TOKENS)
    forged = {
        "X-Internal-Service": "tts-router",
        "X-Kubernetes-Service": "x",
        "X-Service-Token": "guess",
    }
    async with client(asgi) as c:
        codes = [(await c.get("/x", headers=forged)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]  # defect 1: any such header bypassed every limit
        real = {"X-Service-Token": TOKENS["tts-router"]}
        assert {(await c.get("/x", headers=real)).status_code for _ in range(10)} == {200}


async def test_no_tokens_configured_means_no_bypass() -> None:
    async with client(app(ManualClock(T0))) as c:
        codes = [(await c.get("/x", headers={"X-Service-Token": ""})).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


async def test_excluded_paths_are_exact_and_resilience_is_limited() -> None:
    async with client(app(ManualClock(T0))) as c:
        assert {(await c.get("/health")).status_code for _ in range(5)} == {200}
        assert [(await c.get("/resilience/health")).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]


async def test_proxy_headers_only_from_trusted_proxies() -> None:
    asgi = app(ManualClock(T0), trusted_proxies=["10.0.0.0/8"])
    # Defect 3: an untrusted client choosing X-Forwarded-For gets a fresh budget per value.
    async with client(asgi, ip="203.0.113.9") as c:
        codes = [
            (await c.get("/x", headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code
            for i in range(3)
        ]
        assert codes == [200, 200, 429]
    async with client(asgi, ip="10.1.2.3") as proxy:
        for i in range(3):
            hdr = {"X-Forwarded-For": f"6.6.6.6, 198.51.100.{i}, 10.9.9.9"}
            assert (await proxy.get("/x", headers=hdr)).status_code == 200  # one client each


async def test_bearer_and_api_keys_are_hashed_and_identify_client_overrides() -> None:
    seen: list[tuple[str, str]] = []
    limiter = RateLimiter(clock=ManualClock(T0))
    limiter.default_config = RateLimitConfig(requests_per_minute=1)

    async with client(app(ManualClock(T0), limiter=limiter, default_config=None)) as c:
        await c.get("/x", headers={"Authorization": "Bearer abc.def"})
        await c.get("/x", headers={"Authorization": "ApiKey k-123"})
    stats = [await limiter.get_client_stats(f"jwt:{hashlib.sha256(b'abc.def').hexdigest()[:32]}")]
    stats.append(
        await limiter.get_client_stats(f"apikey:{hashlib.sha256(b'k-123').hexdigest()[:32]}")
    )
    assert [s["minute"]["default"] for s in stats] == [1, 1]

    def identify(request: Request) -> tuple[str, str]:
        seen.append((request.url.path, request.headers.get("x-tenant", "")))
        return f"tenant:{request.headers['x-tenant']}", "api"

    async with client(app(ManualClock(T0), identify_client=identify)) as c:
        codes = [(await c.get("/x", headers={"X-Tenant": t})).status_code for t in "aab"]
    assert codes == [200, 200, 200] and seen[0] == ("/x", "a")


class HeaderAuth(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        user = conn.headers.get("x-user")
        return (AuthCredentials(["authenticated"]), SimpleUser(user)) if user else None


async def test_an_authenticated_scope_user_is_the_client() -> None:
    limiter = RateLimiter(clock=ManualClock(T0))
    rules = [
        {"path_pattern": ".*", "client_type": "authenticated", "config": {"requests_per_minute": 3}}
    ]
    inner = RateLimitMiddleware(
        Starlette(routes=[Route("/{p:path}", whoami)]),
        rules=rules,
        limiter=limiter,
        default_config=RateLimitConfig(1),
    )
    asgi = AuthenticationMiddleware(inner, backend=HeaderAuth())
    async with client(asgi) as c:
        # Each token is a fresh string, the user the same: one budget (defect 13).
        codes = [
            (
                await c.get("/x", headers={"x-user": "alice", "Authorization": f"Bearer t{i}"})
            ).status_code
            for i in range(4)
        ]
    assert codes == [200, 200, 200, 429]


async def test_the_service_rules_by_default_and_fastapi_exception_handler() -> None:
    api = FastAPI()
    api.add_middleware(RateLimitMiddleware, clock=ManualClock(T0))
    api.add_exception_handler(RateLimitExceededError, rate_limit_exception_handler)  # type: ignore[arg-type]

    @api.post("/auth/login")
    async def login() -> dict[str, bool]:
        return {"ok": True}

    @api.get("/check")
    async def check_route() -> dict[str, bool]:
        limiter = RateLimiter(clock=ManualClock(T0))
        limiter.default_config = RateLimitConfig(requests_per_minute=1)
        limiter.check_rate_limit_sync("me", "/check")
        raise RateLimitExceededError(limiter.check_rate_limit_sync("me", "/check"))

    async with client(api) as c:
        codes = [(await c.post("/auth/login")).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]  # 5/minute on login (the example table)
        raised = await c.get("/check")
    assert raised.status_code == 429 and raised.headers["Retry-After"] == "60"
    assert raised.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert [r["path_pattern"] for r in create_rate_limit_rules()][:4] == [
        "/auth/login",
        "/auth/register",
        "/api/.*",
        "/call/.*",
    ]


async def test_bad_arguments() -> None:
    inner = Starlette()
    with pytest.raises(ValueError, match="limiter"):
        RateLimitMiddleware(inner, "redis://x", limiter=RateLimiter())
    with pytest.raises(ValueError, match="trusted_proxies"):
        RateLimitMiddleware(inner, trusted_proxies=["not-an-ip"])
    with pytest.raises(ValueError, match="internal_service_tokens"):
        RateLimitMiddleware(inner, internal_service_tokens={"svc": ""})


async def test_two_apps_on_one_redis_share_the_budget(redis_url: str, redis_prefix: str) -> None:
    clock = ManualClock(T0)
    apps = []
    for _ in range(2):
        limiter = RateLimiter(redis_url, key_prefix=redis_prefix, clock=clock)
        apps.append(
            app(clock, limiter=limiter, default_config=RateLimitConfig(requests_per_minute=3))
        )
    codes = []
    for i in range(4):
        async with client(apps[i % 2]) as c:
            codes.append((await c.get("/x")).status_code)
    assert codes == [200, 200, 200, 429]
