"""``seawall.host``: the host stores of this machine (``store="host://NAME"``).

A host store is a named shared-memory segment that every worker of an app maps; it outlives the
workers (limits survive restarts) until it is removed here, or the machine restarts.
"""

from __future__ import annotations

from seawall import _seawall
from seawall._host import HostLimiter

__all__ = ["HostLimiter", "remove"]


def remove(name: str) -> bool:
    """Removes the host store ``name``; whether there was one. Processes that still map it keep
    their copy; processes that open the name afterwards make a new one. Remove a store only when
    no worker uses it (or to start every budget afresh on purpose)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    return _seawall.remove_host_store(name)
