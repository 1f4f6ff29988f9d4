"""``python -m seawall rules ...``: the rules engine's command line (issue 15, A15).

Every command acts on what a ``RulesEngine(store=URL, key_prefix=...)`` shares through its store:
the rules, the admin overrides and the metrics summed over every worker. A change made here is in
force in every worker of every server on that store and prefix within a second (each engine polls
the store's version key). The store is ``--store URL`` or the environment variable
``SEAWALL_STORE``; ``--key-prefix`` must be the servers' own if they set one::

    seawall rules list
    seawall rules add --name search --scope per_ip --rate 10 --window 60 --endpoint /api/search
    seawall rules remove search
    seawall rules override add --admin ops-1 --user bob --unlimited --duration 60 --reason X
    seawall rules override list
    seawall rules override remove 3 --admin ops-1
    seawall rules metrics [--rule api]
    seawall rules reset-metrics [--rule api]
    seawall rules audit [--limit 20]

A command-line process cannot see another process's memory: with no store, or ``memory://``, it
says so and exits 2; so with a host store (``host://NAME``), which shares budgets but not rules.
Bad input (a zero rate, a bad CIDR, an unknown rule) is one line on stderr naming the field or the
rule, exit 1; usage errors are argparse's, exit 2. Output: plain tables, or ``--json``. The seed's
command names (:mod:`seawall.compat.mahavishnu.rate_limiting_cli`) are these commands.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seawall.rules import RulesEngine


STORE_ENV = "SEAWALL_STORE"
ENGINE_EXAMPLE = 'RulesEngine(store="redis://HOST:6379/0")'
SCOPES = ("global", "per_user", "per_ip", "per_endpoint")
ALGORITHMS = ("token_bucket", "leaky_bucket", "fixed_window", "sliding_window")
STRATEGIES = ("hard", "retry_after", "queue", "graceful", "throttle")
TOP = 10  # violators shown per kind in a human metrics table (--json has them all)


class CommandFailed(Exception):
    """What a command says on stderr before it exits with ``code`` (1: refused input, 2: no
    store it could share)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Shown:
    """A command's result: ``data`` for ``--json``, ``text`` for people."""

    data: object
    text: str


Command = Callable[["RulesEngine", argparse.Namespace], Shown]
if TYPE_CHECKING:  # what a parser's add_subparsers() returns (generic for type checkers only)
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


# ------------------------------------------------------------------------------------------
# The store


#: The stores that share no rules with another process, and why.
UNSHARED = {
    "memory": "{url} is this command's own memory: a rule added there would be gone when it "
    "exits, and no server would ever see it.",
    "host": "{url} is a host store: it shares budgets between the processes of one host, but "
    "not rules, overrides or metrics, so it is no control plane.",
}


def _why_not(problem: str, args: argparse.Namespace, envs: Sequence[str]) -> str:
    flags = "/".join(getattr(args, "store_flags", ("--store",)))
    engine = getattr(args, "engine_example", ENGINE_EXAMPLE)
    return (
        f"{problem} A running server's rules, overrides and metrics are in that server's own "
        "process, and a command-line process cannot see another process's memory: the commands "
        f"act on the store the servers share them through. Build the servers' engine with "
        f"{engine} and pass the same URL here with {flags} URL (or set "
        f"{' or '.join(envs)}), and --key-prefix if the servers set one."
    )


def store_url(args: argparse.Namespace, envs: Sequence[str] = (STORE_ENV,)) -> str:
    """The store to act on: ``--store`` (``args.store``), else the first of ``envs`` set.
    ``CommandFailed(code=2)`` when there is none, or it is one no other process shares rules
    through (``memory://``, ``host://``)."""
    url: str | None = getattr(args, "store", None)
    if not url:
        url = next((os.environ[name] for name in envs if os.environ.get(name)), None)
    if not url:
        raise CommandFailed(_why_not("no store given.", args, envs), 2)
    problem = UNSHARED.get(url.partition("://")[0].lower() if "://" in url else "")
    if problem is not None:
        raise CommandFailed(_why_not(problem.format(url=url), args, envs), 2)
    return url


def open_engine(args: argparse.Namespace, envs: Sequence[str] = (STORE_ENV,)) -> RulesEngine:
    """A ``RulesEngine`` on the store of :func:`store_url`, with the store's rules loaded."""
    from seawall.rules import RulesEngine

    options: dict[str, Any] = {"store": store_url(args, envs)}
    prefix = getattr(args, "key_prefix", None)
    if prefix is not None:
        options["key_prefix"] = prefix
    engine = RulesEngine(**options)
    engine.sync()
    return engine


