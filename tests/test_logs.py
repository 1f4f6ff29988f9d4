"""seawall's logs: rate-limited records on ``seawall.*`` loggers with structured ``extra``
fields. Native events (a real redis-server stopped under a limiter, its breaker flapping on the
manual clock) come through the ``log`` crate and pyo3-log; Python-side ones through
``seawall._log``. A flood gives a handful of records, never one per decision, and never a
client key in a message or a field."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator

import pytest
from redis_servers import RedisServer

from seawall import Backpressure, CircuitBreaker, Overloaded, RedisLimiter, _log
from seawall.rules import RulesEngine
from seawall.testing import ManualClock

KEYS = [f"client-{i}" for i in range(1000)]


def seawall_records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    _log.flush()
    return [r for r in caplog.records if r.name == name]


def field(record: logging.LogRecord, name: str) -> object:
    """A field of the record's ``extra``."""
    return vars(record).get(name)


def no_client_key(records: list[logging.LogRecord]) -> None:
    for r in records:
        text = r.getMessage() + json.dumps({k: str(v) for k, v in vars(r).items()})
        assert "client-" not in text, text


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def limiter(redis_server: RedisServer, redis_prefix: str, clock: ManualClock) -> RedisLimiter:
    return RedisLimiter(
        "5/minute; 50/hour",
        store=redis_server.url,
        key_prefix=redis_prefix,
        connect_timeout=0.2,
        breaker_failures=3,
        breaker_recovery=1.0,
        clock=clock,
    )


def test_a_stopped_redis_under_a_flood_logs_a_handful_of_records(
    redis_server: RedisServer,
    limiter: RedisLimiter,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="seawall")
    assert limiter.hit("client-warmup").allowed
    redis_server.stop()
    for key in KEYS:
        assert limiter.hit(key).allowed  # on_error="allow"

    async def more() -> None:
        for key in KEYS[:100]:
            assert (await limiter.ahit(key)).allowed

    asyncio.run(more())
    assert limiter.stats()["fallbacks"] == 1100
    records = seawall_records(caplog, "seawall.redis")
    events = [field(r, "event") for r in records]
    # The failure (once per log_interval) and the breaker opening (once per 10 s): not 1,100.
    assert events == ["redis_failed", "redis_breaker_open"], events
    failed, opened = records
    assert failed.levelno == opened.levelno == logging.WARNING
    for r in records:
        assert field(r, "limiter") == "5/minute; 50/hour"
        assert field(r, "suppressed") == "0"  # pyo3-log passes values as strings
        assert field(r, "on_error") == "allow"
        assert str(redis_server.port) in str(field(r, "url"))
    no_client_key(records)

    # Redis comes back; once the breaker lets a probe through, one INFO record says so.
    caplog.clear()
    redis_server.restart()
    clock.advance(3600)
    assert limiter.hit("client-back").allowed
    recovered = seawall_records(caplog, "seawall.redis")
    assert [(field(r, "event"), r.levelno) for r in recovered] == [
        ("redis_recovered", logging.INFO)
    ]
    no_client_key(recovered)


def test_a_flapping_breaker_logs_once_per_interval(
    redis_server: RedisServer,
    limiter: RedisLimiter,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="seawall.redis")
    redis_server.stop()
    for i in range(60):
        clock.advance(3600)  # past any backoff: half-open, a probe fails, open again
        limiter.hit(KEYS[i])
    assert limiter.stats()["errors"] >= 30
    records = seawall_records(caplog, "seawall.redis")
    opened = [r for r in records if field(r, "event") == "redis_breaker_open"]
    assert len(opened) == 1
    no_client_key(opened)


def test_levels_set_after_import_are_honoured(
    redis_server: RedisServer, limiter: RedisLimiter, caplog: pytest.LogCaptureFixture
) -> None:
    """pyo3-log runs uncached: raising the level of ``seawall.redis`` after its first record
    silences it; lowering it again lets records through (no stale level in Rust)."""
    redis_server.stop()
    with caplog.at_level(logging.ERROR, logger="seawall.redis"):
        limiter.hit("client-a")
        assert seawall_records(caplog, "seawall.redis") == []
    _log.reset()
    with caplog.at_level(logging.WARNING, logger="seawall.redis"):
        for key in KEYS[:10]:
            limiter.hit(key)
        events = [field(r, "event") for r in seawall_records(caplog, "seawall.redis")]
        assert "redis_breaker_open" in events


