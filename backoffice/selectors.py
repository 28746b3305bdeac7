"""Back-office reads: its own tables, and the cases its pages and actions are decided on
(assembled from the owning apps' selectors)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from core.errors import NotFound
from core.sql import Part, column, parts_sql, read_parts
from idempotency import selectors as idempotency_selectors
from inventory import selectors as inventory_selectors
from inventory.dto import ReservationDTO
from notifications import selectors as notification_selectors
from notifications.selectors import NotificationDTO
from orders import selectors as order_selectors
from payments import selectors as payment_selectors
from payments.choices import ProviderAttemptOutcome
from payments.services import provider_client
from reconciliation import selectors as recon_selectors
from reconciliation import services as recon_services
from reconciliation.selectors import IncidentRow
from sagas import selectors as saga_selectors
from sagas.choices import StepOutcome
from webhooks import selectors as webhook_selectors

from . import probes
from .conf import provider_probe_timeout
from .models import ApprovalKind, ApprovalRequest, ApprovalStatus, StaffAction
from .operations.base import Case, IncidentCase, OrderCase

NOTE = "note"  # the StaffAction.action of a note on an order's case file


def provider_status() -> tuple[bool, str]:
    """Whether the provider answers its health check, kept a few seconds
    (backoffice.probes) so staff refreshing the overview never queue behind a slow
    provider more than once per interval (payments' kept client reuses its connection)."""

    def probe() -> tuple[bool, str]:
        with provider_client() as client:
            return client.health(timeout=provider_probe_timeout())

    return probes.kept(f"provider:{settings.PSP_BASE_URL}", probe)


def approvals_list(
    *, status: str | None = ApprovalStatus.PENDING, limit: int = 100, offset: int = 0
) -> list[ApprovalRequest]:
    """One query (requester and decider joined). Returned rows are read-only for templates."""
    qs = ApprovalRequest.objects.select_related("requested_by", "decided_by").order_by("-requested_at", "-id")
    if status:
        qs = qs.filter(status=status)
    offset = max(0, offset)
    return list(qs[offset : offset + limit])


def approvals_count(*, status: str | None = ApprovalStatus.PENDING) -> int:
    qs = ApprovalRequest.objects.all()
    return (qs.filter(status=status) if status else qs).count()


def approvals_pending_count() -> int:
    return ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).count()


def approvals_for_order(*, order_id: int) -> list[ApprovalRequest]:
    return list(
        ApprovalRequest.objects.filter(order_id=order_id)
        .select_related("requested_by", "decided_by")
        .order_by("requested_at", "id")
    )


def staff_actions_for_order(*, order_id: int) -> list[StaffAction]:
    return list(
        StaffAction.objects.filter(order_id=order_id).select_related("user").order_by("created_at", "id")
    )


def approvals_and_notes_for_order(*, order_id: int) -> tuple[list[ApprovalRequest], list[StaffAction]]:
    """approvals_for_order and the notes among staff_actions_for_order (with their
    people, as select_related gives them) in one statement built once per process: an
    order's case file read them in two, and compiling them cost more CPU than running them."""
    approvals, notes, users = read_parts(
        _approvals_and_notes_sql(),
        [order_id, order_id, NOTE, order_id, order_id, order_id, NOTE],
        _approval_parts(),
    )
    people = {user.pk: user for user, _ in users}
    for approval, _ in approvals:
        approval.requested_by = people[approval.requested_by_id]
        approval.decided_by = people.get(approval.decided_by_id) if approval.decided_by_id else None
    for note, _ in notes:
        note.user = people[note.user_id]
    return [a for a, _ in approvals], [n for n, _ in notes]


@functools.cache
def _approval_parts() -> tuple[Part, ...]:
    quote = connection.ops.quote_name
    user_model = get_user_model()
    approvals, actions, users = (quote(m._meta.db_table) for m in (ApprovalRequest, StaffAction, user_model))
    by_order = f"{approvals}.{column(ApprovalRequest, 'order_id')} = %s"
    notes = (
        f"{actions}.{column(StaffAction, 'order_id')} = %s AND {actions}.{column(StaffAction, 'action')} = %s"
    )
    people = " UNION ".join(
        (
            f"SELECT {approvals}.{column(ApprovalRequest, 'requested_by')} FROM {approvals} WHERE {by_order}",  # noqa: S608
            f"SELECT {approvals}.{column(ApprovalRequest, 'decided_by')} FROM {approvals} WHERE {by_order}",  # noqa: S608
            f"SELECT {actions}.{column(StaffAction, 'user')} FROM {actions} WHERE {notes}",  # noqa: S608
        )
    )
    return (
        Part(
            ApprovalRequest,
            f"FROM {approvals} WHERE {by_order}",
            f"{approvals}.{column(ApprovalRequest, 'requested_at')}, {approvals}.id",
        ),
        Part(
            StaffAction,
            f"FROM {actions} WHERE {notes}",
            f"{actions}.{column(StaffAction, 'created_at')}, {actions}.id",
        ),
        Part(user_model, f"FROM {users} WHERE {users}.id IN ({people})", f"{users}.id"),
    )


