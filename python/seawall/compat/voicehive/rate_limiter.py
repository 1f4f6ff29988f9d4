"""Drop-in for the VoiceHive service's ``rate_limiter`` module (seed 003, section 3.1).

The service's names, parameters and return shapes, decided natively: one ``seawall.Limiter`` per
distinct config holding its three windows (``"m/minute; h/hour; d/day"``), so a request is one
native call that admits it under every window or counts it under none (B7, defect 6). Windows of
at most 1,000 requests are exact sliding logs, larger ones sliding window counters (B6); log
entries are counts per instant, so two requests in one microsecond are two (defect 7).

Budgets are per (client, rule): the key is ``{client_id}\\x1f{rule index}``, shared by every path
the rule matches (B3, defect 8: the service keyed each concrete path). ``retry_after`` is the real
wait in whole seconds, rounded up, under every window (defect 5). With a Redis URL the state is
shared, and a Redis failure falls back to per-process limits (``on_error="local"``; defect 4).
Statistics and resets read the limiter natively (``Limiter.usage``), never ``KEYS``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal

from seawall import Decision, Limit, Limiter, RedisLimiter
from seawall._time import NEVER_SECONDS, now
from seawall.compat.voicehive._rate_types import (
    WINDOWS,
    ClientType,
    RateLimitAlgorithm,
    RateLimitConfig,
    RateLimitResult,
    RateLimitRule,
    config_from,
)
from seawall.compat.voicehive._redis_url import store_url

__all__ = [
    "ClientType",
    "RateLimitAlgorithm",
    "RateLimitConfig",
    "RateLimitResult",
    "RateLimitRule",
    "RateLimiter",
]

#: Windows up to this many requests are exact logs; larger ones sliding counters (B6).
EXACT_LOG_MAX = 1000
_DEFAULT = "default"
_BY_PERIOD = {float(seconds): kind for _, seconds, kind, _ in WINDOWS}
_SEP = "\x1f"


#: Redis keeps a window's arithmetic exact only while (count + 1) * window in µs * 2 stays below
#: 2^53 (Lua's numbers are doubles): about 52,000 a day or 2,170,000 an hour.
_REDIS_EXACT = 2**53


def _window_algorithm(count: int, seconds: int, redis: bool) -> str:
    """B6: an exact log up to 1,000, else a sliding counter; on Redis, a window too large for the
    counter's exact arithmetic is a token bucket of ``count`` refilled over the window (it
    admits the same average rate; a client that waits a whole window may then spend up to twice
    ``count`` in one rolling window, where the counter would keep it near ``count``)."""
    if count <= EXACT_LOG_MAX:
        return "sliding_window_log"
    if redis and (count + 1) * seconds * 1_000_000 * 2 >= _REDIS_EXACT:
        return "token_bucket"
    return "sliding_window_counter"


def _limits(config: RateLimitConfig, redis: bool = False) -> tuple[list[Limit], list[str]]:
    """The config's enforced limits and, for each, its ``get_client_stats`` window name."""
    limits: list[Limit] = []
    names: list[str] = []
    for field_name, seconds, _, stat in WINDOWS:
        count = getattr(config, field_name)
        if count:
            algorithm = _window_algorithm(count, seconds, redis)
            limits.append(Limit(f"{count}/{seconds} seconds", algorithm=algorithm))
            names.append(stat)
    burst = config.limits_key()[3]
    if burst is not None:
        limits.append(
            Limit(f"{config.requests_per_minute}/minute", algorithm="token_bucket", burst=burst)
        )
        names.append("burst")
    return limits, names


