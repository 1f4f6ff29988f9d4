"""The resilience router's response models (the service's names; 3.7). Datetimes serialise as
ISO 8601."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

__all__ = [
    "BackpressureStatsResponse",
    "CircuitBreakerStatsResponse",
    "RateLimitStatsResponse",
    "ResilienceHealthResponse",
    "ResilienceMetricsResponse",
]


class ResilienceHealthResponse(BaseModel):
    status: str
    initialized: bool
    startup_time: datetime | None
    environment: str
    redis_connected: bool
    components: dict[str, Any]


class ResilienceMetricsResponse(BaseModel):
    timestamp: datetime
    environment: str
    rate_limiter: dict[str, Any]
    circuit_breakers: dict[str, dict[str, Any]]
    backpressure: dict[str, dict[str, Any]]


class CircuitBreakerStatsResponse(BaseModel):
    name: str
    state: str
    failure_count: int
    success_count: int
    last_failure_time: datetime | None
    last_success_time: datetime | None
    total_requests: int
    total_failures: int
    total_successes: int
    next_attempt_time: datetime | None


class BackpressureStatsResponse(BaseModel):
    name: str
    current_queue_size: int
    max_queue_size: int
    current_memory_mb: float
    max_memory_mb: float
    total_processed: int
    total_dropped: int
    total_blocked: int
    average_processing_time: float
    strategy: str
    in_flight: int
    total_failed: int


class RateLimitStatsResponse(BaseModel):
    client_id: str
    stats: dict[str, dict[str, int]]
