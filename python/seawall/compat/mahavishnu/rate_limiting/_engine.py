"""``create_rate_limiter()``'s engine: seed 002's methods over the native ``seawall.rules``
engine, each async with a ``_sync`` twin (A30), and the seed's strategy handler and default
rules. The native engine selects budgets, decides, applies overrides and counts metrics; this
layer turns its answers into the seed's objects."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from seawall._workers import warn_if_memory_workers
from seawall.rules import RuleDecision, RulesEngine

from ._audit import AuditTrail
from ._awaitables import resolve
from ._custom import CustomRule
from ._types import (
    LimitScope,
    LimitStrategy,
    OverrideAuditEntry,
    OverrideRecord,
    OverrideRequest,
    RateLimitAlgorithm,
    RateLimitDecision,
    RateLimitMetrics,
    RateLimitRule,
    check_rule,
    plain,
)

__all__ = [
    "RateLimitEngine",
    "RateLimitStrategyHandler",
    "create_default_rules",
    "create_rate_limiter",
    "store_url",
]

T = TypeVar("T")

# The seed's spellings of seawall's Sentinel and Cluster URLs.
_SEED_SCHEMES = {"sentinel": "redis+sentinel", "redis-cluster": "redis+cluster"}

_STRATEGIES = {s.value: s for s in LimitStrategy}

_BUCKETS = (RateLimitAlgorithm.TOKEN_BUCKET.value, RateLimitAlgorithm.LEAKY_BUCKET.value)


def store_url(redis_url: str | None) -> str | None:
    """``redis_url`` as seawall's ``store=`` URL (``sentinel://`` and ``redis-cluster://`` become
    ``redis+sentinel://`` and ``redis+cluster://``); ``None`` for this process's memory."""
    if redis_url is None:
        return None
    if not isinstance(redis_url, str):
        raise TypeError(f"redis_url must be a URL string or None, got {type(redis_url).__name__}")
    scheme, sep, rest = redis_url.partition("://")
    if sep and scheme.lower() in _SEED_SCHEMES:
        return f"{_SEED_SCHEMES[scheme.lower()]}://{rest}"
    return redis_url


def _handled(result: object) -> RateLimitDecision:
    if not isinstance(result, RateLimitDecision):
        raise TypeError(
            f"apply_strategy must return a RateLimitDecision, got {type(result).__name__}"
        )
    return result


class RateLimitStrategyHandler:
    """The seed's strategy hook. Constructing one registers nothing: pass it to
    ``create_rate_limiter(strategy_handler=...)`` or ``engine.set_strategy_handler(...)``. It is
    given a copy of each decision, after the metrics have counted the limiter's verdict, and what
    it returns is what ``check_limit`` returns; it changes no budget and no metric."""

    def __init__(self, engine: RateLimitEngine) -> None:
        self.engine = engine

    async def apply_strategy(
        self, decision: RateLimitDecision, identifier: str
    ) -> RateLimitDecision:
        return decision


