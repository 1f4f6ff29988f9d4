"""The rules CLI (issue 15, item 6; A15): ``python -m seawall rules ...`` and the seed's command
names under ``seawall-mahavishnu``, run against real redis-servers.

Without a store (or with one no other process shares rules through) every command explains why
a command-line process cannot see a running server's memory and exits 2; usage errors are
argparse's (exit 2); input the engine refuses is one line naming the field or the rule (exit 1),
never a traceback. With Redis, what one command writes the next command (a process of its own)
and an engine in this process read back.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis_servers import RedisServer, free_port

from seawall.__main__ import main as seawall_main
from seawall.compat.mahavishnu.rate_limiting_cli import build_parser
from seawall.compat.mahavishnu.rate_limiting_cli import main as seed_main
from seawall.rules import RulesEngine

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
    # Without --duration, OverrideRequest's 60 minutes.
    bare = parser.parse_args(["rate-limit-override", "--admin", "a", "--user", "u"])
    assert (bare.duration_minutes, bare.unlimited, bare.multiplier) == (60, False, None)
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


# ------------------------------------------------------------------------------------------
# On a real Redis: what a command writes, a server's engine and the next command read


@dataclass
class Store:
    url: str
    prefix: str

    def engine(self) -> RulesEngine:
        """An engine as a server builds it, on this store and prefix."""
        return RulesEngine(store=self.url, key_prefix=self.prefix)


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Store:
    return Store(redis_url, redis_prefix.rstrip(":"))


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self
        return json.loads(self.out)


def rules(store: Store, command: str, capsys: pytest.CaptureFixture[str]) -> Ran:
    """``python -m seawall rules <command>`` on ``store`` (in this process: each command builds
    its own engine, as its own process would)."""
    argv = ["rules", *shlex.split(command), "--store", store.url, "--key-prefix", store.prefix]
    code = seawall_main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return Ran(code, out, err)


API = "--name api --scope per_user --rate 3 --window 60"


def test_rules_added_and_removed_by_the_cli_are_the_servers_rules(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    server = store.engine()
    added = rules(store, f"add {API} --strategy hard", capsys)
    assert added.code == 0, added
    assert added.out.startswith("rule 'api' added\n") and "per_user" in added.out
    server.sync()
    assert server.get_rule("api")["rate"] == 3 and server.get_rule("api")["strategy"] == "hard"
    # The rule's numbers, in the server: 3 a minute.
    assert [server.check("api", "bob").allowed for _ in range(4)] == [True, True, True, False]
    server.add_rule(
        {
            "name": "vip",
            "scope": "per_user",
            "rate": 100,
            "window_seconds": 60,
            "user_ids": ["alice"],
            "priority": 10,
        }
    )
    listed = {r["name"]: r for r in rules(store, "list --json", capsys).json()}
    assert set(listed) == {"api", "vip"}
    assert listed["vip"]["user_ids"] == ["alice"] and listed["vip"]["priority"] == 10
    table = rules(store, "list", capsys)
    assert table.code == 0 and table.out.splitlines()[0].split()[:3] == ["NAME", "SCOPE", "RATE"]
    assert "alice" in table.out and "3/60s" in table.out
    replaced = rules(store, f"add {API} --priority 1", capsys)
    assert replaced.out.startswith("rule 'api' replaced\n"), replaced
    assert rules(store, "remove api", capsys).out == "rule 'api' removed\n"
    server.sync()
    with pytest.raises(KeyError, match="api"):
        server.get_rule("api")
    again = rules(store, "remove api", capsys)
    assert (again.code, again.out) == (1, "")
    assert again.err == "seawall rules: no rule named 'api' (see the list command)\n"


@pytest.mark.parametrize(
    ("command", "named"),
    [
        ("add --name r --scope global --rate 0 --window 60", "rate"),
        ("add --name r --scope global --rate 2 --burst 5 --window 60", "burst"),
        ("add --name r --scope global --rate 2 --window 0", "window_seconds"),
        ("add --name r --scope global --rate 2 --window 60 --ip 10.0.0.0/99", "ip_addresses"),
        ("add --name '' --scope global --rate 2 --window 60", "name"),
        ("override add --admin ops --unlimited", "target"),
        ("override add --admin ops --ip 10.0.0.0/99 --unlimited", "target_ip_address"),
        ("override add --admin ops --user u --unlimited --duration 0", "duration_minutes"),
        ("override add --admin ops --user u --multiplier 0.5", "multiplier"),
        ("override remove 999 --admin ops", "999"),
        ("metrics --rule nope", "nope"),
        ("reset-metrics --rule nope", "nope"),
    ],
)
def test_input_the_engine_refuses_is_one_line_naming_the_field_and_exit_1(
    store: Store, command: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = rules(store, command, capsys)
    assert (ran.code, ran.out) == (1, ""), ran
    assert ran.err.startswith("seawall rules: ") and ran.err.count("\n") == 1
    assert named in ran.err
    assert store.engine().rules() == []  # nothing was written


def test_overrides_through_the_cli_are_in_force_in_the_server_and_audited(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    server = store.engine()
    server.add_rule({"name": "api", "scope": "per_user", "rate": 1, "window_seconds": 3600})
    record = rules(
        store,
        "override add --admin ops-1 --user bob --unlimited --duration 10 --reason 'incident 42'"
        " --json",
        capsys,
    ).json()
    assert (record["target_user_id"], record["unlimited"], record["reason"]) == (
        "bob", True, "incident 42",
    )  # fmt: skip
    server.sync()
    assert all(server.check("api", "user:bob").allowed for _ in range(5))
    assert not [server.check("api", "user:carol").allowed for _ in range(2)][1]
    listed = rules(store, "override list", capsys)
    assert "bob" in listed.out and "unlimited" in listed.out and "incident 42" in listed.out
    oid = record["override_id"]
    assert rules(store, f"override remove {oid} --admin ops-2", capsys).out == (
        f"override {oid} removed\n"
    )
    server.sync()
    assert server.check_override(user_id="bob") is None
    assert rules(store, "override list --json", capsys).json() == []
    log = rules(store, "audit --json", capsys).json()
    assert [(e["action"], e["admin_id"]) for e in log] == [("add", "ops-1"), ("remove", "ops-2")]
    assert "remove" in rules(store, "audit", capsys).out


def test_metrics_are_the_servers_and_reset_leaves_the_budgets(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    server = store.engine()
    server.add_rule({"name": "api", "scope": "per_user", "rate": 3, "window_seconds": 3600})
    for _ in range(5):
        server.check("api", "bob", endpoint="/items", ip_address="192.0.2.7")
    server.sync()  # flushes this engine's counts to the store
    shown = rules(store, "metrics --rule api --json", capsys).json()
    m = shown["api"]
    assert (m["total_requests"], m["allowed_requests"], m["denied_requests"]) == (5, 3, 2)
    assert m["violations_by_user"]["entries"][0]["key"] == "bob"
    text = rules(store, "metrics --rule api", capsys).out
    assert "40.0%" in text and "violations by user" in text and "192.0.2.7" in text
    assert set(rules(store, "metrics --json", capsys).json()) == {"api"}
    assert rules(store, "reset-metrics --rule api", capsys).code == 0
    assert rules(store, "metrics --json", capsys).json()["api"]["total_requests"] == 0
    assert not server.check("api", "bob").allowed, "a reset of metrics leaves the budgets"


def test_the_seeds_commands_on_redis(store: Store) -> None:
    """``seawall-mahavishnu`` as the seed documents it, each command a process of its own."""
    env = {"SEAWALL_REDIS_URL": store.url}
    prefix = ["--key-prefix", store.prefix]

    def seed(command: str) -> subprocess.CompletedProcess[str]:
        done = _process(_seed_script(), *shlex.split(command), *prefix, env=env)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done
        return done

    seed(
        "rate-limit-add --name api_limit --scope per_user --rate 100 --burst 10 --window 60 "
        "--algorithm token_bucket --strategy retry_after"
    )
    assert "api_limit" in seed("rate-limit-list").stdout
    server = store.engine()
    assert server.get_rule("api_limit")["burst"] == 10
    seed(
        "rate-limit-override --admin admin_123 --user user_456 --reason emergency_access "
        "--duration 60 --unlimited"
    )
    server.sync()
    assert server.check_override(user_id="user_456") is not None
    server.check("api_limit", "user:carol")
    server.sync()
    assert "api_limit" in seed("rate-limit-metrics --rule api_limit").stdout
    metrics = json.loads(seed("rate-limit-metrics --json").stdout)
    assert metrics["api_limit"]["total_requests"] == 1
    seed("rate-limit-reset --rule api_limit")
    assert server.get_metrics("api_limit")["total_requests"] == 0
    seed("rate-limit-remove --name api_limit")
    server.sync()
    assert server.rules() == []
    done = _process(_seed_script(), "rate-limit-remove", "--name", "api_limit", *prefix, env=env)
    assert done.returncode == 1 and "api_limit" in done.stderr and "Traceback" not in done.stderr


def test_a_store_that_cannot_be_reached_is_one_line_and_exit_1() -> None:
    done = _process(
        sys.executable, "-m", "seawall", "rules", "list",
        "--store", f"redis://127.0.0.1:{free_port()}",
    )  # fmt: skip
    assert done.returncode == 1, done
    assert done.stderr.startswith("seawall rules: the store failed: ")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_the_seeds_cli_and_the_drop_in_share_rules_and_overrides(
    redis_server: RedisServer,
) -> None:
    """What ``seawall-mahavishnu`` writes, ``create_rate_limiter(redis_url=...)`` reads: the
    same store and default key prefix, the seed's reason a member of ``OverrideReason``."""
    mahavishnu = pytest.importorskip("seawall.compat.mahavishnu.rate_limiting")
    env = {"SEAWALL_REDIS_URL": redis_server.url}
    for command in (
        "rate-limit-add --name api_limit --scope per_user --rate 2 --burst 2 --window 60",
        "rate-limit-override --admin admin_123 --user user_456 --reason emergency_access "
        "--duration 60 --unlimited",
    ):
        done = _process(_seed_script(), *shlex.split(command), env=env)
        assert done.returncode == 0, done
    limiter = mahavishnu.create_rate_limiter(redis_url=redis_server.url)
    (rule,) = limiter.list_rules_sync()
    assert (rule.name, rule.scope, rule.rate, rule.burst) == (
        "api_limit", mahavishnu.LimitScope.PER_USER, 2, 2,
    )  # fmt: skip
    record = limiter.check_override_sync(user_id="user_456")
    assert record is not None
    assert record.request.reason is mahavishnu.OverrideReason.EMERGENCY_ACCESS
    allowed = [limiter.check_limit_sync("carol", "api_limit").allowed for _ in range(3)]
    assert allowed == [True, True, False]
