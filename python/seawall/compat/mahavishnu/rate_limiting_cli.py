"""Seed 002's CLI commands under the drop-in's entry point: ``seawall-mahavishnu`` (A15).

The seed's command names and options, acting on the rules, overrides and metrics that the
engines of ``create_rate_limiter(redis_url=...)`` share through Redis::

    seawall-mahavishnu --redis-url redis://localhost:6379/0 rate-limit-list
    seawall-mahavishnu rate-limit-add --name api_limit --scope per_user --rate 100 --burst 10 \\
        --window 60 --algorithm token_bucket --strategy retry_after
    seawall-mahavishnu rate-limit-remove --name api_limit
    seawall-mahavishnu rate-limit-override --admin admin_123 --user user_456 \\
        --reason emergency_access --duration 60 --unlimited
    seawall-mahavishnu rate-limit-metrics [--rule api_per_user]
    seawall-mahavishnu rate-limit-reset --rule api_per_user

The store is ``--redis-url`` (or ``--store``), else ``SEAWALL_REDIS_URL``, else
``SEAWALL_STORE``. These are the commands of :mod:`seawall.rules_cli` (``python -m seawall
rules``) under the seed's names, with its additions: ``rate-limit-add`` also takes
``--priority``, ``--endpoint`` / ``--user`` / ``--ip`` (repeatable filters) and ``--disabled``;
``rate-limit-override`` also takes ``--ip`` (a CIDR) and ``--multiplier``; every command takes
``--json``. ``--duration`` is 60 minutes when not given, as ``OverrideRequest``'s. With no store,
or ``memory://``, a command says why it cannot see a running server's memory and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seawall import rules_cli

__all__ = ["DEFAULT_DURATION", "ENVS", "build_parser", "main"]

#: Where the store URL is read from when no option gives it, first set wins.
ENVS = ("SEAWALL_REDIS_URL", rules_cli.STORE_ENV)
_FLAGS = ("--redis-url", "--store")
#: ``--duration``'s default, the drop-in's ``OverrideRequest.duration_minutes`` default.
DEFAULT_DURATION = 60.0
_EXAMPLE = 'create_rate_limiter(redis_url="redis://HOST:6379/0")'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seawall-mahavishnu",
        description="Seed 002's rate-limit commands, on the rules shared through Redis.",
    )
    rules_cli.add_store_options(parser, flags=_FLAGS, envs=ENVS, engine_example=_EXAMPLE)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: rules_cli.Command, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        rules_cli.add_store_options(sub, flags=_FLAGS, envs=ENVS, engine_example=_EXAMPLE)
        sub.set_defaults(command_func=func)
        return sub

    command("rate-limit-list", rules_cli.list_rules, "list the rate limit rules")
    rules_cli.add_rule_options(
        command("rate-limit-add", rules_cli.add_rule, "add a rule (replacing one of its name)")
    )
    command("rate-limit-remove", rules_cli.remove_rule, "remove a rule").add_argument(
        "--name", required=True
    )
    rules_cli.add_override_options(
        command("rate-limit-override", rules_cli.add_override, "grant an admin override"),
        duration=DEFAULT_DURATION,
    )
    command(
        "rate-limit-metrics", rules_cli.show_metrics, "show every rule's metrics, or one's"
    ).add_argument("--rule", help="one rule's, with its top violators")
    command(
        "rate-limit-reset", rules_cli.reset_metrics, "zero a rule's metrics (not its budgets)"
    ).add_argument("--rule", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``seawall-mahavishnu``: parses ``argv`` (default ``sys.argv[1:]``), runs the command and
    returns its exit status."""
    args = build_parser().parse_args(argv)
    return rules_cli.run(args, prog="seawall-mahavishnu", envs=ENVS)


if __name__ == "__main__":
    sys.exit(main())
