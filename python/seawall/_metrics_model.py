"""seawall's metrics, independent of any exporter: what every live object reports at one moment.

:func:`collect` reads the ``stats()`` snapshot of every live seawall object (one native call
each) and returns :class:`Family` values: a name, a kind, a help text, a unit and labelled
samples. ``seawall.prometheus`` and ``seawall.otel`` translate the same families, so the two
exporters can never disagree on a name, a label or a value. Labels are object names only
(limits strings, breaker, handler, rule, route and tool names), never a client key, IP or user.

To add a metric: add a reader below (or a family to an existing one) and list it in
``_READERS``; both exporters then export it, and the dashboard test sees it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from seawall import _log, _seawall
from seawall._metrics_registry import live

_logger = logging.getLogger("seawall.metrics")

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class Histogram:
    """One histogram sample: cumulative counts per upper bound (the last bound is ``inf``),
    the sum of the observed values and their count."""

    buckets: tuple[tuple[float, int], ...]
    sum: float
    count: int


@dataclass(slots=True)
class Family:
    """One metric: ``name`` without a ``_total`` suffix (exporters add theirs), ``unit`` the
    base unit the name ends with (``seconds``) or ``""``, samples keyed by label values in the
    order of ``labels``."""

    name: str
    kind: Kind
    doc: str
    labels: tuple[str, ...]
    unit: str = ""
    samples: list[tuple[tuple[str, ...], float | Histogram]] = field(default_factory=list)

    def add(self, labels: Iterable[str], value: float | Histogram) -> None:
        self.samples.append((tuple(labels), value))


def unique_names(objs: Iterable[Any], name_of: Callable[[Any], str]) -> list[tuple[str, Any]]:
    """Each object with a label unique among them: its name, ``#2``, ``#3``... on repeats."""
    seen: dict[str, int] = {}
    out = []
    for obj in objs:
        base = name_of(obj)
        seen[base] = seen.get(base, 0) + 1
        out.append((base if seen[base] == 1 else f"{base}#{seen[base]}", obj))
    return out


def _histogram(h: dict[str, Any]) -> Histogram:
    """A native histogram snapshot (``bounds``, ``cumulative``, ``sum``, ``count``)."""
    bounds = [*h["bounds"], float("inf")]
    return Histogram(tuple(zip(bounds, h["cumulative"], strict=True)), h["sum"], h["count"])


def _limits(limiter: Any) -> str:
    return "; ".join(str(limit) for limit in limiter.limits)


_LIMITERS = (_seawall.Limiter, _seawall.RedisLimiter, _seawall.HostLimiter)
_STATES = ("closed", "open", "half_open")


def _limiters(objs: list[Any]) -> Iterator[Family]:
    decisions = Family(
        "seawall_limiter_decisions",
        "counter",
        "Rate-limit decisions of a limiter, by outcome.",
        ("limiter", "store", "outcome"),
    )
    keys = Family(
        "seawall_limiter_keys", "gauge", "Client keys a limiter holds.", ("limiter", "store")
    )
    errors = Family(
        "seawall_redis_errors", "counter", "Failed Redis calls of a limiter.", ("limiter",)
    )
    fallbacks = Family(
        "seawall_redis_fallbacks",
        "counter",
        "Decisions made by on_error because Redis failed or its breaker was open.",
        ("limiter",),
    )
    for label, limiter in unique_names([o for o in objs if isinstance(o, _LIMITERS)], _limits):
        s = limiter.stats()
        if isinstance(limiter, _seawall.RedisLimiter):
            store, total = "redis", s["decisions"]
            errors.add([label], s["errors"])
            fallbacks.add([label], s["fallbacks"])
        elif isinstance(limiter, _seawall.HostLimiter):
            store, total = "host", s["decisions"]
            keys.add([label, store], s["keys"])
        else:
            store, total = "memory", s["hits"]
            keys.add([label, store], s["keys"])
        decisions.add([label, store, "allowed"], total - s["limited"])
        decisions.add([label, store, "denied"], s["limited"])
    yield from (decisions, keys, errors, fallbacks)