class RateLimiter:
    """Rules and budgets: ``RateLimiter(redis_client=None)``.

    ``redis_client``: ``None`` or ``"memory://"`` (this process's memory), a Redis URL, or a
    ``redis.asyncio.Redis`` (its URL is rebuilt from its connection pool). ``key_prefix``: the
    Redis keys' prefix. ``on_error``: what a decision does while Redis fails (``"local"``:
    per-process limits; ``"allow"``; ``"deny"``). ``max_keys``: budgets held per config in memory.
    ``clock``: a ``seawall.testing.ManualClock`` in tests.
    """

    def __init__(
        self,
        redis_client: Any = None,
        *,
        key_prefix: str = "rate_limit:",
        on_error: Literal["allow", "deny", "local"] = "local",
        max_keys: int = 1_000_000,
        clock: Any = None,
    ) -> None:
        if on_error not in ("allow", "deny", "local"):
            raise ValueError(f"on_error must be 'allow', 'deny' or 'local', got {on_error!r}")
        if not isinstance(key_prefix, str):
            raise TypeError(f"key_prefix must be a str, got {type(key_prefix).__name__}")
        self.store: str | None = store_url(redis_client)
        self.key_prefix = key_prefix
        self.on_error = on_error
        self.max_keys = max_keys
        self.clock = clock
        self.rules: list[RateLimitRule] = []
        self._default_config = RateLimitConfig()
        self._limiters: dict[tuple[int, int, int, int | None], tuple[Any, list[str]]] = {}

    @property
    def default_config(self) -> RateLimitConfig:
        """The config of requests no rule matches (assignable, as the service's tests do)."""
        return self._default_config

    @default_config.setter
    def default_config(self, value: RateLimitConfig | Mapping[str, Any]) -> None:
        self._default_config = config_from(value, "default_config")

    @property
    def redis_connected(self) -> bool:
        """Whether the budgets live in Redis (``False`` on the memory store)."""
        return self.store is not None

    def add_rule(self, rule: RateLimitRule | Mapping[str, Any]) -> None:
        """Adds a rule after the others (the first that matches wins, B2); a dict holds
        ``RateLimitRule``'s fields. A bad pattern or config raises here (defect 11)."""
        if isinstance(rule, Mapping):
            rule = RateLimitRule(**rule)
        elif not isinstance(rule, RateLimitRule):
            raise TypeError(f"rule must be a RateLimitRule or a dict, got {type(rule).__name__}")
        self._limiter_for(rule.config)  # a config seawall cannot enforce raises now
        self.rules.append(rule)

    def _match(self, path: str, method: str, client_type: str) -> tuple[str, RateLimitConfig]:
        for i, rule in enumerate(self.rules):
            if rule.matches(path, method, client_type):
                return str(i), rule.config
        return _DEFAULT, self._default_config

    def get_config_for_request(self, path: str, method: str, client_type: str) -> RateLimitConfig:
        """The first matching rule's config, else ``default_config`` (B1, B2)."""
        return self._match(path, method, str(getattr(client_type, "value", client_type)))[1]

    def _limiter_for(self, config: RateLimitConfig) -> tuple[Any, list[str]]:
        key = config.limits_key()
        found = self._limiters.get(key)
        if found is not None:
            return found
        limits, names = _limits(config, redis=self.store is not None)
        if not limits:
            made: tuple[Any, list[str]] = (None, names)
        elif self.store is None:
            made = (Limiter(limits, max_keys=self.max_keys, clock=self.clock), names)
        else:
            limiter = Limiter(
                limits,
                store=self.store,
                max_keys=self.max_keys,
                clock=self.clock,
                key_prefix=self.key_prefix,
                on_error=self.on_error,
            )
            made = (limiter, names)
        self._limiters[key] = made
        return made

    def _prepare(
        self, client_id: str, path: str, method: str, client_type: str
    ) -> tuple[RateLimitResult | None, Any, str]:
        if not isinstance(client_id, str):
            raise TypeError(f"client_id must be a str, got {type(client_id).__name__}")
        client_type = str(getattr(client_type, "value", client_type))
        index, config = self._match(path, method, client_type)
        limiter, _ = self._limiter_for(config)
        at = now(self.clock)
        if client_type == ClientType.INTERNAL.value and config.bypass_internal:
            return self._free(config, at, "bypass_internal"), None, ""
        if limiter is None:  # every window switched off
            return self._free(config, at, "requests_per_minute"), None, ""
        return None, limiter, f"{client_id}{_SEP}{index}"

    @staticmethod
    def _free(config: RateLimitConfig, at: float, limit_type: str) -> RateLimitResult:
        return RateLimitResult(
            allowed=True,
            current_usage=0,
            remaining=config.requests_per_minute,
            reset_time=datetime.fromtimestamp(at, timezone.utc),
            retry_after=None,
            limit_type=limit_type,
            limit=config.requests_per_minute,
        )

    def _result(self, d: Decision) -> RateLimitResult:
        at = now(self.clock)
        limit_type = _BY_PERIOD.get(round(d.window), "requests_per_minute")
        if d.allowed:
            retry_after = None
            reset = at + d.window
            remaining = d.remaining
        else:
            wait = d.retry_after
            retry_after = max(1, math.ceil(wait)) if math.isfinite(wait) else NEVER_SECONDS
            reset = at + retry_after
            remaining = 0
        return RateLimitResult(
            allowed=d.allowed,
            current_usage=d.limit - min(d.limit, d.remaining),
            remaining=remaining,
            reset_time=datetime.fromtimestamp(reset, timezone.utc),
            retry_after=retry_after,
            limit_type=limit_type,
            limit=d.limit,
        )

    async def check_rate_limit(
        self, client_id: str, path: str, method: str = "GET", client_type: str = "api"
    ) -> RateLimitResult:
        """Decides and counts one request (all windows at once, B7; bypass, B5)."""
        free, limiter, key = self._prepare(client_id, path, method, client_type)
        if free is not None:
            return free
        return self._result(await limiter.ahit(key))

    def check_rate_limit_sync(
        self, client_id: str, path: str, method: str = "GET", client_type: str = "api"
    ) -> RateLimitResult:
        """``check_rate_limit`` without an event loop."""
        free, limiter, key = self._prepare(client_id, path, method, client_type)
        if free is not None:
            return free
        return self._result(limiter.hit(key))

    def _budgets(self) -> list[tuple[str, str, RateLimitConfig]]:
        """Every budget a client can have: (rule index, pattern, config)."""
        budgets = [(str(i), r.path_pattern, r.config) for i, r in enumerate(self.rules)]
        budgets.append((_DEFAULT, _DEFAULT, self._default_config))
        return budgets

    async def get_client_stats(self, client_id: str) -> dict[str, dict[str, int]]:
        """Requests used per window and rule: ``{"minute": {pattern: used}, "hour": {...},
        "day": {...}}`` (B12); requests no rule matched show under ``"default"``. Rules that
        share a pattern (the anonymous and authenticated catch-alls) add up."""
        stats: dict[str, dict[str, int]] = {"minute": {}, "hour": {}, "day": {}}
        for index, pattern, config in self._budgets():
            limiter, names = self._limiter_for(config)
            if limiter is None:
                continue
            usage = await self._usage(limiter, f"{client_id}{_SEP}{index}")
            for name, entry in zip(names, usage, strict=True):
                if name in stats:
                    stats[name][pattern] = stats[name].get(pattern, 0) + int(entry["used"])
        return stats

    async def _usage(self, limiter: Any, key: str) -> list[dict[str, Any]]:
        if isinstance(limiter, RedisLimiter):
            return await limiter.ausage(key)
        usage: list[dict[str, Any]] = limiter.usage(key)
        return usage

    async def reset_client_limits(self, client_id: str, path: str | None = None) -> int:
        """Gives ``client_id`` fresh budgets: every one, or with ``path`` those of the rules that
        match it (any method and client type; the default budget when none does). Returns how
        many of them had requests counted."""
        budgets = self._budgets()
        if path is not None:
            matching = [b for b in budgets[:-1] if self.rules[int(b[0])].regex.match(path)]
            budgets = matching or budgets[-1:]
        done = 0
        for index, _, config in budgets:
            limiter, _ = self._limiter_for(config)
            if limiter is None:
                continue
            key = f"{client_id}{_SEP}{index}"
            done += any(u["used"] for u in await self._usage(limiter, key))
            if isinstance(limiter, RedisLimiter):
                await limiter.areset(key)
            else:
                limiter.reset(key)
        return done
