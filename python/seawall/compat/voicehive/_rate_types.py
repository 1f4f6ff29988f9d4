"""The rate limiter's value types: algorithms, client types, a config, a rule, a result (3.1).

They keep the service's names, fields and defaults; what changed is checked here: a window of 0
switches that window off and a negative one is a ``ValueError`` (the service read ``<= 0`` as "no
limit", so its production profile turned a limit of 1 into none, defect 12), and a rule's pattern
is compiled when the rule is made (a bad one raises there instead of being logged and dropped,
defect 11).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Any

__all__ = [
    "WINDOWS",
    "ClientType",
    "RateLimitAlgorithm",
    "RateLimitConfig",
    "RateLimitResult",
    "RateLimitRule",
    "config_from",
]


class RateLimitAlgorithm(str, Enum):
    """The service's algorithm names. Accepted and kept; every config is enforced the same way
    (each window an exact sliding log up to 1,000 requests, else a sliding window counter: B6)."""

    SLIDING_WINDOW = "sliding_window"
    TOKEN_BUCKET = "token_bucket"
    FIXED_WINDOW = "fixed_window"


class ClientType(str, Enum):
    """Who is calling (B4); plain strings keep working (a ``str`` enum)."""

    ANONYMOUS = "anonymous"
    AUTHENTICATED = "authenticated"
    API = "api"
    INTERNAL = "internal"


#: The three windows: (config field, seconds, ``limit_type``, ``get_client_stats`` key).
WINDOWS: tuple[tuple[str, int, str, str], ...] = (
    ("requests_per_minute", 60, "requests_per_minute", "minute"),
    ("requests_per_hour", 3600, "requests_per_hour", "hour"),
    ("requests_per_day", 86400, "requests_per_day", "day"),
)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 (0 switches the window off), got {value}")
    return value


@dataclass
class RateLimitConfig:
    """Requests per minute, hour and day, decided together (all or nothing, B7).

    A window of 0 is switched off; < 0 is a ``ValueError``. ``burst_limit`` is kept and, as in
    the service, not enforced (B16) unless ``enforce_burst_limit=True``: then a token bucket of
    ``burst_limit`` refilled at the minute rate is a fourth limit (none while the minute is off).
    ``bypass_internal``: callers of type ``"internal"`` pass without spending (B5).
    """

    requests_per_minute: int = 60
    requests_per_hour: int = 1000
    requests_per_day: int = 10000
    burst_limit: int = 10
    algorithm: RateLimitAlgorithm = RateLimitAlgorithm.SLIDING_WINDOW
    bypass_internal: bool = True
    enforce_burst_limit: bool = False

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "requests_per_hour", "requests_per_day"):
            _count(name, getattr(self, name))
        _count("burst_limit", self.burst_limit)
        if self.enforce_burst_limit and self.burst_limit < 1:
            raise ValueError("burst_limit must be >= 1 when enforce_burst_limit is True")
        self.algorithm = RateLimitAlgorithm(self.algorithm)

    def limits_key(self) -> tuple[int, int, int, int | None]:
        """What decides requests: the three windows and the enforced burst (None: not enforced)."""
        burst = self.burst_limit if self.enforce_burst_limit and self.requests_per_minute else None
        return (
            self.requests_per_minute,
            self.requests_per_hour,
            self.requests_per_day,
            burst,
        )


_CONFIG_FIELDS = frozenset(f.name for f in fields(RateLimitConfig))


def config_from(
    value: RateLimitConfig | Mapping[str, Any], what: str = "config"
) -> RateLimitConfig:
    """A ``RateLimitConfig``, or one made from a dict of its fields (unknown keys refused)."""
    if isinstance(value, RateLimitConfig):
        return value
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - _CONFIG_FIELDS)
        if unknown:
            raise ValueError(f"{what} has unknown keys {unknown}; known: {sorted(_CONFIG_FIELDS)}")
        return RateLimitConfig(**value)
    raise TypeError(f"{what} must be a RateLimitConfig or a dict, got {type(value).__name__}")


@dataclass
class RateLimitRule:
    """``path_pattern`` is a regular expression applied with ``re.match`` (anchored at the start
    only, as the service's code: ``/auth/login`` also matches ``/auth/login-x``; B1). ``method``
    and ``client_type``: ``None`` matches any. ``config`` may be given as a dict."""

    path_pattern: str
    method: str | None = None
    client_type: str | None = None
    config: RateLimitConfig = field(default_factory=RateLimitConfig)
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.path_pattern, str):
            raise TypeError(f"path_pattern must be a str, got {type(self.path_pattern).__name__}")
        try:
            self.regex = re.compile(self.path_pattern)
        except re.error as e:
            raise ValueError(f"path_pattern {self.path_pattern!r} is not a regex: {e}") from e
        for name in ("method", "client_type"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise TypeError(f"{name} must be a str or None, got {type(v).__name__}")
        if self.client_type is not None:
            self.client_type = str(getattr(self.client_type, "value", self.client_type))
        self.config = config_from(self.config)

    def matches(self, path: str, method: str, client_type: str) -> bool:
        """Whether this rule applies to the request (B1)."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.client_type is not None and self.client_type != client_type:
            return False
        return self.regex.match(path) is not None


@dataclass
class RateLimitResult:
    """One decision (B6). ``retry_after``: whole seconds, rounded up, until the request would be
    admitted under every window (``None`` when allowed). ``limit_type``: the binding window.
    ``limit``: its count (new; the 429 body's ``limit``)."""

    allowed: bool
    current_usage: int
    remaining: int
    reset_time: datetime
    retry_after: int | None = None
    limit_type: str = "requests_per_minute"
    limit: int = 0
