"""The live seawall objects that metrics exporters read at scrape time, held weakly.

Constructors call :func:`track` once; nothing is done per decision. Each object gets a
sequence number at construction, so exporters list them in a stable order.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any

_lock = threading.Lock()
_seq = itertools.count()
_live: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def track(obj: Any) -> None:
    """Registers ``obj`` (held weakly) for the metrics exporters."""
    with _lock:
        _live[obj] = next(_seq)


def live() -> list[Any]:
    """The live tracked objects, oldest first."""
    with _lock:
        items = list(_live.items())
    items.sort(key=lambda item: item[1])
    return [obj for obj, _ in items]
