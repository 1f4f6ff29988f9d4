"""``seawall.asgi.Rule``: per-route limits of ``RateLimitMiddleware``, checked and turned into
the tuples the native limiter takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from seawall._args import check_limits, check_strings
from seawall._http_limiter import RuleTuple
from seawall.types import Limits

__all__ = ["Rule", "rule_tuple"]


@dataclass(frozen=True)
class Rule:
    """Per-client limits for the requests whose path matches ``path``.

    ``path`` is an exact path (``"/auth/login"``) or a glob: ``*`` matches any run of characters,
    ``/`` included, and ``?`` one character (``"/api/*"``, ``"/v?/items/*"``). ``methods``: the
    HTTP methods it applies to (``None``: all); a rule for ``GET`` holds ``HEAD`` too, with the
    same budget, because Starlette and FastAPI answer ``HEAD`` with the ``GET`` handler. ``name``:
    the policy name in the ``RateLimit`` headers (default: the pattern). The first rule that
    matches a request wins, and its limits replace the middleware's default ``limits`` for that
    request. A path that starts with neither ``/`` nor ``*`` would never match and is refused.
    """

    path: str
    limits: Limits
    methods: Sequence[str] | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, str):
            raise TypeError(f"Rule.path must be a str, got {type(self.path).__name__}")
        if not self.path.startswith(("/", "*")):
            raise ValueError(
                f"Rule.path must start with '/' (or '*' for a glob): request paths always do, "
                f"so {self.path!r} would never match"
            )
        object.__setattr__(self, "limits", check_limits("Rule.limits", self.limits))
        if self.methods is not None:
            methods = check_strings("Rule.methods", self.methods)
            if not methods:
                raise ValueError(
                    "Rule.methods must name at least one HTTP method, or be None for all of them"
                )
            object.__setattr__(self, "methods", tuple(m.upper() for m in methods))
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"Rule.name must be a str or None, got {type(self.name).__name__}")

    def as_tuple(self) -> RuleTuple:
        """The ``(path, limits, methods, name)`` tuple the native limiter takes."""
        methods = None if self.methods is None else list(self.methods)
        return (self.path, check_limits("Rule.limits", self.limits), methods, self.name)


def rule_tuple(index: int, rule: Any) -> RuleTuple:
    if isinstance(rule, Rule):
        return rule.as_tuple()
    if isinstance(rule, (tuple, list)) and 2 <= len(rule) <= 4:
        try:
            return Rule(*rule).as_tuple()
        except (TypeError, ValueError) as error:
            raise type(error)(f"rules[{index}]: {error}") from None
    raise TypeError(
        f"rules[{index}] must be a Rule or a (path, limits, methods, name) tuple, "
        f"got {type(rule).__name__}"
    )
