"""``seawall.rules``: named rate-limit rules chosen per request (seed 002's rules engine, native).

``RulesEngine(default_algorithm="token_bucket", default_strategy="retry_after")`` holds rules
given as dicts (or read from a TOML file with :func:`load_rules`)::

    engine.add_rule({"name": "api", "scope": "per_user", "rate": 100, "window_seconds": 60})
    engine.add_rule({"name": "vip", "scope": "per_user", "rate": 1000, "window_seconds": 60,
                     "user_ids": ["alice"], "priority": 10})
    engine.select(identifier="user:alice", default="api")   # "vip"
    engine.check("api", "user:bob")                          # a RuleDecision

A rule's fields are seed 002's ``RateLimitRule``'s: ``name``, ``scope`` (``"global"``,
``"per_user"``, ``"per_ip"``, ``"per_endpoint"``), ``rate`` per ``window_seconds``, ``burst``
(token bucket; 1 to twice ``rate``), ``algorithm`` (``"token_bucket"``, ``"leaky_bucket"``,
``"fixed_window"``, ``"sliding_window"``; ``None``: the engine's default), ``strategy``
(``"hard"``, ``"retry_after"``, ``"queue"``, ``"graceful"``, ``"throttle"``; ``None``: the
engine's default), the filters ``endpoints`` (paths; ``*`` globs), ``user_ids`` (with or without
a ``user:`` prefix) and ``ip_addresses`` (IPs or CIDRs), ``priority``, ``enabled``, and
``max_delay`` (THROTTLE's bound). A bad field raises ``ValueError`` naming it, when the rule is
added, never at request time.

Selection (``select``): among the enabled rules that have a filter and whose every filter
matches, the highest ``priority`` (ties: the first added), else ``default``. A rule named in
``check`` applies whatever its filters say; a disabled one admits. Budgets are per rule, scope and
identifier, so no two rules or scopes share one. ``add_rule`` with an existing name replaces the
rule, keeping its budgets only if its numbers are the same. An unknown rule name raises
``KeyError`` (a ``LookupError``) naming it.

:class:`RulesMiddleware` applies an engine to every request of an ASGI app, with the response
of each rule's strategy (429, 429 with ``Retry-After``, 202 queued, degraded, throttled).

Admin overrides (``add_override``, ``remove_override``, ``check_override``, ``audit_log``) and
per-rule metrics (``get_metrics``, with bounded violation counters) come with every engine. With
``store="redis://…"`` the budgets, rules, overrides and metrics are shared by every worker (see
docs/rules.md); ``python -m seawall rules`` manages them from the command line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from seawall import _seawall
from seawall._metrics_registry import track
from seawall._redis import bridge_for
from seawall._seawall import RuleDecision
from seawall.rules_middleware import RulesMiddleware

__all__ = ["RuleDecision", "RulesEngine", "RulesGate", "RulesMiddleware", "load_rules"]

_Submit = Callable[..., "tuple[bool, RuleDecision | None]"]


async def _settle(engine: _seawall.RulesEngine, submit: _Submit, *args: Any) -> RuleDecision | None:
    """Runs a native ``_submit``: the decision known at once, or awaited from Redis; then the
    second call a refusal on Redis may still need (THROTTLE's booking, QUEUE's place)."""
    loop = asyncio.get_running_loop()
    bridge = bridge_for(loop)
    future: asyncio.Future[RuleDecision | None] = loop.create_future()
    pending, decision = submit(bridge, future, *args)
    if pending:
        decision = await future
    if decision is not None and decision._needs_follow_up:
        future = loop.create_future()
        pending, decision = engine._submit_follow(bridge, future, decision)
        if pending:
            decision = await future
    return decision


class RulesEngine(_seawall.RulesEngine):
    """Named rules chosen per request: see the module's documentation. ``acheck`` and
    ``adecide`` are the awaitable twins of ``check`` and ``decide``: with budgets in Redis they
    wait for it without blocking the loop; elsewhere they decide at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        track(self)  # for seawall.prometheus; the native __new__ took the arguments

    async def acheck(
        self,
        rule_name: str,
        identifier: str | None = None,
        *,
        endpoint: str | None = None,
        ip_address: str | None = None,
        cost: int = 1,
        user_id: str | None = None,
    ) -> RuleDecision:
        """``check``, awaited."""
        if not self.is_async:
            return self.check(
                rule_name,
                identifier,
                endpoint=endpoint,
                ip_address=ip_address,
                cost=cost,
                user_id=user_id,
            )
        decision = await _settle(
            self, self._submit, rule_name, identifier, endpoint, ip_address, None, cost, user_id
        )
        assert decision is not None  # a named rule always decides
        return decision

    async def adecide(
        self,
        identifier: str | None = None,
        *,
        endpoint: str | None = None,
        ip_address: str | None = None,
        default: str | None = None,
        cost: int = 1,
        user_id: str | None = None,
    ) -> RuleDecision | None:
        """``decide``, awaited."""
        if not self.is_async:
            return self.decide(
                identifier,
                endpoint=endpoint,
                ip_address=ip_address,
                default=default,
                cost=cost,
                user_id=user_id,
            )
        return await _settle(
            self, self._submit, None, identifier, endpoint, ip_address, default, cost, user_id
        )


class RulesGate(_seawall.RulesGate):
    """A rules engine applied to ASGI requests, one native call per request: ``decide(scope,
    identifier=None)`` reads the scope (the client through ``trusted_proxies`` only, the path as
    the endpoint), selects the rule and decides it; ``adecide`` awaits it on Redis."""

    async def adecide(
        self, scope: Mapping[str, Any], identifier: str | None = None
    ) -> RuleDecision | None:
        """``decide``, awaited."""
        if not self.is_async:
            return self.decide(scope, identifier)
        return await _settle(self.engine, self._submit, scope, identifier)


def load_rules(engine: RulesEngine, path: str | Path) -> list[str]:
    """Adds every rule of a TOML file (``[[rules]]`` tables with a rule's fields) to
    ``engine``; the names added, in order. A bad rule raises ``ValueError`` naming its index and
    field, and adds nothing after it. (Python 3.11 or later: it reads TOML with ``tomllib``.)"""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise RuntimeError("load_rules needs Python 3.11 or later (tomllib)") from None
    with open(path, "rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        raise ValueError(f"{path}: 'rules' must be an array of tables ([[rules]])")
    names = []
    for i, rule in enumerate(rules):
        try:
            engine.add_rule(rule)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{path}: rules[{i}]: {error}") from None
        names.append(rule["name"])
    return names
