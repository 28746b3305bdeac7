"""reconciliation's reads: open incidents, one incident's record, finance metrics.

Aggregates are computed by the database (GROUP BY, percentile_cont) so their cost follows
the number of incidents in the range, never of the rows behind them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Count, F, Q, Sum
from django_fsm_log.models import StateLog

from core.fsm import waiting_in_state, waiting_in_states
from core.money import format_amount, is_supported_currency
from core.sql import column, fetchall_prepared

from .amounts import minor_to_major
from .choices import LIVE_STATES, IncidentState, IncidentType, ResolutionKind, RunStatus
from .conf import refund_pending_sla_seconds
from .detectors import detectors_all
from .models import (
    Incident,
    ProviderCharge,
    ProviderNetByHour,
    ProviderOrderCaptures,
    ProviderRefund,
    ReconciliationRun,
    Remediation,
)


@dataclass(frozen=True)
class OpenIncident:
    id: int
    type: str
    severity: str
    state: str
    order_id: int | None
    charge_id: str | None
    amount_at_risk: Decimal
    currency: str
    detected_at: datetime
    last_seen_at: datetime

    def as_json(self) -> dict[str, Any]:
        """DESIGN §5 `reconcile --json` shape for one open incident."""
        return {
            "type": self.type,
            "order_id": self.order_id,
            "charge_id": self.charge_id,
            "amount_at_risk": _money_str(self.amount_at_risk, self.currency),
            "currency": self.currency,
        }


def refund_sla_seconds() -> int:
    """The one refund SLA (REFUND_PENDING_SLA_SECONDS): the refund_pending detector opens
    an incident past it, and the back office's attention limit for a pending refund is it."""
    return refund_pending_sla_seconds()


def _money_str(amount: Decimal, currency: str) -> str:
    return format_amount(amount, currency) if is_supported_currency(currency) else str(amount)


_OPEN_INCIDENT_FIELDS = tuple(OpenIncident.__dataclass_fields__)


def incidents_open(*, incident_type: str | None = None, limit: int | None = None) -> list[OpenIncident]:
    """Live (open or acknowledged) incidents, worst money first."""
    qs = Incident.objects.filter(state__in=LIVE_STATES)
    if incident_type:
        qs = qs.filter(type=incident_type)
    qs = qs.order_by("-amount_at_risk", "detected_at", "id").values_list(*_OPEN_INCIDENT_FIELDS)
    if limit is not None:
        qs = qs[:limit]
    return [OpenIncident(*row) for row in qs]


@dataclass(frozen=True)
class AuditEntry:
    timestamp: datetime
    by_id: int | None
    by_username: str | None
    transition: str
    source_state: str | None
    state: str
    description: str


@dataclass(frozen=True)
class NoteEntry:
    created_at: datetime
    author_username: str | None
    text: str


@dataclass(frozen=True)
class IncidentRecord:
    id: int
    type: str
    severity: str
    state: str
    fingerprint: str
    order_id: int | None
    payment_id: int | None
    charge_id: str | None
    sku: str | None
    saga_run_id: int | None
    amount_at_risk: Decimal
    currency: str
    details: dict
    detected_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolution_kind: str
    resolution_reason: str
    assigned_to_id: int | None
    reopened_count: int
    notes: list[NoteEntry]
    audit: list[AuditEntry]


def incident_get(*, incident_id: int) -> IncidentRecord | None:
    """One incident with its notes and audit trail (three queries)."""
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        return None
    notes = [
        NoteEntry(n.created_at, n.author.get_username() if n.author else None, n.text)
        for n in incident.notes.select_related("author")
    ]
    logs = (
        StateLog.objects.filter(
            content_type=ContentType.objects.get_for_model(Incident), object_id=incident.pk
        )
        .select_related("by")
        .order_by("timestamp", "id")
    )
    audit = [
        AuditEntry(
            log.timestamp,
            log.by_id,
            log.by.get_username() if log.by else None,
            log.transition,
            log.source_state,
            log.state,
            log.description or "",
        )
        for log in logs
    ]
    return IncidentRecord(
        id=incident.pk,
        type=incident.type,
        severity=incident.severity,
        state=incident.state,
        fingerprint=incident.fingerprint,
        order_id=incident.order_id,
        payment_id=incident.payment_id,
        charge_id=incident.charge_id,
        sku=incident.sku,
        saga_run_id=incident.saga_run_id,
        amount_at_risk=incident.amount_at_risk,
        currency=incident.currency,
        details=incident.details,
        detected_at=incident.detected_at,
        last_seen_at=incident.last_seen_at,
        acknowledged_at=incident.acknowledged_at,
        resolved_at=incident.resolved_at,
        resolution_kind=incident.resolution_kind,
        resolution_reason=incident.resolution_reason,
        assigned_to_id=incident.assigned_to_id,
        reopened_count=incident.reopened_count,
        notes=notes,
        audit=audit,
    )


