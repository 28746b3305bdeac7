"""One reconciliation pass: sync provider records, run every detector, report, auto-resolve.

Each detector's report + auto-resolve commits on its own, so one failing detector costs
only its own result; the run row records what happened (errors included).

Incremental by default (DESIGN §7): a detector whose findings are per order
(`Detector.incremental`) and whose last complete full evaluation is younger than
FULL_PASS_SECONDS re-evaluates only the orders changed since its last complete evaluation
(detectors/changes.py) plus the subjects of its live incidents; the others, the first
pass and a `full=True` pass read everything. Correct by induction: what did not change
and crossed no time threshold has the result the last complete evaluation recorded.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from core import metrics
from payments.services import ProviderUnavailable
from reconciliation.choices import LIVE_STATES, RunStatus
from reconciliation.conf import setting
from reconciliation.detectors import ChangeSet, DetectionContext, Detector, detectors_all
from reconciliation.detectors.changes import changes_since
from reconciliation.detectors.shared import SHARED, SharedRows, shared_rows
from reconciliation.errors import ReconcileBusy
from reconciliation.models import DetectorCheckpoint, Incident, ReconciliationRun

from .incidents import incidents_auto_resolve, incidents_report
from .provider_records import (
    ProviderClientLike,
    SyncResult,
    provider_records_sync,
)
from .remediation import remediations_auto_apply

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
    full: bool = False,
) -> RunResult:
    """Run one pass (incremental where it can; `full=True` reads everything).
    Raises ReconcileBusy if another pass holds the lock."""
    # Refuse to run inside a caller's transaction (each detector commits on its own and the
    # sync does HTTP); durable=True raises RuntimeError there, and is allowed in TestCase.
    with transaction.atomic(durable=True):
        pass
    with _single_pass():
        return _run(progress=progress, client=client, detectors=detectors, sync=sync, full=full)


def _incremental_since(detectors: list[Detector], *, full: bool) -> dict[str, datetime]:
    """Per detector that may run incrementally now: the instant to look for changes from."""
    if full or not setting("INCREMENTAL"):
        return {}
    now = timezone.now()
    full_every = timedelta(seconds=float(setting("FULL_PASS_SECONDS")))
    # Rows that crossed a time threshold since the last evaluation (settled, pending past
    # its SLA) count as changed: look back by the longest threshold, plus a margin.
    lookback = timedelta(
        seconds=max(float(setting("SETTLE_SECONDS")), float(setting("PENDING_ORDER_SLA_SECONDS")))
        + float(setting("CHANGE_OVERLAP_SECONDS"))
    )
    checkpoints = {
        c.detector: c
        for c in DetectorCheckpoint.objects.filter(detector__in=[d.name for d in detectors if d.incremental])
    }
    since: dict[str, datetime] = {}
    for detector in detectors:
        checkpoint = checkpoints.get(detector.name)
        if checkpoint is None or checkpoint.full_at is None or now - checkpoint.full_at > full_every:
            continue
        since[detector.name] = checkpoint.checked_at - lookback
    return since


def _checkpoint(name: str, *, checked_at: datetime, full: bool) -> None:
    defaults: dict = {"checked_at": checked_at}
    if full:
        defaults["full_at"] = checked_at
    DetectorCheckpoint.objects.update_or_create(detector=name, defaults=defaults)


def _live_fingerprints(names: set[str]) -> dict[str, set[str]]:
    live: dict[str, set[str]] = {name: set() for name in names}
    for incident_type, fingerprint in Incident.objects.filter(
        type__in=names, state__in=[str(s) for s in LIVE_STATES]
    ).values_list("type", "fingerprint"):
        live[incident_type].add(fingerprint)
    return live


def _shared(detectors: list[Detector], since: dict[str, datetime], errors: list[str], per_detector: dict):
    """One shared join for the detectors evaluated in full this pass (detectors/shared.py),
    and per detector the live fingerprints read just before it: only those may be
    auto-resolved from it (an incident a person's re-check opens after the join's snapshot
    was not evaluated). None when fewer than two detectors share it, or when it fails
    (then each detector runs its own statement)."""
    names = {d.name for d in detectors if d.name in SHARED and d.name not in since}
    if len(names) < 2:
        return None, {}
    started = time.monotonic()
    try:
        live = _live_fingerprints(names)
        rows = shared_rows(now=timezone.now(), names=names)
    except Exception as exc:
        logger.exception("reconciliation: the shared join failed; each detector runs its own")
        errors.append(f"shared_join: {type(exc).__name__}: {exc}")
        return None, {}
    per_detector["shared_join"] = {
        "detectors": sorted(names),
        "rows": sum(len(r) for r in rows.rows.values()),
        "seconds": round(time.monotonic() - started, 3),
    }
    return rows, live


def _find(
    detector: Detector,
    ctx: DetectionContext,
    changes: ChangeSet | None,
    shared: SharedRows | None = None,
    live_before_shared: set[str] | None = None,
):
    """(findings, evaluated live fingerprints or None for everything)."""
    if shared is not None and detector.name in shared.rows:
        return list(detector.findings_from(shared.rows[detector.name])), live_before_shared
    if changes is None:
        return list(detector.find(ctx)), None
    live = list(
        Incident.objects.filter(type=detector.name, state__in=[str(s) for s in LIVE_STATES]).values_list(
            "fingerprint", "order_id", "charge_id"
        )
    )
    # Live incidents are re-evaluated on every pass, changed or not: that is what lets a
    # fixed condition auto-resolve (and a person's re-check stay honest).
    changes = changes.with_subjects(
        order_ids={order_id for _, order_id, _ in live if order_id is not None},
        charge_ids={charge_id for _, order_id, charge_id in live if order_id is None and charge_id},
    )
    return list(detector.find_changed(ctx, changes)), {fingerprint for fingerprint, _, _ in live}


def _run(*, progress, client, detectors, sync, full) -> RunResult:
    pass_started = time.monotonic()
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
        except ProviderUnavailable as exc:
            sync_ok = False
            errors.append(f"sync: provider unavailable: {exc}")
            logger.warning("reconciliation: provider unavailable during sync: %s", exc)
        except Exception as exc:
            sync_ok = False
            errors.append(f"sync: {type(exc).__name__}: {exc}")
            logger.exception("reconciliation: provider sync failed")
    emit("sync", 1)

    # One change set for the pass, from the earliest checkpoint among the incremental
    # detectors: a wider window than one detector needs is only more work, never wrong.
    since = _incremental_since(detectors, full=full)
    changes: ChangeSet | None = None
    if since:
        started = time.monotonic()
        try:
            changes = changes_since(min(since.values()))
        except Exception as exc:  # the full evaluation still works: fall back to it
            logger.exception("reconciliation: reading the changes failed; running in full")
            errors.append(f"changes: {type(exc).__name__}: {exc}")
            since = {}
    if changes is not None:
        per_detector["changes"] = {
            "since": changes.since.isoformat(),
            "orders": len(changes.order_ids),
            "charges": len(changes.charge_ids),
            "seconds": round(time.monotonic() - started, 3),
        }

    # The per-order detectors evaluated in full share one join (detectors/shared.py).
    shared, live_before_shared = _shared(detectors, since, errors, per_detector)

    for index, detector in enumerate(detectors, start=2):
        started = time.monotonic()
        incremental = changes is not None and detector.name in since
        try:
            with transaction.atomic():
                from_shared = shared is not None and detector.name in shared.rows
                # From the shared join: evaluated at its instant (the checkpoint says so).
                ctx = (
                    DetectionContext(now=shared.now)
                    if shared is not None and from_shared
                    else DetectionContext.full()
                )
                findings, evaluated = _find(
                    detector,
                    ctx,
                    changes if incremental else None,
                    shared,
                    live_before_shared.get(detector.name),
                )
                reported = incidents_report(findings=findings, now=ctx.now)
                auto_resolved: list[int] = []
                if sync_ok or not detector.uses_provider_records:
                    auto_resolved = incidents_auto_resolve(
                        incident_type=detector.name,
                        still_found={f.fingerprint for f in findings},
                        now=ctx.now,
                        evaluated=evaluated,
                    )
                    # Complete on fresh data: the next pass may start from here.
                    _checkpoint(detector.name, checked_at=ctx.now, full=not incremental)
        except Exception as exc:
            errors.append(f"{detector.name}: {type(exc).__name__}: {exc}")
            logger.exception("reconciliation: detector %s failed", detector.name)
            per_detector[detector.name] = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            n_opened = sum(1 for r in reported if r.created)
            metrics.incidents_reported(
                incident_type=detector.name, opened=n_opened, auto_resolved=len(auto_resolved)
            )
            found += len(findings)
            opened += n_opened
            resolved += len(auto_resolved)
            per_detector[detector.name] = {
                "found": len(findings),
                "opened": n_opened,
                "auto_resolved": len(auto_resolved),
                "seconds": round(time.monotonic() - started, 3),
                "mode": "incremental" if incremental else "full",
            }
            if from_shared:
                per_detector[detector.name]["shared_join"] = True
        emit(detector.name, index)

    # The settings-driven auto-remediation policy (off unless a type is enabled). Its fixes
    # are confirmed by the next pass's re-check, like a person's.
    try:
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
    elif per_detector and all(
        "error" in d
        for name, d in per_detector.items()
        if name not in ("auto_remediation", "changes", "shared_join")
    ):
        status = RunStatus.FAILED
    else:
        status = RunStatus.PARTIAL
    run.finished_at = timezone.now()
    run.status = status.value
    run.rows_scanned = synced.rows if synced else 0
    run.found, run.opened, run.auto_resolved = found, opened, resolved
    run.errors, run.detectors = errors, per_detector
    run.save()
    metrics.reconciliation_pass(status=status.value, seconds=time.monotonic() - pass_started)
    return RunResult(
        run_id=run.pk,
        status=status.value,
        rows_scanned=run.rows_scanned,
        found=found,
        opened=opened,
        auto_resolved=resolved,
        errors=errors,
    )
