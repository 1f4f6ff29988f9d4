"""``python -m seawall``: the command line."""

from __future__ import annotations

import argparse
import math
import sys

from seawall.rules_cli import add_rules_command
from seawall.rules_cli import run as run_rules
from seawall.top_cli import add_top_command


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(seconds) and 0 < seconds <= 600):
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 600, got {text}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seawall", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="watch seawall protect a real HTTP server from four clients (in memory, no Redis)",
        description="A Starlette app on uvicorn (127.0.0.1) behind seawall.RateLimitMiddleware, "
        "with a flaky dependency behind a seawall.CircuitBreaker, and four simulated clients "
        "(steady, bursty, abusive, and one forging X-Forwarded-For) sending real HTTP to it. "
        "Needs pip install 'seawall[cli]'.",
    )
    demo.add_argument(
        "--seconds", type=_seconds, default=15.0, help="how long the clients send (default 15)"
    )
    shown = demo.add_mutually_exclusive_group()
    shown.add_argument(
        "--plain",
        action="store_const",
        const="plain",
        dest="output",
        help="no live display: print a plain summary table at the end (the default without a "
        "terminal)",
    )
    shown.add_argument(
        "--json",
        action="store_const",
        const="json",
        dest="output",
        help="print the summary as JSON at the end",
    )
    demo.set_defaults(output="auto")
    add_rules_command(commands)
    add_top_command(commands, _seconds)
    args = parser.parse_args(argv)
    if args.command == "rules":
        return run_rules(args)
    if args.command == "top":
        from seawall.top_cli import run as run_top

        return run_top(args)
    if args.command == "demo":
        from seawall.demo import run

        return run(seconds=args.seconds, output=args.output)
    return 2  # unreachable: argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
