"""Seed 002 (Mahavishnu "Rate Limiting Integration #23"), ``mahavishnu.integrations.rate_limiting``,
on seawall's native rules engine (:mod:`seawall.rules`).

The seed's names, parameters and return shapes: ``create_rate_limiter(redis_url=None,
default_algorithm=TOKEN_BUCKET, default_strategy=RETRY_AFTER)`` returns a new engine with
``add_rule`` / ``remove_rule`` / ``get_rule`` / ``list_rules``, ``check_limit(identifier,
rule_name)``, ``add_override`` / ``remove_override`` / ``check_override`` / ``get_audit_log``,
``get_metrics`` / ``get_all_metrics`` / ``reset_metrics`` (each async, each with a ``_sync``
twin); ``RateLimitRule``, ``LimitScope``, ``LimitStrategy``, ``RateLimitAlgorithm``,
``OverrideRequest``, ``OverrideReason``, ``create_default_rules()``,
``RateLimitStrategyHandler`` and ``RateLimitMiddleware(app, engine=..., default_rule=...,
extract_identifier=...)``. How the seed's ambiguities are resolved (SEEDS-002-003.md, A1 to A30)
and which of its defects are not copied: ``docs/compat-mahavishnu-rules.md``.
"""

from __future__ import annotations

from ._engine import (
    RateLimitEngine,
    RateLimitStrategyHandler,
    create_default_rules,
    create_rate_limiter,
)
from ._middleware import RateLimitMiddleware
from ._types import (
    CustomAlgorithm,
    LimitScope,
    LimitStrategy,
    OverrideAuditEntry,
    OverrideReason,
    OverrideRecord,
    OverrideRequest,
    RateLimitAlgorithm,
    RateLimitDecision,
    RateLimitMetrics,
    RateLimitRule,
)

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
    "RateLimitEngine",
    "RateLimitMetrics",
    "RateLimitMiddleware",
    "RateLimitRule",
    "RateLimitStrategyHandler",
    "create_default_rules",
    "create_rate_limiter",
]
