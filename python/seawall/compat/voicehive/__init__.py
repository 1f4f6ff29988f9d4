"""Drop-in for the VoiceHive orchestrator's resilience package (seed 003, issue 16).

Change the service's imports, nothing else; see docs/drop-ins/voicehive.md and
docs/drop-ins/voicehive-manager.md. Modules: ``rate_limiter``, ``rate_limit_middleware``,
``circuit_breaker``, ``resilience_config``, ``backpressure_handler``, ``resilience_manager``,
``routers.resilience``.
"""

from __future__ import annotations

__all__: list[str] = []
