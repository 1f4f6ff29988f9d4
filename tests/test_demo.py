"""``python -m seawall demo``: a real uvicorn server behind RateLimitMiddleware and a breaker,
driven by real HTTP clients. The checks are on counts (who was refused, which key was charged,
whether the breaker opened), never on timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from seawall.__main__ import main
from seawall._demo.traffic import loopback_aliases
from seawall.demo import run

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
pytest.importorskip("starlette")

SECONDS = "2.5"


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    """The demo as a user starts it, with no terminal (as in CI)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "seawall", "demo", "--seconds", SECONDS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    done = _demo("--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _own_key(name: str, summary: dict[str, Any]) -> str:
    """The key the server should charge client ``name``: its address, or its API key where
    the machine has only 127.0.0.1 (macOS)."""
    if summary["clients_identified_by"] == "address":
        return f"ip:{summary['clients'][name]['address']}"
    return f"header:key-{name}"


def test_each_client_is_charged_by_its_own_address(summary: dict[str, Any]) -> None:
    if not loopback_aliases():
        pytest.skip("only 127.0.0.1 on this machine's loopback (Linux has all of 127.0.0.0/8)")
    assert summary["clients_identified_by"] == "address"
    addresses = set()
    for name, client in summary["clients"].items():
        assert client["errors"] == 0, name
        assert client["sent"] > 0, name
        assert client["keys"] == [_own_key(name, summary)] == [f"ip:{client['address']}"], name
        addresses.add(client["address"])
    assert len(addresses) == 4  # four peers, as four machines would be


def test_the_steady_client_is_never_refused(summary: dict[str, Any]) -> None:
    steady = summary["clients"]["steady"]
    assert steady["limited"] == 0
    assert steady["admitted"] == steady["sent"]
    assert steady["login_admitted"] == 1


def test_bursts_and_floods_are_held_to_their_budget(summary: dict[str, Any]) -> None:
    clients = summary["clients"]
    # 25 at once against a burst of 10: the rest is refused before the app sees it.
    assert clients["bursty"]["limited"] > 0
    assert clients["bursty"]["admitted"] < clients["bursty"]["sent"]
    assert clients["abusive"]["limited"] > 0


def test_the_login_route_rule_admits_five(summary: dict[str, Any]) -> None:
    abusive = summary["clients"]["abusive"]
    assert abusive["login_sent"] > 5
    assert abusive["login_admitted"] == 5  # "5/minute": in a run of seconds, exactly 5
    assert abusive["login_limited"] == abusive["login_sent"] - 5


def test_a_forged_forwarded_for_does_not_change_the_key(summary: dict[str, Any]) -> None:
    spoofer = summary["clients"]["spoofer"]
    assert spoofer["forged_headers"] > 10
    assert spoofer["keys"] == [_own_key("spoofer", summary)]
    assert spoofer["limited"] > 0
    # A key per client (four) plus the login rule's keys of the two that log in: no key for
    # any of the forged addresses.
    assert summary["keys_held"] == 6
    assert summary["trusted_proxies"] == []


def test_the_breaker_opens_on_the_outage(summary: dict[str, Any]) -> None:
    breaker = summary["breaker"]
    assert breaker["opened"] >= 1
    assert breaker["transitions"][0] == {
        "at": breaker["transitions"][0]["at"],
        "from": "closed",
        "to": "open",
    }
    failed = sum(c["upstream_failed"] for c in summary["clients"].values())
    refused = sum(c["breaker_open"] for c in summary["clients"].values())
    assert failed == summary["upstream"]["failures"] >= 5
    assert refused == breaker["rejections"]


def test_without_a_terminal_it_prints_a_plain_table() -> None:
    done = _demo()
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "\x1b[" not in out  # no terminal codes in a log
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("client "))
    end = lines.index("", start)
    header, rule, *table = lines[start:end]
    assert header.split() == [
        "client",
        "does",
        "server's",
        "key",
        "sent",
        "admitted",
        "429",
        "503",
        "502",
        "logins",
    ]
    assert set(rule) == {"-", " "}
    rows = {line.split()[0]: line.split() for line in table}
    assert set(rows) == {"steady", "bursty", "abusive", "spoofer"}
    own = loopback_aliases()
    assert ("ip:127.0.0.5" if own else "header:key-spoofer") in rows["spoofer"]
    steady = rows["steady"]
    at = steady.index("ip:127.0.0.2" if own else "header:key-steady")
    sent, admitted, limited = steady[at + 1 : at + 4]
    assert int(sent) > 0
    assert (admitted, limited) == (sent, "0")
    assert any("breaker 'demo-upstream': closed → open" in line for line in lines)


def test_clients_keyed_by_api_key_where_only_127_0_0_1_exists(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(float(SECONDS), output="json", own_addresses=False) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clients_identified_by"] == "X-Api-Key"
    for name, client in summary["clients"].items():
        assert client["address"] == "127.0.0.1"
        assert client["keys"] == [f"header:key-{name}"], name
    assert summary["clients"]["steady"]["limited"] == 0
    assert summary["clients"]["spoofer"]["limited"] > 0
    assert summary["keys_held"] == 6


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf", "601", "soon"])
def test_seconds_out_of_range_is_refused(seconds: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--seconds", seconds])
    assert exc.value.code == 2
    assert "--seconds" in capsys.readouterr().err