def reconciliation_run_latest() -> dict[str, Any] | None:
    run = ReconciliationRun.objects.order_by("-started_at", "-id").first()
    if run is None:
        return None
    return {
        "id": run.pk,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "status": run.status,
        "rows_scanned": run.rows_scanned,
        "found": run.found,
        "opened": run.opened,
        "auto_resolved": run.auto_resolved,
        "errors": run.errors,
    }


# --- Incident metrics (the finance page's figures: backoffice/finance.py, readmodels) ---
# A range is [start, end] in whole days (UTC), both inclusive.


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


def incidents_open_at_risk() -> dict[str, Any]:
    """Now: how many live incidents, and the money they put at risk per currency.
    (COUNT(*) here and below: an index-only scan of recon_incident_live_bo.)"""
    rows = (
        Incident.objects.filter(state__in=LIVE_STATES)
        .values("currency")
        .annotate(count=Count("*"), amount=Sum("amount_at_risk"))
        .order_by("currency")
    )
    by_currency = [
        {
            "currency": r["currency"],
            "count": r["count"],
            "amount": _money_str(r["amount"] or Decimal(0), r["currency"]),
        }
        for r in rows
    ]
    return {"open": sum(r["count"] for r in by_currency), "by_currency": by_currency}


def incidents_mttr(*, start: date, end: date) -> dict[str, Any]:
    """Time to resolve (detected -> resolved) for incidents resolved in the range, in seconds."""
    lo, hi = _bounds(start, end)
    table = Incident._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), "  # noqa: S608 - the table name is a constant; values are parameters
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - detected_at)), "
            "percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - detected_at)) "
            f"FROM {table} WHERE state = %s AND resolved_at >= %s AND resolved_at < %s",
            [IncidentState.RESOLVED.value, lo, hi],
        )
        count, p50, p90 = cursor.fetchone()
    return {
        "count": count,
        "p50_seconds": float(p50) if p50 is not None else None,
        "p90_seconds": float(p90) if p90 is not None else None,
    }


# --- Back-office reads ----------------------------------------------------------------


@dataclass(frozen=True)
class IncidentRow:
    """One row of the staff incident queue."""

    id: int
    type: str
    severity: str
    state: str
    order_id: int | None
    charge_id: str | None
    saga_run_id: int | None
    amount_at_risk: Decimal
    currency: str
    detected_at: datetime
    last_seen_at: datetime
    assigned_to_id: int | None
    assigned_to_username: str | None
    resolution_kind: str


_SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def _incidents_filtered(
    *,
    types: list[str] | None = None,
    severities: list[str] | None = None,
    states: list[str] | None = None,
    detected_before: datetime | None = None,
    detected_since: datetime | None = None,
    min_amount: Decimal | None = None,
    order_id: int | None = None,
    assigned_to_id: int | None = None,
):
    qs = Incident.objects.all()
    qs = qs.filter(state__in=states) if states else qs.filter(state__in=LIVE_STATES)
    if types:
        qs = qs.filter(type__in=types)
    if severities:
        qs = qs.filter(severity__in=severities)
    if detected_before is not None:
        qs = qs.filter(detected_at__lte=detected_before)
    if detected_since is not None:
        qs = qs.filter(detected_at__gte=detected_since)
    if min_amount is not None:
        qs = qs.filter(amount_at_risk__gte=min_amount)
    if order_id is not None:
        qs = qs.filter(order_id=order_id)
    if assigned_to_id is not None:
        qs = qs.filter(assigned_to_id=assigned_to_id)
    return qs


_INCIDENT_ROW = (
    "id",
    "type",
    "severity",
    "state",
    "order_id",
    "charge_id",
    "saga_run_id",
    "amount_at_risk",
    "currency",
    "detected_at",
    "last_seen_at",
    "assigned_to_id",
    "assigned_to__username",
    "resolution_kind",
)


