"""Incidents: reported in bulk by detectors, worked by people, closed by re-checks.

Lifecycle (DESIGN §2): open -> acknowledged -> resolved; open|acknowledged -> resolved
automatically when a run no longer finds the condition; open|acknowledged -> dismissed
(false positive, with a reason). A person's resolution is checked: the detector re-runs
on that incident's scope and, if the condition persists, the incident goes straight back
to open (resolve by the person, then reopen by the system, both audited). We reopen rather
than refuse so the person's attempt and reason stay on record next to the re-check's verdict.

A dismissed fingerprint stays dismissed: detecting it again only moves that incident's
last_seen_at, so a false positive does not come back every minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from django_fsm_log.models import StateLog

from core.audit import MAX_REASON_LENGTH, check_reason
from payments.services import ProviderUnavailable
from reconciliation.choices import LIVE_STATES, IncidentState, ResolutionKind
from reconciliation.detectors import Finding, IncidentSubject, detector_get
from reconciliation.errors import (
    ActionNotPermitted,
    IncidentClosed,
    IncidentNotFound,
    RecheckUnavailable,
)
from reconciliation.events import (
    FIELDS as EVENT_FIELDS,
)
from reconciliation.events import (
    INCIDENT_DISMISSED,
    INCIDENT_OPENED,
    INCIDENT_RESOLVED,
    INCIDENT_UPDATED,
    incident_events_record,
)
from reconciliation.models import Incident, IncidentNote
from reconciliation.permissions import require_incident_actor

from .provider_records import provider_records_refresh

_LIVE = [str(s) for s in LIVE_STATES]


@dataclass(frozen=True)
class IncidentView:
    id: int
    type: str
    state: str
    fingerprint: str
    resolution_kind: str
    assigned_to_id: int | None
    reopened_count: int


@dataclass(frozen=True)
class ReportedIncident:
    incident_id: int
    fingerprint: str
    created: bool


@dataclass(frozen=True)
class ResolveOutcome:
    incident: IncidentView
    # True when the re-check found the condition still there and the incident reopened.
    reopened: bool


def _view(incident: Incident) -> IncidentView:
    return IncidentView(
        id=incident.pk,
        type=incident.type,
        state=incident.state,
        fingerprint=incident.fingerprint,
        resolution_kind=incident.resolution_kind,
        assigned_to_id=incident.assigned_to_id,
        reopened_count=incident.reopened_count,
    )


def _subject(incident: Incident) -> IncidentSubject:
    return IncidentSubject(
        incident_id=incident.pk,
        type=incident.type,
        fingerprint=incident.fingerprint,
        order_id=incident.order_id,
        charge_id=incident.charge_id,
        details=incident.details or {},
    )


def _locked(incident_id: int) -> Incident:
    try:
        return Incident.objects.select_for_update().get(pk=incident_id)
    except Incident.DoesNotExist:
        raise IncidentNotFound(f"Incident {incident_id} does not exist.") from None


def _state_logs(
    rows: Sequence[tuple[int, str | None, str]], *, transition: str, description: str, by=None
) -> None:
    """Audit rows for changes made in bulk (same shape django-fsm-log writes per transition)."""
    if not rows:
        return
    content_type = ContentType.objects.get_for_model(Incident)
    now = timezone.now()
    StateLog.objects.bulk_create(
        [
            StateLog(
                timestamp=now,
                by=by,
                source_state=source,
                state=target,
                transition=transition,
                content_type=content_type,
                object_id=incident_id,
                description=description,
            )
            for incident_id, source, target in rows
        ]
    )


# --- Reporting (detectors) ----------------------------------------------------------

_COLUMNS = (
    "type",
    "severity",
    "state",
    "fingerprint",
    "order_id",
    "payment_id",
    "charge_id",
    "sku",
    "saga_run_id",
    "amount_at_risk",
    "currency",
    "details",
    "detected_at",
    "last_seen_at",
    "resolution_kind",
    "resolution_reason",
    "reopened_count",
)
# What a repeated detection refreshes: the money and the evidence may have grown (a third
# charge), the identity (fingerprint, subject) stays.
_REFRESHED = ("severity", "amount_at_risk", "currency", "details", "last_seen_at")


def incident_report(finding: Finding) -> tuple[int, bool]:
    """Upsert one finding; returns (incident_id, created)."""
    (reported,) = incidents_report(findings=[finding])
    return reported.incident_id, reported.created


@transaction.atomic
def incidents_report(*, findings: Iterable[Finding], now: datetime | None = None) -> list[ReportedIncident]:
    """Upsert a detector's whole result by fingerprint, set-based.

    One INSERT … ON CONFLICT (fingerprint) WHERE state IN (live) per chunk: PostgreSQL's
    unique index arbitrates, so two concurrent runs reporting one fingerprint end with one
    live incident (the second insert waits for the first and becomes an update).
    Fingerprints whose incident was dismissed are not reopened (see module docstring).
    """
    now = now or timezone.now()
    unique = list({f.fingerprint: f for f in findings}.values())
    results: list[ReportedIncident] = []
    chunk_size = 500
    for start in range(0, len(unique), chunk_size):
        results.extend(_report_chunk(unique[start : start + chunk_size], now))
    created = [(r.incident_id, None, str(IncidentState.OPEN)) for r in results if r.created]
    _state_logs(created, transition="detect", description="Detected by a reconciliation run.")
    _record_events(INCIDENT_OPENED, [incident_id for incident_id, _, _ in created])
    return results


def _record_events(event_type: str, incident_ids: list[int]) -> None:
    """One event per incident that changed in bulk (read back in one query)."""
    if incident_ids:
        rows = Incident.objects.filter(pk__in=incident_ids).order_by("pk").values(*EVENT_FIELDS)
        incident_events_record(event_type, rows)


def _record_event(event_type: str, incident: Incident) -> None:
    incident_events_record(event_type, [{name: getattr(incident, name) for name in EVENT_FIELDS}])


def _report_chunk(chunk: list[Finding], now: datetime) -> list[ReportedIncident]:
    fingerprints = [f.fingerprint for f in chunk]
    dismissed = set(
        Incident.objects.filter(fingerprint__in=fingerprints, state=IncidentState.DISMISSED).values_list(
            "fingerprint", flat=True
        )
    )
    if dismissed:
        live_or_closed_since = Incident.objects.filter(
            fingerprint__in=dismissed, state=IncidentState.DISMISSED
        )
        live_or_closed_since.update(last_seen_at=now)
    chunk = [f for f in chunk if f.fingerprint not in dismissed]
    if not chunk:
        return []

    ops = connection.ops
    ts = ops.adapt_datetimefield_value(now)
    params: list[Any] = []
    rows_sql = []
    row_sql = "(" + ", ".join(["%s::jsonb" if c == "details" else "%s" for c in _COLUMNS]) + ")"
    for f in chunk:
        params.extend(
            [
                f.type,
                f.severity,
                str(IncidentState.OPEN),
                f.fingerprint,
                f.order_id,
                f.payment_id,
                f.charge_id,
                f.sku,
                f.saga_run_id,
                ops.adapt_decimalfield_value(f.amount_at_risk, 14, 2),
                f.currency,
                json.dumps(f.details, cls=DjangoJSONEncoder, sort_keys=True),
                ts,
                ts,
                "",
                "",
                0,
            ]
        )
        rows_sql.append(row_sql)

    # The money at risk of the live incidents this chunk may refresh: a change is a
    # fact (incident.updated) the finance read model needs. One indexed query per chunk.
    at_risk_before = {
        fingerprint: (amount, currency)
        for fingerprint, amount, currency in Incident.objects.filter(
            fingerprint__in=[f.fingerprint for f in chunk], state__in=_LIVE
        ).values_list("fingerprint", "amount_at_risk", "currency")
    }
    live = ", ".join(f"'{s}'" for s in _LIVE)
    table = Incident._meta.db_table
    # Only module constants are interpolated; every value travels as a parameter.
    sql = (
        f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES {', '.join(rows_sql)} "  # noqa: S608
        f"ON CONFLICT (fingerprint) WHERE state IN ({live}) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in _REFRESHED)
        # xmax = 0 only for a row this statement inserted (an update leaves the old xid).
        + " RETURNING id, fingerprint, (xmax = 0)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    by_fingerprint = {f.fingerprint: f for f in chunk}
    _record_events(
        INCIDENT_UPDATED,
        [
            incident_id
            for incident_id, fingerprint, created in returned
            if not created
            and fingerprint in at_risk_before
            and at_risk_before[fingerprint]
            != (by_fingerprint[fingerprint].amount_at_risk, by_fingerprint[fingerprint].currency)
        ],
    )
    return [ReportedIncident(incident_id=r[0], fingerprint=r[1], created=bool(r[2])) for r in returned]


@transaction.atomic
def incidents_auto_resolve(
    *,
    incident_type: str,
    still_found: set[str],
    now: datetime | None = None,
    evaluated: set[str] | None = None,
) -> list[int]:
    """Resolve (kind auto, by the system) every live incident of `incident_type` whose
    fingerprint the detector's complete, fresh result no longer contains.

    The caller guarantees `still_found` is the detector's full result on fresh data;
    a detector that failed or ran on stale data must not call this. An incremental pass
    passes `evaluated`, the live fingerprints whose subjects it re-checked: only those
    may be resolved (an incident opened meanwhile by a person's re-check was not).
    """
    now = now or timezone.now()
    live = list(
        Incident.objects.select_for_update()
        .filter(type=incident_type, state__in=_LIVE)
        .values_list("id", "fingerprint", "state")
    )
    gone = [
        (pk, state)
        for pk, fingerprint, state in live
        if fingerprint not in still_found and (evaluated is None or fingerprint in evaluated)
    ]
    if not gone:
        return []
    ids = [pk for pk, _ in gone]
    reason = "Re-check: the detector no longer finds this condition."
    # A bulk UPDATE (not the transition method per row): the number of rows is the size of
    # the change; the audit rows below say exactly what the transition would have.
    Incident.objects.filter(pk__in=ids).update(
        state=IncidentState.RESOLVED,
        resolved_at=now,
        resolved_by=None,
        resolution_kind=ResolutionKind.AUTO,
        resolution_reason=reason,
    )
    _state_logs(
        [(pk, state, str(IncidentState.RESOLVED)) for pk, state in gone],
        transition="resolve",
        description=reason,
    )
    _record_events(INCIDENT_RESOLVED, ids)
    return ids


# --- People's actions -------------------------------------------------------------


@transaction.atomic
def incident_acknowledge(*, incident_id: int, by, reason: str) -> IncidentView:
    """Someone is on it. Idempotent: acknowledging an acknowledged incident changes nothing."""
    require_incident_actor(by)
    reason = check_reason(reason, required=True)
    incident = _locked(incident_id)
    if incident.state == IncidentState.ACKNOWLEDGED:
        return _view(incident)
    if incident.state not in _LIVE:
        raise IncidentClosed(f"Incident {incident_id} is {incident.state}.")
    incident.acknowledge(by=by, description=reason)
    incident.save(update_fields=["state", "acknowledged_at", "acknowledged_by"])
    return _view(incident)


@transaction.atomic
def incident_assign(*, incident_id: int, assignee_id: int | None, by) -> IncidentView:
    """Give the incident to a staff member (or nobody). Recorded as a note by `by`."""
    require_incident_actor(by)
    incident = _locked(incident_id)
    if incident.state not in _LIVE:
        raise IncidentClosed(f"Incident {incident_id} is {incident.state}.")
    if incident.assigned_to_id == assignee_id:
        return _view(incident)
    if assignee_id is not None:
        assignee = get_user_model().objects.filter(pk=assignee_id, is_active=True).first()
        if assignee is None or not (assignee.is_staff or assignee.is_superuser):
            raise ActionNotPermitted(
                "Incidents can only be assigned to active staff.", details={"assignee_id": assignee_id}
            )
        text = f"Assigned to {assignee.get_username()}."
    else:
        text = "Unassigned."
    incident.assigned_to_id = assignee_id
    incident.save(update_fields=["assigned_to"])
    IncidentNote.objects.create(incident=incident, author=by, text=text)
    return _view(incident)


@transaction.atomic
def incident_add_note(*, incident_id: int, by, text: str) -> int:
    require_incident_actor(by)
    text = check_reason(text, required=True, what="text")
    if not Incident.objects.filter(pk=incident_id).exists():
        raise IncidentNotFound(f"Incident {incident_id} does not exist.")
    return IncidentNote.objects.create(incident_id=incident_id, author=by, text=text).pk


@transaction.atomic
def incident_customer_notified(*, incident_id: int, channel: str, summary: str) -> None:
    """Record that the customer was told about the incident (e.g. an apology e-mail
    sent by notifications): the first time on the incident, each time as a note."""
    incident = _locked(incident_id)
    now = timezone.now()
    if incident.customer_notified_at is None:
        incident.customer_notified_at = now
        incident.save(update_fields=["customer_notified_at"])
    IncidentNote.objects.create(
        incident=incident, author=None, text=f"Customer told by {channel}: {summary}"[:MAX_REASON_LENGTH]
    )


@transaction.atomic
def incident_dismiss(*, incident_id: int, by, reason: str) -> IncidentView:
    """A false positive. Idempotent: dismissing a dismissed incident changes nothing."""
    require_incident_actor(by)
    reason = check_reason(reason, required=True)
    incident = _locked(incident_id)
    if incident.state == IncidentState.DISMISSED:
        return _view(incident)
    if incident.state not in _LIVE:
        raise IncidentClosed(f"Incident {incident_id} is {incident.state}.")
    incident.dismiss(by=by, description=reason)
    incident.save(
        update_fields=["state", "resolved_at", "resolved_by", "resolution_kind", "resolution_reason"]
    )
    _record_event(INCIDENT_DISMISSED, incident)
    return _view(incident)


def incident_resolve(*, incident_id: int, by, reason: str, client=None) -> ResolveOutcome:
    """A person says it is fixed; the detector re-checks and reopens it if not.

    Not one transaction on purpose: when the detector reads provider records, those are
    refreshed from the provider first (HTTP, outside any lock); then one transaction locks
    the incident, re-checks, and records resolve (+ reopen). If the re-check cannot run
    (provider down, no detector), nothing changes and RecheckUnavailable is raised.
    """
    require_incident_actor(by)
    reason = check_reason(reason, required=True)
    try:
        incident = Incident.objects.get(pk=incident_id)
    except Incident.DoesNotExist:
        raise IncidentNotFound(f"Incident {incident_id} does not exist.") from None
    if incident.state == IncidentState.RESOLVED:
        return ResolveOutcome(incident=_view(incident), reopened=False)
    if incident.state not in _LIVE:
        raise IncidentClosed(f"Incident {incident_id} is {incident.state}.")

    detector = detector_get(incident.type)
    if detector is None:
        raise RecheckUnavailable(f"No detector re-checks {incident.type} incidents.")
    subject = _subject(incident)
    if detector.uses_provider_records:
        references = detector.provider_references_for(subject)
        try:
            provider_records_refresh(references=references, client=client)
        except ProviderUnavailable as exc:
            raise RecheckUnavailable(
                "The provider did not answer, so the fix cannot be verified. Try again shortly."
            ) from exc

    with transaction.atomic():
        incident = _locked(incident_id)
        if incident.state == IncidentState.RESOLVED:
            return ResolveOutcome(incident=_view(incident), reopened=False)
        if incident.state not in _LIVE:
            raise IncidentClosed(f"Incident {incident_id} is {incident.state}.")
        persists = detector.recheck(_subject(incident))
        incident.resolve(by=by, description=reason, kind=ResolutionKind.MANUAL)
        if persists:
            incident.reopen(
                by=None, description="Re-check after a manual resolution: the condition persists."
            )
        incident.save(
            update_fields=[
                "state",
                "resolved_at",
                "resolved_by",
                "resolution_kind",
                "resolution_reason",
                "acknowledged_at",
                "acknowledged_by",
                "reopened_count",
            ]
        )
        if not persists:
            _record_event(INCIDENT_RESOLVED, incident)
        return ResolveOutcome(incident=_view(incident), reopened=persists)
