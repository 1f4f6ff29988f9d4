"""The VoiceHive service's routers (seed 003, 3.7): ``routers.resilience``."""

from __future__ import annotations

__all__: list[str] = []
