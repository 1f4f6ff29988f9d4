"""``python -m seawall top``: a real uvicorn on 127.0.0.1 serving a Starlette app with
``seawall.prometheus.metrics_app`` mounted, read by ``top --once`` in a process of its own; the
opt-in ``/top-keys`` endpoint; the rules engine's shared store; and bad URLs (exit 2).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from uvicorn_thread import serving

import seawall.top_cli as top
from seawall import Backpressure, CircuitBreaker, Limiter
from seawall.prometheus import metrics_app
from seawall.rules import RulesEngine
from seawall.testing import ManualClock


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    with serving(app, proxy_headers=True) as port:
        yield f"http://127.0.0.1:{port}"


def run_top(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seawall", "top", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


LIMITS = "2/minute; 97/hour"  # this test's limiter's label, unlike any other test's
KEY = "ip:203.0.113.77"


@pytest.fixture(scope="module")
def objects() -> Iterator[tuple[Limiter, CircuitBreaker, Backpressure]]:
    clock = ManualClock()
    limiter = Limiter(LIMITS, clock=clock)
    for _ in range(5):
        limiter.hit(KEY)  # 2 admitted, 3 refused
    breaker = CircuitBreaker("top-db", failure_threshold=1, clock=clock, replace=True)
    with pytest.raises(RuntimeError), breaker:
        raise RuntimeError("down")
    bp = Backpressure("top-bp", max_concurrency=3, clock=clock)
    yield limiter, breaker, bp


@pytest.mark.parametrize("top_keys", [True, False])
def test_top_once_shows_a_running_app(
    objects: tuple[Limiter, CircuitBreaker, Backpressure], top_keys: bool
) -> None:
    app = Starlette(routes=[Mount("/metrics", metrics_app(top_keys=top_keys))])
    with serve(app) as base:
        ran = run_top("--metrics", f"{base}/metrics/", "--once")
        metrics_text = urllib.request.urlopen(f"{base}/metrics/").read().decode()
        keys_page = urllib.request.urlopen(f"{base}/metrics/top-keys").read()
    assert ran.returncode == 0, ran.stderr
    out = ran.stdout
    row = next(line for line in out.splitlines() if LIMITS in line)
    assert "memory" in row and "5" in row and "3" in row  # decisions, denied
    breaker_row = next(line for line in out.splitlines() if "top-db" in line)
    assert "OPEN" in breaker_row
    assert "top-bp" in out
    assert KEY not in metrics_text  # never a label, with or without the endpoint
    if top_keys:
        report = json.loads(keys_page)
        (mine,) = [m for m in report["limiters"] if m["limiter"] == LIMITS]
        assert mine["keys"] == [{"key": KEY, "count": 3, "error": 0}]
        assert mine["kind"] == "Limiter" and mine["store"] == "memory"
        key_row = next(line for line in out.splitlines() if KEY in line)
        assert LIMITS in key_row and "3" in key_row
    else:
        assert KEY not in out
        with pytest.raises(ValueError):
            json.loads(keys_page)  # the metrics page: there is no top-keys endpoint


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("not-a-url", "must be an http:// or https:// URL"),
        ("ftp://127.0.0.1/metrics", "must be an http:// or https:// URL"),
        ("http://127.0.0.1:1/metrics", "cannot read http://127.0.0.1:1/metrics"),
    ],
)
def test_a_bad_url_is_refused_with_exit_2(url: str, said: str) -> None:
    ran = run_top("--metrics", url, "--once")
    assert ran.returncode == 2
    assert said in ran.stderr and "Traceback" not in ran.stderr


def test_nothing_to_show_is_refused_with_exit_2() -> None:
    ran = run_top("--once")
    assert ran.returncode == 2 and "--metrics URL" in ran.stderr


def test_a_page_without_seawall_metrics_is_refused(objects: object) -> None:
    app = Starlette(routes=[Mount("/", metrics_app(registry=_empty_registry()))])
    with serve(app) as base:
        ran = run_top("--metrics", f"{base}/", "--once")
    assert ran.returncode == 2 and "has no seawall metrics" in ran.stderr


def _empty_registry() -> object:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


def test_rates_come_from_successive_scrapes() -> None:
    name = "seawall_limiter_decisions_total"

    def scrape(at: float, allowed: float, denied: float) -> top.Scrape:
        s = top.Scrape(at)
        for outcome, v in (("allowed", allowed), ("denied", denied)):
            labels = (("limiter", "10/second"), ("outcome", outcome), ("store", "memory"))
            s.samples[(name, labels)] = v
        return s

    before, now = scrape(100.0, 10, 4), scrape(102.0, 30, 10)
    (row,) = top._limiters(now, before)
    assert row == ["10/second", "memory", "13.0", "3.0", "40", "10", "-"]
    (first,) = top._limiters(now, None)
    assert first[2:4] == ["-", "-"]


def test_store_view_shows_the_shared_rules_and_violators(redis_url: str, redis_prefix: str) -> None:
    prefix = redis_prefix.rstrip(":")
    server = RulesEngine(store=redis_url, key_prefix=prefix)
    server.add_rule({"name": "top-api", "scope": "per_user", "rate": 2, "window_seconds": 3600})
    for _ in range(5):
        server.check("top-api", "mallory")
    server.sync()  # flushes this engine's counts to the store
    ran = run_top("--store", redis_url, "--key-prefix", prefix, "--once")
    assert ran.returncode == 0, ran.stderr
    rule_row = next(line for line in ran.stdout.splitlines() if "top-api" in line)
    assert "per_user" in rule_row and "2/3600s" in rule_row and "5" in rule_row
    violator = next(line for line in ran.stdout.splitlines() if "mallory" in line)
    assert "3" in violator


def test_the_live_view_shows_rates_between_scrapes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The loop without ``--once``: each pause between frames is where the app moves on (here:
    refusals), and the next frame shows denials per second from the two scrapes. The third
    pause is the operator's Ctrl-C."""
    limits = "1/minute; 96/hour"
    limiter = Limiter(limits, clock=ManualClock())
    limiter.hit("ip:192.0.2.50")
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            raise KeyboardInterrupt
        for _ in range(4):
            limiter.hit("ip:192.0.2.50")

    monkeypatch.setattr(top, "_pause", pause)
    app = Starlette(routes=[Mount("/metrics", metrics_app())])
    with serve(app) as base:
        argv = ["top", "--metrics", f"{base}/metrics/", "--interval", "0.5"]
        from seawall.__main__ import main

        assert main(argv) == 0
    assert pauses == [0.5, 0.5, 0.5]
    row = next(line for line in capsys.readouterr().out.splitlines()[::-1] if limits in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[:2] == [limits, "memory"]
    assert cells[4:6] == ["9", "8"]  # decisions, denied: the last frame's totals
    assert float(cells[3].replace(",", "")) > 0  # denials per second, between two scrapes


def test_a_client_written_key_is_shown_as_text_not_markup_or_terminal_codes() -> None:
    # A client chooses its key (an API key, a header a key_func reads): rich markup in it must
    # neither crash the operator's view ("[/]" is a MarkupError) nor style it, and terminal
    # control sequences must not reach the operator's terminal.
    hostile = "[/][bold]k\x1b[2J\x07"
    limiter = Limiter("1/minute; 95/hour", clock=ManualClock())
    for _ in range(2):
        limiter.hit(hostile)
    app = Starlette(routes=[Mount("/metrics", metrics_app(top_keys=True))])
    with serve(app) as base:
        ran = run_top("--metrics", f"{base}/metrics/", "--once")
    assert ran.returncode == 0, ran.stderr
    assert "\x1b" not in ran.stdout and "\x07" not in ran.stdout
    assert "[/][bold]k\\x1b[2J\\x07" in ran.stdout
