"""The pytest plugin (registered through the ``pytest11`` entry point): the ``seawall_clock``
fixture, a :class:`~seawall.testing.ManualClock` that is the default clock for one test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from seawall.testing import ManualClock, use_clock


@pytest.fixture
def seawall_clock() -> Iterator[ManualClock]:
    """A manual clock, installed as seawall's default clock for the duration of the test."""
    clock = ManualClock()
    with use_clock(clock):
        yield clock
