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
        (
            {"name": "r", "scope": "global", "rate": 1, "window_seconds": 1, "endpoints": "/api"},
            "endpoints.*list of strings",
        ),
        (
            {"name": "r", "scope": "global", "rate": 1, "window_seconds": 1, "enabled": "no"},
            "enabled.*true or false",
        ),
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


# --------------------------------------------------------------------------------------------
# Admin overrides


def test_an_unlimited_override_lets_a_user_through_without_spending_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(1_000)
    e = engine(clock)
    with caplog.at_level("INFO", logger="seawall.rules.audit"):
        added = e.add_override(
            {
                "target_user_id": "bob",
                "unlimited": True,
                "duration_minutes": 10,
                "reason": "incident 42",
                "admin_id": "ops-1",
            }
        )
    assert added["override_id"] == 1 and added["expires_at"] == pytest.approx(1_600)
    decisions = [e.check("api", "user:bob") for _ in range(10)]
    assert all(d.allowed and d.override_id == 1 for d in decisions)
    assert e.check_override(user_id="bob")["reason"] == "incident 42"  # type: ignore[index]
    # No budget was spent: once the override ends, bob has his whole limit.
    clock.advance(600)
    assert [e.check("api", "user:bob").allowed for _ in range(4)] == [True, True, True, False]
    actions = [entry["action"] for entry in e.audit_log()]
    assert actions == ["add", "expire"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("override 1 added by 'ops-1'" in m for m in messages)


def test_a_multiplied_override_and_an_address_target() -> None:
    clock = ManualClock(1_000)
    e = engine(clock)
    e.add_override({"target_ip_address": "10.0.0.0/8", "multiplier": 2, "admin_id": "ops"})
    got = [e.check("api", "carol", ip_address="10.1.2.3") for _ in range(7)]
    assert [d.allowed for d in got] == [True] * 6 + [False]  # twice the 3 a minute
    assert e.check("api", "dave", ip_address="192.0.2.1").limit == 3  # not covered
    assert e.check_override(ip_address="10.9.9.9") is not None
    assert e.check_override(ip_address="11.0.0.1") is None
    (live,) = e.overrides()
    assert e.remove_override(live["override_id"], admin_id="ops-2")
    assert not e.remove_override(live["override_id"])
    assert e.overrides() == []
    last = e.audit_log(limit=1)[0]
    assert (last["action"], last["admin_id"]) == ("remove", "ops-2")


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"unlimited": True}, "target"),
        ({"target_ip_address": "10.0.0.0/99", "unlimited": True}, "target_ip_address"),
        ({"target_user_id": "u", "unlimited": True, "duration_minutes": 0}, "duration_minutes"),
        ({"target_user_id": "u", "unlimited": True, "duration_minutes": 10**6}, "maximum"),
        ({"target_user_id": "u", "multiplier": 0.5}, "multiplier"),
        ({"target_user_id": "u", "unlimited": "yes"}, "unlimited"),
        ({"target_user": "u"}, "target_user"),
    ],
)
def test_bad_overrides_are_refused_naming_the_field(
    request_: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        engine().add_override(request_)


# --------------------------------------------------------------------------------------------
# Metrics per rule


def test_metrics_count_the_limiters_verdicts_and_reset_without_touching_budgets() -> None:
    e = engine()
    for _ in range(5):
        e.check("api", "bob", endpoint="/items", ip_address="192.0.2.7")
    m = e.get_metrics("api")
    assert (m["total_requests"], m["allowed_requests"], m["denied_requests"]) == (5, 3, 2)
    assert m["hit_rate"] == pytest.approx(0.4)
    assert m["violations_by_user"]["entries"] == [{"key": "bob", "count": 2, "error": 0}]
    assert m["violations_by_ip"]["entries"][0]["key"] == "192.0.2.7"
    assert m["violations_by_endpoint"]["entries"][0]["key"] == "/items"
    assert set(e.get_all_metrics()) == {"api", "vip", "search"}
    e.reset_metrics("api")
    assert e.get_metrics("api")["total_requests"] == 0
    assert not e.check("api", "bob").allowed, "a reset of metrics leaves the budgets"
    e.reset_metrics()
    with pytest.raises(KeyError, match="nope"):
        e.get_metrics("nope")


def test_a_flood_of_distinct_identifiers_keeps_the_violations_bounded() -> None:
    e = RulesEngine(clock=ManualClock(1_000))
    e.add_rule({"name": "g", "scope": "global", "rate": 1, "window_seconds": 3600})
    n = 100_000
    for i in range(n):
        e.check("g", f"client-{i}", ip_address=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    m = e.get_metrics("g")
    assert m["denied_requests"] == n - 1
    for by in ("violations_by_user", "violations_by_ip"):
        summary = m[by]
        assert len(summary["entries"]) == summary["capacity"] == 1000
        assert summary["total"] == n - 1


def test_throttle_books_slots_and_graceful_marks_degraded() -> None:
    e = RulesEngine(clock=ManualClock(1_000))
    e.add_rule(
        {
            "name": "slow",
            "scope": "per_user",
            "rate": 2,
            "window_seconds": 60,
            "strategy": "throttle",
            "max_delay": 45,
        }
    )
    e.add_rule(
        {"name": "soft", "scope": "global", "rate": 1, "window_seconds": 60, "strategy": "graceful"}
    )
    got = [e.check("slow", "x") for _ in range(5)]
    assert [d.allowed for d in got] == [True, True, False, False, False]
    assert [d.delay for d in got] == pytest.approx([0, 0, 30, 0, 0])  # one slot within 45 s
    assert got[2].strategy == "throttle"
    e.check("soft", "a")
    degraded = e.check("soft", "b")
    assert not degraded.allowed and degraded.degraded
