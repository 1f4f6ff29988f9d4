"""``python -m seawall top``: a live terminal view of a running seawall, for the operator
without Grafana.

``--metrics URL`` reads a seawall ``/metrics`` page (``seawall.prometheus.metrics_app``) every
``--interval`` seconds and shows the limiters (decisions and denials per second, from successive
scrapes), the circuit breakers (state), backpressure and concurrency (in flight, queued, limit),
the rules (requests and denials by rule) and Redis errors and fallbacks; when the app serves
the opt-in ``<mount>/top-keys`` (``metrics_app(top_keys=True)``), also the keys refused most.
``--store URL`` shows the rules engine's shared control plane: the rules, their metrics summed
over every worker and their top violators, as ``seawall rules`` reads them. ``--once`` prints one
frame and exits (rates need two scrapes, so it shows totals). A bad URL, or a first scrape that
fails, is one line on stderr and exit 2. Needs ``pip install 'seawall[cli]'``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seawall.rules_cli import CommandFailed, open_engine

if TYPE_CHECKING:
    from rich.console import RenderableType

    from seawall.rules import RulesEngine
    from seawall.rules_cli import Commands

PROG = "seawall top"
TIMEOUT = 5.0  # seconds a scrape may take
TOP = 10  # keys shown per limiter
_pause = time.sleep  # between frames (a test makes the app move on here)

Labels = tuple[tuple[str, str], ...]


@dataclass
class Scrape:
    """One read of a ``/metrics`` page: every sample by name and labels, and when."""

    at: float
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        """The samples named ``name``, with their labels, in the page's order."""
        return [(dict(labels), v) for (n, labels), v in self.samples.items() if n == name]

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, tuple(sorted(labels.items()))))


def metrics_url(text: str) -> str:
    """An ``http(s)://host[:port]/path`` URL, else an argparse error (exit 2)."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"must be an http:// or https:// URL of a seawall /metrics page, got {text!r}"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port outside 0-65535
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
    return text


def _get(url: str) -> bytes:
    # metrics_url() allowed http(s) URLs only.
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.read()  # type: ignore[no-any-return]


def scrape(url: str) -> Scrape:
    """Reads and parses ``url``; ``CommandFailed`` (exit 2) if it cannot, or it is no metrics
    page."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = _get(url).decode()
    except (OSError, ValueError) as error:
        raise CommandFailed(f"cannot read {url}: {_reason(error)}", 2) from None
    out = Scrape(time.monotonic())
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    except ValueError as error:
        raise CommandFailed(f"{url} is not a Prometheus metrics page: {error}", 2) from None
    if not any(name.startswith("seawall_") for name, _ in out.samples):
        raise CommandFailed(
            f"{url} has no seawall metrics: serve seawall.prometheus.metrics_app() there", 2
        )
    return out


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def top_keys(metrics: str) -> list[dict[str, Any]] | None:
    """The ``<mount>/top-keys`` report next to ``metrics``, or ``None`` when the app does not
    serve it (it is opt-in) or it cannot be read."""
    try:
        data = json.loads(_get(metrics.rstrip("/") + "/top-keys"))
    except (OSError, ValueError):
        return None
    limiters = data.get("limiters") if isinstance(data, dict) else None
    return limiters if isinstance(limiters, list) else None


# ------------------------------------------------------------------------------------------
# What a frame shows


def _rate(now: Scrape, before: Scrape | None, name: str, labels: dict[str, str]) -> str:
    if before is None or now.at <= before.at:
        return "-"
    key = (name, tuple(sorted(labels.items())))
    if key not in before.samples or key not in now.samples:
        return "-"
    return f"{max(0.0, now.samples[key] - before.samples[key]) / (now.at - before.at):,.1f}"


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _shown(cell: str) -> str:
    """``cell`` with every unprintable character escaped (``\\x1b``): keys and names are written
    by clients or by whoever can write the store, and must not drive the operator's terminal."""
    if cell.isprintable():
        return cell
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in cell)


