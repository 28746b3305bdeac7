"""One reconciliation pass: sync provider records, run every detector, report, auto-resolve.

Each detector's report + auto-resolve commits on its own, so one failing detector costs
only its own result; the run row records what happened (errors included).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from reconciliation.choices import RunStatus
from reconciliation.detectors import DetectionContext, Detector, detectors_all
from reconciliation.errors import ReconcileBusy
from reconciliation.models import ReconciliationRun

from .incidents import incidents_auto_resolve, incidents_report
from .provider_records import (
    ProviderClientLike,
    SyncResult,
    provider_records_sync,
    provider_unavailable_errors,
)

logger = logging.getLogger(__name__)

# pg_try_advisory_lock key: one pass at a time across workers, beat ticks and the command.
_LOCK_KEY = zlib.crc32(b"concord.reconciliation.run")


@dataclass(frozen=True)
class RunResult:
    run_id: int
    status: str
    rows_scanned: int
    found: int
    opened: int
    auto_resolved: int
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ProgressEvent:
    """`stage` is "sync" or a detector name; `step` of `steps` stages are done."""

    stage: str
    step: int
    steps: int
    rows: int = 0


ProgressCallback = Callable[[ProgressEvent], None]


@contextmanager
def _single_pass() -> Iterator[None]:
    if connection.vendor != "postgresql":
        yield  # SQLite (make run's default) serialises writers anyway.
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY])
        (acquired,) = cursor.fetchone()
    if not acquired:
        raise ReconcileBusy("Another reconciliation pass is running.")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])


def reconcile_run(
    *,
    progress: ProgressCallback | None = None,
    client: ProviderClientLike | None = None,
    detectors: list[Detector] | None = None,
    sync: bool = True,
) -> RunResult:
    """Run one pass. Raises ReconcileBusy if another pass holds the lock."""
    # Refuse to run inside a caller's transaction (each detector commits on its own and the
    # sync does HTTP); durable=True raises RuntimeError there, and is allowed in TestCase.
    with transaction.atomic(durable=True):
        pass
    with _single_pass():
        return _run(progress=progress, client=client, detectors=detectors, sync=sync)


def _run(*, progress, client, detectors, sync) -> RunResult:
    detectors = detectors if detectors is not None else detectors_all()
    steps = len(detectors) + 1
    run = ReconciliationRun.objects.create(started_at=timezone.now())
    errors: list[str] = []
    per_detector: dict[str, dict] = {}
    found = opened = resolved = 0

    def emit(stage: str, step: int, rows: int = 0) -> None:
        if progress:
            progress(ProgressEvent(stage=stage, step=step, steps=steps, rows=rows))

    emit("sync", 0)
    sync_ok = True
    synced: SyncResult | None = None
    if sync:
        try:
            synced = provider_records_sync(
                client=client, progress=lambda n: emit("sync", 0, n) if progress else None
            )
        except provider_unavailable_errors() as exc:
            sync_ok = False
            errors.append(f"sync: provider unavailable: {exc}")
            logger.warning("reconciliation: provider unavailable during sync: %s", exc)
        except Exception as exc:
            sync_ok = False
            errors.append(f"sync: {type(exc).__name__}: {exc}")
            logger.exception("reconciliation: provider sync failed")
    emit("sync", 1)

    for index, detector in enumerate(detectors, start=2):
        started = time.monotonic()
        try:
            with transaction.atomic():
                ctx = DetectionContext.full()
                findings = list(detector.find(ctx))
                reported = incidents_report(findings=findings, now=ctx.now)
                auto_resolved: list[int] = []
                if sync_ok or not detector.uses_provider_records:
                    auto_resolved = incidents_auto_resolve(
                        incident_type=detector.name,
                        still_found={f.fingerprint for f in findings},
                        now=ctx.now,
                    )
        except Exception as exc:
            errors.append(f"{detector.name}: {type(exc).__name__}: {exc}")
            logger.exception("reconciliation: detector %s failed", detector.name)
            per_detector[detector.name] = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            n_opened = sum(1 for r in reported if r.created)
            found += len(findings)
            opened += n_opened
            resolved += len(auto_resolved)
            per_detector[detector.name] = {
                "found": len(findings),
                "opened": n_opened,
                "auto_resolved": len(auto_resolved),
                "seconds": round(time.monotonic() - started, 3),
            }
        emit(detector.name, index)

    # The settings-driven auto-remediation policy (off unless a type is enabled). Its fixes
    # are confirmed by the next pass's re-check, like a person's.
    try:
        from .remediation import remediations_auto_apply

        applied = remediations_auto_apply(client=client)
        if applied:
            per_detector["auto_remediation"] = {
                "applied": len(applied),
                "states": sorted({r.state for r in applied}),
            }
    except Exception as exc:
        errors.append(f"auto_remediation: {type(exc).__name__}: {exc}")
        logger.exception("reconciliation: auto-remediation failed")

    if not errors:
        status = RunStatus.SUCCEEDED
    elif per_detector and all("error" in d for name, d in per_detector.items() if name != "auto_remediation"):
        status = RunStatus.FAILED
    else:
        status = RunStatus.PARTIAL
    run.finished_at = timezone.now()
    run.status = status.value
    run.rows_scanned = synced.rows if synced else 0
    run.found, run.opened, run.auto_resolved = found, opened, resolved
    run.errors, run.detectors = errors, per_detector
    run.save()
    return RunResult(
        run_id=run.pk,
        status=status.value,
        rows_scanned=run.rows_scanned,
        found=found,
        opened=opened,
        auto_resolved=resolved,
        errors=errors,
    )
