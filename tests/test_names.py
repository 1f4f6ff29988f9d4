"""Names (issue 12): seawall's own sync and async methods follow one rule (``x`` / ``ax``), the
fastmcp middleware no longer shares the HTTP middleware's name, and each old name still works,
with a ``DeprecationWarning``."""

from __future__ import annotations

import asyncio
import inspect
import warnings

import pytest

import seawall
import seawall.mcp
from seawall import CircuitBreaker, CircuitOpenError, Limiter, RedisLimiter
from seawall.breaker import BreakerRegistry
from seawall.fastapi import RateLimitDependency
from seawall.mcp import ToolRateLimitMiddleware
from seawall.testing import ManualClock

# Hooks whose names a framework chooses: an ASGI app, a FastAPI dependency, fastmcp's middleware.
FRAMEWORK_HOOKS = {"__call__", "__aenter__", "__aexit__", "on_call_tool"}
DEPRECATED = {(CircuitBreaker, "call_async")}

OWN_CLASSES = [
    Limiter,
    RedisLimiter,
    CircuitBreaker,
    BreakerRegistry,
    seawall.RateLimitMiddleware,
    ToolRateLimitMiddleware,
    RateLimitDependency,
]


def _public_methods(cls: type) -> dict[str, object]:
    """The public methods seawall defines on ``cls`` (not those a framework's base class has)."""
    methods: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("seawall"):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") and name not in FRAMEWORK_HOOKS:
                continue
            if callable(value):
                methods[name] = value
    return methods


@pytest.mark.parametrize("cls", OWN_CLASSES, ids=lambda c: c.__name__)
def test_every_awaitable_method_is_a_plus_its_sync_twin(cls: type) -> None:
    methods = _public_methods(cls)
    assert methods
    for name, method in methods.items():
        if name in FRAMEWORK_HOOKS or (cls, name) in DEPRECATED:
            continue
        if inspect.iscoroutinefunction(method):
            assert name.startswith("a") and name[1:] in methods, (cls.__name__, name)
            assert not inspect.iscoroutinefunction(methods[name[1:]]), (cls.__name__, name)


@pytest.mark.parametrize("cls", OWN_CLASSES, ids=lambda c: c.__name__)
def test_no_own_method_says_async_or_sync_in_its_name(cls: type) -> None:
    for name in _public_methods(cls):
        if (cls, name) in DEPRECATED or name == "sync":  # CircuitBreaker.sync(): synchronise
            continue
        words = name.split("_")
        assert "async" not in words and "sync" not in words, (cls.__name__, name)


def test_breaker_acall_is_the_awaitable_call() -> None:
    breaker = CircuitBreaker("names-acall", failure_threshold=1, clock=ManualClock())

    async def double(x: int) -> int:
        return 2 * x

    assert inspect.iscoroutinefunction(CircuitBreaker.acall)
    assert asyncio.run(breaker.acall(double, 21)) == 42
    assert breaker.call(lambda: 7) == 7

    async def fail() -> None:
        raise OSError("down")

    with pytest.raises(OSError):
        asyncio.run(breaker.acall(fail))
    with pytest.raises(CircuitOpenError):
        asyncio.run(breaker.acall(double, 1))


def test_breaker_call_async_is_a_deprecated_alias_of_acall() -> None:
    breaker = CircuitBreaker("names-call-async", failure_threshold=1, clock=ManualClock())

    async def double(x: int) -> int:
        return 2 * x

    with pytest.warns(DeprecationWarning, match=r"call_async is deprecated: use .*acall") as w:
        assert asyncio.run(breaker.call_async(double, 21)) == 42
    assert len(w) == 1
    assert w[0].filename == __file__  # it points at the caller's line

    async def fail() -> None:
        raise OSError("down")

    with pytest.warns(DeprecationWarning), pytest.raises(OSError):
        asyncio.run(breaker.call_async(fail))
    assert breaker.state == "open"
    with pytest.warns(DeprecationWarning), pytest.raises(CircuitOpenError):
        asyncio.run(breaker.call_async(double, 1))


def test_the_fastmcp_middleware_has_its_own_name() -> None:
    assert ToolRateLimitMiddleware.__name__ == "ToolRateLimitMiddleware"
    assert seawall.RateLimitMiddleware.__name__ == "RateLimitMiddleware"  # the HTTP one
    assert "ToolRateLimitMiddleware" in seawall.mcp.__all__
    assert "RateLimitMiddleware" not in seawall.mcp.__all__


def test_mcp_rate_limit_middleware_is_a_deprecated_alias() -> None:
    with pytest.warns(DeprecationWarning, match="ToolRateLimitMiddleware") as w:
        alias = seawall.mcp.RateLimitMiddleware
    assert alias is ToolRateLimitMiddleware
    assert len(w) == 1 and w[0].filename == __file__
    # Every access warns (once each), the import form too.
    with pytest.warns(DeprecationWarning) as w:
        from seawall.mcp import RateLimitMiddleware
    assert RateLimitMiddleware is ToolRateLimitMiddleware
    assert len(w) == 1


def test_star_import_of_mcp_warns_about_nothing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        namespace: dict[str, object] = {}
        exec("from seawall.mcp import *", namespace)
    assert namespace["ToolRateLimitMiddleware"] is ToolRateLimitMiddleware
    assert "RateLimitMiddleware" not in namespace


def test_unknown_mcp_attributes_still_raise() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = seawall.mcp.no_such_name  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        from seawall.mcp import no_such_name  # type: ignore[attr-defined]  # noqa: F401