def add_store_options(
    parser: argparse.ArgumentParser,
    *,
    flags: Sequence[str] = ("--store",),
    envs: Sequence[str] = (STORE_ENV,),
    engine_example: str = ENGINE_EXAMPLE,
) -> None:
    """``--store URL`` (or the other ``flags``), ``--key-prefix`` and ``--json``, accepted
    before and after the command's name (give ``parser`` and each command's parser them): an
    option left out sets nothing, so a later parser never overwrites an earlier one.
    ``engine_example``: how the servers' engine is built, for the message without a store."""
    schemes = "redis://, rediss://, unix://, sentinel://, redis-cluster://"
    parser.add_argument(
        *flags, dest="store", metavar="URL", default=argparse.SUPPRESS,
        help=f"the servers' RulesEngine store ({schemes}); default ${' or $'.join(envs)}",
    )  # fmt: skip
    parser.add_argument(
        "--key-prefix", metavar="PREFIX", default=argparse.SUPPRESS,
        help="the servers' RulesEngine key_prefix (default: the engine's, seawall:rules:)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    parser.set_defaults(store_flags=tuple(flags), engine_example=engine_example)


# ------------------------------------------------------------------------------------------
# Options


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def add_rule_options(parser: argparse.ArgumentParser) -> None:
    """A rule's fields as options (``--window`` is ``window_seconds``; a filter option may be
    repeated)."""
    parser.add_argument(
        "--name", required=True, help="the rule's name (an existing one is replaced)"
    )
    parser.add_argument("--scope", required=True, choices=SCOPES, help="whose budget")
    parser.add_argument("--rate", required=True, type=int, help="requests per window (>= 1)")
    parser.add_argument(
        "--window", "--window-seconds", dest="window_seconds", required=True, type=_number,
        metavar="SECONDS", help="the window (> 0)",
    )  # fmt: skip
    parser.add_argument("--burst", type=int, help="token bucket's size (1 to 2 x rate)")
    parser.add_argument("--algorithm", choices=ALGORITHMS, help="default: the engine's")
    parser.add_argument("--strategy", choices=STRATEGIES, help="default: the engine's")
    parser.add_argument("--priority", type=int, default=0, help="highest wins (default 0)")
    for flag, dest, metavar, what in (
        ("--endpoint", "endpoints", "PATH", "a path (a trailing * is a prefix)"),
        ("--user", "user_ids", "ID", "a user id"),
        ("--ip", "ip_addresses", "CIDR", "an address or CIDR"),
    ):
        parser.add_argument(
            flag, dest=dest, action="append", default=[], metavar=metavar,
            help=f"{what} it applies to (a filter); repeatable",
        )  # fmt: skip
    parser.add_argument("--disabled", action="store_true", help="added but not enforced")
    parser.add_argument(
        "--max-delay", type=_number, metavar="SECONDS", help="throttle's longest booked wait"
    )
    parser.add_argument("--max-queued", type=int, metavar="N", help="queue's bound per window")


def add_override_options(parser: argparse.ArgumentParser, duration: float | None = None) -> None:
    """An override's fields as options: targets ``--user`` and/or ``--ip``, ``--unlimited`` or
    ``--multiplier``, ``--duration`` in minutes (default ``duration``; ``None``: the engine's)."""
    parser.add_argument("--admin", dest="admin_id", required=True, help="who grants it")
    parser.add_argument("--user", dest="target_user_id", metavar="ID", help="the user it covers")
    parser.add_argument(
        "--ip", dest="target_ip_address", metavar="CIDR", help="the address or CIDR it covers"
    )
    parser.add_argument("--reason", default="", help="why (recorded in the audit log)")
    until = "until removed, at most the engine's maximum, a week"
    parser.add_argument(
        "--duration", dest="duration_minutes", type=_number, metavar="MINUTES", default=duration,
        help=f"how long (default: {until if duration is None else f'{duration:g} minutes'})",
    )  # fmt: skip
    grant = parser.add_mutually_exclusive_group()
    grant.add_argument("--unlimited", action="store_true", help="no limit, no budget spent")
    grant.add_argument("--multiplier", type=_number, help="the limits times this (default 2)")


# ------------------------------------------------------------------------------------------
# Output


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table: the headers, a rule, one line per row."""
    lines = [[str(h) for h in headers], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    lines.insert(1, ["-" * w for w in widths])
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _cell(value: object) -> str:
    if value is None or value == [] or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _when(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _records(items: Iterable[Mapping[str, Any]], fields: str, empty: str) -> str:
    """A table of ``items``, a column per field (``fields`` space-separated; the header is the
    field's name in capitals), or ``empty`` when there is none."""
    names = fields.split()
    rows = [[item.get(name) for name in names] for item in items]
    return table([n.upper() for n in names], rows) if rows else empty


def _rules_table(rules: Sequence[Mapping[str, Any]]) -> str:
    shown = [
        {**r, "rate": f"{r['rate']}/{r['window_seconds']:g}s",
         "algorithm": r.get("algorithm") or "(default)",
         "strategy": r.get("strategy") or "(default)"}
        for r in rules
    ]  # fmt: skip
    fields = "name scope rate burst algorithm strategy priority enabled endpoints user_ids"
    return _records(shown, fields + " ip_addresses", "no rules")


def _overrides_table(overrides: Sequence[Mapping[str, Any]]) -> str:
    shown = [
        {**o, "grant": "unlimited" if o.get("unlimited") else f"x{o.get('multiplier', 2):g}",
         "expires": _when(o.get("expires_at"))}
        for o in overrides
    ]  # fmt: skip
    fields = "override_id target_user_id target_ip_address grant expires reason admin_id"
    return _records(shown, fields, "no overrides in force")


def _metrics_text(metrics: Mapping[str, Mapping[str, Any]], *, violators: bool) -> str:
    shown = [
        {**m, "rule": name, "hit_rate": f"{m['hit_rate']:.1%}",
         "avg_tokens_remaining": f"{m['avg_tokens_remaining']:.2f}"}
        for name, m in metrics.items()
    ]  # fmt: skip
    fields = "rule total_requests allowed_requests denied_requests hit_rate avg_tokens_remaining"
    parts = [_records(shown, fields, "no rules")]
    for m in metrics.values() if violators else ():
        for kind in ("user", "ip", "endpoint"):
            summary = m.get(f"violations_by_{kind}") or {}
            rows = [[e["key"], e["count"]] for e in summary.get("entries", [])[:TOP]]
            if summary.get("other"):
                rows.append(["(others)", summary["other"]])
            if rows:
                title = f"\nviolations by {kind} (top {TOP}):\n"
                parts.append(title + table([kind.upper(), "COUNT"], rows))
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------
# Commands: each takes the engine and the parsed options, and returns what to show


def list_rules(engine: RulesEngine, args: argparse.Namespace) -> Shown:
    rules = engine.rules()
    return Shown(rules, _rules_table(rules))


RULE_FIELDS = (
    "name scope rate window_seconds priority endpoints user_ids ip_addresses burst algorithm "
    "strategy max_delay max_queued"
)
OVERRIDE_FIELDS = (
    "admin_id reason unlimited target_user_id target_ip_address duration_minutes multiplier"
)


def _fields(args: argparse.Namespace, fields: str) -> dict[str, Any]:
    """The options named in ``fields`` (space-separated) that were given; those left out are
    the engine's defaults."""
    return {f: getattr(args, f) for f in fields.split() if getattr(args, f, None) is not None}


def add_rule(engine: RulesEngine, args: argparse.Namespace) -> Shown:
    done = "replaced" if any(r["name"] == args.name for r in engine.rules()) else "added"
    try:
        engine.add_rule({**_fields(args, RULE_FIELDS), "enabled": not args.disabled})
    except (TypeError, ValueError) as error:
        raise CommandFailed(f"rule {args.name!r} not added: {error}") from None
    added = engine.get_rule(args.name)
    return Shown(added, f"rule {args.name!r} {done}\n" + _rules_table([added]))


def remove_rule(engine: RulesEngine, args: argparse.Namespace) -> Shown:
    if not engine.remove_rule(args.name):
        raise CommandFailed(f"no rule named {args.name!r} (see the list command)")
    return Shown({"removed": args.name}, f"rule {args.name!r} removed")


def add_override(engine: RulesEngine, args: argparse.Namespace) -> Shown:
    try:
        record = engine.add_override(_fields(args, OVERRIDE_FIELDS))
    except (TypeError, ValueError) as error:
        raise CommandFailed(f"override not added: {error}") from None
    text = f"override {record['override_id']} added\n" + _overrides_table([record])
    return Shown(record, text)


def remove_override(engine: RulesEngine, args: argparse.Namespace) -> Shown:
    if not engine.remove_override(args.override_id, args.admin_id):
        raise CommandFailed(f"no override {args.override_id} in force (see override list)")
    return Shown({"removed": args.override_id}, f"override {args.override_id} removed")


def list_overrides(engine: RulesEngine, args: argparse.Namespace) -> Shown:
    overrides = engine.overrides()
    return Shown(overrides, _overrides_table(overrides))


def show_metrics(engine: RulesEngine, args: argparse.Namespace) -> Shown:
    rule: str | None = getattr(args, "rule", None)
    metrics = {rule: engine.get_metrics(rule)} if rule is not None else engine.get_all_metrics()
    return Shown(metrics, _metrics_text(metrics, violators=rule is not None))


def reset_metrics(engine: RulesEngine, args: argparse.Namespace) -> Shown:
    rule: str | None = getattr(args, "rule", None)
    if rule is not None:
        engine.get_rule(rule)  # an unknown rule is an error, not a silent no-op
    engine.reset_metrics(rule)
    what = f"rule {rule!r}" if rule is not None else "every rule"
    return Shown({"reset": rule}, f"metrics of {what} reset (budgets untouched)")


def audit(engine: RulesEngine, args: argparse.Namespace) -> Shown:
    entries = engine.audit_log(args.limit)
    shown = [{**e, "at": _when(e.get("at"))} for e in entries]
    fields = "at action override_id admin_id reason target_user_id target_ip_address"
    return Shown(entries, _records(shown, fields, "the audit log is empty"))


# ------------------------------------------------------------------------------------------
# Running one


def _message(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])  # KeyError's str() is the repr of its argument
    return str(error) or type(error).__name__


def run(
    args: argparse.Namespace, *, prog: str = "seawall rules", envs: Sequence[str] = (STORE_ENV,)
) -> int:
    """Runs the command ``args.command_func`` on the engine of :func:`open_engine`, prints what
    it shows, and returns the exit status: 0, 1 (refused input, a failing store) or 2 (no store
    to share). Never a traceback: every error is one line on stderr."""
    command: Command = args.command_func
    try:
        shown = command(open_engine(args, envs), args)
    except CommandFailed as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return error.code
    except (KeyError, ValueError, TypeError) as error:
        print(f"{prog}: {_message(error)}", file=sys.stderr)
        return 1
    except OSError as error:  # the store failing: unreachable, timing out, refusing
        print(f"{prog}: the store failed: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # anything else: said in one line, not raised
        print(f"{prog}: {type(error).__name__}: {_message(error)}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps(shown.data, indent=2))
    else:
        print(shown.text)
    return 0


def add_rules_command(commands: Commands) -> None:
    """Adds ``rules`` and its commands to ``python -m seawall``'s command parsers; the parsed
    options then go to :func:`run`."""
    rules = commands.add_parser(
        "rules",
        help="list, add and remove the rules and overrides of servers sharing a store",
        description="Acts on the rules, overrides and metrics that the servers' "
        "RulesEngine(store=URL) shares through its store: a change made here is in force in "
        "every worker on that store and key prefix within a second.",
    )
    add_store_options(rules)
    sub = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")

    def command(parent: Commands, name: str, func: Command, help: str) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, help=help, description=help)
        add_store_options(parser)
        parser.set_defaults(command_func=func)
        return parser

    command(sub, "list", list_rules, "list the rules")
    add_rule_options(command(sub, "add", add_rule, "add a rule, or replace the one of its name"))
    command(sub, "remove", remove_rule, "remove a rule").add_argument("name")
    override = sub.add_parser("override", help="admin overrides: add, remove, list")
    add_store_options(override)
    over = override.add_subparsers(dest="override_command", required=True, metavar="COMMAND")
    add_override_options(command(over, "add", add_override, "grant an override"))
    removing = command(over, "remove", remove_override, "end an override before its time")
    removing.add_argument("override_id", type=int, metavar="ID")
    removing.add_argument("--admin", dest="admin_id", required=True, help="who ends it")
    command(over, "list", list_overrides, "list the overrides in force")
    metrics = command(sub, "metrics", show_metrics, "show the metrics of every rule, or one")
    metrics.add_argument("--rule", help="one rule's, with its top violators")
    resetting = command(sub, "reset-metrics", reset_metrics, "zero the metrics (not budgets)")
    resetting.add_argument("--rule", help="this rule's only (default: every rule's)")
    auditing = command(sub, "audit", audit, "the override audit log, oldest first")
    auditing.add_argument("--limit", type=int, default=100, help="the last N (default 100)")
