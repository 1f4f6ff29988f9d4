"""The environment profiles as pure functions (B8, B9; defects 12 and 16).

Every number a profile makes is at least 1 where 0 would mean "unlimited" or a threshold of 0;
a rate window of 0 (switched off) stays 0. Integer arithmetic (``x * 8 // 10``), so no float
rounding makes 5 * 0.8 come out as 3.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal

from seawall.compat.voicehive._backpressure_config import BackpressureConfig
from seawall.compat.voicehive.circuit_breaker import CircuitBreakerConfig
from seawall.compat.voicehive.rate_limiter import RateLimitConfig

__all__ = [
    "Profile",
    "profile_of",
    "scale_all",
    "scale_backpressure",
    "scale_breaker",
    "scale_config",
    "scale_rate",
    "scale_rule",
]

Profile = Literal["production", "development", "default"]
_WINDOWS = ("requests_per_minute", "requests_per_hour", "requests_per_day")
_RATE = {"production": (8, 10), "development": (15, 10)}


def profile_of(environment: str) -> Profile:
    """``production``/``prod``, ``development``/``dev``/``local`` (any case), else ``default``."""
    if not isinstance(environment, str):
        raise TypeError(f"environment must be a str, got {type(environment).__name__}")
    env = environment.strip().lower()
    if env in ("production", "prod"):
        return "production"
    if env in ("development", "dev", "local"):
        return "development"
    return "default"


def scale_rate(count: int, profile: Profile) -> int:
    """A window under ``profile``: times 0.8 or 1.5 rounded down, at least 1; 0 stays 0."""
    if count == 0 or profile == "default":
        return count
    num, den = _RATE[profile]
    return max(1, count * num // den)


def _scaled_windows(values: Mapping[str, Any], profile: Profile) -> dict[str, int]:
    defaults = RateLimitConfig()
    return {w: scale_rate(int(values.get(w, getattr(defaults, w))), profile) for w in _WINDOWS}


def scale_config(config: RateLimitConfig, profile: Profile) -> RateLimitConfig:
    """A copy of ``config`` with its three windows scaled."""
    w = _scaled_windows(dataclasses.asdict(config), profile)
    return dataclasses.replace(
        config,
        requests_per_minute=w["requests_per_minute"],
        requests_per_hour=w["requests_per_hour"],
        requests_per_day=w["requests_per_day"],
    )


def scale_rule(rule: Any, profile: Profile) -> Any:
    """A copy of one ``rate_limiting_rules`` entry (a dict, or a ``RateLimitRule``) scaled;
    windows a config dict leaves out count as ``RateLimitConfig``'s defaults."""
    if isinstance(rule, Mapping):
        out = dict(rule)
        config = rule.get("config", {})
        if isinstance(config, RateLimitConfig):
            out["config"] = scale_config(config, profile)
        else:
            out["config"] = {**config, **_scaled_windows(config, profile)}
        return out
    return dataclasses.replace(rule, config=scale_config(rule.config, profile))


def scale_breaker(config: CircuitBreakerConfig, profile: Profile) -> CircuitBreakerConfig:
    """Production: one failure fewer (at least 1), 30 s longer open (at most 120 s, never
    shorter than it was). Development: two failures more, 20 s shorter open (never below 10 s,
    never longer than it was)."""
    ft, rt = config.failure_threshold, config.recovery_timeout
    if profile == "production":
        return dataclasses.replace(
            config, failure_threshold=max(1, ft - 1), recovery_timeout=max(rt, min(120, rt + 30))
        )
    if profile == "development":
        return dataclasses.replace(
            config, failure_threshold=ft + 2, recovery_timeout=max(rt - 20, min(rt, 10))
        )
    return dataclasses.replace(config)


def scale_backpressure(config: BackpressureConfig, profile: Profile) -> BackpressureConfig:
    """Production: queue and memory times 0.7 rounded down (at least 1), timeout +10 s (at most
    60 s). Development and default: unchanged."""
    if profile != "production":
        return dataclasses.replace(config)
    return dataclasses.replace(
        config,
        max_queue_size=max(1, config.max_queue_size * 7 // 10),
        max_memory_mb=max(1, config.max_memory_mb * 7 // 10),
        timeout_seconds=min(60.0, config.timeout_seconds + 10),
    )


def scale_all(
    items: Mapping[str, Any], scale: Callable[[Any, Profile], Any], profile: Profile
) -> dict[str, Any]:
    return {name: scale(value, profile) for name, value in items.items()}
