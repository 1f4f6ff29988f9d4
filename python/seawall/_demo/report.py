"""What the demo shows: a live table (rich, on a terminal), and the summary at the end, as a plain
text table (no terminal, or no rich) or as JSON (``--json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seawall._demo.server import LIMITS, LOGIN_RULE, DemoServer
from seawall._demo.traffic import BREAKER, ERROR, FAILED, LIMITED, OK, Client

if TYPE_CHECKING:
    from rich.console import RenderableType

_COLUMNS = ("client", "does", "server's key", "sent", "admitted", "429", "503", "502", "logins")
_NUMERIC = frozenset({"sent", "admitted", "429", "503", "502"})


def summary(
    server: DemoServer, clients: list[Client], url: str, elapsed: float, own_addresses: bool
) -> dict[str, Any]:
    """The run in numbers (what ``--json`` prints)."""
    stats = server.breaker.stats()
    return {
        "url": url,
        "seconds": round(elapsed, 2),
        "clients_identified_by": "address" if own_addresses else "X-Api-Key",
        "limits": LIMITS,
        "rules": {LOGIN_RULE.path: LOGIN_RULE.limits},
        "trusted_proxies": [],
        "clients": {
            c.name: {
                "behaviour": c.behaviour,
                "address": c.address,
                "sent": c.tally.sent,
                "admitted": c.tally.admitted,
                "limited": c.tally.limited,
                "breaker_open": c.tally.breaker_open,
                "upstream_failed": c.tally.upstream_failed,
                "errors": c.tally.errors,
                "login_sent": c.tally.login_sent,
                "login_admitted": c.tally.login_admitted,
                "login_limited": c.tally.login_limited,
                "keys": sorted(c.tally.keys),
                "forged_headers": len(c.tally.forged),
            }
            for c in clients
        },
        "breaker": {
            "name": stats["name"],
            "state": stats["state"],
            "opened": stats["opened_count"],
            "rejections": stats["rejections"],
            "transitions": [
                {"at": round(t.at, 2), "from": t.old, "to": t.new} for t in server.transitions
            ],
        },
        "upstream": {"calls": server.upstream.calls, "failures": server.upstream.failures},
        "keys_held": len(server.middleware.limiter),
    }


def _cells(c: Client) -> list[str]:
    t = c.tally
    logins = f"{t.login_admitted} in, {t.login_limited} refused" if t.login_sent else "-"
    return [
        c.name,
        c.behaviour,
        ", ".join(sorted(t.keys)) or "-",
        str(t.sent),
        str(t.admitted),
        str(t.limited),
        str(t.breaker_open),
        str(t.upstream_failed),
        logins,
    ]


def _settings(url: str, own_addresses: bool) -> str:
    who = "by its own loopback address" if own_addresses else "by X-Api-Key, all from 127.0.0.1"
    return (
        f"{url} · per client ({who}): {LIMITS} · POST {LOGIN_RULE.path}: {LOGIN_RULE.limits} · "
        "trusted proxies: none"
    )


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _breaker_line(server: DemoServer) -> str:
    stats = server.breaker.stats()
    path = " → ".join(
        [server.transitions[0].old, *(t.new for t in server.transitions)]
        if server.transitions
        else [stats["state"]]
    )
    path = path.replace("_", "-")
    return (
        f"breaker {stats['name']!r}: {path}; opened {_times(stats['opened_count'])}, "
        f"{stats['rejections']} calls answered 503 without asking the dependency "
        f"({server.upstream.failures} of its {server.upstream.calls} calls failed)"
    )


def _findings(clients: list[Client]) -> list[str]:
    lines = []
    for c in clients:
        t = c.tally
        if not t.forged:
            continue
        if len(t.keys) == 1:
            charged = f"charged them all to {next(iter(t.keys))}"
        else:  # what a server that believed the header would do
            charged = f"charged them to {len(t.keys)} different keys"
        lines.append(
            f"{c.name} wrote {len(t.forged)} different X-Forwarded-For values; the server "
            f"{charged}: {t.limited} of its {t.sent} requests got 429."
        )
    return lines


def plain(
    server: DemoServer, clients: list[Client], url: str, elapsed: float, own_addresses: bool
) -> str:
    """The summary as a plain text table (for logs and CI)."""
    rows = [list(_COLUMNS), *(_cells(c) for c in clients)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if name in _NUMERIC else cell.ljust(w)
            for cell, w, name in zip(row, widths, _COLUMNS, strict=True)
        ).rstrip()

    out = [
        f"seawall demo: {elapsed:.1f} s of real HTTP",
        _settings(url, own_addresses),
        "",
        line(rows[0]),
        line(["-" * w for w in widths]),
        *(line(r) for r in rows[1:]),
        "",
        "429: refused by seawall.RateLimitMiddleware (the app never saw it); 503: admitted, "
        "refused by the open breaker; 502: the dependency failed.",
        _breaker_line(server),
        *_findings(clients),
    ]
    return "\n".join(out)


_MARKS = {
    OK: "[green]█[/]",
    LIMITED: "[red]█[/]",
    BREAKER: "[yellow]█[/]",
    FAILED: "[magenta]█[/]",
    ERROR: "[white]?[/]",
}
_STATES = {
    "closed": "[green]closed[/]",
    "open": "[red]OPEN[/]",
    "half_open": "[yellow]half-open[/]",
}


def live_table(
    server: DemoServer,
    clients: list[Client],
    url: str,
    elapsed: float,
    seconds: float,
    own_addresses: bool,
    width: int,
    done: bool = False,
) -> RenderableType:
    """The live display for a terminal ``width`` columns wide: a row per client (with its latest
    answers if there is room), the breaker and the dependency under it."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    title = f"seawall demo · t = {elapsed:4.1f} / {seconds:g} s{' · done' if done else ''}"
    table = Table(title=title)
    for name in _COLUMNS[2:]:
        if name == "server's key":
            table.add_column("client, server's key", no_wrap=True)
        else:
            table.add_column(name, justify="right" if name in _NUMERIC else "left", no_wrap=True)
    marks = min(30, width - 86)  # what the other columns leave (they need about 85)
    if marks >= 8:
        table.add_column("latest", no_wrap=True, width=marks)
    for c in clients:
        cells = _cells(c)
        row = [
            f"[bold]{c.name}[/] {cells[2]}\n[dim]{c.behaviour}[/]",
            cells[3],
            f"[green]{cells[4]}[/]",
            f"[red]{cells[5]}[/]",
            f"[yellow]{cells[6]}[/]",
            f"[magenta]{cells[7]}[/]",
            cells[8],
        ]
        if marks >= 8:
            row.append("".join(_MARKS[r] for r in list(c.tally.recent)[-marks:]))
        table.add_row(*row)
    state = server.breaker.state
    dependency = "[red]down[/]" if server.upstream.is_down() else "[green]up[/]"
    parts: list[RenderableType] = [
        table,
        Text.from_markup(
            "[green]█[/] 200  [red]█[/] 429 seawall refused  [yellow]█[/] 503 breaker open  "
            "[magenta]█[/] 502 dependency failed"
        ),
        Text(_settings(url, own_addresses)),
        Text.from_markup(
            f"dependency: {dependency} · breaker {server.breaker.name!r}: "
            f"{_STATES.get(state, state)} · opened {_times(server.breaker.stats()['opened_count'])}"
        ),
    ]
    if done:
        parts += [Text(_breaker_line(server)), *(Text(f) for f in _findings(clients))]
    return Group(*parts)