def incidents_list(
    *, sort: str = "amount", limit: int = 100, offset: int = 0, **filters: Any
) -> list[IncidentRow]:
    """The staff queue, filtered and sorted in SQL: one query (assignee joined) per page.
    Default: live incidents, worst money first. Filters: see incidents_count."""
    order = {
        "amount": ("-amount_at_risk", "detected_at", "id"),
        "oldest": ("detected_at", "id"),
        "newest": ("-detected_at", "-id"),
    }
    qs = (
        _incidents_filtered(**filters).order_by(*order.get(sort, order["amount"])).values_list(*_INCIDENT_ROW)
    )
    offset = max(0, offset)
    return [IncidentRow(*row) for row in qs[offset : offset + max(1, min(limit, 1000))]]


def incidents_for_order(*, order_id: int, limit: int = 100) -> list[IncidentRow]:
    """incidents_list(order_id=…, states=every state): an order's incidents in any
    state, worst money first, as one statement built once per process (an order's
    case file reads it on every view; compiling it cost more CPU than running it)."""
    rows = fetchall_prepared(
        _incidents_for_order_sql(), [order_id, list(IncidentState.values), max(1, min(limit, 1000))]
    )
    return [IncidentRow(*row) for row in rows]


@functools.cache
def _incidents_for_order_sql() -> str:
    quote = connection.ops.quote_name
    user_model = Incident._meta.get_field("assigned_to").related_model
    i, u = quote(Incident._meta.db_table), quote(user_model._meta.db_table)
    columns = [f"{i}.{column(Incident, f)}" for f in _INCIDENT_ROW if f != "assigned_to__username"]
    columns.insert(_INCIDENT_ROW.index("assigned_to__username"), f"{u}.{column(user_model, 'username')}")
    return (
        f"SELECT {', '.join(columns)} FROM {i}"  # noqa: S608 (identifiers from the models)
        f" LEFT JOIN {u} ON {u}.id = {i}.{column(Incident, 'assigned_to')}"
        f" WHERE {i}.{column(Incident, 'order_id')} = %s AND {i}.{column(Incident, 'state')} = ANY(%s)"
        f" ORDER BY {i}.{column(Incident, 'amount_at_risk')} DESC, {i}.{column(Incident, 'detected_at')} ASC,"
        f" {i}.id ASC LIMIT %s"
    )


def incidents_count(*, cap: int | None = None, **filters: Any) -> int:
    """How many incidents incidents_list's filters match (its page total); with `cap`,
    at most cap + 1 (counting stops there: "more than cap")."""
    qs = _incidents_filtered(**filters)
    return qs[: cap + 1].count() if cap is not None else qs.count()


def incidents_matching(*, cap: int, **filters: Any) -> list[IncidentRow]:
    """Every incident the filters match, oldest first, at most `cap` (a bulk action's items)."""
    qs = _incidents_filtered(**filters).order_by("id").values_list(*_INCIDENT_ROW)
    return [IncidentRow(*row) for row in qs[:cap]]


def incidents_live_by_severity() -> list[dict[str, Any]]:
    """Live incidents per severity (worst first) with the money at risk per currency."""
    rows = (
        Incident.objects.filter(state__in=LIVE_STATES)
        .values("severity", "currency")
        .annotate(count=Count("*"), amount=Sum("amount_at_risk"))
        .order_by("severity", "currency")
    )
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = out.setdefault(r["severity"], {"severity": r["severity"], "count": 0, "amounts": []})
        entry["count"] += r["count"]
        if r["currency"]:
            entry["amounts"].append(
                {"currency": r["currency"], "amount": _money_str(r["amount"] or Decimal(0), r["currency"])}
            )
    return sorted(out.values(), key=lambda e: _SEVERITY_RANK.get(e["severity"], 9))


# --- Monitoring (/metrics) and SLOs -------------------------------------------------------

# Incident types whose fix gives money back to a customer (a refund): the "incidents
# needing a refund per 1,000 orders" service level.
REFUND_INCIDENT_TYPES = (
    IncidentType.DUPLICATE_CHARGE,
    IncidentType.CHARGE_WITHOUT_ORDER,
    IncidentType.REFUND_MISSING,
)


