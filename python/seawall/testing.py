"""Test aids: a clock you move by hand, and a way to make it everyone's clock.

``freezegun`` cannot reach a clock read in Rust; these can. ``use_clock(clock)`` makes ``clock`` the
default clock of every seawall object built without ``clock=``, including ones built before (such
as module-level limiters), until the ``with`` block ends. The pytest fixture ``seawall_clock`` does
this for one test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from seawall._seawall import ManualClock, get_default_clock, set_default_clock

__all__ = ["ManualClock", "get_default_clock", "use_clock"]


@contextmanager
def use_clock(clock: ManualClock | None) -> Iterator[ManualClock | None]:
    """Make ``clock`` the default clock inside the ``with`` block (``None``: the system clock).

    The default is process-wide; the previous default is restored on exit, so blocks nest.
    """
    if clock is not None and not isinstance(clock, ManualClock):
        raise TypeError(f"clock must be a ManualClock or None, got {type(clock).__name__}")
    previous = set_default_clock(clock)
    try:
        yield clock
    finally:
        set_default_clock(previous)
