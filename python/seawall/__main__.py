"""``python -m seawall``: the command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seawall", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="watch simulated clients against an in-memory ClientRateLimiter"
    )
    demo.add_argument(
        "--seconds", type=float, default=12.0, help="simulated seconds of traffic (default 12)"
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=3.0,
        help="simulated seconds per wall-clock second; 0 runs without pausing (default 3)",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from seawall.demo import run

        return run(simulated_seconds=args.seconds, speed=args.speed)
    return 2  # unreachable: argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
