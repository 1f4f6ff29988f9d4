"""The terminal demo: simulated clients against a ClientRateLimiter, in memory.

Time is simulated with a ManualClock, so the run is the same on every machine; the display is paced
to the wall clock only so that a person can watch it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from seawall import ALGORITHMS, ClientRateLimiter, Limiter, TokenBucketConfig
from seawall.testing import ManualClock

TICK = 0.05  # simulated seconds per step
CONFIG = TokenBucketConfig(capacity=10, refill_rate=5.0, initial_tokens=10)


@dataclass
class Client:
    name: str
    pattern: str
    requests_at: Callable[[int], int]  # requests sent in step n
    allowed: int = 0
    limited: int = 0
    recent: list[bool] = field(default_factory=list)


def _clients() -> list[Client]:
    steps_per_second = round(1 / TICK)
    return [
        Client("steady", "4/s steady", lambda n: 1 if n % 5 == 0 else 0),
        Client(
            "bursty",
            "15 every 3 s",
            lambda n: 15 if n % (3 * steps_per_second) == 0 else 0,
        ),
        Client("abusive", "40/s flood", lambda n: 2),
    ]


def _bar(client: Client, width: int = 20) -> str:
    marks = client.recent[-width:]
    return "".join("[green]█[/]" if ok else "[red]█[/]" for ok in marks)


def run(simulated_seconds: float = 12.0, speed: float = 3.0) -> int:
    try:
        from rich.console import Console
        from rich.live import Live
        from rich.table import Table
    except ImportError:
        print("The demo's display needs rich: pip install 'seawall[cli]'")
        return 1

    clock = ManualClock()
    limiter = ClientRateLimiter(CONFIG, clock=clock)
    clients = _clients()
    console = Console()

    def table(final: bool = False) -> Table:
        elapsed = clock.now() - start
        title = (
            f"ClientRateLimiter: burst {CONFIG.capacity}, refill {CONFIG.refill_rate:g}/s"
            f" · t = {elapsed:5.2f} s{' · done' if final else ''}"
        )
        t = Table(title=title)
        for column in ("client", "sends", "allowed", "limited", "tokens"):
            t.add_column(column, justify="left" if column in ("client", "sends") else "right")
        t.add_column("latest: [green]█[/] ok [red]█[/] 429", no_wrap=True, min_width=20)
        for c in clients:
            t.add_row(
                c.name,
                c.pattern,
                f"[green]{c.allowed}[/]",
                f"[red]{c.limited}[/]",
                f"{limiter.peek_sync(c.name):5.2f}",
                _bar(c),
            )
        return t

    start = clock.now()
    steps = round(simulated_seconds / TICK)
    with Live(table(), console=console, refresh_per_second=20, transient=True) as live:
        for n in range(steps):
            for c in clients:
                for _ in range(c.requests_at(n)):
                    ok = limiter.try_consume(c.name)
                    c.allowed += ok
                    c.limited += not ok
                    c.recent.append(ok)
            clock.advance(TICK)
            live.update(table())
            if speed > 0:
                time.sleep(TICK / speed)
    console.print(table(final=True))
    stats = limiter.get_all_stats_sync()
    console.print(
        f"{stats['total_requests']} requests, {stats['total_rejected']} limited "
        f"({stats['global_rejection_rate']:.0%}). Each client got its burst of "
        f"{CONFIG.capacity} and then {CONFIG.refill_rate:g} per second; the flood did not "
        "slow the others down."
    )
    _algorithms(console, Table)
    return 0


def _algorithms(console: Any, table_type: Any) -> None:
    """The same bursty sender against every algorithm, each holding it to 10 per second."""
    clock = ManualClock(start=1_800_000_000.0)
    limiters = {name: Limiter("10/second", algorithm=name, clock=clock) for name in ALGORITHMS}
    allowed = dict.fromkeys(ALGORITHMS, 0)
    worst = dict.fromkeys(ALGORITHMS, 0)
    recent: dict[str, list[float]] = {name: [] for name in ALGORITHMS}
    sent = 0
    for step in range(200):  # 10 s in 50 ms steps: 25 at once every 2.5 s, else 4 per step
        burst = 25 if step % 50 == 45 else 4
        for _ in range(burst):
            sent += 1
            for name, limiter in limiters.items():
                if limiter.allow("sender"):
                    allowed[name] += 1
                    window = [t for t in recent[name] if t > clock.now() - 1.0]
                    window.append(clock.now())
                    recent[name] = window
                    worst[name] = max(worst[name], len(window))
        clock.advance(TICK)
    t = table_type(
        title=f"Limiter('10/second', algorithm=...) · one sender, {sent} requests in 10 s"
    )
    for column in ("algorithm", "allowed", "most in any 1 s"):
        t.add_column(column, justify="left" if column == "algorithm" else "right")
    for name in ALGORITHMS:
        t.add_row(name, str(allowed[name]), str(worst[name]))
    console.print(t)
