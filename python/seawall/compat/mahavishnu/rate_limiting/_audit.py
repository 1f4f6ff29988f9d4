"""The drop-in's audit records: one INFO record per override added, removed or expired through an
engine, on the ``seawall.compat.mahavishnu.audit`` logger (A12), the entry's fields in
``extra["seawall_override"]``.

The native engine writes the same actions to its own ``seawall.rules.audit`` logger. The drop-in
writes adds and removals as it makes them; an expiry is found on the native audit log (shared on
Redis) when seawall's clock has passed the earliest expiry of an override this engine added (one
clock reading per check while any is pending, nothing otherwise), so that each expiry is logged
once, by the engine that added the override."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from seawall._time import now
from seawall.rules import RulesEngine

__all__ = ["AUDIT_LOGGER", "AuditTrail"]

AUDIT_LOGGER = "seawall.compat.mahavishnu.audit"
logger = logging.getLogger(AUDIT_LOGGER)

# A due expiry not yet in the store's log is looked for again after RETRY seconds, TRIES times.
RETRY = 0.05
TRIES = 40

_DONE = {"add": "added", "remove": "removed", "expire": "expired"}


def log_entry(entry: dict[str, Any]) -> None:
    """One native audit entry as an INFO record."""
    logger.info(
        "override %s %s by %r (user %r, address %r): %s",
        entry["override_id"],
        _DONE.get(entry["action"], entry["action"]),
        entry["admin_id"],
        entry["target_user_id"],
        entry["target_ip_address"],
        entry["reason"],
        extra={"seawall_override": entry},
    )


class AuditTrail:
    """The overrides an engine added and has not yet seen end, by id, with their expiry."""

    def __init__(self, native: RulesEngine, clock: Any) -> None:
        self._native = native
        self._clock = clock
        self._pending: dict[int, float] = {}
        self._next: float | None = None
        self._lock = threading.Lock()
        self._quiet_until = 0.0
        self._tries = 0

    def added(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._pending[record["override_id"]] = record["expires_at"]
            self._next = min(self._pending.values())
        self._log_last("add", record["override_id"])

    def removed(self, override_id: int) -> None:
        with self._lock:
            self._pending.pop(override_id, None)
            self._next = min(self._pending.values(), default=None)
        self._log_last("remove", override_id)

    def _log_last(self, action: str, override_id: int) -> None:
        for entry in reversed(self._native.audit_log(limit=16)):
            if entry["action"] == action and entry["override_id"] == override_id:
                log_entry(entry)
                return

    def poll(self) -> None:
        """Logs the expiries that seawall's clock has reached (one clock reading when none is
        due). On Redis the store logs an expiry a moment later (the one engine whose removal
        succeeds does), so a due override not yet in the log is looked for again, at most every
        ``RETRY`` seconds, ``TRIES`` times; one ended otherwise (removed by another engine) is
        dropped without a record of this engine's."""
        if self._next is None or now(self._clock) < self._next:
            return
        if time.monotonic() < self._quiet_until:
            return
        # Reading the native log makes the engine expire what is due, on its clock.
        entries = self._native.audit_log(limit=10_000)
        with self._lock:
            ended = [
                e
                for e in entries
                if e["action"] in ("expire", "remove") and e["override_id"] in self._pending
            ]
            for entry in ended:
                del self._pending[entry["override_id"]]
            self._tries += 1
            due = [i for i, at in self._pending.items() if at <= now(self._clock)]
            if due and self._tries >= TRIES:
                for i in due:
                    del self._pending[i]
            if not due or self._tries >= TRIES:
                self._tries = 0
            self._quiet_until = time.monotonic() + RETRY if due else 0.0
            self._next = min(self._pending.values(), default=None)
        for entry in ended:
            if entry["action"] == "expire":
                log_entry(entry)
