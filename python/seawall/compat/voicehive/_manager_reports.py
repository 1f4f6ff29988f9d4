"""The resilience manager's health and metrics dicts (3.6: the service's shapes, TTS entries
left out), JSON-ready: datetimes as ISO 8601 strings, enums as their values."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seawall.compat.voicehive.resilience_manager import ResilienceManager

__all__ = ["health", "metrics"]

_BREAKER_METRICS = (
    "state",
    "failure_count",
    "success_count",
    "total_requests",
    "total_failures",
    "total_successes",
)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


async def _breakers(m: ResilienceManager) -> dict[str, dict[str, Any]]:
    if m.circuit_breaker_manager is None:
        return {}
    stats = await m.circuit_breaker_manager.get_all_stats()
    return {name: s.model_dump(mode="json") for name, s in stats.items()}


async def _handlers(m: ResilienceManager) -> dict[str, dict[str, Any]]:
    if m.backpressure_manager is None:
        return {}
    stats = await m.backpressure_manager.get_all_stats()
    return {name: s.model_dump() for name, s in stats.items()}


async def health(m: ResilienceManager) -> dict[str, Any]:
    """``{"initialized", "startup_time", "environment", "redis_connected", "components":
    {"rate_limiter": {"enabled", "rules_count"}, "circuit_breakers": {"enabled",
    "breakers_count", "stats"}, "backpressure": {"enabled", "handlers_count", "stats"}}}``."""
    breakers = await _breakers(m)
    handlers = await _handlers(m)
    return {
        "initialized": m.initialized,
        "startup_time": _iso(m.startup_time),
        "environment": m.environment,
        "redis_connected": m.redis_connected,
        "components": {
            "rate_limiter": {
                "enabled": m.rate_limiter is not None,
                "rules_count": 0 if m.rate_limiter is None else len(m.rate_limiter.rules),
            },
            "circuit_breakers": {
                "enabled": m.circuit_breaker_manager is not None,
                "breakers_count": len(breakers),
                "stats": breakers,
            },
            "backpressure": {
                "enabled": m.backpressure_manager is not None,
                "handlers_count": len(handlers),
                "stats": handlers,
            },
        },
    }


async def metrics(m: ResilienceManager, timestamp: datetime) -> dict[str, Any]:
    """``{"timestamp", "environment", "rate_limiter": {"enabled", "rules_count",
    "redis_connected"}, "circuit_breakers": {name: {"state", "failure_count", "success_count",
    "total_requests", "total_failures", "total_successes"}}, "backpressure": {name: stats}}``."""
    breakers = await _breakers(m)
    limiter = m.rate_limiter
    return {
        "timestamp": timestamp.isoformat(),
        "environment": m.environment,
        "rate_limiter": {
            "enabled": limiter is not None,
            "rules_count": 0 if limiter is None else len(limiter.rules),
            "redis_connected": m.redis_connected,
        },
        "circuit_breakers": {
            name: {k: s[k] for k in _BREAKER_METRICS} for name, s in breakers.items()
        },
        "backpressure": await _handlers(m),
    }