def incident_kinds() -> list[tuple[str, str]]:
    """(type, severity) of every detector, enabled or not: what incidents can exist."""
    return sorted((str(d.name), str(d.severity)) for d in detectors_all(include_disabled=True))


def incidents_live_totals(*, overdue_before: datetime) -> list[dict[str, Any]]:
    """Live incidents per (type, severity, currency): how many, the money at risk, and
    the part of it detected before `overdue_before` (older than the SLO allows). One
    GROUP BY over the live incidents (state is indexed; their number is small)."""
    rows = (
        Incident.objects.filter(state__in=LIVE_STATES)
        .order_by()
        .values("type", "severity", "currency")
        .annotate(
            count=Count("id"),
            amount=Sum("amount_at_risk"),
            overdue_amount=Sum("amount_at_risk", filter=Q(detected_at__lt=overdue_before)),
        )
    )
    return [
        {
            **row,
            "amount": row["amount"] or Decimal(0),
            "overdue_amount": row["overdue_amount"] or Decimal(0),
        }
        for row in rows
    ]


def reconciliation_last_success() -> datetime | None:
    """When the last pass that completed (succeeded, or partial: some detectors ran)
    finished: the age of what reconciliation knows."""
    return (
        ReconciliationRun.objects.filter(status__in=[RunStatus.SUCCEEDED, RunStatus.PARTIAL])
        .order_by("-started_at")
        .values_list("finished_at", flat=True)
        .first()
    )


def incidents_needing_refund_count(*, start: date, end: date) -> int:
    """Incidents of REFUND_INCIDENT_TYPES detected on the UTC days start..end."""
    lo, hi = _bounds(start, end)
    return Incident.objects.filter(
        type__in=REFUND_INCIDENT_TYPES, detected_at__gte=lo, detected_at__lt=hi
    ).count()


def money_at_risk_overdue(*, overdue_before: datetime) -> list[dict[str, Any]]:
    """Per currency: the money at risk in live incidents detected before `overdue_before`."""
    rows = (
        Incident.objects.filter(state__in=LIVE_STATES, detected_at__lt=overdue_before)
        .order_by("currency")
        .values("currency")
        .annotate(count=Count("*"), amount=Sum("amount_at_risk"))
    )
    return [
        {
            "currency": r["currency"],
            "count": r["count"],
            "amount": _money_str(r["amount"] or 0, r["currency"]),
        }
        for r in rows
    ]


def incidents_live_about(*, order_ids: list[int], charge_ids: list[str]) -> list[OpenIncident]:
    """Live incidents about any of these orders or provider charges, in one query."""
    rows = (
        Incident.objects.filter(state__in=LIVE_STATES)
        .filter(Q(order_id__in=list(order_ids)) | Q(charge_id__in=list(charge_ids)))
        .order_by("id")
        .values_list(*_OPEN_INCIDENT_FIELDS)
    )
    return [OpenIncident(*row) for row in rows]


def incidents_summary_since(*, since: datetime) -> dict[str, dict[str, int]]:
    """Per incident type, of the incidents detected since `since`: how many, how many
    the system resolved itself (a re-check no longer found the condition), how many a
    person resolved or dismissed, and how many are still live. One grouped query."""
    rows = (
        Incident.objects.filter(detected_at__gte=since)
        .order_by()
        .values("type")
        .annotate(
            opened=Count("id"),
            auto_resolved=Count("id", filter=Q(resolution_kind=ResolutionKind.AUTO)),
            resolved_by_people=Count("id", filter=Q(resolution_kind=ResolutionKind.MANUAL)),
            dismissed=Count("id", filter=Q(resolution_kind=ResolutionKind.DISMISSED)),
            live=Count("id", filter=Q(state__in=LIVE_STATES)),
        )
    )
    return {row.pop("type"): row for row in sorted(rows, key=lambda r: r["type"])}


# Types whose incidents touch the customer (their money or their order); stock drift
# does not, whatever is done about it.
CUSTOMER_FACING_TYPES = frozenset(
    {"charge_without_order", "duplicate_charge", "amount_mismatch", "refund_missing", "stuck_saga"}
)