@functools.cache
def _approvals_and_notes_sql() -> str:
    return parts_sql(_approval_parts())


# --- the cases actions are decided on ------------------------------------------------------------------


def order_case(*, order_id: int) -> OrderCase:
    """An order, its saga runs, its payment and refunds. Raises NotFound."""
    order = order_selectors.order_get(order_id=order_id)
    paid = payment_selectors.payment_case_for_order(order_id=order.id)  # payment, refunds: 2 queries
    return OrderCase(
        runs=tuple(saga_selectors.saga_runs_for_subject(subject_id=str(order.id))),
        order=order,
        payment=paid.payment,
        refunds=paid.refunds,
        refundable=paid.refundable,
        deliveries=tuple(webhook_selectors.webhook_deliveries_for_order(order_id=order.id)),
    )


def incident_case(*, incident_id: int) -> IncidentCase:
    incident = recon_selectors.incident_get(incident_id=incident_id)
    if incident is None:
        raise NotFound(f"Incident {incident_id} does not exist.", code="incident_not_found")
    return IncidentCase(
        incident=incident, remediations=tuple(recon_services.remediation_actions(incident_id=incident_id))
    )


def case_get(*, page: str, subject_id: int) -> Case:
    """The case an action of `page` ("order", "incident") is decided on."""
    if page == "order":
        return order_case(order_id=subject_id)
    if page == "incident":
        return incident_case(incident_id=subject_id)
    raise NotFound(f"No page {page!r}.", code="page_unknown")


# --- an order's case file -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: datetime
    # order | api | saga | staff | provider | payment | ledger | webhook | incident | note
    # | customer (a message to the customer) | shop (a webhook delivery to the shop)
    kind: str
    title: str
    detail: str = ""
    by: str | None = None
    tone: str = ""  # "" | ok | bad


@dataclass(frozen=True)
class CaseFile:
    """The whole story of an order, in time order, and what it is made of."""

    case: OrderCase
    events: list[Event]
    reservations: list[ReservationDTO]
    incidents: list[IncidentRow]
    approvals: list[ApprovalRequest]
    notifications: list[NotificationDTO]


def _approval_title(approval: ApprovalRequest) -> str:
    money = f"{approval.amount} {approval.currency}"
    if approval.kind == ApprovalKind.REFUND:
        return f"Refund of {money} asked (approval #{approval.pk})"
    if approval.kind == ApprovalKind.CANCEL:
        return f"Cancellation of the order ({money} back) asked (approval #{approval.pk})"
    if approval.kind == ApprovalKind.DISMISSAL:
        return (
            f"Dismissal of incident #{approval.incident_id} ({money} at risk) asked (approval #{approval.pk})"
        )
    action = (approval.params or {}).get("action", approval.operation)
    return (
        f"Remediation {action} of incident #{approval.incident_id} ({money}) asked (approval #{approval.pk})"
    )


