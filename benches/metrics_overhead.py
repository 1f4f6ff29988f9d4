"""The ``--metrics`` mode of the hot-path benches (``compare_inproc.py``, ``compare_asgi.py``):
seawall's rows timed without and with a ``SeawallCollector`` registered and scraped every second
by a background thread, as Prometheus would, in the same process and run.

seawall counts natively whether or not anything reads the counters (relaxed atomic adds: there
is no switch to turn counting off), so "without metrics" here means no collector and no scrape;
the cost of the counting itself is seen by running the same mode against a build without the
counters (``PYTHONPATH=<dir with main's wheel unpacked>``) and comparing the "without" columns.

Each round is one timed run long enough (``--metrics-ms``, default 3 s) to hold several
scrapes, so a scrape cannot hide between repeats; rounds alternate without / with (ABBA) and
each side reports its median. Timings are never tests.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from prometheus_client import CollectorRegistry, generate_latest
from timing import table

from seawall.prometheus import register

BAR = 1.05  # issue 17: within 5% of the figures without metrics


class Scraper:
    """A background thread scraping seawall's collector every ``interval`` seconds."""

    def __init__(self, interval: float = 1.0) -> None:
        self.registry = CollectorRegistry()
        register(self.registry)
        self.interval = interval
        self.scrapes = 0
        self.scrape_ns = 0
        self.last = b""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            t0 = time.perf_counter_ns()
            self.last = generate_latest(self.registry)
            self.scrape_ns += time.perf_counter_ns() - t0
            self.scrapes += 1

    def __enter__(self) -> Scraper:
        self.last = generate_latest(self.registry)  # fails here, not silently in the thread
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@dataclass
class Paired:
    """ns per unit of each round, without and with the scraper."""

    off: list[float] = field(default_factory=list)
    on: list[float] = field(default_factory=list)
    scrapes: int = 0
    scrape_ns: int = 0

    def ratio(self) -> float:
        return statistics.median(self.on) / statistics.median(self.off)


def paired(measure: Callable[[], float], rounds: int, interval: float = 1.0) -> Paired:
    """``measure()``: one timed run, ns per unit. ``rounds`` rounds, alternating which side
    goes first; cyclic GC collected before and disabled during each run."""
    p = Paired()

    def run() -> float:
        gc.collect()
        gc.disable()
        try:
            return measure()
        finally:
            gc.enable()

    for i in range(rounds):
        for on in (False, True) if i % 2 == 0 else (True, False):
            if on:
                with Scraper(interval) as s:
                    p.on.append(run())
                p.scrapes += s.scrapes
                p.scrape_ns += s.scrape_ns
            else:
                p.off.append(run())
    return p


def metrics_table(rows: list[tuple[str, Paired]], unit: str = "ns") -> str:
    out = []
    for label, p in rows:
        r = p.ratio()
        mean_ms = p.scrape_ns / p.scrapes / 1e6 if p.scrapes else 0.0
        out.append(
            [
                label,
                f"{statistics.median(p.off):,.1f}",
                f"{statistics.median(p.on):,.1f}",
                f"{r:.3f}",
                "yes" if r <= BAR else "NO",
                f"{p.scrapes} ({mean_ms:.2f} ms each)",
            ]
        )
    header = [
        "row",
        f"{unit}, no collector (median)",
        f"{unit}, scraped every 1 s (median)",
        "with / without",
        "within 5%",
        "scrapes during the runs",
    ]
    return table(header, out, {1, 2, 3})


def describe(rounds: int, run_ms: float) -> str:
    import seawall

    return (
        f"- metrics mode: {rounds} rounds, each one timed run of ~{run_ms:g} ms without a "
        "collector and one with a `SeawallCollector` registered and scraped every 1 s by a "
        "background thread (`generate_latest`), alternating which goes first; medians. seawall "
        f"counts natively either way (no switch); seawall imported from {seawall.__file__}"
    )
