"""A real scrape, with every kind of seawall object alive, piped into Prometheus's own linter:
``promtool check metrics`` must print nothing and exit 0. scripts/test.sh puts promtool on PATH
(scripts/promtool.sh unpacks it from Debian's ``prometheus`` package into .cache/); run that
script once to get it locally. tests/test_prometheus.py checks the same rules in Python."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import seawall.host
from seawall import Backpressure, CircuitBreaker, HostLimiter, Limiter, RedisLimiter
from seawall.concurrency import ConcurrencyLimiter
from seawall.prometheus import register
from seawall.rules import RulesEngine
from seawall.testing import ManualClock

ROOT = Path(__file__).resolve().parent.parent


def promtool() -> str:
    found = shutil.which("promtool") or shutil.which(
        "promtool", path=str(ROOT / ".cache" / "prometheus" / "bin")
    )
    if found is None:
        pytest.skip("no promtool on PATH: run `bash scripts/promtool.sh` (scripts/test.sh does)")
    return found


def test_a_scrape_of_every_kind_of_object_passes_promtool(
    redis_url: str, redis_prefix: str
) -> None:
    tool = promtool()
    clock = ManualClock()
    host = f"test-{uuid.uuid4().hex[:12]}"
    redis = RedisLimiter("2/minute; 7/hour", store=redis_url, key_prefix=redis_prefix)
    breaker = CircuitBreaker("promtool-db", failure_threshold=1, clock=clock, replace=True)
    engine = RulesEngine(clock=clock)
    engine.add_rule({"name": "promtool-api", "scope": "per_user", "rate": 1, "window_seconds": 60})
    live = [
        Limiter("3/second", clock=clock),
        HostLimiter("5/second", store=f"host://{host}", max_keys=1000),
        redis,
        breaker,
        engine,
        Backpressure("promtool-bp", clock=clock),
        ConcurrencyLimiter(5, clock=clock),
    ]
    try:
        for obj in live[:3]:
            for _ in range(3):
                obj.hit("client-p")  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError), breaker:
            raise RuntimeError("down")
        engine.check("promtool-api", "user:p")
        engine.check("promtool-api", "user:p")
        registry = CollectorRegistry()
        register(registry)
        text = generate_latest(registry)
    finally:
        seawall.host.remove(host)
    # Every kind of object shows in the scrape, so promtool saw each family with samples.
    for needle in (
        b'store="memory"',
        b'store="host"',
        b'store="redis"',
        b'breaker="promtool-db"',
        b'rule="promtool-api"',
        b'handler="promtool-bp"',
        b"seawall_concurrency_limit{",
    ):
        assert needle in text, needle
    assert b"client-p" not in text and b"user:p" not in text
    done = subprocess.run(
        [tool, "check", "metrics"], input=text, capture_output=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def test_promtool_catches_what_it_should() -> None:
    """The check can fail: promtool flags a counter without ``_total`` and a non-base unit."""
    tool = promtool()
    bad = b"# HELP seawall_x_ms Bad.\n# TYPE seawall_x_ms counter\nseawall_x_ms 1\n"
    done = subprocess.run(
        [tool, "check", "metrics"], input=bad, capture_output=True, timeout=60, check=False
    )
    assert done.returncode != 0 and b"_total" in done.stdout + done.stderr