def incident_behind_order_change(*, order_id: int, at: datetime) -> int | None:
    """The incident that caused a change to an order at `at` (a cancellation, a
    refund), or None: a customer-facing incident about the order that was live then
    (detected before, not closed before). Remediations and staff fixes of an incident
    happen while it is live; dismissed ones (false positives) caused nothing."""
    incident = (
        Incident.objects.filter(order_id=order_id, type__in=CUSTOMER_FACING_TYPES, detected_at__lte=at)
        .exclude(state=IncidentState.DISMISSED)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=at))
        .order_by("-detected_at")
        .values_list("id", flat=True)
        .first()
    )
    return incident


def incidents_waiting(
    *, states: list[str], since_before=None, exclude_ids=None, limit: int = 50, counted: bool = True
) -> tuple[int | None, list[dict]]:
    """Incidents in `states` since detected, oldest first: the count and the first
    `limit` as (id, order_id, amount, currency, type, severity, since). Two queries."""
    return waiting_in_state(
        Incident.objects.filter(state__in=states).annotate(amount=F("amount_at_risk")),
        since="detected_at",
        since_before=since_before,
        exclude_ids=exclude_ids,
        limit=limit,
        counted=counted,
        fields=("id", "order_id", "amount", "currency", "type", "severity"),
    )


def incidents_waiting_in(*, specs: list[tuple[list[str], Any]], limit: int = 50) -> list[list[dict]]:
    """incidents_waiting's rows (counted=False) for several (states, since_before) in
    one statement: per spec, the oldest `limit` incidents in those states, as (id,
    order_id, amount, currency, type, severity, since)."""
    return waiting_in_states(
        [
            (
                lambda states=states: Incident.objects.filter(state__in=states).annotate(
                    amount=F("amount_at_risk")
                ),
                "detected_at",
                before,
            )
            for states, before in specs
        ],
        key=("incidents_waiting_in", tuple(tuple(str(s) for s in states) for states, _ in specs)),
        limit=limit,
        fields=("id", "order_id", "amount", "currency", "type", "severity"),
    )


def detector_descriptions() -> dict[str, str]:
    """Every detector's type (enabled or not) and its one-line description."""
    return {str(d.name): d.description for d in detectors_all(include_disabled=True)}


# --- Read model sources (readmodels/ rebuilds and checks its copies from these) ---------


def incidents_first_detected_at() -> datetime | None:
    """When the first incident was detected (an index look-up)."""
    return Incident.objects.order_by("detected_at").values_list("detected_at", flat=True).first()


def incidents_read_model_rows(
    *,
    changed_before: datetime | None = None,
    touching_from: datetime | None = None,
    touching_before: datetime | None = None,
):
    """Every incident's finance facts, as dicts, streamed: id, type, state, currency,
    amount_at_risk, detected_at, resolved_at, resolution_kind. With `changed_before`,
    the facts as they stood then: incidents detected before it, closed only if
    closed before it. With `touching_from`/`touching_before`, only incidents detected
    or resolved in that range (the read models' drift check of some days)."""
    rows = Incident.objects.order_by("id")
    if changed_before is not None:
        rows = rows.filter(detected_at__lt=changed_before)
    if touching_from is not None and touching_before is not None:
        rows = rows.filter(
            Q(detected_at__gte=touching_from, detected_at__lt=touching_before)
            | Q(resolved_at__gte=touching_from, resolved_at__lt=touching_before)
        )
    for row in rows.values(
        "id", "type", "state", "currency", "amount_at_risk", "detected_at", "resolved_at", "resolution_kind"
    ).iterator(chunk_size=2000):
        if (
            changed_before is not None
            and row["resolved_at"] is not None
            and row["resolved_at"] >= changed_before
        ):
            row = {**row, "state": IncidentState.OPEN, "resolved_at": None, "resolution_kind": ""}
        yield row


# --- Finance reports (backoffice/finance.py puts these together) -----------------------