def _breakers(objs: list[Any]) -> Iterator[Family]:
    from seawall.breaker import breakers

    state = Family(
        "seawall_breaker_state",
        "gauge",
        "1 for a circuit breaker's current state, 0 for the others.",
        ("breaker", "state"),
    )
    calls = Family(
        "seawall_breaker_calls",
        "counter",
        "Calls through a circuit breaker, by outcome.",
        ("breaker", "outcome"),
    )
    opened = Family(
        "seawall_breaker_opened", "counter", "Times a circuit breaker opened.", ("breaker",)
    )
    transitions = Family(
        "seawall_breaker_transitions",
        "counter",
        "State changes of a circuit breaker, by the state moved to.",
        ("breaker", "to"),
    )
    state_seconds = Family(
        "seawall_breaker_state_seconds",
        "counter",
        "Time a circuit breaker spent in each state, on its clock (the current stretch included).",
        ("breaker", "state"),
        unit="seconds",
    )
    for name, breaker in breakers.all().items():
        s = breaker.stats()
        for st in _STATES:
            state.add([name, st], 1.0 if s["state"] == st else 0.0)
            transitions.add([name, st], s[f"transitions_to_{st}"])
            state_seconds.add([name, st], s[f"time_{st}"])
        for outcome in ("successes", "failures", "ignored", "rejections"):
            calls.add([name, outcome], s[outcome])
        opened.add([name], s["opened_count"])
    yield from (state, calls, opened, transitions, state_seconds)


def _backpressure(objs: list[Any]) -> Iterator[Family]:
    from seawall.backpressure import Backpressure

    gauges = {
        k: Family(f"seawall_backpressure_{k}", "gauge", doc, ("handler",))
        for k, doc in (
            ("in_flight", "Items a backpressure handler runs now."),
            ("queued", "Items waiting in a backpressure handler's queue."),
            ("limit", "Items a backpressure handler may run at once."),
        )
    }
    items = Family(
        "seawall_backpressure_items",
        "counter",
        "Items a backpressure handler finished, by outcome.",
        ("handler", "outcome"),
    )
    waits = Family(
        "seawall_backpressure_wait",
        "histogram",
        "Time items waited before starting, on the handler's clock.",
        ("handler",),
        unit="seconds",
    )
    handlers = [o for o in objs if isinstance(o, Backpressure)]
    for label, bp in unique_names(handlers, lambda h: h.name or "default"):
        s = bp.stats()
        waits.add([label], _histogram(s["wait_seconds"]))
        for k, family in gauges.items():
            family.add([label], s[k])
        for outcome in ("completed", "failed", "cancelled", "dropped", "timed_out"):
            items.add([label, outcome], s[outcome])
        for reason, n in s["rejected"].items():
            items.add([label, f"rejected_{reason}"], n)
    yield from (*gauges.values(), items, waits)


def _concurrency(objs: list[Any]) -> Iterator[Family]:
    from seawall.concurrency import ConcurrencyLimiter

    limit = Family(
        "seawall_concurrency_limit", "gauge", "A concurrency limiter's limit.", ("limiter",)
    )
    in_flight = Family("seawall_concurrency_in_flight", "gauge", "Permits held.", ("limiter",))
    queued = Family(
        "seawall_concurrency_queued", "gauge", "Callers waiting for a permit.", ("limiter",)
    )
    permits = Family(
        "seawall_concurrency_permits",
        "counter",
        "Permit requests of a concurrency limiter, by outcome.",
        ("limiter", "outcome"),
    )
    waits = Family(
        "seawall_concurrency_wait",
        "histogram",
        "Time permit holders waited for their permit (0 when given at once), on its clock.",
        ("limiter",),
        unit="seconds",
    )
    limiters = [o for o in objs if isinstance(o, ConcurrencyLimiter)]
    for label, cl in unique_names(limiters, lambda c: "default"):
        s = cl.stats()
        waits.add([label], _histogram(s["wait_seconds"]))
        limit.add([label], s["limit"])
        in_flight.add([label], s["in_flight"])
        queued.add([label], s["queued"])
        for outcome in ("acquired", "rejected", "timed_out", "cancelled"):
            permits.add([label, outcome], s[outcome])
    yield from (limit, in_flight, queued, permits, waits)


def _rules(objs: list[Any]) -> Iterator[Family]:
    requests = Family(
        "seawall_rule_requests",
        "counter",
        "Requests a named rule decided, by outcome.",
        ("engine", "rule", "outcome"),
    )
    engines = [o for o in objs if isinstance(o, _seawall.RulesEngine)]
    for label, engine in unique_names(engines, lambda e: "default"):
        try:
            # A shared engine sums its workers' metrics from Redis: when that fails, this
            # engine drops out of this scrape; everything else is still exported.
            metrics = engine.get_all_metrics()
        except OSError as error:
            _log.event(
                _logger,
                logging.WARNING,
                "metrics_unreadable",
                "seawall metrics: rules engine %s skipped, its store failed: %s",
                label,
                error,
                site=label,
                engine=label,
            )
            continue
        for rule, m in sorted(metrics.items()):
            requests.add([label, rule, "allowed"], m["allowed_requests"])
            requests.add([label, rule, "denied"], m["denied_requests"])
    yield requests


