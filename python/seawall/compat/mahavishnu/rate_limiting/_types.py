"""The drop-in's value types: the seed's enums, ``RateLimitRule``, ``OverrideRequest`` and what the
engine returns (decisions, override records, audit entries, metrics). Rules and override requests
are checked when made, by the native engine's own checks (one throwaway ``RulesEngine`` each), so
the drop-in never holds a rule the engine would refuse and never has rules of its own that could
disagree with it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from seawall.rules import RulesEngine

__all__ = [
    "CustomAlgorithm",
    "LimitScope",
    "LimitStrategy",
    "OverrideAuditEntry",
    "OverrideReason",
    "OverrideRecord",
    "OverrideRequest",
    "RateLimitAlgorithm",
    "RateLimitDecision",
    "RateLimitMetrics",
    "RateLimitRule",
]


class LimitScope(str, Enum):
    """Whose budget a rule counts."""

    GLOBAL = "global"
    PER_USER = "per_user"
    PER_IP = "per_ip"
    PER_ENDPOINT = "per_endpoint"


class LimitStrategy(str, Enum):
    """What a refused request gets."""

    HARD = "hard"
    QUEUE = "queue"
    RETRY_AFTER = "retry_after"
    GRACEFUL = "graceful"
    THROTTLE = "throttle"


class RateLimitAlgorithm(str, Enum):
    """The native algorithms a rule can name."""

    TOKEN_BUCKET = "token_bucket"
    LEAKY_BUCKET = "leaky_bucket"
    FIXED_WINDOW = "fixed_window"
    SLIDING_WINDOW = "sliding_window"


class OverrideReason(str, Enum):
    """Why an admin granted an override (the seed's "Admin Override System" list)."""

    EMERGENCY_ACCESS = "emergency_access"
    ADMIN_WHITELIST = "admin_whitelist"
    TEMPORARY_GRANT = "temporary_grant"
    INCIDENT_RESPONSE = "incident_response"


@runtime_checkable
class CustomAlgorithm(Protocol):
    """The seed's custom algorithm: ``check(state, current_time) -> (allowed, state)`` (sync or
    async; ``current_time`` is seawall's clock in epoch seconds) and ``get_retry_after(state)``
    in seconds. Memory store only."""

    def check(self, state: Any, current_time: float) -> Any: ...
    def get_retry_after(self, state: Any) -> float: ...


def plain(value: Any) -> Any:
    """An enum member as its value, anything else as it is."""
    return value.value if isinstance(value, Enum) else value


_LIST_FIELDS = ("endpoints", "user_ids", "ip_addresses")


@dataclass
class RateLimitRule:
    """A named rule, the seed's fields plus ``max_delay`` (THROTTLE's bound) and ``max_queued``
    (QUEUE's). ``algorithm`` and ``strategy`` ``None``: the engine's defaults. Every field reads
    back as given; a bad one is a ``ValueError`` (``TypeError`` for a wrong type the engine would
    misread) naming it, raised here."""

    name: str
    scope: LimitScope | str
    rate: int
    burst: int | None = None
    window_seconds: float = 60
    algorithm: RateLimitAlgorithm | str | CustomAlgorithm | None = None
    strategy: LimitStrategy | str | None = None
    endpoints: Sequence[str] = ()
    user_ids: Sequence[str] = ()
    ip_addresses: Sequence[str] = ()
    priority: int = 0
    enabled: bool = True
    max_delay: float | None = None
    max_queued: int | None = None

    def __post_init__(self) -> None:
        check_rule(self)

    @property
    def custom(self) -> bool:
        """Whether ``algorithm`` is a custom algorithm object."""
        return self.algorithm is not None and not isinstance(self.algorithm, str)

    def native(self) -> dict[str, Any]:
        """The rule as the native engine takes it (a custom algorithm left out)."""
        rule: dict[str, Any] = {
            "name": self.name,
            "scope": plain(self.scope),
            "rate": self.rate,
            "window_seconds": self.window_seconds,
            "burst": self.burst,
            "algorithm": None if self.custom else plain(self.algorithm),
            "strategy": plain(self.strategy),
            "priority": self.priority,
            "enabled": self.enabled,
            "max_delay": self.max_delay,
        }
        for name in _LIST_FIELDS:
            value = getattr(self, name)
            rule[name] = list(value) if isinstance(value, (list, tuple, set, frozenset)) else value
        if self.max_queued is not None:
            rule["max_queued"] = self.max_queued
        return rule

    @classmethod
    def from_native(cls, rule: Mapping[str, Any]) -> RateLimitRule:
        """A rule as the native engine lists it, with the seed's enums."""
        return cls(
            name=rule["name"],
            scope=LimitScope(rule["scope"]),
            rate=rule["rate"],
            burst=rule["burst"],
            window_seconds=rule["window_seconds"],
            algorithm=RateLimitAlgorithm(rule["algorithm"]) if rule["algorithm"] else None,
            strategy=LimitStrategy(rule["strategy"]) if rule["strategy"] else None,
            endpoints=rule["endpoints"],
            user_ids=rule["user_ids"],
            ip_addresses=rule["ip_addresses"],
            priority=rule["priority"],
            enabled=rule["enabled"],
            max_delay=rule["max_delay"],
            max_queued=rule.get("max_queued"),
        )


def check_rule(rule: RateLimitRule) -> None:
    """Refuses a rule the native engine would refuse, with its message (naming the field)."""
    if rule.custom and not isinstance(rule.algorithm, CustomAlgorithm):
        raise TypeError(
            "algorithm must be a RateLimitAlgorithm, its name, None, or an object with "
            f"check() and get_retry_after(); got {type(rule.algorithm).__name__}"
        )
    for name in _LIST_FIELDS:
        # The engine would read a string as the list of its characters.
        if isinstance(getattr(rule, name), (str, bytes)):
            raise TypeError(f"{name} must be a list of strings, not one string")
    try:
        RulesEngine().add_rule(rule.native())
    except ValueError as error:
        raise ValueError(f"RateLimitRule: {error}") from None


@dataclass(kw_only=True)
class OverrideRequest:
    """An admin's grant: a user (``target_user_id``, with or without ``user:``) and/or an address
    (``target_ip_address``, an IP or a CIDR); ``unlimited`` (lets through without spending budget)
    or the limits times ``multiplier``; for ``duration_minutes`` (above 0, at most a week;
    ``None``: until removed, at most a week). Checked when made."""

    admin_id: str
    reason: OverrideReason | str
    duration_minutes: float | None = 60
    unlimited: bool = False
    multiplier: float = 2.0
    target_user_id: str | None = None
    target_ip_address: str | None = None

    def __post_init__(self) -> None:
        try:
            RulesEngine().add_override(self.native())
        except ValueError as error:
            raise ValueError(f"OverrideRequest: {error}") from None

    def native(self) -> dict[str, Any]:
        return {
            "admin_id": self.admin_id,
            "reason": plain(self.reason),
            "duration_minutes": self.duration_minutes,
            "unlimited": self.unlimited,
            "multiplier": self.multiplier,
            "target_user_id": self.target_user_id,
            "target_ip_address": self.target_ip_address,
        }

    @classmethod
    def from_native(cls, record: Mapping[str, Any]) -> OverrideRequest:
        return cls(
            admin_id=record["admin_id"],
            reason=reason(record["reason"]),
            duration_minutes=record["duration_minutes"],
            unlimited=record["unlimited"],
            multiplier=record["multiplier"],
            target_user_id=record["target_user_id"],
            target_ip_address=record["target_ip_address"],
        )


def reason(text: str) -> OverrideReason | str:
    """A reason as the enum member it names, else the text."""
    try:
        return OverrideReason(text)
    except ValueError:
        return text


def utc(seconds: float) -> datetime:
    """Epoch seconds on seawall's clock as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


@dataclass
class OverrideRecord:
    """An override in force: its id, the request, and when it began and ends (aware UTC, on
    seawall's clock)."""

    override_id: int
    request: OverrideRequest
    created_at: datetime
    expires_at: datetime

    @classmethod
    def from_native(cls, record: Mapping[str, Any]) -> OverrideRecord:
        return cls(
            override_id=record["override_id"],
            request=OverrideRequest.from_native(record),
            created_at=utc(record["created_at"]),
            expires_at=utc(record["expires_at"]),
        )


@dataclass(frozen=True)
class OverrideAuditEntry:
    """One add, remove or expiry of an override."""

    at: datetime
    action: str
    override_id: int
    admin_id: str
    reason: OverrideReason | str
    target_user_id: str | None
    target_ip_address: str | None

    @classmethod
    def from_native(cls, entry: Mapping[str, Any]) -> OverrideAuditEntry:
        return cls(
            at=utc(entry["at"]),
            action=entry["action"],
            override_id=entry["override_id"],
            admin_id=entry["admin_id"],
            reason=reason(entry["reason"]),
            target_user_id=entry["target_user_id"],
            target_ip_address=entry["target_ip_address"],
        )


@dataclass(slots=True)
class RateLimitDecision:
    """One check's outcome, a fresh mutable object per call. ``allowed`` is the limiter's verdict;
    ``retry_after`` whole seconds (>= 1) when refused, ``None`` when allowed; ``tokens_remaining``
    the tokens left (fractions included) for buckets, the whole requests left for windows;
    ``reset_after`` seconds until the budget is whole again. ``strategy`` and what it made of a
    refusal: ``queued`` (QUEUE: a queue place was given), ``degraded`` (GRACEFUL), ``delay``
    (THROTTLE: seconds until the slot booked for it)."""

    allowed: bool
    rule_name: str
    identifier: str
    tokens_remaining: float
    retry_after: int | None
    reset_after: float
    limit: int
    strategy: LimitStrategy
    queued: bool = False
    degraded: bool = False
    delay: float = 0.0
    override_id: int | None = None


@dataclass
class RateLimitMetrics:
    """A rule's counts. The violation mappings hold the top keys (at most 1,000 each, by count)
    with the violations certainly theirs; the rest of each kind is in the ``other_*`` total."""

    rule_name: str
    total_requests: int = 0
    allowed_requests: int = 0
    denied_requests: int = 0
    avg_tokens_remaining: float = 0.0
    violations_by_user: dict[str, int] = field(default_factory=dict)
    violations_by_ip: dict[str, int] = field(default_factory=dict)
    violations_by_endpoint: dict[str, int] = field(default_factory=dict)
    other_user_violations: int = 0
    other_ip_violations: int = 0
    other_endpoint_violations: int = 0

    def calculate_hit_rate(self) -> float:
        """The share of requests refused, 0.0 to 1.0 (0.0 before any request)."""
        return self.denied_requests / self.total_requests if self.total_requests else 0.0

    @classmethod
    def from_native(cls, rule_name: str, snapshot: Mapping[str, Any]) -> RateLimitMetrics:
        by = {kind: _top(snapshot[f"violations_by_{kind}"]) for kind in ("user", "ip", "endpoint")}
        return cls(
            rule_name=rule_name,
            total_requests=snapshot["total_requests"],
            allowed_requests=snapshot["allowed_requests"],
            denied_requests=snapshot["denied_requests"],
            avg_tokens_remaining=snapshot["avg_tokens_remaining"],
            violations_by_user=by["user"][0],
            violations_by_ip=by["ip"][0],
            violations_by_endpoint=by["endpoint"][0],
            other_user_violations=by["user"][1],
            other_ip_violations=by["ip"][1],
            other_endpoint_violations=by["endpoint"][1],
        )


def _top(summary: Mapping[str, Any]) -> tuple[dict[str, int], int]:
    """A native top-K summary as (key -> violations certainly its, the rest): a space-saving
    entry's ``count - error`` is certain; the native ``other`` is everything else."""
    held = {e["key"]: e["count"] - e["error"] for e in summary["entries"]}
    return {key: n for key, n in held.items() if n > 0}, summary["other"]