def order_case_file(*, order_id: int) -> CaseFile:
    """Every source of an order's story — its audit log, the API request behind it, its
    saga runs (steps and staff actions), the provider calls, the payment's audit log,
    ledger postings and webhooks, incidents, approvals, notes, messages to the customer
    and webhook deliveries to the shop — as one list in time order. One statement per
    owning app (orders, payments, sagas, backoffice, idempotency, reconciliation,
    notifications, webhooks, inventory), whatever the number of runs or rows; the
    case is order_case's, read through those statements."""
    order, order_log = order_selectors.order_with_audit_log(order_id=order_id)
    money = payment_selectors.payment_story_for_order(order_id=order.id)
    sagas = saga_selectors.saga_runs_with_logs_for_subject(subject_id=str(order.id))
    case = OrderCase(
        runs=sagas.runs,
        order=order,
        payment=money.case.payment,
        refunds=money.case.refunds,
        refundable=money.case.refundable,
        deliveries=tuple(webhook_selectors.webhook_deliveries_for_order(order_id=order.id)),
    )
    events: list[Event] = []

    def add(
        at: datetime | None, kind: str, title: str, detail: str = "", by: str | None = None, tone: str = ""
    ):
        if at is not None:
            events.append(Event(at, kind, title, detail, by, tone))

    for log in order_log:
        title = f"Order {log['source'] or '∅'} → {log['target']} ({log['transition']})"
        add(log["at"], "order", title, log["description"], log["by"])
    for rec in idempotency_selectors.idempotency_records_near(
        client_id=order.client_id, around=order.created_at
    ):
        if rec.response_object_id == order.id:
            add(
                rec.created_at,
                "api",
                f"API {rec.request_method} {rec.request_path} → {rec.response_status}",
                # The idempotency app does not count replays; it keeps the one response
                # every replay gets, so that is what the case file can say.
                f"Idempotency-Key {rec.key!r}; any replay of this key returns this stored response "
                f"(kept until {rec.expires_at:%Y-%m-%d %H:%M}; replays are not counted)",
            )
    for run in case.runs:
        add(run.created_at, "saga", f"Saga {run.saga_type} #{run.id} started")
        for step in sagas.steps[run.id]:
            add(
                step.started_at,
                "saga",
                f"{run.saga_type} #{run.id}: {step.step} ({step.direction}) attempt {step.attempt} → {step.outcome}",
                step.error,
                tone="ok" if step.outcome == StepOutcome.DONE else "bad",
            )
        for act in sagas.actions[run.id]:
            title = f"Saga #{run.id}: {act.action} ({act.from_status} → {act.to_status})"
            add(act.created_at, "staff", title, act.reason, act.by_username)
    # The payment's attempts, audit log, ledger and webhooks (all empty without a payment).
    for att in money.attempts:
        add(
            att.created_at,
            "provider",
            f"Provider {att.kind} → {att.outcome}"
            + (f" ({att.provider_object_id})" if att.provider_object_id else ""),
            f"key {att.idempotency_key}; HTTP {att.http_status or '—'}; {att.error}".rstrip("; "),
            tone="ok" if att.outcome == ProviderAttemptOutcome.SUCCEEDED else "bad",
        )
    for log in money.audit:
        title = f"{log['object'].capitalize()} {log['source'] or '∅'} → {log['target']}"
        add(log["at"], "payment", title, log["description"], log["by"])
    for entry in money.ledger:
        title = f"Ledger {entry['kind']}: {entry['account']} {entry['amount']} {entry['currency']}"
        add(entry["at"], "ledger", title, entry["memo"])
    for ev in money.webhooks:
        repeats = (
            f"; delivered {ev['deliveries']} times, last at {ev['last_seen_at']:%H:%M:%S}"
            if ev["deliveries"] > 1
            else ""
        )
        add(
            ev["at"],
            "webhook",
            f"Webhook {ev['event_type']} ({ev['object_id'] or '—'}) → {ev['outcome'] or 'received'}",
            f"event {ev['event_id']}{repeats}" + (f"; {ev['note']}" if ev["note"] else ""),
        )
    incidents = recon_selectors.incidents_for_order(order_id=order.id)
    for inc in incidents:
        add(inc.detected_at, "incident", f"Incident #{inc.id} {inc.type} ({inc.severity}) detected",
            f"now {inc.state}", tone="bad")  # fmt: skip
    approvals, notes = approvals_and_notes_for_order(order_id=order.id)
    for ap in approvals:
        add(ap.requested_at, "staff", _approval_title(ap), ap.reason, ap.requested_by.get_username())
        if ap.decided_at:
            decider = ap.decided_by.get_username() if ap.decided_by else None
            add(ap.decided_at, "staff", f"Approval #{ap.pk} {ap.status}", ap.decision_reason, decider)
    for act in notes:
        add(act.created_at, "note", "Note", act.reason, act.user.get_username())
    notifications = notification_selectors.notifications_for_order(order_id=order.id)
    for note in notifications:
        add(
            note.sent_at or note.created_at,
            "customer",
            f"{'Apology' if note.apology else 'Message'} to the customer: “{note.subject}” → {note.status}",
            f"to {note.to}"
            + (f"; incident #{note.incident_id}" if note.incident_id else "")
            + (f"; {note.last_error}" if note.last_error else ""),
            tone="bad" if note.status == "failed" else "",
        )
    for d in case.deliveries:
        add(
            d.delivered_at or d.last_attempt_at or d.created_at,
            "shop",
            f"Webhook {d.event_type} to {d.endpoint_url} → {d.status} "
            f"({d.attempts} attempt{'s' if d.attempts != 1 else ''})",
            d.last_error,
            tone="bad" if d.status == "failed" else ("ok" if d.status == "succeeded" else ""),
        )
    events.sort(key=lambda e: e.at)
    return CaseFile(
        case=case,
        events=events,
        reservations=inventory_selectors.reservations_for_order(order.id),
        incidents=incidents,
        approvals=approvals,
        notifications=notifications,
    )
