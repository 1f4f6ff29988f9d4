"""The typed tour of the public API (tests/typed_usage.py) runs, and covers every public name.

scripts/test.sh type-checks the tour with pyright (strict) and mypy (strict); these tests make
sure it is real code: importing it has no side effects, each of its functions runs and gets the
answers it expects (the Redis ones against a real redis-server), and every name in the
``__all__`` of seawall's public modules is used in it, so a new public name must be added there
(and so be type-checked as a user would use it).
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import typed_usage

import seawall
from seawall import CircuitOpenError, Decision, Limiter, RedisLimiter, breakers
from seawall.testing import ManualClock

TOUR = Path(typed_usage.__file__)

PUBLIC_MODULES = [
    "seawall",
    "seawall.asgi",
    "seawall.breaker",
    "seawall.compat.fastmcp_example",
    "seawall.compat.mahavishnu.rate_limit",
    "seawall.compat.mahavishnu.rate_limit_tools",
    "seawall.compat.mahavishnu.rate_limiting",
    "seawall.compat.snowflake",
    "seawall.compat.voicehive.circuit_breaker",
    "seawall.compat.voicehive.rate_limit_middleware",
    "seawall.compat.voicehive.rate_limiter",
    "seawall.compat.voicehive.resilience_config",
    "seawall.compat.voicehive.backpressure_handler",
    "seawall.compat.voicehive.resilience_manager",
    "seawall.compat.voicehive.routers.resilience",
    "seawall.decorators",
    "seawall.errors",
    "seawall.fastapi",
    "seawall.host",
    "seawall.mcp",
    "seawall.prometheus",
    "seawall.otel",
    "seawall.rules",
    "seawall.testing",
    "seawall.types",
]


def test_import_has_no_side_effects() -> None:
    """A fresh interpreter that imports the tour has no breaker, clock or tool statistics."""
    code = (
        "import seawall, seawall.mcp, seawall.testing\n"
        "import typed_usage\n"
        "assert len(seawall.breakers) == 0, seawall.breakers\n"
        "assert seawall.testing.get_default_clock() is None\n"
        "assert seawall.mcp.tool_stats() == {}\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=TOUR.parent, check=True)


@pytest.mark.parametrize("part", typed_usage.SYNC_PARTS, ids=lambda f: f.__name__)
def test_sync_part_runs(part: Callable[[ManualClock], object]) -> None:
    assert part(ManualClock()) is not None


@pytest.mark.parametrize("part", typed_usage.ASYNC_PARTS, ids=lambda f: f.__name__)
def test_async_part_runs(part: Callable[[ManualClock], Awaitable[object]]) -> None:
    async def main() -> object:
        return await part(ManualClock())

    assert asyncio.run(main()) is not None


def test_refusals_the_tour_expects() -> None:
    """The tour's results are the limits working, not just calls that returned."""
    clock = ManualClock()
    assert typed_usage.asgi_requests(clock) == [200, 200, 429]
    assert typed_usage.raw_asgi_requests(ManualClock()) == [200, 429]
    assert typed_usage.fastapi_requests(ManualClock()) == [200, 200, 429]
    assert typed_usage.snowflake_requests(ManualClock()) == [200, 200, 429]
    total, refused = typed_usage.rate_limited_functions(ManualClock())
    assert total == 10 and refused == "bob"
    stats = asyncio.run(typed_usage.mcp_calls(ManualClock()))
    assert stats["search"]["limited_calls"] == 1 and stats["ping"]["limited_calls"] == 1
    one = Limiter("1/minute", clock=ManualClock())
    assert typed_usage.first_decision(one, "k") and not typed_usage.first_decision(one, "k")


def test_circuit_breakers(request: pytest.FixtureRequest) -> None:
    name = f"typed-usage-{request.node.name}"
    breaker = typed_usage.circuit_breaker(name, ManualClock())
    assert breaker.state == "closed" and breakers.get(name) is breaker
    fallen_back = asyncio.run(typed_usage.circuit_breaker_async(f"{name}-async"))
    assert fallen_back == "cached Oslo"
    breaker.force_open()
    with pytest.raises(CircuitOpenError), breaker:
        pass


def test_redis_parts(redis_url: str, redis_prefix: str) -> None:
    limiter = typed_usage.redis_limiter(redis_url, redis_prefix)
    assert isinstance(limiter, RedisLimiter)
    probe = asyncio.run(typed_usage.redis_limiter_async(redis_url, f"{redis_prefix}async:"))
    assert isinstance(probe, Decision) and probe.retry_after > 0


def test_host_parts() -> None:
    import uuid

    limiter = typed_usage.host_limiter(f"typed-{uuid.uuid4().hex[:12]}")
    assert isinstance(limiter, seawall.HostLimiter)


def _used_objects() -> set[int]:
    """The ids of every object the tour takes from a seawall module, by import or attribute."""
    tree = ast.parse(TOUR.read_text())
    modules: dict[str, str] = {}  # local name -> module
    used: set[int] = set()

    def use(module: str, name: str) -> None:
        obj = getattr(importlib.import_module(module), name)
        used.add(id(obj))
        if isinstance(obj, type(sys)):
            modules[name] = obj.__name__

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("seawall"):
                    modules[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seawall"):
            assert node.module is not None
            for alias in node.names:
                use(node.module, alias.name)
                if isinstance(getattr(importlib.import_module(node.module), alias.name), type(sys)):
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            module = importlib.import_module(modules[node.value.id])
            if hasattr(module, node.attr):
                used.add(id(getattr(module, node.attr)))
    return used


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_tour_uses_every_public_name(module: str) -> None:
    used = _used_objects()
    public = importlib.import_module(module)
    missing = [name for name in public.__all__ if id(getattr(public, name)) not in used]
    assert not missing, f"tests/typed_usage.py does not use {module}.{', '.join(missing)}"
