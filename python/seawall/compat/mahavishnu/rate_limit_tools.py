"""Seed 001 (Mahavishnu core), ``mahavishnu/core/rate_limit_tools.py``, on seawall.

``@rate_limit_tool(requests_per_minute=60)`` limits an MCP tool per ``user_id`` argument (calls
without one share the ``"anonymous"`` budget) and returns an error dict instead of raising:
``{"success": False, "error": "Rate limit exceeded", "rate_limited": True, "retry_after": <s>}``.
Write it below ``@mcp.tool()`` (see :mod:`seawall.mcp` for the other order); it keeps the
tool's signature (so its schema), sync or async. ``get_rate_limiter(config=None)`` is the shared
:class:`RateLimiter` singleton (a ``config`` replaces it). Statistics per tool:
``get_tool_stats(name)``, ``get_all_tool_stats()``, ``reset_tool_stats(name)``,
``reset_all_tool_stats()``.

``store=`` (keyword only, default ``None``: this process's memory) moves the budgets to Redis,
shared by every worker and host that names it: ``@rate_limit_tool(60, store="redis://...")``,
with ``key_prefix``, ``on_error``, the timeouts and ``log_interval`` of
:class:`seawall.RedisLimiter` (a ``ValueError`` with the memory store); an async tool awaits the
Redis decision, a sync one blocks on it. ``get_rate_limiter(store=...)`` makes the shared
:class:`RateLimiter` on Redis.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from seawall._args import check_int
from seawall._stores import redis_options
from seawall.compat.mahavishnu.rate_limit import RateLimitConfig, RateLimiter
from seawall.mcp import rate_limit_tool as _rate_limit_tool
from seawall.mcp import reset_tool_stats as _reset
from seawall.mcp import tool_stats as _stats

__all__ = [
    "get_all_tool_stats",
    "get_rate_limiter",
    "get_tool_stats",
    "rate_limit_tool",
    "reset_all_tool_stats",
    "reset_tool_stats",
]

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_limiter: RateLimiter | None = None
_tools: set[str] = set()


def get_rate_limiter(
    config: RateLimitConfig | None = None,
    *,
    store: str | None = None,
    key_prefix: str | None = None,
    on_error: str | None = None,
    connect_timeout: float | None = None,
    command_timeout: float | None = None,
    log_interval: float | None = None,
    breaker_failures: int | None = None,
    breaker_recovery: float | None = None,
) -> RateLimiter:
    """The shared limiter, made on first use; passing a ``config`` or a ``store`` replaces it
    (``store`` and the Redis options: as for :class:`RateLimiter`)."""
    global _limiter
    options = redis_options(locals())
    with _lock:
        if _limiter is None or config is not None or store is not None:
            _limiter = RateLimiter(config=config, store=store, **options)
        return _limiter


def rate_limit_tool(
    requests_per_minute: int = 60,
    *,
    clock: Any = None,
    name: str | None = None,
    store: str | None = None,
    key_prefix: str | None = None,
    on_error: str | None = None,
    connect_timeout: float | None = None,
    command_timeout: float | None = None,
    log_interval: float | None = None,
    breaker_failures: int | None = None,
    breaker_recovery: float | None = None,
) -> Callable[[F], F]:
    """Limit a tool to ``requests_per_minute`` per ``user_id`` (error dict when limited);
    ``store`` and the Redis options as in the module docstring."""
    check_int("requests_per_minute", requests_per_minute, minimum=1)
    inner = _rate_limit_tool(
        f"{requests_per_minute}/minute",
        key="user_id",
        on_limit="error",
        algorithm="sliding_window_log",
        clock=clock,
        name=name,
        store=store,
        **redis_options(locals()),
    )

    def decorator(func: F) -> F:
        wrapped = inner(func)
        _tools.add(name or str(getattr(func, "__name__", "tool")))
        return wrapped

    return decorator


def _seed_stats(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "total_calls": entry["total_calls"],
        "rate_limited_calls": entry["limited_calls"],
        "last_limited": entry["last_limited"],
    }


def get_tool_stats(tool_name: str) -> dict[str, Any]:
    """``{"total_calls", "rate_limited_calls", "last_limited"}`` for one tool."""
    return _seed_stats(_stats(tool_name)[tool_name])


def get_all_tool_stats() -> dict[str, dict[str, Any]]:
    """Statistics of every tool called so far."""
    return {k: _seed_stats(v) for k, v in _stats().items()}


def reset_tool_stats(tool_name: str) -> None:
    """Forget one tool's statistics."""
    _reset(tool_name)


def reset_all_tool_stats() -> None:
    """Forget every tool's statistics."""
    _reset()
