"""Who is being limited: every limiter's bounded top-K of refused keys (``top_keys=``).

A flood of 100,000 distinct refused keys with three heavy hitters among them: the heavy hitters
come out on top with their exact counts (space-saving guarantees them: they are held from their
first refusal on) while the memory stays bounded (at most ``top_keys`` entries). Then each
limiter records on its refused path (memory, Redis, host, the middleware, ``hit_with``), keeps
long keys short, and refuses a bad ``top_keys`` naming it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import seawall
import seawall.host
from seawall import (
    ClientRateLimiter,
    HostLimiter,
    Limiter,
    RateLimitMiddleware,
    RedisLimiter,
    TokenBucketConfig,
)
from seawall.testing import ManualClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_flood_of_distinct_keys_leaves_the_heavy_hitters_on_top_exactly() -> None:
    limiter = Limiter("1/hour", clock=ManualClock(), top_keys=100)
    heavy = {"ip:203.0.113.1": 20_000, "ip:203.0.113.2": 10_000, "ip:203.0.113.3": 5_000}
    truth: Counter[str] = Counter()
    for key in heavy:  # spend each budget: every later hit is refused
        assert limiter.hit(key)
    flood = 100_000
    # Each heavy hitter is refused evenly through the flood, the first time before it starts.
    every = {key: flood // n for key, n in heavy.items()}
    for i in range(flood):
        for key, step in every.items():
            if i % step == 0:
                assert not limiter.hit(key)
                truth[key] += 1
        key = f"ip:10.{i >> 16}.{(i >> 8) & 255}.{i & 255}"
        assert limiter.hit(key)
        assert not limiter.hit(key)
        truth[key] += 1

    summary = limiter.top_limited_summary()
    assert summary["capacity"] == 100
    assert len(summary["keys"]) == 100  # bounded, whatever the stream
    assert summary["total"] == sum(truth.values()) == flood + sum(heavy.values())
    top = limiter.top_limited(3)
    assert top == [(key, truth[key]) for key in heavy]  # in order, exact
    for entry in summary["keys"][:3]:
        assert entry["error"] == 0
    # Every count is an upper bound, its error no more than total / capacity.
    for entry in summary["keys"]:
        assert entry["count"] - entry["error"] <= truth[entry["key"]] <= entry["count"]
        assert entry["error"] <= summary["total"] // 100
    assert summary["other"] == sum(e["error"] for e in summary["keys"])
    limiter.reset_top_limited()
    assert limiter.top_limited() == []
    assert limiter.top_limited_summary()["total"] == 0


def test_admitted_requests_are_not_counted_and_off_is_off() -> None:
    clock = ManualClock()
    limiter = Limiter("2/minute", clock=clock)
    for key in ("a", "b"):
        assert limiter.hit(key) and limiter.hit(key)
    assert limiter.top_limited() == []
    assert not limiter.hit("b", 2)
    assert not limiter.test("a")  # a test is not a refusal
    assert limiter.top_limited() == [("b", 1)]
    assert limiter.top_limited(0) == []
    off = Limiter("1/minute", clock=clock, top_keys=0)
    off.hit("a")
    off.hit("a")
    assert off.top_limited() == [] and off.top_limited_summary()["capacity"] == 0


def test_long_keys_are_kept_by_their_hash() -> None:
    limiter = Limiter("1/minute", clock=ManualClock(), top_keys=4)
    long = "k" * 10_000
    limiter.hit(long)
    limiter.hit(long)
    ((key, count),) = limiter.top_limited()
    assert key == "sha256:" + hashlib.sha256(long.encode()).hexdigest()
    assert count == 1


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (100_001, ValueError), ("10", TypeError)]
)
def test_a_bad_top_keys_is_refused_naming_it(value: Any, error: type[Exception]) -> None:
    for build in (
        lambda: Limiter("1/minute", top_keys=value),
        lambda: RateLimitMiddleware(Starlette(), limits="1/minute", top_keys=value),
    ):
        with pytest.raises(error, match="top_keys"):
            build()
    with pytest.raises(ValueError, match=r"^n must"):
        Limiter("1/minute").top_limited(-1)


def test_hit_with_counts_the_side_that_refused() -> None:
    clock = ManualClock()
    per_client = Limiter("5/minute", clock=clock)
    everyone = Limiter("2/minute", clock=clock)
    for _ in range(2):
        assert per_client.hit_with("alice", everyone, "*")
    assert not per_client.hit_with("alice", everyone, "*")
    assert everyone.top_limited() == [("*", 1)]
    assert per_client.top_limited() == []


def test_redis_limiter_counts_its_refusals_and_on_error_ones(
    redis_url: str, redis_prefix: str
) -> None:
    limiter = RedisLimiter("1/minute", store=redis_url, key_prefix=redis_prefix)
    for _ in range(3):
        limiter.hit("ip:198.51.100.7")
    limiter.test("ip:198.51.100.7")
    assert limiter.top_limited() == [("ip:198.51.100.7", 2)]
    down = RedisLimiter(
        "1/minute", store="redis://127.0.0.1:1/0", on_error="deny", connect_timeout=0.05
    )
    assert not down.hit("ip:192.0.2.1")
    assert down.top_limited() == [("ip:192.0.2.1", 1)]


async def test_redis_limiter_counts_async_refusals(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisLimiter("1/minute", store=redis_url, key_prefix=redis_prefix)
    for _ in range(3):
        await limiter.ahit("u")
    assert limiter.top_limited() == [("u", 2)]


@pytest.fixture
def host_name() -> Iterator[str]:
    name = f"test-top-{uuid.uuid4().hex[:12]}"
    yield name
    seawall.host.remove(name)


def test_host_limiter_counts_this_process_refusals(host_name: str) -> None:
    limiter = HostLimiter("1/minute", store=f"host://{host_name}", clock=ManualClock())
    for _ in range(4):
        limiter.hit("k")
    assert limiter.top_limited() == [("k", 3)]
    via_limiter = Limiter("1/minute", store=f"host://{host_name}", max_keys=100_000, top_keys=0)
    assert via_limiter.top_limited_summary()["capacity"] == 0


def _app(**options: Any) -> tuple[Starlette, RateLimitMiddleware]:
    app = Starlette(routes=[Route("/", lambda r: PlainTextResponse("ok"))])
    middleware = RateLimitMiddleware(app, limits="1/minute", clock=ManualClock(), **options)
    return app, middleware


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_middleware_counts_its_429s_by_client_key(
    store: str, redis_url: str, redis_prefix: str
) -> None:
    options = {} if store == "memory" else {"store": redis_url, "key_prefix": redis_prefix}
    _, middleware = _app(trusted_proxies=["127.0.0.1"], **options)
    transport = httpx.ASGITransport(app=middleware, client=("127.0.0.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for ip, n in (("203.0.113.9", 4), ("198.51.100.2", 2), ("192.0.2.8", 1)):
            for _ in range(n):
                await client.get("/", headers={"x-forwarded-for": ip})
    assert middleware.limiter.top_limited() == [("ip:203.0.113.9", 3), ("ip:198.51.100.2", 1)]


async def test_client_rate_limiter_counts_refused_client_ids() -> None:
    config = TokenBucketConfig(capacity=2, refill_rate=1.0, initial_tokens=2)
    limiter = ClientRateLimiter(config, clock=ManualClock(), top_keys=10)
    for _ in range(5):
        await limiter.consume("bot")
    assert limiter.try_consume("human")
    assert limiter.top_limited() == [("bot", 3)]
    with pytest.raises(ValueError, match="top_keys"):
        ClientRateLimiter(config, top_keys=-5)