def _middlewares(objs: list[Any]) -> list[tuple[str, Any]]:
    from seawall.asgi import RateLimitMiddleware

    found = [o for o in objs if isinstance(o, RateLimitMiddleware)]
    return unique_names(found, lambda m: m.name or "default")


def _http(objs: list[Any]) -> Iterator[Family]:
    requests = Family(
        "seawall_http_requests",
        "counter",
        "Requests a RateLimitMiddleware decided, by route rule (its path pattern; default, "
        "global) and outcome.",
        ("middleware", "route", "outcome"),
    )
    store = Family(
        "seawall_http_store_decisions",
        "counter",
        "Decisions of a RateLimitMiddleware on Redis, by route rule and by who made them: ok "
        "(Redis), fallback (on_error), error (a configuration error, raised).",
        ("middleware", "route", "outcome"),
    )
    for label, middleware in _middlewares(objs):
        s = middleware.stats()
        routes = unique_names(s["routes"], lambda r: r["route"])
        for route, r in routes:
            requests.add([label, route, "allowed"], r["allowed"])
            requests.add([label, route, "denied"], r["denied"])
            if s["store"] is not None:
                for outcome in ("ok", "fallback", "error"):
                    store.add([label, route, outcome], r[f"store_{outcome}"])
    yield from (requests, store)


def _redis(objs: list[Any]) -> Iterator[Family]:
    round_trips = Family(
        "seawall_redis_round_trips",
        "counter",
        "Script calls to Redis that brought decisions back.",
        ("limiter",),
    )
    carried = Family(
        "seawall_redis_round_trip_decisions",
        "counter",
        "Decisions those round trips carried (divide by the round trips for the batch size).",
        ("limiter",),
    )
    latency = Family(
        "seawall_redis_round_trip",
        "histogram",
        "Time from writing a script call to its reply.",
        ("limiter",),
        unit="seconds",
    )
    breaker_open = Family(
        "seawall_redis_breaker_open",
        "gauge",
        "1 while the breaker around Redis is not closed (open or probing), else 0.",
        ("limiter",),
    )
    stores: list[tuple[str, dict[str, Any]]] = []
    limiters = unique_names([o for o in objs if isinstance(o, _LIMITERS)], _limits)
    for label, limiter in limiters:
        if isinstance(limiter, _seawall.RedisLimiter):
            stores.append((label, limiter.stats()))
    for label, middleware in _middlewares(objs):
        s = middleware.limiter.store_stats()
        if s is not None:
            stores.append((f"middleware:{label}", s))
    for label, s in stores:
        round_trips.add([label], s["round_trips"])
        carried.add([label], s["round_trip_decisions"])
        latency.add([label], _histogram(s["round_trip_seconds"]))
        breaker_open.add([label], 0.0 if s["breaker"] == "closed" else 1.0)
    yield from (round_trips, carried, latency, breaker_open)


def _mcp(objs: list[Any]) -> Iterator[Family]:
    calls = Family(
        "seawall_mcp_tool_calls",
        "counter",
        "Calls of an MCP tool through seawall's decorator or middleware, by outcome.",
        ("tool", "outcome"),
    )
    # Not imported: no tool was ever called (and importing it would import fastmcp).
    stats = sys.modules.get("seawall.mcp._stats")
    tool_stats = stats.tool_stats() if stats is not None else {}
    for tool, s in sorted(tool_stats.items()):
        calls.add([tool, "allowed"], s["total_calls"] - s["limited_calls"])
        calls.add([tool, "denied"], s["limited_calls"])
    yield calls


_READERS: tuple[Callable[[list[Any]], Iterator[Family]], ...] = (
    _limiters,
    _breakers,
    _backpressure,
    _concurrency,
    _rules,
    _http,
    _redis,
    _mcp,
)


def collect() -> list[Family]:
    """Every family, with the samples of every live seawall object of this process now.

    Families are returned even when empty, so exporters describe the same set every time."""
    objs = live()
    return [family for read in _READERS for family in read(objs)]
