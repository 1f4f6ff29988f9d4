"""The rules CLI (issue 15, item 6; A15): ``python -m seawall rules ...`` and the seed's command
names under ``seawall-mahavishnu``, run against real redis-servers.

Without a store (or with one no other process shares rules through) every command explains why
a command-line process cannot see a running server's memory and exits 2; usage errors are
argparse's (exit 2); input the engine refuses is one line naming the field or the rule (exit 1),
never a traceback. With Redis, what one command writes the next command (a process of its own)
and an engine in this process read back.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from seawall.__main__ import main as seawall_main
from seawall.compat.mahavishnu.rate_limiting_cli import build_parser
from seawall.compat.mahavishnu.rate_limiting_cli import main as seed_main

ENVS = ("SEAWALL_STORE", "SEAWALL_REDIS_URL")
WHY = "cannot see another process's memory"


@pytest.fixture(autouse=True)
def no_store_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVS:
        monkeypatch.delenv(name, raising=False)


def _process(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``argv`` as a user runs it, in a process of its own."""
    clean = {k: v for k, v in os.environ.items() if k not in ENVS}
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _seed_script() -> str:
    """The ``seawall-mahavishnu`` console script of this environment (pyproject.toml)."""
    script = Path(sys.executable).parent / "seawall-mahavishnu"
    assert script.exists(), (
        "seawall-mahavishnu is not installed: pip install -e . (or maturin develop)"
    )
    return str(script)


# ------------------------------------------------------------------------------------------
# No store: exit 2 and why


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["rules", "list"], {}, ["no store given", "--store", "SEAWALL_STORE"]),
        (["rules", "--store", "memory://", "metrics"], {}, ["memory://", "own memory"]),
        (["rules", "override", "list"], {"SEAWALL_STORE": "memory://"}, ["memory://"]),
        (["rules", "audit", "--store", "host://edge"], {}, ["host://edge", "budgets"]),
    ],
)
def test_without_a_shared_store_seawall_rules_says_why_and_exits_2(
    argv: list[str], env: dict[str, str], named: list[str]
) -> None:
    done = _process(sys.executable, "-m", "seawall", *argv, env=env)
    assert done.returncode == 2, done
    assert done.stdout == ""
    message = " ".join(done.stderr.split())
    assert message.startswith("seawall rules: ") and "Traceback" not in message
    assert WHY in message and 'RulesEngine(store="redis://' in message
    for word in named:
        assert word in message


def test_without_a_store_the_seeds_commands_say_why_and_exit_2() -> None:
    done = _process(_seed_script(), "rate-limit-list")
    assert done.returncode == 2, done
    message = " ".join(done.stderr.split())
    assert message.startswith("seawall-mahavishnu: no store given")
    assert WHY in message and "create_rate_limiter(redis_url=" in message
    assert "--redis-url" in message and "SEAWALL_REDIS_URL" in message
    done = _process(
        sys.executable,
        "-m",
        "seawall.compat.mahavishnu.rate_limiting_cli",
        "rate-limit-metrics",
        env={"SEAWALL_REDIS_URL": "memory://"},
    )
    assert done.returncode == 2 and WHY in " ".join(done.stderr.split()), done