class RateLimitEngine:
    """Rules, checks, admin overrides and metrics (what ``create_rate_limiter`` returns)."""

    def __init__(
        self,
        redis_url: str | None = None,
        default_algorithm: RateLimitAlgorithm | str = RateLimitAlgorithm.TOKEN_BUCKET,
        default_strategy: LimitStrategy | str = LimitStrategy.RETRY_AFTER,
        *,
        strategy_handler: RateLimitStrategyHandler | None = None,
        clock: Any = None,
        max_keys: int = 100_000,
    ) -> None:
        store = store_url(redis_url)
        options: dict[str, Any] = {} if store is None else {"store": store}
        self._native = RulesEngine(
            default_algorithm=plain(default_algorithm),
            default_strategy=plain(default_strategy),
            max_keys=max_keys,
            clock=clock,
            **options,
        )
        self.default_algorithm = RateLimitAlgorithm(plain(default_algorithm))
        self.default_strategy = LimitStrategy(plain(default_strategy))
        self._store = store
        self._clock = clock
        self._max_keys = max_keys
        self._handler = strategy_handler
        self._custom: dict[str, CustomRule] = {}
        # Per rule: tokens back per second (buckets; 0.0 for windows) and the bucket's size.
        self._shapes: dict[str, tuple[float, int]] = {}
        self._audit = AuditTrail(self._native, clock)
        if store in (None, "memory://"):
            warn_if_memory_workers("create_rate_limiter")

    async def _off_loop(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)``; in a worker thread when the store is Redis (its writes and reads
        would block the event loop), at once otherwise."""
        if self._native.is_async:
            return await asyncio.to_thread(call, *args)
        return call(*args)

    @property
    def native(self) -> RulesEngine:
        """The ``seawall.rules.RulesEngine`` underneath."""
        return self._native

    # ---------------------------------------------------------------------------------------
    # Rules

    def add_rule_sync(self, rule: RateLimitRule) -> None:
        """Adds ``rule``, or replaces the rule of its name (its budgets kept only if its numbers
        are the same)."""
        if not isinstance(rule, RateLimitRule):
            raise TypeError(f"rule must be a RateLimitRule, got {type(rule).__name__}")
        check_rule(rule)  # again: a rule's fields can have been changed since it was made
        self._shapes.pop(rule.name, None)
        if not rule.custom:
            self._native.add_rule(rule.native())
            self._custom.pop(rule.name, None)
            return
        if self._store not in (None, "memory://"):
            raise ValueError(
                "algorithm: a custom algorithm runs in Python on this process's memory only, "
                "not on a shared store (Redis or host://)"
            )
        self._native.remove_rule(rule.name)
        self._custom[rule.name] = CustomRule(
            rule, self.default_strategy, self._native, self._clock, self._max_keys
        )

    def remove_rule_sync(self, name: str) -> bool:
        """Removes the rule ``name``; whether there was one."""
        self._shapes.pop(name, None)
        return self._custom.pop(name, None) is not None or self._native.remove_rule(name)

    def get_rule_sync(self, name: str) -> RateLimitRule:
        """The rule ``name``; ``LookupError`` (``KeyError``) if there is none."""
        custom = self._custom.get(name)
        if custom is not None:
            return custom.rule
        return RateLimitRule.from_native(self._native.get_rule(name))

    def list_rules_sync(self) -> list[RateLimitRule]:
        """Every rule, native ones in the order added, then the custom ones."""
        native = [RateLimitRule.from_native(r) for r in self._native.rules()]
        return native + [c.rule for c in self._custom.values()]

    async def add_rule(self, rule: RateLimitRule) -> None:
        return await self._off_loop(self.add_rule_sync, rule)

    async def remove_rule(self, name: str) -> bool:
        return await self._off_loop(self.remove_rule_sync, name)

    async def get_rule(self, name: str) -> RateLimitRule:
        return await self._off_loop(self.get_rule_sync, name)

    async def list_rules(self) -> list[RateLimitRule]:
        return await self._off_loop(self.list_rules_sync)

    # ---------------------------------------------------------------------------------------
    # Checks

    def set_strategy_handler(self, handler: RateLimitStrategyHandler | None) -> None:
        """Registers ``handler`` (``None``: none), replacing any other."""
        self._handler = handler

    def _decision(self, identifier: str, rule_name: str, d: RuleDecision) -> RateLimitDecision:
        self._audit.poll()
        allowed, limit, reset_after, override_id = d.allowed, d.limit, d.reset_after, d.override_id
        return RateLimitDecision(
            allowed=allowed,
            rule_name=rule_name,
            identifier=identifier,
            tokens_remaining=self._tokens(rule_name, d, limit, reset_after, override_id),
            retry_after=None if allowed else d.retry_after_header,
            reset_after=reset_after,
            limit=limit,
            strategy=_STRATEGIES[d.strategy],
            queued=d.queued,
            degraded=d.degraded,
            delay=d.delay,
            override_id=override_id,
        )

    def _tokens(
        self,
        rule_name: str,
        d: RuleDecision,
        limit: int,
        reset_after: float,
        override_id: int | None,
    ) -> float:
        """Buckets: the tokens left, fractions included (the native ``reset_after`` is the time
        the missing tokens take to come back); windows, and limits an override multiplied: the
        whole requests left."""
        if override_id is None:
            shape = self._shapes.get(rule_name)
            if shape is None or shape[1] != limit:
                shape = self._shapes[rule_name] = self._shape(rule_name)
            per_second = shape[0]
            if per_second:
                # To the nanotoken: float error is not a token's fraction.
                left = round((limit - reset_after * per_second) * 1e9) / 1e9
                return min(float(limit), max(0.0, left))
        return float(d.remaining)

    def _shape(self, name: str) -> tuple[float, int]:
        rule = self._native.get_rule(name)
        algorithm = rule["algorithm"] or self.default_algorithm.value
        if algorithm not in _BUCKETS:
            return 0.0, rule["rate"]
        size = 1 if algorithm == RateLimitAlgorithm.LEAKY_BUCKET.value else rule["burst"]
        return rule["rate"] / rule["window_seconds"], size or rule["rate"]

    def check_limit_sync(
        self,
        identifier: str,
        rule_name: str,
        *,
        endpoint: str | None = None,
        ip_address: str | None = None,
        user_id: str | None = None,
    ) -> RateLimitDecision:
        """Decides one request of ``identifier`` under the rule ``rule_name`` (its filters are
        not consulted); a fresh decision, passed through the strategy handler if one is set.
        ``endpoint``: the PER_ENDPOINT key and the endpoint metrics count; ``ip_address``: the
        PER_IP key, override targets and metrics; ``user_id``: the user an override's user
        target is matched against (default: the identifier, A22). Unknown rule:
        ``LookupError``."""
        custom = self._custom.get(rule_name)
        if custom is not None:
            decision = custom.check_sync(identifier, endpoint, ip_address, user_id)
        else:
            d = self._native.check(
                rule_name, identifier, endpoint=endpoint, ip_address=ip_address, user_id=user_id
            )
            decision = self._decision(identifier, rule_name, d)
        if self._handler is None:
            return decision
        handled = self._handler.apply_strategy(replace(decision), identifier)
        return _handled(resolve(handled, "the strategy handler"))

    async def check_limit(
        self,
        identifier: str,
        rule_name: str,
        *,
        endpoint: str | None = None,
        ip_address: str | None = None,
        user_id: str | None = None,
    ) -> RateLimitDecision:
        custom = self._custom.get(rule_name)
        if custom is not None:
            decision = await custom.check(identifier, endpoint, ip_address, user_id)
        else:
            d = await self._native.acheck(
                rule_name, identifier, endpoint=endpoint, ip_address=ip_address, user_id=user_id
            )
            decision = self._decision(identifier, rule_name, d)
        if self._handler is None:
            return decision
        handled: Any = self._handler.apply_strategy(replace(decision), identifier)
        if inspect.isawaitable(handled):
            handled = await handled
        return _handled(handled)

    # ---------------------------------------------------------------------------------------
    # Admin overrides

    def add_override_sync(self, request: OverrideRequest) -> OverrideRecord:
        """Grants ``request``: a new override (a new id each time), in force at once."""
        if not isinstance(request, OverrideRequest):
            raise TypeError(f"request must be an OverrideRequest, got {type(request).__name__}")
        record = self._native.add_override(request.native())
        self._audit.added(record)
        return OverrideRecord.from_native(record)

    def remove_override_sync(self, override_id: int, admin_id: str = "") -> bool:
        """Ends override ``override_id`` on behalf of ``admin_id``; whether it was in force."""
        removed = self._native.remove_override(override_id, admin_id)
        if removed:
            self._audit.removed(override_id)
        return removed

    def check_override_sync(
        self, user_id: str | None = None, ip_address: str | None = None
    ) -> OverrideRecord | None:
        """The override in force for ``user_id`` or ``ip_address`` (unlimited first, then the
        latest expiry), or ``None``."""
        found = self._native.check_override(user_id=user_id, ip_address=ip_address)
        self._audit.poll()
        return None if found is None else OverrideRecord.from_native(found)

    def get_audit_log_sync(self, limit: int = 100) -> list[OverrideAuditEntry]:
        """The last ``limit`` adds, removals and expiries, oldest first (the last 10,000 kept)."""
        entries = self._native.audit_log(limit)
        self._audit.poll()
        return [OverrideAuditEntry.from_native(e) for e in entries]

    async def add_override(self, request: OverrideRequest) -> OverrideRecord:
        return await self._off_loop(self.add_override_sync, request)

    async def remove_override(self, override_id: int, admin_id: str = "") -> bool:
        return await self._off_loop(self.remove_override_sync, override_id, admin_id)

    async def check_override(
        self, user_id: str | None = None, ip_address: str | None = None
    ) -> OverrideRecord | None:
        return await self._off_loop(self.check_override_sync, user_id, ip_address)

    async def get_audit_log(self, limit: int = 100) -> list[OverrideAuditEntry]:
        return await self._off_loop(self.get_audit_log_sync, limit)

    # ---------------------------------------------------------------------------------------
    # Metrics

    def get_metrics_sync(self, rule_name: str) -> RateLimitMetrics:
        """Rule ``rule_name``'s counts (zero before any request); ``LookupError`` if unknown."""
        custom = self._custom.get(rule_name)
        if custom is not None:
            return custom.metrics()
        return RateLimitMetrics.from_native(rule_name, self._native.get_metrics(rule_name))

    def get_all_metrics_sync(self) -> dict[str, RateLimitMetrics]:
        """Every rule's counts, by name."""
        out = {
            name: RateLimitMetrics.from_native(name, snapshot)
            for name, snapshot in self._native.get_all_metrics().items()
        }
        out.update((name, custom.metrics()) for name, custom in self._custom.items())
        return out

    def reset_metrics_sync(self, rule_name: str | None = None) -> None:
        """Zeroes ``rule_name``'s counts (every rule's with ``None``); budgets stay as they are."""
        custom = None if rule_name is None else self._custom.get(rule_name)
        if custom is not None:
            custom.reset_metrics()
            return
        self._native.reset_metrics(rule_name)
        if rule_name is None:
            for each in self._custom.values():
                each.reset_metrics()

    async def get_metrics(self, rule_name: str) -> RateLimitMetrics:
        return await self._off_loop(self.get_metrics_sync, rule_name)

    async def get_all_metrics(self) -> dict[str, RateLimitMetrics]:
        return await self._off_loop(self.get_all_metrics_sync)

    async def reset_metrics(self, rule_name: str | None = None) -> None:
        return await self._off_loop(self.reset_metrics_sync, rule_name)