def test_backpressure_refusals_are_rate_limited(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    bp = Backpressure("logs-bp", max_concurrency=1, max_queue=0, strategy="reject")
    caplog.set_level(logging.WARNING, logger="seawall.backpressure")

    async def flood(n: int) -> int:
        gate = asyncio.Event()
        running = bp.submit(gate.wait)
        refused = 0
        for _ in range(n):
            with pytest.raises(Overloaded):
                bp.submit(gate.wait)
            refused += 1
        gate.set()
        await running
        return refused

    assert asyncio.run(flood(1000)) == 1000
    records = seawall_records(caplog, "seawall.backpressure")
    assert len(records) == 1
    [r] = records
    fields = tuple(field(r, k) for k in ("event", "handler", "reason", "suppressed"))
    assert fields == ("backpressure_overloaded", "logs-bp", "limit", 0)
    # Once the interval has passed, the next record says how many were held back.
    monkeypatch.setattr(_log, "INTERVAL", 0.0)
    asyncio.run(flood(1))
    last = seawall_records(caplog, "seawall.backpressure")[-1]
    assert field(last, "suppressed") == 999


def test_json_formatters_see_the_fields(caplog: pytest.LogCaptureFixture) -> None:
    """A JSON formatter that dumps a record's non-standard attributes gets the fields."""
    standard = set(vars(logging.makeLogRecord({})))

    class Json(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            extra = {k: v for k, v in vars(record).items() if k not in standard}
            return json.dumps({"msg": record.getMessage(), **extra}, default=str)

    logger = logging.getLogger("seawall.test_logs")
    stream = _Lines()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(Json())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for _ in range(50):
            _log.event(logger, logging.WARNING, "demo", "hello %s", "world", site="x", rule="r")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.lines]
    assert lines == [{"msg": "hello world", "event": "demo", "suppressed": 0, "rule": "r"}]


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, s: str) -> None:
        self.lines.extend(line for line in s.splitlines() if line)

    def flush(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_leftover_records() -> Iterator[None]:
    _log.flush()
    yield
    _log.flush()


def test_a_record_from_a_background_thread_reaches_logging_unasked(
    redis_server: RedisServer, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The rules engine's sync thread writes ``rules_sync_failed`` while no Python code calls
    seawall: the record is handed over on the main thread (a pending call), with no flush."""
    caplog.set_level(logging.WARNING, logger="seawall.rules")
    engine = RulesEngine(store=redis_server.url, key_prefix=redis_prefix, sync_interval=0.01)
    engine.add_rule({"name": "logs-sync", "scope": "global", "rate": 5, "window_seconds": 60})
    redis_server.stop()
    deadline = time.monotonic() + 30  # waits for the thread; no time behaviour is asserted
    records: list[logging.LogRecord] = []
    while time.monotonic() < deadline and not records:
        time.sleep(0.01)
        records = [r for r in caplog.records if r.name == "seawall.rules"]
    assert [field(r, "event") for r in records] == ["rules_sync_failed"]
    assert "sync_interval" in records[0].getMessage() and field(records[0], "error")
    assert engine is not None


def test_a_flapping_circuit_breaker_logs_once_per_interval_each(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Opened (WARNING) and closed by its probes (INFO), at most once per 10 s per breaker:
    one breaker's flapping does not hide another's."""
    caplog.set_level(logging.INFO, logger="seawall.breaker")
    a = CircuitBreaker("logs-flap-a", failure_threshold=1, recovery_timeout=1, clock=clock)
    b = CircuitBreaker("logs-flap-b", failure_threshold=1, recovery_timeout=1, clock=clock)

    def boom() -> None:
        raise RuntimeError("down")

    for _ in range(50):
        for breaker in (a, b):
            with pytest.raises(RuntimeError):
                breaker.call(boom)
            assert breaker.state == "open"
        clock.advance(3600)  # past any backoff: the next call is a probe
        for breaker in (a, b):
            breaker.call(lambda: None)
            assert breaker.state == "closed"
    assert a.stats()["opened_count"] == b.stats()["opened_count"] == 50
    records = seawall_records(caplog, "seawall.breaker")
    seen = sorted((field(r, "breaker"), field(r, "event"), r.levelno) for r in records)
    assert seen == [
        ("logs-flap-a", "breaker_closed", logging.INFO),
        ("logs-flap-a", "breaker_opened", logging.WARNING),
        ("logs-flap-b", "breaker_closed", logging.INFO),
        ("logs-flap-b", "breaker_opened", logging.WARNING),
    ]
    opened = next(r for r in records if field(r, "event") == "breaker_opened")
    assert (field(opened, "reason"), field(opened, "old_state")) == ("failure_threshold", "closed")
    assert field(opened, "suppressed") == "0"