def test_every_command_refuses_a_memory_store_in_process(
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands = [
        ["list"],
        ["add", "--name", "r", "--scope", "global", "--rate", "1", "--window", "1"],
        ["remove", "r"],
        ["override", "add", "--admin", "ops", "--user", "bob", "--unlimited"],
        ["override", "remove", "1", "--admin", "ops"],
        ["override", "list"],
        ["metrics"],
        ["reset-metrics"],
        ["audit"],
    ]
    for command in commands:
        assert seawall_main(["rules", *command, "--store", "memory://"]) == 2, command
        assert WHY in " ".join(capsys.readouterr().err.split()), command
    seed = [
        ["rate-limit-list"],
        ["rate-limit-add", "--name", "r", "--scope", "global", "--rate", "1", "--window", "1"],
        ["rate-limit-remove", "--name", "r"],
        ["rate-limit-override", "--admin", "a", "--user", "u", "--reason", "x", "--unlimited"],
        ["rate-limit-metrics"],
        ["rate-limit-reset", "--rule", "r"],
    ]
    for command in seed:
        assert seed_main([*command, "--redis-url", "memory://"]) == 2, command
        assert WHY in " ".join(capsys.readouterr().err.split()), command


# ------------------------------------------------------------------------------------------
# Usage errors: argparse's, exit 2, naming the option


RULE = "--name r --scope global --rate 1 --window 1"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        ("rules", "COMMAND"),
        ("rules add --scope global --rate 1 --window 1", "--name"),
        ("rules add --name r --scope per_usr --rate 1 --window 1", "--scope"),
        ("rules add --name r --scope global --rate x --window 1", "--rate"),
        ("rules add --name r --scope global --rate 1 --window nan", "--window"),
        (f"rules add {RULE} --strategy soft", "--strategy"),
        (f"rules add {RULE} --algorithm gcra", "--algorithm"),
        ("rules override add --user bob", "--admin"),
        ("rules override add --admin a --unlimited --multiplier 3", "--multiplier"),
        ("rules override remove one --admin a", "ID"),
        ("rules audit --limit many", "--limit"),
    ],
)
def test_usage_errors_exit_2_naming_the_option(
    argv: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        seawall_main([*shlex.split(argv), "--store", "redis://127.0.0.1:1"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and named in err and "Traceback" not in err


def test_the_seeds_commands_take_the_seeds_options() -> None:
    parser = build_parser()
    add = parser.parse_args(
        shlex.split(
            "rate-limit-add --name api_limit --scope per_user --rate 100 --burst 10 --window 60 "
            "--algorithm token_bucket --strategy retry_after"
        )
    )
    assert (add.name, add.scope, add.rate, add.burst) == ("api_limit", "per_user", 100, 10)
    assert (add.window_seconds, add.algorithm, add.strategy) == (60, "token_bucket", "retry_after")
    override = parser.parse_args(
        shlex.split(
            "rate-limit-override --admin admin_123 --user user_456 --reason emergency_access "
            "--duration 60 --unlimited"
        )
    )
    assert (override.admin_id, override.target_user_id) == ("admin_123", "user_456")
    assert (override.reason, override.duration_minutes, override.unlimited) == (
        "emergency_access", 60, True
    )  # fmt: skip
    assert parser.parse_args(["rate-limit-remove", "--name", "api_limit"]).name == "api_limit"
    assert parser.parse_args(["rate-limit-metrics"]).rule is None
    assert parser.parse_args(["rate-limit-metrics", "--rule", "x"]).rule == "x"
    assert parser.parse_args(["rate-limit-reset", "--rule", "x"]).rule == "x"
    with pytest.raises(SystemExit):
        parser.parse_args(["rate-limit-reset"])  # the seed's reset names its rule
    # The store before or after the command's name, by either spelling.
    for argv in (
        ["--redis-url", "redis://h/0", "rate-limit-list"],
        ["rate-limit-list", "--redis-url", "redis://h/0"],
        ["rate-limit-list", "--store", "redis://h/0"],
    ):
        assert parser.parse_args(argv).store == "redis://h/0", argv


def test_the_store_options_are_taken_before_and_after_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Each placement reaches the store check: memory:// is refused wherever it is given.
    for argv in (
        ["rules", "--store", "memory://", "list"],
        ["rules", "list", "--store", "memory://"],
        ["rules", "override", "--store", "memory://", "list"],
        ["rules", "--key-prefix", "p:", "override", "list", "--store", "memory://"],
    ):
        assert seawall_main(argv) == 2, argv
        assert "memory://" in capsys.readouterr().err
