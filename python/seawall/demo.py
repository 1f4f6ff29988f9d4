"""``python -m seawall demo``: seawall doing its job in front of a real HTTP server, in memory.

A Starlette app is served by uvicorn on 127.0.0.1 (a free port) behind
``seawall.RateLimitMiddleware``: 10 requests per second per client, and a route rule holding
``POST /login`` to 5 a minute. Its ``GET /api/quote`` calls a dependency that goes down through
the middle of the run, behind a ``seawall.CircuitBreaker``. Four simulated clients send real HTTP
with httpx, each from its own loopback address:

* **steady**: 5 requests a second, within its budget: never refused;
* **bursty**: 25 at once every 2.5 s: the burst beyond its budget is refused (429);
* **abusive**: about 40 a second, and guessing passwords: held to its budget, and to 5 logins;
* **spoofer**: as abusive, each request with a new forged ``X-Forwarded-For``; the server
  trusts no proxy, so the header changes nothing: the spoofer is charged by its real address.

On a terminal the table is live (needs rich); otherwise (CI, a pipe) a plain summary table is
printed at the end; ``--json`` prints the summary as JSON. Everything comes with
``pip install 'seawall[cli]'``. The run ends by itself after ``--seconds`` (default 15).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rich.console import RenderableType

    from seawall._demo.server import DemoServer
    from seawall._demo.traffic import Client

Output = Literal["auto", "plain", "json"]

__all__ = ["run"]


def run(
    seconds: float = 15.0, *, output: Output = "auto", own_addresses: bool | None = None
) -> int:
    """Runs the demo for ``seconds``; returns the process exit code.

    ``output``: ``"auto"`` (live on a terminal, else the plain summary), ``"plain"`` or ``"json"``.
    ``own_addresses``: whether each client sends from its own loopback address (keyed by it) or
    all from 127.0.0.1 with their own ``X-Api-Key`` (keyed by that); default: the first where the
    machine allows it (Linux does; macOS has only 127.0.0.1 unless configured).
    """
    try:
        from seawall._demo import report
        from seawall._demo.server import DemoServer, Served
        from seawall._demo.traffic import loopback_aliases, make_clients
    except ImportError as exc:
        print(
            f"The demo needs {exc.name or 'starlette, uvicorn and httpx'}: "
            "pip install 'seawall[cli]'",
            file=sys.stderr,
        )
        return 1
    live = output == "auto" and sys.stdout.isatty() and _has_rich()
    if own_addresses is None:
        own_addresses = loopback_aliases()
    server = DemoServer(seconds, key="ip" if own_addresses else "header:X-Api-Key")
    clients = make_clients(own_addresses)
    served = Served(server.middleware)
    url = served.start()
    elapsed = 0.0

    try:
        if live:
            from rich.console import Console
            from rich.live import Live

            console = Console()

            def show(t: float, done: bool = False) -> RenderableType:
                return report.live_table(
                    server, clients, url, t, seconds, own_addresses, console.width, done
                )

            with Live(show(0.0), console=console, refresh_per_second=4) as display:
                elapsed = asyncio.run(
                    _traffic(server, clients, url, seconds, lambda t: display.update(show(t)))
                )
                display.update(show(elapsed, done=True))
        else:
            elapsed = asyncio.run(_traffic(server, clients, url, seconds, lambda t: None))
    except KeyboardInterrupt:
        return 130
    finally:
        served.stop()
    if output == "json":
        print(json.dumps(report.summary(server, clients, url, elapsed, own_addresses), indent=2))
    elif not live:
        print(report.plain(server, clients, url, elapsed, own_addresses))
    return 0


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


async def _traffic(
    server: DemoServer,
    clients: list[Client],
    url: str,
    seconds: float,
    tick: Callable[[float], object],
) -> float:
    """Drives the clients for ``seconds``, calling ``tick(elapsed)`` four times a second;
    returns the seconds it took (the clients finish the requests they have in flight)."""
    from seawall._demo.traffic import drive

    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + seconds
    server.start()
    task = asyncio.create_task(drive(url, clients, lambda: loop.time() < end))
    while not task.done():
        tick(loop.time() - start)
        await asyncio.wait({task}, timeout=0.25)
    await task
    return loop.time() - start
