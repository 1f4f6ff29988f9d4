"""``seawall.rules.RulesEngine``: rules as dicts through serde, selection, budgets per rule and
scope, and every bad field named (issue 15, the engine's first part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seawall.rules import RulesEngine, load_rules
from seawall.testing import ManualClock


def engine(clock: ManualClock | None = None, **options: str) -> RulesEngine:
    e = RulesEngine(clock=clock or ManualClock(1_000), **options)
    e.add_rule({"name": "api", "scope": "per_user", "rate": 3, "window_seconds": 60})
    e.add_rule(
        {
            "name": "vip",
            "scope": "per_user",
            "rate": 100,
            "window_seconds": 60,
            "user_ids": ["alice"],
            "priority": 10,
        }
    )
    e.add_rule(
        {
            "name": "search",
            "scope": "per_endpoint",
            "rate": 2,
            "window_seconds": 60,
            "endpoints": ["/api/search*"],
            "strategy": "hard",
            "priority": 5,
        }
    )
    return e


def test_selection_prefers_the_highest_priority_matching_rule() -> None:
    e = engine()
    assert e.select(identifier="user:alice", endpoint="/api/search/x", default="api") == "vip"
    assert e.select(identifier="bob", endpoint="/api/search/x", default="api") == "search"
    assert e.select(identifier="bob", endpoint="/other", default="api") == "api"
    assert e.select(identifier="bob", endpoint="/other") is None
    with pytest.raises(KeyError, match="nope"):
        e.select(identifier="bob", default="nope")


def test_check_counts_per_rule_scope_and_identifier() -> None:
    clock = ManualClock(1_000)
    e = engine(clock)
    assert [e.check("api", "bob").allowed for _ in range(4)] == [True, True, True, False]
    refused = e.check("api", "bob")
    assert (refused.rule, refused.strategy, refused.remaining) == ("api", "retry_after", 0)
    assert refused.retry_after == pytest.approx(20)
    assert e.check("api", "carol").allowed  # another identifier, another budget
    # PER_ENDPOINT: one budget per endpoint, shared by every client; the rule's own strategy.
    got = [e.check("search", f"c{i}", endpoint="/api/search").allowed for i in range(3)]
    assert got == [True, True, False]
    assert e.check("search", "c9", endpoint="/api/search").strategy == "hard"
    clock.advance(20)
    assert e.check("api", "bob").allowed
    assert e.reset("api", "bob") and e.check("api", "bob").remaining == 2


def test_rules_read_back_and_replace() -> None:
    e = engine()
    names = [r["name"] for r in e.rules()]
    assert names == ["api", "vip", "search"]
    assert e.get_rule("vip")["user_ids"] == ["alice"]
    e.add_rule({"name": "api", "scope": "per_user", "rate": 3, "window_seconds": 60, "priority": 1})
    assert [r["name"] for r in e.rules()] == names, "replaced in place"
    assert e.remove_rule("vip") and not e.remove_rule("vip")
    with pytest.raises(KeyError, match="vip"):
        e.get_rule("vip")


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"scope": "per_user", "rate": 1, "window_seconds": 1}, "name"),
        ({"name": "r", "scope": "per_usr", "rate": 1, "window_seconds": 1}, "per_usr"),
        ({"name": "r", "scope": "per_user", "rate": 0, "window_seconds": 1}, "rate"),
        ({"name": "r", "scope": "per_user", "rate": 1, "window_seconds": 0}, "window_seconds"),
        ({"name": "r", "scope": "per_user", "rate": 2, "window_seconds": 1, "burst": 5}, "burst"),
        (
            {"name": "r", "scope": "global", "rate": 1, "window_seconds": 1, "ip_addresses": ["x"]},
            "ip_addresses",
        ),
        ({"name": "r", "scope": "global", "rate": 1, "window_seconds": 1, "rates": 2}, "rates"),
        ({"name": "r", "scope": "global", "rate": "1", "window_seconds": 1}, "rate|string"),
    ],
)
def test_bad_rules_name_their_field_when_added(rule: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RulesEngine().add_rule(rule)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="rule must be a dict"):
        RulesEngine().add_rule([("name", "r")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default_strategy"):
        RulesEngine(default_strategy="soft")
    with pytest.raises(ValueError, match="ip_address"):
        engine().check("api", "bob", ip_address="not an ip")
    with pytest.raises(KeyError, match="missing"):
        engine().check("missing", "bob")


def test_rules_load_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        """
[[rules]]
name = "api"
scope = "per_ip"
rate = 50
window_seconds = 60

[[rules]]
name = "exports"
scope = "per_user"
rate = 10
window_seconds = 60
endpoints = ["/api/export"]
algorithm = "sliding_window"
"""
    )
    e = RulesEngine()
    assert load_rules(e, path) == ["api", "exports"]
    assert e.get_rule("exports")["algorithm"] == "sliding_window"
    path.write_text('[[rules]]\nname = "r"\nscope = "global"\nrate = 0\nwindow_seconds = 1\n')
    with pytest.raises(ValueError, match=r"rules\[0\]: rate"):
        load_rules(RulesEngine(), path)