def incidents_finance_rows(*, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Incidents live at some moment of [since, until) (detected before its end, not
    closed before its start): what finance reports per incident."""
    rows = (
        Incident.objects.filter(detected_at__lt=until)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=since))
        .order_by("id")
        .values(
            "id",
            "type",
            "severity",
            "state",
            "order_id",
            "charge_id",
            "amount_at_risk",
            "currency",
            "detected_at",
            "resolved_at",
            "resolution_kind",
            "resolved_by_id",
            "customer_notified_at",
        )
    )
    return [{**r, "customer_facing": r["type"] in CUSTOMER_FACING_TYPES} for r in rows]


def incidents_about_orders(*, order_ids: list[int]) -> list[dict[str, Any]]:
    """Every incident about these orders (any state), for linking refunds to incidents."""
    if not order_ids:
        return []
    return list(
        Incident.objects.filter(order_id__in=order_ids)
        .order_by("detected_at")
        .values("id", "type", "state", "order_id", "detected_at", "resolved_at")
    )


def remediations_rows(
    *, incident_ids: list[int] | None = None, since=None, until=None
) -> list[dict[str, Any]]:
    """Remediations (one fix on one incident), oldest first: of these incidents, or
    created in [since, until)."""
    rows = Remediation.objects.order_by("id")
    if incident_ids is not None:
        rows = rows.filter(incident_id__in=incident_ids)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    return list(
        rows.values(
            "id",
            "incident_id",
            "incident__type",
            "incident__order_id",
            "action",
            "state",
            "automatic",
            "by_id",
            "by__username",
            "reason",
            "money_moved",
            "currency",
            "effects",
            "created_at",
            "finished_at",
        )
    )


def provider_net_by_currency() -> dict[str, Decimal]:
    """The provider's own net per currency, from the synced provider records:
    succeeded charges minus succeeded refunds (major units)."""
    charges = (
        ProviderCharge.objects.filter(status="succeeded")
        .values("currency")
        .annotate(total=Sum("amount_minor"))
        .values_list("currency", "total")
    )
    refunds = (
        ProviderRefund.objects.filter(status="succeeded")
        .values("currency")
        .annotate(total=Sum("amount_minor"))
        .values_list("currency", "total")
    )
    net: dict[str, Decimal] = {}
    for currency, total in charges:
        net[currency.upper()] = net.get(currency.upper(), Decimal(0)) + minor_to_major(total, currency)
    for currency, total in refunds:
        net[currency.upper()] = net.get(currency.upper(), Decimal(0)) - minor_to_major(total, currency)
    return net


def provider_net_drift() -> list[dict[str, Any]]:
    """The hours whose running balance (ProviderNetByHour, kept by triggers) differs from
    a sum of the succeeded charges themselves: [{currency, hour, kept, charges}], empty
    when they agree. One statement that reads every charge (what clearing_mismatch no
    longer does on each pass): the proof that the triggers held, run by
    `reconcile --verify-balances`."""
    nets = ProviderNetByHour._meta.db_table
    charges = ProviderCharge._meta.db_table
    sql = (  # table names from the models; no values interpolated
        "SELECT COALESCE(k.currency, c.currency) AS currency, COALESCE(k.hour, c.hour) AS hour, "  # noqa: S608
        "COALESCE(k.net, 0) AS kept, COALESCE(c.net, 0) AS charges "
        f"FROM {nets} k FULL JOIN ("
        "  SELECT currency, date_bin('1 hour', created, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS hour, "
        f"  SUM(amount) AS net FROM {charges} WHERE status = 'succeeded' GROUP BY 1, 2"
        ") c ON c.currency = k.currency AND c.hour = k.hour "
        "WHERE COALESCE(k.net, 0) <> COALESCE(c.net, 0) ORDER BY 1, 2"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        columns = [col.name for col in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def provider_captures_drift() -> list[dict[str, Any]]:
    """The orders whose kept count of open charges (ProviderOrderCaptures, kept by
    triggers) differs from a count of the charges themselves: [{order_id, kept, charges}],
    empty when they agree. Reads every charge; run by the same check as provider_net_drift."""
    kept = ProviderOrderCaptures._meta.db_table
    charges = ProviderCharge._meta.db_table
    sql = (  # table names from the models; no values interpolated
        "SELECT COALESCE(k.order_id, c.order_id) AS order_id, "  # noqa: S608
        "COALESCE(k.open_charges, 0) AS kept, COALESCE(c.n, 0) AS charges "
        f"FROM {kept} k FULL JOIN ("
        f"  SELECT order_id, COUNT(*) AS n FROM {charges} WHERE status = 'succeeded' "
        "  AND order_id IS NOT NULL AND amount_refunded_minor < amount_minor GROUP BY order_id"
        ") c ON c.order_id = k.order_id "
        "WHERE COALESCE(k.open_charges, 0) <> COALESCE(c.n, 0) ORDER BY 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        columns = [col.name for col in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
