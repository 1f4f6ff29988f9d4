"""seawall.prometheus: real objects driven on the manual clock, scraped through
prometheus_client and through the /metrics ASGI app; the exposition checked against the rules
``promtool check metrics`` applies, and bounded whatever the number of client keys."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis_servers import RedisServer

from seawall import Backpressure, CircuitBreaker, Limiter, RedisLimiter
from seawall.concurrency import ConcurrencyLimiter
from seawall.prometheus import metrics_app, register
from seawall.rules import RulesEngine
from seawall.testing import ManualClock

ROOT = Path(__file__).resolve().parent.parent


def scrape() -> str:
    registry = CollectorRegistry()
    register(registry)
    return generate_latest(registry).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


def test_values_match_the_stats() -> None:
    clock = ManualClock()
    limiter = Limiter("3/second; 17/minute", clock=clock)
    for _ in range(5):
        limiter.hit("client-a")
    breaker = CircuitBreaker("prom-db", failure_threshold=1, clock=clock, replace=True)
    with pytest.raises(RuntimeError), breaker:
        raise RuntimeError("down")
    engine = RulesEngine(clock=clock)
    engine.add_rule({"name": "prom-api", "scope": "per_user", "rate": 2, "window_seconds": 60})
    for _ in range(3):
        engine.check("prom-api", "user:x")
    concurrency = ConcurrencyLimiter(7, clock=clock)
    permit = concurrency.try_acquire()
    bp = Backpressure("prom-bp", max_concurrency=4, clock=clock)

    text = scrape()
    assert (
        value(
            text,
            "seawall_limiter_decisions_total",
            limiter="3/second; 17/minute",
            store="memory",
            outcome="denied",
        )
        == limiter.stats()["limited"]
        == 2
    )
    assert (
        value(
            text,
            "seawall_limiter_decisions_total",
            limiter="3/second; 17/minute",
            store="memory",
            outcome="allowed",
        )
        == 3
    )
    assert value(text, "seawall_breaker_state", breaker="prom-db", state="open") == 1
    assert value(text, "seawall_breaker_state", breaker="prom-db", state="closed") == 0
    assert value(text, "seawall_breaker_calls_total", breaker="prom-db", outcome="failures") == 1
    # An unnamed engine is labelled "default", "default#2", ... in creation order: other tests'
    # engines may still be alive, so find this one's series by its (unique) rule name.
    denied = [
        v
        for (name, labels), v in samples(text).items()
        if name == "seawall_rule_requests_total"
        and ("rule", "prom-api") in labels
        and ("outcome", "denied") in labels
    ]
    assert denied == [1]
    labels = [k[1] for k in samples(text) if k[0] == "seawall_concurrency_limit"]
    assert any(
        value(text, "seawall_concurrency_limit", **dict(lab)) == 7
        and value(text, "seawall_concurrency_in_flight", **dict(lab)) == 1
        for lab in labels
    )
    assert value(text, "seawall_backpressure_limit", handler="prom-bp") == bp.limit == 4
    assert permit is not None


def test_no_client_key_in_labels_and_output_bounded() -> None:
    limiter = Limiter("1/minute; 2/hour", clock=ManualClock())
    limiter.hit("key-0")

    def own_series(text: str) -> int:
        # This limiter's series only: other tests' objects may be collected meanwhile.
        mine = ("limiter", "1/minute; 2/hour")
        return sum(1 for _, labels in samples(text) if mine in labels)

    before = own_series(scrape())
    for i in range(10_000):
        limiter.hit(f"key-{i}")
    text = scrape()
    assert before > 0 and own_series(text) == before
    assert "key-" not in text
    assert value(text, "seawall_limiter_keys", limiter="1/minute; 2/hour", store="memory") == 10_000


NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def check_metrics(text: str) -> None:
    """The rules of ``promtool check metrics``: HELP and TYPE for every family, valid names,
    counters ending in ``_total``, base units (seconds and bytes, no ms or percentages)."""
    helps = set(re.findall(r"^# HELP (\S+) \S", text, re.M))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert helps == set(types)
    assert all(n.endswith("_total") for n, t in types.items() if t == "counter")
    for family in text_string_to_metric_families(text):
        assert NAME.match(family.name) and family.name.startswith("seawall_")
        assert not re.search(r"_(ms|milliseconds|percent|minutes|kb|mb)(_|$)", family.name)
        for s in family.samples:
            assert all(LABEL.match(k) and not k.startswith("__") for k in s.labels)
            if family.type == "counter":
                assert s.name.endswith(("_total", "_created"))


def test_exposition_follows_promtool_rules() -> None:
    breaker = CircuitBreaker("prom-rules", clock=ManualClock(), replace=True)
    limiter = Limiter("5/second", clock=ManualClock())
    limiter.hit("x")
    text = scrape()
    check_metrics(text)
    assert 'breaker="prom-rules"' in text and 'limiter="5/second"' in text
    del breaker, limiter  # held weakly: gone from the next scrape
    assert 'breaker="prom-rules"' not in scrape()


def test_metrics_app_over_asgi() -> None:
    limiter = Limiter("4/second; 9/minute", clock=ManualClock())
    limiter.hit("someone")

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=metrics_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/")

    response = asyncio.run(get())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        value(
            response.text,
            "seawall_limiter_decisions_total",
            limiter="4/second; 9/minute",
            store="memory",
            outcome="allowed",
        )
        == 1
    )
    check_metrics(response.text)


def test_dashboard_queries_only_exported_metrics() -> None:
    clock = ManualClock()
    live = [
        CircuitBreaker("prom-dash", clock=clock, replace=True),
        Limiter("6/second", clock=clock),
        Backpressure("prom-dash", clock=clock),
        ConcurrencyLimiter(3, clock=clock),
    ]
    text = scrape()
    # Every family the collector describes, even one with no sample yet (no Redis limiter).
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert all(n.endswith("_total") for n, t in types.items() if t == "counter")
    # A histogram's samples are its _bucket, _sum and _count series.
    parts = ("_bucket", "_sum", "_count")
    exported = set(types) | {n + p for n, t in types.items() if t == "histogram" for p in parts}
    assert {s[0] for s in samples(text)} <= exported
    dashboard = json.loads((ROOT / "dashboards" / "seawall.json").read_text())
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"\bseawall_[a-z_]+", target["expr"]))
    assert used and used <= exported, used - exported
    needed = {"seawall_breaker_state", "seawall_backpressure_queued", "seawall_redis_errors_total"}
    assert needed <= used
    assert len(live) == 4


def test_redis_limiter_counts_and_errors(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisLimiter("2/minute; 9/hour", store=redis_url, key_prefix=redis_prefix)
    for _ in range(3):
        limiter.hit("client-r")
    text = scrape()
    labels = {"limiter": "2/minute; 9/hour", "store": "redis"}
    assert value(text, "seawall_limiter_decisions_total", **labels, outcome="denied") == 1
    assert value(text, "seawall_limiter_decisions_total", **labels, outcome="allowed") == 2
    assert value(text, "seawall_redis_errors_total", limiter="2/minute; 9/hour") == 0
    assert value(text, "seawall_redis_fallbacks_total", limiter="2/minute; 9/hour") == 0
    assert "client-r" not in text


def test_a_scrape_survives_a_rules_engine_whose_redis_is_down(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    # The moment Redis fails is when /metrics matters most: a shared rules engine that cannot
    # read its metrics drops out of that scrape; it does not fail the scrape of everything else.
    engine = RulesEngine(store=redis_server.url, key_prefix=redis_prefix)
    engine.add_rule({"name": "prom-down", "scope": "per_user", "rate": 2, "window_seconds": 60})
    engine.check("prom-down", "user:x")
    limiter = Limiter("7/second; 71/minute", clock=ManualClock())
    limiter.hit("x")
    assert 'rule="prom-down"' in scrape()
    redis_server.stop()
    text = scrape()
    assert 'rule="prom-down"' not in text
    assert (
        value(
            text,
            "seawall_limiter_decisions_total",
            limiter="7/second; 71/minute",
            store="memory",
            outcome="allowed",
        )
        == 1
    )
    check_metrics(text)