def _table(title: str, headers: Sequence[str], rows: Iterable[Sequence[str]], text: int = 2) -> Any:
    """A table whose first ``text`` columns are text (left), the others numbers (right). Cells
    are plain text, never rich markup (a key such as ``[/]`` is shown as written)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", expand=False)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < text else "right")
    for row in rows:
        table.add_row(*(Text(_shown(cell)) for cell in row))
    return table


def _limiters(now: Scrape, before: Scrape | None) -> list[list[str]]:
    rows = []
    name = "seawall_limiter_decisions_total"
    seen = {(s["limiter"], s["store"]) for s, _ in now.series(name)}
    for limiter, store in sorted(seen):
        denied = {"limiter": limiter, "store": store, "outcome": "denied"}
        allowed = {**denied, "outcome": "allowed"}
        d = now.value(name, **denied) or 0.0
        total = d + (now.value(name, **allowed) or 0.0)
        rates = [_rate(now, before, name, allowed), _rate(now, before, name, denied)]
        both = "-" if "-" in rates else f"{sum(float(r.replace(',', '')) for r in rates):,.1f}"
        keys = now.value("seawall_limiter_keys", limiter=limiter, store=store)
        rows.append([limiter, store, both, rates[1], _n(total), _n(d), _n(keys)])
    return rows


def _breakers(now: Scrape) -> list[list[str]]:
    states: dict[str, str] = {}
    for labels, v in now.series("seawall_breaker_state"):
        if v == 1.0:
            states[labels["breaker"]] = labels["state"]
    rows = []
    for breaker in sorted(states):
        calls = [
            _n(now.value("seawall_breaker_calls_total", breaker=breaker, outcome=o))
            for o in ("successes", "failures", "rejections")
        ]
        opened = _n(now.value("seawall_breaker_opened_total", breaker=breaker))
        rows.append([breaker, states[breaker].upper(), *calls, opened])
    return rows


def _queues(now: Scrape) -> list[list[str]]:
    rows = []
    for kind, label in (("backpressure", "handler"), ("concurrency", "limiter")):
        names = sorted({s[label] for s, _ in now.series(f"seawall_{kind}_limit")})
        for name in names:
            values = [
                _n(now.value(f"seawall_{kind}_{g}", **{label: name}))
                for g in ("in_flight", "queued", "limit")
            ]
            rows.append([kind, name, *values])
    return rows


def _rules(now: Scrape, before: Scrape | None) -> list[list[str]]:
    name = "seawall_rule_requests_total"
    rows = []
    for engine, rule in sorted({(s["engine"], s["rule"]) for s, _ in now.series(name)}):
        denied = {"engine": engine, "rule": rule, "outcome": "denied"}
        allowed = {**denied, "outcome": "allowed"}
        d = now.value(name, **denied) or 0.0
        total = d + (now.value(name, **allowed) or 0.0)
        rows.append([engine, rule, _n(total), _n(d), _rate(now, before, name, denied)])
    return rows


def _redis(now: Scrape, before: Scrape | None) -> list[list[str]]:
    rows = []
    for labels, errors in now.series("seawall_redis_errors_total"):
        limiter = labels["limiter"]
        fallbacks = now.value("seawall_redis_fallbacks_total", limiter=limiter)
        rate = _rate(now, before, "seawall_redis_errors_total", labels)
        rows.append([limiter, "", _n(errors), rate, _n(fallbacks)])
    return rows


def _top_keys(report: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for limiter in report:
        for entry in limiter.get("keys", [])[:TOP]:
            error = entry["error"]
            shown = f"{entry['count']:,}" if error == 0 else f"≤ {entry['count']:,}"
            rows.append([limiter["limiter"], limiter["store"], entry["key"], shown])
    return rows


def _store_view(engine: RulesEngine) -> list[Any]:
    rules = engine.rules()
    metrics = {r["name"]: engine.get_metrics(r["name"]) for r in rules}
    tables = [
        _table(
            "Rules (shared store)",
            ["RULE", "SCOPE", "LIMIT", "ENABLED", "REQUESTS", "DENIED"],
            [
                [str(r["name"]), str(r["scope"]), f"{r['rate']}/{r['window_seconds']:g}s",
                 "yes" if r.get("enabled", True) else "no",
                 _n(metrics.get(r["name"], {}).get("total_requests")),
                 _n(metrics.get(r["name"], {}).get("denied_requests"))]
                for r in rules
            ],
        )
    ]  # fmt: skip
    violators = []
    for rule, m in sorted(metrics.items()):
        for kind in ("user", "ip", "endpoint"):
            entries = (m.get(f"violations_by_{kind}") or {}).get("entries", [])
            violators += [[rule, kind, str(e["key"]), _n(e["count"])] for e in entries[:TOP]]
    if violators:
        headers = ["RULE", "BY", "KEY", "COUNT"]
        tables.append(_table("Top violators (shared store)", headers, violators, text=3))
    return tables


def frame(
    now: Scrape | None,
    before: Scrape | None,
    keys: list[dict[str, Any]] | None,
    engine: RulesEngine | None,
    note: str = "",
) -> RenderableType:
    """One screen: a table per kind of object the page (or the store) shows."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [Text(f"seawall top {time.strftime('%H:%M:%S')} {note}".rstrip())]
    if now is not None:
        sections = [
            ("Limiters", ["LIMITER", "STORE", "DECISIONS/S", "DENIALS/S", "DECISIONS", "DENIED",
                          "KEYS"], _limiters(now, before)),
            ("Breakers", ["BREAKER", "STATE", "SUCCESSES", "FAILURES", "REJECTED", "OPENED"],
             _breakers(now)),
            ("Backpressure and concurrency", ["KIND", "NAME", "IN FLIGHT", "QUEUED", "LIMIT"],
             _queues(now)),
            ("Rules", ["ENGINE", "RULE", "REQUESTS", "DENIED", "DENIED/S"], _rules(now, before)),
            ("Redis", ["LIMITER", "", "ERRORS", "ERRORS/S", "FALLBACKS"], _redis(now, before)),
        ]  # fmt: skip
        for title, headers, rows in sections:
            if rows:
                parts.append(_table(title, headers, rows))
    if keys:
        headers = ["LIMITER", "STORE", "KEY", "REFUSALS"]
        parts.append(_table("Refused most (top-keys)", headers, _top_keys(keys), text=3))
    if engine is not None:
        parts += _store_view(engine)
    return Group(*parts)


