"""Seed 002's drop-in: admin overrides, their audit, and the metrics of a rule (SEEDS-002-003.md,
A10 to A14, A22), on seawall's clock."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest
from test_compat_mahavishnu_rules import T0, allowed, limiter, rule

from seawall.compat.mahavishnu.rate_limiting import (
    LimitScope,
    OverrideReason,
    OverrideRequest,
)
from seawall.testing import ManualClock

# --------------------------------------------------------------------------------------------
# Overrides: A10, A11, A12, A22


def test_a10_an_override_needs_a_target_and_a_sane_duration() -> None:
    with pytest.raises(ValueError, match="target"):
        OverrideRequest(admin_id="a", reason=OverrideReason.TEMPORARY_GRANT, unlimited=True)
    for minutes in (0, -5):
        with pytest.raises(ValueError, match="duration_minutes"):
            OverrideRequest(admin_id="a", reason="r", target_user_id="u", duration_minutes=minutes)
    with pytest.raises(ValueError, match="target_ip_address"):
        OverrideRequest(admin_id="a", reason="r", target_ip_address="10.0.0.0/40")


def test_a11_a12_override_times_on_seawalls_clock_and_the_audit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(T0)
    engine = limiter(clock, rule(rate=1))
    request = OverrideRequest(
        admin_id="admin_123",
        target_user_id="user_456",
        reason=OverrideReason.EMERGENCY_ACCESS,
        duration_minutes=60,
        unlimited=True,
    )
    with caplog.at_level(logging.INFO, logger="seawall.compat.mahavishnu.audit"):
        record = engine.add_override_sync(request)
        again = engine.add_override_sync(request)
        start = datetime.fromtimestamp(T0, tz=timezone.utc)
        assert record.created_at == start and record.created_at.tzinfo is not None
        assert record.expires_at == start + timedelta(minutes=60)
        assert (
            record.request == request and record.request.reason is OverrideReason.EMERGENCY_ACCESS
        )
        assert again.override_id != record.override_id  # a new record each time
        assert engine.remove_override_sync(again.override_id, admin_id="admin_9")
        clock.advance(59 * 60)
        assert engine.check_override_sync(user_id="user_456") == record
        clock.advance(60)  # expiry is checked on seawall's clock
        assert allowed(engine, 2, "user_456") == [True, False]
    assert engine.check_override_sync(user_id="user_456") is None
    log = engine.get_audit_log_sync()
    assert [(e.action, e.override_id) for e in log] == [
        ("add", record.override_id),
        ("add", again.override_id),
        ("remove", again.override_id),
        ("expire", record.override_id),
    ]
    assert log[2].admin_id == "admin_9" and log[0].reason is OverrideReason.EMERGENCY_ACCESS
    assert log[3].at == record.expires_at
    audit = [r for r in caplog.records if r.name == "seawall.compat.mahavishnu.audit"]
    assert [r.getMessage().split()[2] for r in audit] == ["added", "added", "removed", "expired"]
    assert all(r.levelno == logging.INFO for r in audit)
    assert audit[0].seawall_override["admin_id"] == "admin_123"  # type: ignore[attr-defined]


def test_a22_overrides_match_users_and_addresses_and_spend_no_budget() -> None:
    clock = ManualClock(T0)
    engine = limiter(clock, rule(rate=2), rule("ip", LimitScope.PER_IP, rate=2))
    engine.add_override_sync(
        OverrideRequest(admin_id="a", reason="r", target_user_id="bob", multiplier=3.0)
    )
    grant = engine.add_override_sync(
        OverrideRequest(admin_id="a", reason="r", target_user_id="bob", unlimited=True)
    )
    net = engine.add_override_sync(
        OverrideRequest(admin_id="a", reason="r", target_ip_address="10.0.0.0/8", multiplier=2)
    )
    found = engine.check_override_sync(user_id="bob")
    assert found is not None and found.override_id == grant.override_id  # unlimited first
    assert engine.check_override_sync(ip_address="10.1.2.3") == net
    assert engine.check_override_sync(user_id="carol", ip_address="192.0.2.1") is None
    assert engine.check_override_sync() is None
    through = [engine.check_limit_sync("user:bob", "r") for _ in range(5)]
    assert all(d.allowed and d.override_id == grant.override_id for d in through)
    engine.remove_override_sync(grant.override_id)
    assert allowed(engine, 3, "user:bob") == [True] * 3  # no budget was spent; now 3x
    ips = [engine.check_limit_sync("x", "ip", ip_address="10.9.9.9").allowed for _ in range(5)]
    assert ips == [True] * 4 + [False]  # twice the 2


# --------------------------------------------------------------------------------------------
# Metrics: A13, A14


def test_a13_hit_rate_and_resets_that_leave_budgets() -> None:
    engine = limiter(ManualClock(T0), rule(rate=3))
    fresh = engine.get_metrics_sync("r")
    assert (fresh.total_requests, fresh.calculate_hit_rate()) == (0, 0.0)
    assert fresh.violations_by_user == {}
    for _ in range(5):
        engine.check_limit_sync("u", "r", endpoint="/items", ip_address="192.0.2.7")
    m = engine.get_metrics_sync("r")
    assert (m.total_requests, m.allowed_requests, m.denied_requests) == (5, 3, 2)
    assert m.calculate_hit_rate() == pytest.approx(0.4)
    assert m.violations_by_user == {"u": 2} and m.violations_by_ip == {"192.0.2.7": 2}
    assert m.violations_by_endpoint == {"/items": 2}
    assert m.avg_tokens_remaining == pytest.approx((2 + 1 + 0 + 0 + 0) / 5)
    assert set(engine.get_all_metrics_sync()) == {"r"}
    engine.reset_metrics_sync("r")
    assert engine.get_metrics_sync("r").total_requests == 0
    assert not engine.check_limit_sync("u", "r").allowed  # still at its limit
    engine.reset_metrics_sync()
    assert engine.get_metrics_sync("r").violations_by_user == {}


def test_a14_a_flood_of_identifiers_keeps_the_violations_bounded() -> None:
    engine = limiter(ManualClock(T0), rule("g", LimitScope.GLOBAL, rate=1, window_seconds=3600))
    n = 3000
    for i in range(n):
        engine.check_limit_sync(f"client-{i}", "g")
    m = engine.get_metrics_sync("g")
    assert m.denied_requests == n - 1
    assert len(m.violations_by_user) <= 1000
    assert sum(m.violations_by_user.values()) + m.other_user_violations == n - 1
    assert m.other_user_violations > 0


def test_check_limit_matches_user_overrides_by_user_id() -> None:
    """A22: ``user_id=`` names the user an override targets when the identifier is another."""
    from seawall.compat.mahavishnu.rate_limiting import (
        LimitScope,
        OverrideReason,
        OverrideRequest,
        RateLimitRule,
        create_rate_limiter,
    )
    from seawall.testing import ManualClock

    limiter = create_rate_limiter(clock=ManualClock(1_000))
    limiter.add_rule_sync(
        RateLimitRule(name="ip", scope=LimitScope.PER_IP, rate=1, burst=1, window_seconds=60)
    )
    limiter.add_override_sync(
        OverrideRequest(
            admin_id="ops",
            target_user_id="alice",
            reason=OverrideReason.EMERGENCY_ACCESS,
            duration_minutes=5,
            unlimited=True,
        )
    )
    who = "ip:203.0.113.7"
    assert all(limiter.check_limit_sync(who, "ip", user_id="alice").allowed for _ in range(3))
    assert [limiter.check_limit_sync(who, "ip").allowed for _ in range(2)] == [True, False]