def create_rate_limiter(
    redis_url: str | None = None,
    default_algorithm: RateLimitAlgorithm | str = RateLimitAlgorithm.TOKEN_BUCKET,
    default_strategy: LimitStrategy | str = LimitStrategy.RETRY_AFTER,
    *,
    strategy_handler: RateLimitStrategyHandler | None = None,
    clock: Any = None,
) -> RateLimitEngine:
    """A new, independent engine: in this process's memory, or (``redis_url``) in Redis, shared
    by every worker. ``redis_url`` takes every URL seawall's ``store=`` takes and the seed's
    ``sentinel://host:port/db`` and ``redis-cluster://host:port/db``; a bad one is a
    ``ValueError`` here, and connecting waits for the first use. ``clock``: seawall's clock for
    every limit, expiry and metric (``None``: the default clock, see ``seawall.testing``)."""
    return RateLimitEngine(
        redis_url,
        default_algorithm,
        default_strategy,
        strategy_handler=strategy_handler,
        clock=clock,
    )


def create_default_rules() -> list[RateLimitRule]:
    """New copies of the seed's four rules: ``api_global`` (1000 a minute, one budget),
    ``api_per_user`` (100, per user), ``api_per_ip`` (50, per address) and
    ``expensive_operations`` (10 a minute per user on ``/api/search`` and ``/api/export``,
    priority 100, so that the middleware selects it there). Bursts are a tenth of the rate (the
    seed's example: rate 100, burst 10), 2 for the expensive operations."""
    return [
        RateLimitRule("api_global", LimitScope.GLOBAL, rate=1000, burst=100),
        RateLimitRule("api_per_user", LimitScope.PER_USER, rate=100, burst=10),
        RateLimitRule("api_per_ip", LimitScope.PER_IP, rate=50, burst=5),
        RateLimitRule(
            "expensive_operations",
            LimitScope.PER_USER,
            rate=10,
            burst=2,
            endpoints=["/api/search", "/api/export"],
            priority=100,
        ),
    ]
