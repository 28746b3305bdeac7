"""What sagas hands to other apps: small frozen dataclasses, never models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SagaRunDTO:
    id: int
    saga_type: str
    subject_id: str
    status: str
    step_index: int
    step: str
    direction: str
    attempts: int
    next_attempt_at: datetime | None
    lease_owner: str
    lease_expires_at: datetime | None
    last_error: str
    failure_code: str
    context: dict[str, Any]
    abort_requested: bool
    sla_at: datetime
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StepLogDTO:
    id: int
    run_id: int
    step: str
    direction: str
    attempt: int
    outcome: str
    error: str
    duration_ms: int
    worker: str
    started_at: datetime


@dataclass(frozen=True)
class SagaActionDTO:
    id: int
    run_id: int
    action: str
    by_id: int | None
    by_username: str
    reason: str
    from_status: str
    to_status: str
    step: str
    direction: str
    created_at: datetime