# ------------------------------------------------------------------------------------------
# The command


def _read(args: argparse.Namespace) -> tuple[Scrape | None, list[dict[str, Any]] | None]:
    if args.metrics is None:
        return None, None
    return scrape(args.metrics), top_keys(args.metrics)


def run(args: argparse.Namespace) -> int:
    """Shows frames until interrupted (or one, with ``--once``); the exit status."""
    from rich.console import Console
    from rich.live import Live

    if args.metrics is None and getattr(args, "store", None) is None:
        print(
            f"{PROG}: give --metrics URL (a seawall /metrics page) or --store URL", file=sys.stderr
        )
        return 2
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        engine = open_engine(args) if getattr(args, "store", None) else None
        now, keys = _read(args)
    except CommandFailed as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return error.code
    except OSError as error:
        print(f"{PROG}: the store failed: {error}", file=sys.stderr)
        return 2
    if args.once:
        console.print(frame(now, None, keys, engine))
        return 0
    before: Scrape | None = None
    try:
        with Live(frame(now, None, keys, engine), console=console, auto_refresh=False) as live:
            while True:
                _pause(args.interval)
                note = ""
                try:
                    if engine is not None:
                        engine.sync()
                    latest, keys = _read(args)
                    before, now = now, latest
                except (CommandFailed, OSError) as error:
                    note = f"(last read failed: {error})"
                live.update(frame(now, before, keys, engine, note), refresh=True)
    except KeyboardInterrupt:
        return 0


def add_top_command(commands: Commands, seconds: Any) -> None:
    """``seawall top``'s parser; ``seconds``: the type of ``--interval``."""
    top = commands.add_parser(
        "top",
        help="a live view of a running seawall: limiters, breakers, queues, rules",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument(
        "--metrics", type=metrics_url, metavar="URL",
        help="a seawall /metrics page (seawall.prometheus.metrics_app), e.g. "
        "http://127.0.0.1:8000/metrics",
    )  # fmt: skip
    top.add_argument(
        "--store", metavar="URL", default=argparse.SUPPRESS,
        help="the rules engine's shared store (redis://...): rules, metrics, top violators",
    )  # fmt: skip
    top.add_argument(
        "--key-prefix", metavar="PREFIX", default=argparse.SUPPRESS,
        help="the servers' RulesEngine key_prefix (default: the engine's)",
    )  # fmt: skip
    top.add_argument(
        "--interval", type=seconds, default=2.0, help="seconds between frames (default 2)"
    )
    top.add_argument("--once", action="store_true", help="print one frame and exit")
