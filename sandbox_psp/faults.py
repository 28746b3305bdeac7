"""Fault injection. The settings live in the sandbox database (one row) so every
worker process and thread sees them; each /v1 request draws one decision.

With a seed, decision n (the n-th request since the faults were set) is computed
from Random("<seed>:<n>") alone, so running the same requests in the same order
misbehaves the same way. Without a seed the rolls come from fresh randomness.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.db import connection

from .errors import ApiError
from .models import Faults
from .validation import json_number

RATE_FIELDS = (
    "error_rate",
    "error_after_commit_rate",
    "timeout_after_commit_rate",
    "decline_rate",
    "duplicate_webhook_rate",
)
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_SEED = 2**62


@dataclass(frozen=True)
class FaultDecision:
    latency_ms: int = 0
    error: bool = False
    error_after_commit: bool = False
    timeout_after_commit: bool = False
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    decline: bool = False
    duplicate_webhook: bool = False


NO_FAULTS = FaultDecision()


def _singleton() -> Faults:
    faults, _ = Faults.objects.get_or_create(pk=1)
    return faults


def as_api(faults: Faults) -> dict:
    return {
        **{name: getattr(faults, name) for name in RATE_FIELDS},
        "latency_ms": faults.latency_ms,
        "timeout_seconds": faults.timeout_seconds,
        "seed": faults.seed,
        "draws": faults.draws,
    }


def current() -> dict:
    return as_api(_singleton())


def replace(data: dict) -> dict:
    """Set every fault from `data`; omitted ones go back to their defaults (DESIGN §5)."""
    allowed = {*RATE_FIELDS, "latency_ms", "timeout_seconds", "seed"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(400, "parameter_unknown", f"Unknown fault: {unknown[0]}.", {"param": unknown[0]})
    values: dict = {name: json_number(data.get(name, 0), name, minimum=0, maximum=1) for name in RATE_FIELDS}
    latency = data.get("latency_ms", 0)
    values["latency_ms"] = int(json_number(latency, "latency_ms", minimum=0, maximum=60_000))
    timeout = data.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    values["timeout_seconds"] = json_number(timeout, "timeout_seconds", minimum=0, maximum=600)
    seed = data.get("seed")
    if seed is not None and (type(seed) is not int or abs(seed) > MAX_SEED):
        raise ApiError(400, "parameter_invalid", "seed must be an integer or null.", {"param": "seed"})
    values["seed"] = seed
    values["draws"] = 0  # a new seed starts a new, reproducible sequence
    Faults.objects.update_or_create(pk=1, defaults=values)
    return current()


def clear() -> dict:
    return replace({})


def _active(faults: Faults) -> bool:
    return faults.latency_ms > 0 or any(getattr(faults, name) > 0 for name in RATE_FIELDS)


def draw() -> FaultDecision:
    faults = Faults.objects.filter(pk=1).first()
    if faults is None or not _active(faults):
        return NO_FAULTS  # the common case costs one read and no write
    # Atomic increment: concurrent requests each get their own draw number.
    table = connection.ops.quote_name(Faults._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET draws = draws + 1 WHERE id = 1 RETURNING draws")  # noqa: S608
        (draw_number,) = cursor.fetchone()
    rng = random.Random(f"{faults.seed}:{draw_number}") if faults.seed is not None else random.Random()
    # Always roll every fault, in a fixed order, so one fault's rate does not shift
    # the others' sequences.
    rolls = {name: rng.random() < getattr(faults, name) for name in RATE_FIELDS}
    return FaultDecision(
        latency_ms=faults.latency_ms,
        error=rolls["error_rate"],
        error_after_commit=rolls["error_after_commit_rate"],
        timeout_after_commit=rolls["timeout_after_commit_rate"],
        timeout_seconds=faults.timeout_seconds,
        decline=rolls["decline_rate"],
        duplicate_webhook=rolls["duplicate_webhook_rate"],
    )
