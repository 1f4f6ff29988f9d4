"""``seawall.prometheus``: seawall's counters for Prometheus, read at scrape time.

``seawall.prometheus.register()`` adds a :class:`SeawallCollector` to ``prometheus_client``'s
registry; ``metrics_app()`` is an ASGI app to mount at ``/metrics``. The collector reads the
``stats()`` of every live limiter (built through ``seawall.Limiter``), circuit breaker,
backpressure handler, concurrency limiter and rules engine of this process: nothing is counted
per decision in Python. Labels are object names only (limits strings, breaker, handler and rule
names), never a client key. Needs the ``prometheus`` extra (``prometheus_client``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from seawall import _seawall
from seawall._metrics_registry import live
from seawall.backpressure import Backpressure
from seawall.breaker import breakers
from seawall.concurrency import ConcurrencyLimiter

__all__ = ["SeawallCollector", "metrics_app", "register"]

_LIMITERS = (_seawall.Limiter, _seawall.RedisLimiter, _seawall.HostLimiter)
_STATES = ("closed", "open", "half_open")


def _names(objs: Iterable[Any], name_of: Callable[[Any], str]) -> list[tuple[str, Any]]:
    """Each object with a label unique among them: its name, ``#2``, ``#3``... on repeats."""
    seen: dict[str, int] = {}
    out = []
    for obj in objs:
        base = name_of(obj)
        seen[base] = seen.get(base, 0) + 1
        out.append((base if seen[base] == 1 else f"{base}#{seen[base]}", obj))
    return out


def _limits(limiter: Any) -> str:
    return "; ".join(str(limit) for limit in limiter.limits)


class SeawallCollector(Collector):
    """A ``prometheus_client`` collector of every live seawall object (see the module)."""

    def collect(self) -> Iterator[Metric]:
        objs = live()
        yield from self._limiters([o for o in objs if isinstance(o, _LIMITERS)])
        yield from self._breakers()
        yield from self._backpressure([o for o in objs if isinstance(o, Backpressure)])
        yield from self._concurrency([o for o in objs if isinstance(o, ConcurrencyLimiter)])
        yield from self._rules([o for o in objs if isinstance(o, _seawall.RulesEngine)])

    def _limiters(self, limiters: list[Any]) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "seawall_limiter_decisions",
            "Rate-limit decisions of a limiter, by outcome.",
            labels=["limiter", "store", "outcome"],
        )
        keys = GaugeMetricFamily(
            "seawall_limiter_keys", "Client keys a limiter holds.", labels=["limiter", "store"]
        )
        errors = CounterMetricFamily(
            "seawall_redis_errors", "Failed Redis calls of a limiter.", labels=["limiter"]
        )
        fallbacks = CounterMetricFamily(
            "seawall_redis_fallbacks",
            "Decisions made by on_error because Redis failed or its breaker was open.",
            labels=["limiter"],
        )
        for label, limiter in _names(limiters, _limits):
            s = limiter.stats()
            if isinstance(limiter, _seawall.RedisLimiter):
                store, total = "redis", s["decisions"]
                errors.add_metric([label], s["errors"])
                fallbacks.add_metric([label], s["fallbacks"])
            elif isinstance(limiter, _seawall.HostLimiter):
                store, total = "host", s["decisions"]
                keys.add_metric([label, store], s["keys"])
            else:
                store, total = "memory", s["hits"]
                keys.add_metric([label, store], s["keys"])
            decisions.add_metric([label, store, "allowed"], total - s["limited"])
            decisions.add_metric([label, store, "denied"], s["limited"])
        yield from (decisions, keys, errors, fallbacks)

    def _breakers(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "seawall_breaker_state",
            "1 for a circuit breaker's current state, 0 for the others.",
            labels=["breaker", "state"],
        )
        calls = CounterMetricFamily(
            "seawall_breaker_calls",
            "Calls through a circuit breaker, by outcome.",
            labels=["breaker", "outcome"],
        )
        opened = CounterMetricFamily(
            "seawall_breaker_opened", "Times a circuit breaker opened.", labels=["breaker"]
        )
        for name, breaker in breakers.all().items():
            s = breaker.stats()
            for st in _STATES:
                state.add_metric([name, st], 1.0 if s["state"] == st else 0.0)
            for outcome in ("successes", "failures", "ignored", "rejections"):
                calls.add_metric([name, outcome], s[outcome])
            opened.add_metric([name], s["opened_count"])
        yield from (state, calls, opened)

    def _backpressure(self, handlers: list[Backpressure]) -> Iterator[Metric]:
        g = {
            k: GaugeMetricFamily(f"seawall_backpressure_{k}", doc, labels=["handler"])
            for k, doc in (
                ("in_flight", "Items a backpressure handler runs now."),
                ("queued", "Items waiting in a backpressure handler's queue."),
                ("limit", "Items a backpressure handler may run at once."),
            )
        }
        items = CounterMetricFamily(
            "seawall_backpressure_items",
            "Items a backpressure handler finished, by outcome.",
            labels=["handler", "outcome"],
        )
        for label, bp in _names(handlers, lambda h: h.name or "default"):
            s = bp.stats()
            for k, family in g.items():
                family.add_metric([label], s[k])
            for outcome in ("completed", "failed", "cancelled", "dropped", "timed_out"):
                items.add_metric([label, outcome], s[outcome])
            for reason, n in s["rejected"].items():
                items.add_metric([label, f"rejected_{reason}"], n)
        yield from (*g.values(), items)

    def _concurrency(self, limiters: list[ConcurrencyLimiter]) -> Iterator[Metric]:
        limit = GaugeMetricFamily(
            "seawall_concurrency_limit", "A concurrency limiter's limit.", labels=["limiter"]
        )
        in_flight = GaugeMetricFamily(
            "seawall_concurrency_in_flight", "Permits held.", labels=["limiter"]
        )
        queued = GaugeMetricFamily(
            "seawall_concurrency_queued", "Callers waiting for a permit.", labels=["limiter"]
        )
        permits = CounterMetricFamily(
            "seawall_concurrency_permits",
            "Permit requests of a concurrency limiter, by outcome.",
            labels=["limiter", "outcome"],
        )
        for label, cl in _names(limiters, lambda c: "default"):
            s = cl.stats()
            limit.add_metric([label], s["limit"])
            in_flight.add_metric([label], s["in_flight"])
            queued.add_metric([label], s["queued"])
            for outcome in ("acquired", "rejected", "timed_out", "cancelled"):
                permits.add_metric([label, outcome], s[outcome])
        yield from (limit, in_flight, queued, permits)

    def _rules(self, engines: list[Any]) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "seawall_rule_requests",
            "Requests a named rule decided, by outcome.",
            labels=["engine", "rule", "outcome"],
        )
        for label, engine in _names(engines, lambda e: "default"):
            for rule, m in sorted(engine.get_all_metrics().items()):
                requests.add_metric([label, rule, "allowed"], m["allowed_requests"])
                requests.add_metric([label, rule, "denied"], m["denied_requests"])
        yield requests


def register(registry: CollectorRegistry = REGISTRY) -> SeawallCollector:
    """Adds a :class:`SeawallCollector` to ``registry`` (the default one); returns it."""
    collector = SeawallCollector()
    registry.register(collector)
    return collector


def metrics_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """An ASGI app serving ``registry`` (default: a new one holding a collector) in the
    Prometheus text format; mount it at ``/metrics``."""
    if registry is None:
        registry = CollectorRegistry(auto_describe=True)
        register(registry)
    return make_asgi_app(registry)
