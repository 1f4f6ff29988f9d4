"""Rules with a custom algorithm (A16): the caller's object decides, in Python, on this process's
memory (never with a Redis store: its state could not be shared atomically).

The engine passes ``check(state, current_time)`` seawall's clock reading (epoch seconds), never
the wall clock, so tests drive it with a ``ManualClock``; a key's state starts as ``{}`` and is
whatever ``check`` returns, at most ``max_keys`` keys (the least recently used go first). An
unlimited admin override lets a request through without calling the algorithm; a multiplied one
does not apply (an opaque algorithm has nothing to multiply). The rule's metrics are counted here
with the native ones' shape; their violation mappings hold the first 1,000 keys of each kind (the
native rules keep the top 1,000 by count), the rest counted in ``other_*``. A synchronous
``check`` is atomic per rule; an async one is not (another request may run while it waits)."""

from __future__ import annotations

import inspect
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from seawall._time import now, whole_seconds
from seawall.rules import RulesEngine

from ._awaitables import resolve
from ._types import (
    CustomAlgorithm,
    LimitScope,
    LimitStrategy,
    RateLimitDecision,
    RateLimitMetrics,
    RateLimitRule,
)

__all__ = ["CustomRule"]

TOP = 1000


@dataclass
class _Counts:
    total: int = 0
    allowed: int = 0
    tokens: float = 0.0
    by: dict[str, Counter[str]] = field(
        default_factory=lambda: {k: Counter[str]() for k in ("user", "ip", "endpoint")}
    )
    other: Counter[str] = field(default_factory=Counter[str])

    def record(self, allowed: bool, tokens: float, keys: Mapping[str, str | None]) -> None:
        self.total += 1
        self.tokens += tokens
        if allowed:
            self.allowed += 1
            return
        for kind, key in keys.items():
            if key is None:
                continue
            held = self.by[kind]
            if key in held or len(held) < TOP:
                held[key] += 1
            else:
                self.other[kind] += 1

    def snapshot(self, rule_name: str) -> RateLimitMetrics:
        return RateLimitMetrics(
            rule_name=rule_name,
            total_requests=self.total,
            allowed_requests=self.allowed,
            denied_requests=self.total - self.allowed,
            avg_tokens_remaining=self.tokens / self.total if self.total else 0.0,
            violations_by_user=dict(self.by["user"]),
            violations_by_ip=dict(self.by["ip"]),
            violations_by_endpoint=dict(self.by["endpoint"]),
            other_user_violations=self.other["user"],
            other_ip_violations=self.other["ip"],
            other_endpoint_violations=self.other["endpoint"],
        )


class CustomRule:
    """A rule decided by its custom algorithm."""

    def __init__(
        self,
        rule: RateLimitRule,
        default_strategy: LimitStrategy,
        native: RulesEngine,
        clock: Any,
        max_keys: int = 100_000,
    ) -> None:
        assert isinstance(rule.algorithm, CustomAlgorithm)
        self.rule = rule
        self._algorithm: CustomAlgorithm = rule.algorithm
        self._strategy = LimitStrategy(rule.strategy or default_strategy)
        self._native = native
        self._clock = clock
        self._max_keys = max_keys
        self._states: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._counts = _Counts()

    def metrics(self) -> RateLimitMetrics:
        with self._lock:
            return self._counts.snapshot(self.rule.name)

    def reset_metrics(self) -> None:
        with self._lock:
            self._counts = _Counts()

    def _key(self, identifier: str, endpoint: str | None, ip_address: str | None) -> str:
        scope = LimitScope(self.rule.scope)
        if scope is LimitScope.GLOBAL:
            return ""
        if scope is LimitScope.PER_IP:
            return ip_address or identifier
        if scope is LimitScope.PER_ENDPOINT:
            return endpoint or identifier
        return identifier

    async def check(
        self,
        identifier: str,
        endpoint: str | None,
        ip_address: str | None,
        user_id: str | None = None,
    ) -> RateLimitDecision:
        begun = self._begin(identifier, endpoint, ip_address, user_id)
        if isinstance(begun, RateLimitDecision):
            return begun
        result = self._algorithm.check(begun[1], now(self._clock))
        if inspect.isawaitable(result):
            result = await result
        return self._finish(identifier, begun[0], ip_address, endpoint, result)

    def check_sync(
        self,
        identifier: str,
        endpoint: str | None,
        ip_address: str | None,
        user_id: str | None = None,
    ) -> RateLimitDecision:
        begun = self._begin(identifier, endpoint, ip_address, user_id)
        if isinstance(begun, RateLimitDecision):
            return begun
        result = self._algorithm.check(begun[1], now(self._clock))
        result = resolve(result, "the custom algorithm's check")
        return self._finish(identifier, begun[0], ip_address, endpoint, result)

    def _begin(
        self,
        identifier: str,
        endpoint: str | None,
        ip_address: str | None,
        user_id: str | None = None,
    ) -> RateLimitDecision | tuple[str, Any]:
        """An unlimited override's admission, else the key and its state."""
        found = self._native.check_override(user_id=user_id or identifier, ip_address=ip_address)
        if found is not None and found["unlimited"]:
            with self._lock:
                self._counts.record(True, float(self.rule.rate), {})
            return self._decision(identifier, True, float(self.rule.rate), None, found)
        key = self._key(identifier, endpoint, ip_address)
        with self._lock:
            return key, self._states.get(key, {})

    def _finish(
        self,
        identifier: str,
        key: str,
        ip_address: str | None,
        endpoint: str | None,
        result: Any,
    ) -> RateLimitDecision:
        allowed, state = result
        allowed = bool(allowed)
        tokens = float(state.get("tokens", 0.0)) if isinstance(state, Mapping) else 0.0
        keys = {"user": identifier, "ip": ip_address, "endpoint": endpoint}
        with self._lock:
            self._states[key] = state
            self._states.move_to_end(key)
            while len(self._states) > self._max_keys:
                self._states.popitem(last=False)
            self._counts.record(allowed, tokens, keys)
        wait = None if allowed else whole_seconds(self._algorithm.get_retry_after(state))
        return self._decision(identifier, allowed, tokens, wait, None)

    def _decision(
        self,
        identifier: str,
        allowed: bool,
        tokens: float,
        retry_after: int | None,
        found: dict[str, Any] | None,
    ) -> RateLimitDecision:
        return RateLimitDecision(
            allowed=allowed,
            rule_name=self.rule.name,
            identifier=identifier,
            tokens_remaining=tokens,
            retry_after=retry_after,
            reset_after=0.0,
            limit=self.rule.rate,
            strategy=self._strategy,
            degraded=not allowed and self._strategy is LimitStrategy.GRACEFUL,
            override_id=None if found is None else found["override_id"],
        )
