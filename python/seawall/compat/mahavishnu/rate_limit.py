"""Seed 001 (Mahavishnu core), ``mahavishnu/core/rate_limit.py``, on seawall's ``Limiter``.

Same names and defaults: ``RateLimitConfig``, ``RateLimitInfo`` and
``RateLimiter(per_minute=60, per_hour=1000, per_day=10000, burst_size=10)`` with
``await is_allowed(key) -> (bool, RateLimitInfo)``. The four limits of the original are decided
together in one native call, all or nothing:

* per minute: an exact sliding window log (at most ``per_minute`` entries per key);
* per hour and per day: sliding window counters (two counters per key instead of up to
  ``per_day`` timestamps; see ``seawall.Limiter`` for their error bound);
* the burst: a token bucket of ``burst_size`` refilled at ``per_minute`` per minute.

Violations are counted per key for repeat offenders; ``cleanup()`` (or the task
``start_cleanup()`` runs) drops keys whose limits are all back to fresh, losing nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from seawall import Decision, Limit, Limiter

__all__ = ["RateLimitConfig", "RateLimitInfo", "RateLimiter"]

logger = logging.getLogger("seawall.compat.mahavishnu.rate_limit")


@dataclass
class RateLimitConfig:
    """Limits per client, exemptions and the global switch."""

    requests_per_minute: int = 60
    requests_per_hour: int = 1000
    requests_per_day: int = 10000
    burst_size: int = 10
    exempt_ips: set[str] = field(default_factory=set)
    exempt_user_ids: set[str] = field(default_factory=set)
    enabled: bool = True


@dataclass
class RateLimitInfo:
    """The outcome of one check. ``retry_after`` is whole seconds (rounded up) when limited."""

    limited: bool = False
    limit: int = 0
    remaining: int = 0
    reset_after: float = 0.0
    retry_after: int | None = None
    reset_time: float = field(default=0.0)

    @classmethod
    def from_decision(cls, d: Decision) -> RateLimitInfo:
        return cls(
            limited=d.limited,
            limit=d.limit,
            remaining=d.remaining,
            reset_after=d.reset_after,
            retry_after=None if d.allowed else _whole_seconds(d.retry_after),
            reset_time=time.time() + d.reset_after,
        )


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds)) if math.isfinite(seconds) else 2**31 - 1


class RateLimiter:
    """Per-minute, per-hour and per-day sliding limits plus a token-bucket burst, per key."""

    def __init__(
        self,
        per_minute: int = 60,
        per_hour: int = 1000,
        per_day: int = 10000,
        burst_size: int = 10,
        *,
        config: RateLimitConfig | None = None,
        max_keys: int = 1_000_000,
        clock: Any = None,
    ) -> None:
        if config is None:
            config = RateLimitConfig(
                requests_per_minute=per_minute,
                requests_per_hour=per_hour,
                requests_per_day=per_day,
                burst_size=burst_size,
            )
        self.config = config
        for name in ("requests_per_minute", "requests_per_hour", "requests_per_day", "burst_size"):
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int of at least 1, got {value!r}")
        minute_limit = f"{config.requests_per_minute}/minute"
        self._limiter = Limiter(
            [
                Limit(minute_limit, "sliding_window_log"),
                Limit(f"{config.requests_per_hour}/hour", "sliding_window_counter"),
                Limit(f"{config.requests_per_day}/day", "sliding_window_counter"),
                Limit(minute_limit, "token_bucket", burst=config.burst_size),
            ],
            max_keys=max_keys,
            clock=clock,
        )
        self._violations: dict[str, int] = {}
        self._cleanup_task: asyncio.Task[None] | None = None

    @property
    def limiter(self) -> Limiter:
        """The ``seawall.Limiter`` underneath."""
        return self._limiter

    def _exempt(self, key: str) -> bool:
        return (
            not self.config.enabled
            or key in self.config.exempt_ips
            or key in self.config.exempt_user_ids
        )

    def check(self, key: str) -> tuple[bool, RateLimitInfo]:
        """``is_allowed``, for code that is not async."""
        if self._exempt(key):
            return True, RateLimitInfo(limited=False)
        decision = self._limiter.hit(key)
        if not decision.allowed:
            self._violations[key] = self._violations.get(key, 0) + 1
            # DEBUG, not WARNING: a record per denied request is an amplifier under attack.
            logger.debug("Rate limit exceeded for %s", key)
        return decision.allowed, RateLimitInfo.from_decision(decision)

    async def is_allowed(self, key: str) -> tuple[bool, RateLimitInfo]:
        """Whether ``key`` may make a request now; counts it if so."""
        return self.check(key)

    def get_violations(self, key: str) -> int:
        """How often ``key`` was limited (since it was last cleaned up)."""
        return self._violations.get(key, 0)

    def get_repeat_offenders(self, min_violations: int = 5) -> dict[str, int]:
        """Keys limited at least ``min_violations`` times, most first."""
        offenders = [(k, v) for k, v in self._violations.items() if v >= min_violations]
        return dict(sorted(offenders, key=lambda kv: -kv[1]))

    def cleanup(self) -> int:
        """Drop keys back to fresh (lossless) and their violation counts; returns how many."""
        removed = self._limiter.cleanup()
        if removed:
            held = {k for k in self._violations if self._limiter.key_stats(k) is not None}
            self._violations = {k: v for k, v in self._violations.items() if k in held}
        return removed

    async def start_cleanup(self, interval: float = 60.0) -> None:
        """Run ``cleanup()`` every ``interval`` seconds in the background (idempotent)."""
        if self._cleanup_task is not None and not self._cleanup_task.done():
            return

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    self.cleanup()
                except Exception:
                    logger.exception("Error in rate limiter cleanup")

        self._cleanup_task = asyncio.create_task(loop())

    async def stop_cleanup(self) -> None:
        """Stop the background cleanup."""
        task, self._cleanup_task = self._cleanup_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def reset(self, key: str) -> bool:
        """Forget ``key``'s usage and violations."""
        self._violations.pop(key, None)
        return self._limiter.reset(key)

    def get_stats(self) -> dict[str, Any]:
        """Totals for monitoring."""
        stats = self._limiter.stats()
        return {
            "total_requests": stats["hits"],
            "limited_requests": stats["limited"],
            "active_keys": stats["keys"],
            "total_violations": sum(self._violations.values()),
            "repeat_offenders": len(self.get_repeat_offenders()),
            "limits": {
                "per_minute": self.config.requests_per_minute,
                "per_hour": self.config.requests_per_hour,
                "per_day": self.config.requests_per_day,
                "burst_size": self.config.burst_size,
            },
        }
