"""Staff pages for support and finance.

Views are thin: they read through the apps' selectors, act through their services,
and turn a ConcordError into a message (never a 500). Every action form carries a
one-time key (see services.staff_action_record) and, where it changes anything that
matters, goes through a preview page that says what will happen before it does.
"""

from __future__ import annotations

import csv
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from core.errors import ConcordError, NotFound
from idempotency import selectors as idempotency_selectors
from inventory import selectors as inventory_selectors
from orders import selectors as order_selectors
from orders import services as order_services
from payments import selectors as payment_selectors
from reconciliation import selectors as recon_selectors
from reconciliation import services as recon_services
from reconciliation.choices import IncidentState, IncidentType, Severity
from sagas import registry as saga_registry
from sagas import selectors as saga_selectors
from sagas import services as saga_services

from . import charts, services, slo
from . import selectors as bo_selectors
from .conf import approval_threshold, provider_probe_timeout
from .permissions import finance_required, is_support, staff_required, support_required

PAGE_SIZE = 50
SAGA_STATUSES = (
    "failed",
    "compensation_failed",
    "running",
    "compensating",
    "completed",
    "compensated",
    "resolved",
)
SAGA_OPS = {
    "retry_now": ("Retry now", saga_services.saga_retry_now),
    "compensate": ("Compensate (undo and cancel)", None),
    "mark_resolved": ("Mark resolved", saga_services.saga_mark_resolved),
}


def _new_key() -> str:
    return uuid.uuid4().hex


def _age(moment: datetime | None) -> str:
    return timesince(moment) if moment else "—"


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _act(request: HttpRequest, label: str, fn: Callable[[], Any]) -> Any:
    """Run one action in one transaction; a ConcordError becomes a message."""
    try:
        with transaction.atomic():
            result = fn()
    except services.AlreadySubmitted as exc:
        messages.info(request, exc.message)
        return None
    except ConcordError as exc:
        messages.error(request, f"{label}: {exc.message}")
        return None
    return result if result is not None else True


# --- Overview ------------------------------------------------------------------------


_probe_client: httpx.Client | None = None
_probe_cache: dict[str, tuple[float, tuple[bool, str]]] = {}
PROBE_CACHE_SECONDS = 5.0


def _provider_reachable() -> tuple[bool, str]:
    """Whether the provider answers its health check. One process-wide client (a new
    httpx client per call builds an SSL context: ~20 ms on every overview), and the
    answer is kept a few seconds, so staff refreshing the overview never queue behind
    a slow provider more than once per interval."""
    global _probe_client
    url = settings.PSP_BASE_URL.rstrip("/") + "/healthz"
    now = time.monotonic()
    cached = _probe_cache.get(url)
    if cached is not None and cached[0] > now:
        return cached[1]
    if _probe_client is None:
        _probe_client = httpx.Client()
    try:
        response = _probe_client.get(url, timeout=provider_probe_timeout())
        result = (response.status_code == 200, f"HTTP {response.status_code}")
    except httpx.HTTPError as exc:
        result = (False, type(exc).__name__)
    _probe_cache[url] = (now + PROBE_CACHE_SECONDS, result)
    return result


@staff_required
def overview(request: HttpRequest) -> HttpResponse:
    # Not saga_state_summary: that scans every run ever made; the overview needs only
    # the runs waiting for a person, which partial indexes serve.
    attention = saga_selectors.saga_attention_counts()
    reachable, detail = _provider_reachable()
    return render(
        request,
        "backoffice/overview.html",
        {
            "attention": attention,
            "stuck": saga_selectors.saga_runs_list(limit=5),
            "severity": recon_selectors.incidents_live_by_severity(),
            "at_risk": recon_selectors.incidents_open_at_risk(),
            "last_run": recon_selectors.reconciliation_run_latest(),
            "provider_ok": reachable,
            "provider_detail": detail,
            "pending_approvals": bo_selectors.approvals_pending_count(),
        },
    )


# --- Stuck sagas -----------------------------------------------------------------------


@staff_required
def saga_list(request: HttpRequest) -> HttpResponse:
    q = request.GET
    status = q.get("status") or ""
    older = _int(q.get("older_than_minutes"))
    show_all = q.get("all") == "1"
    runs = saga_selectors.saga_runs_list(
        statuses=[status] if status in SAGA_STATUSES else None,
        saga_type=q.get("saga_type") or None,
        step=q.get("step") or None,
        error_contains=q.get("error") or None,
        created_before=timezone.now() - timedelta(minutes=older) if older else None,
        stuck_only=not show_all,
        sort=q.get("sort") or "oldest",
        limit=PAGE_SIZE,
    )
    return render(
        request,
        "backoffice/saga_list.html",
        {
            "runs": runs,
            "filters": q,
            "statuses": SAGA_STATUSES,
            "saga_types": saga_registry.names(),
            "can_act": is_support(request.user),
            "action_key": _new_key(),
        },
    )


@support_required
@require_POST
def saga_bulk(request: HttpRequest) -> HttpResponse:
    op = request.POST.get("op", "")
    reason = request.POST.get("reason", "").strip()
    ids = [i for i in (_int(v) for v in request.POST.getlist("run_ids")) if i is not None][:PAGE_SIZE]
    back = reverse("backoffice:sagas")
    if op not in ("retry_now", "compensate"):
        messages.error(request, "Choose retry or compensate.")
        return redirect(back)
    if not ids:
        messages.error(request, "Select at least one saga run.")
        return redirect(back)
    if not reason:
        messages.error(request, "A reason is required.")
        return redirect(back)
    runs = saga_selectors.saga_runs_by_ids(run_ids=ids)
    plan = [(run, op in saga_selectors.saga_operations_allowed(run=run, user=request.user)) for run in runs]
    key = request.POST.get("action_key", "")
    if request.POST.get("confirm") != "1":
        return render(
            request,
            "backoffice/saga_bulk_preview.html",
            {
                "op": op,
                "op_label": SAGA_OPS[op][0],
                "reason": reason,
                "plan": plan,
                "legal_count": sum(1 for _, ok in plan if ok),
                "action_key": key or _new_key(),
            },
        )
    done = skipped = 0
    for run, legal in plan:
        if not legal:
            skipped += 1
            continue
        result = _act(
            request,
            f"Saga run {run.id}",
            lambda run=run: _saga_op(request, run, op, reason, f"{key}-{run.id}"),
        )
        done += 1 if result else 0
    messages.success(request, f"{SAGA_OPS[op][0]}: {done} run(s) done, {skipped} not eligible.")
    return redirect(back)


def _saga_op(request: HttpRequest, run: Any, op: str, reason: str, key: str) -> Any:
    order_id = _int(run.subject_id)
    services.staff_action_record(
        key=key,
        by=request.user,
        action=f"saga_{op}",
        reason=reason,
        order_id=order_id,
        target=f"saga {run.id}",
    )
    if op == "compensate":
        return saga_services.saga_compensate(
            run_id=run.id, by=request.user, reason=reason, failure_code="cancelled_by_staff"
        )
    return SAGA_OPS[op][1](run_id=run.id, by=request.user, reason=reason)


# --- Order case file -------------------------------------------------------------------


def _timeline(order: Any) -> tuple[list[dict], dict]:
    events: list[dict] = []

    def add(
        at: datetime | None, kind: str, title: str, detail: str = "", by: str | None = None, tone: str = ""
    ):
        if at is not None:
            events.append({"at": at, "kind": kind, "title": title, "detail": detail, "by": by, "tone": tone})

    for log in order_selectors.order_audit_log(order_id=order.id):
        add(
            log["at"],
            "order",
            f"Order {log['source'] or '∅'} → {log['target']} ({log['transition']})",
            log["description"],
            log["by"],
        )
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
    runs = saga_selectors.saga_runs_for_subject(subject_id=str(order.id))
    for run in runs:
        add(run.created_at, "saga", f"Saga {run.saga_type} #{run.id} started")
        for step in saga_selectors.saga_step_log(run_id=run.id):
            tone = "ok" if step.outcome == "done" else "bad"
            add(
                step.started_at,
                "saga",
                f"{run.saga_type} #{run.id}: {step.step} ({step.direction}) attempt {step.attempt} → {step.outcome}",
                step.error,
                tone=tone,
            )
        for act in saga_selectors.saga_action_log(run_id=run.id):
            add(
                act.created_at,
                "staff",
                f"Saga #{run.id}: {act.action} ({act.from_status} → {act.to_status})",
                act.reason,
                act.by_username,
            )
    payment = payment_selectors.payment_for_order(order_id=order.id)
    refunds: list = []
    if payment is not None:
        for att in payment_selectors.provider_attempts_for_payment(payment_id=payment.id):
            add(
                att.created_at,
                "provider",
                f"Provider {att.kind} → {att.outcome}"
                + (f" ({att.provider_object_id})" if att.provider_object_id else ""),
                f"key {att.idempotency_key}; HTTP {att.http_status or '—'}; {att.error}".rstrip("; "),
                tone="ok" if att.outcome == "succeeded" else "bad",
            )
        for log in payment_selectors.payment_audit_log(payment_id=payment.id):
            add(
                log["at"],
                "payment",
                f"{log['object'].capitalize()} {log['source'] or '∅'} → {log['target']}",
                log["description"],
                log["by"],
            )
        for entry in payment_selectors.ledger_entries_for_payment(payment_id=payment.id):
            add(
                entry["at"],
                "ledger",
                f"Ledger {entry['kind']}: {entry['account']} {entry['amount']} {entry['currency']}",
                entry["memo"],
            )
        refunds = payment_selectors.refunds_for_payment(payment_id=payment.id)
        for ev in payment_selectors.webhook_events_for_payment(payment_id=payment.id):
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
    incidents = recon_selectors.incidents_list(
        order_id=order.id, states=["open", "acknowledged", "resolved", "dismissed"]
    )
    for inc in incidents:
        add(
            inc.detected_at,
            "incident",
            f"Incident #{inc.id} {inc.type} ({inc.severity}) detected",
            f"now {inc.state}",
            tone="bad",
        )
    approvals = bo_selectors.approvals_for_order(order_id=order.id)
    for ap in approvals:
        add(
            ap.requested_at,
            "staff",
            (
                f"Refund of {ap.amount} {ap.currency} asked (approval #{ap.pk})"
                if ap.kind == "refund"
                else f"Cancellation of the order ({ap.amount} {ap.currency} back) asked (approval #{ap.pk})"
                if ap.kind == "cancel"
                else f"Remediation {ap.remediation_action} of incident #{ap.incident_id} "
                f"({ap.amount} {ap.currency}) asked (approval #{ap.pk})"
            ),
            ap.reason,
            ap.requested_by.get_username(),
        )
        if ap.decided_at:
            add(
                ap.decided_at,
                "staff",
                f"Approval #{ap.pk} {ap.status}",
                ap.decision_reason,
                ap.decided_by.get_username() if ap.decided_by else None,
            )
    for act in bo_selectors.staff_actions_for_order(order_id=order.id):
        if act.action == "note":
            add(act.created_at, "note", "Note", act.reason, act.user.get_username())
    events.sort(key=lambda e: e["at"])
    return events, {
        "runs": runs,
        "payment": payment,
        "refunds": refunds,
        "incidents": incidents,
        "approvals": approvals,
    }


def _order_actions(request: HttpRequest, order: Any, runs: list, payment: Any, refunds: list) -> list[dict]:
    """Only what is legal now and allowed for this person (the services check again)."""
    actions: list[dict] = []
    if not is_support(request.user):
        return actions
    for run in runs:
        for op in saga_selectors.saga_operations_allowed(run=run, user=request.user):
            if op in SAGA_OPS:
                actions.append({"op": op, "label": f"{SAGA_OPS[op][0]} (saga #{run.id})", "run_id": run.id})
    active = any(run.status in ("running", "compensating") for run in runs)
    if (
        order.status == "pending"
        and payment is not None
        and payment.status == "captured"
        and not active
        and request.user.has_perm("orders.change_order")
    ):
        actions.append({"op": "confirm", "label": "Confirm the order manually"})
    if (
        payment is not None
        and payment.status in ("captured", "partially_refunded")
        and payment.refundable_amount > 0
        and request.user.has_perm(services.REQUEST_REFUND)
    ):
        actions.append(
            {"op": "refund", "label": "Refund (full or partial)", "amount": payment.refundable_amount}
        )
    if order.status == "confirmed" and request.user.has_perm(services.CANCEL_ORDER):
        actions.append({"op": "cancel", "label": "Cancel the order (full refund, stock back on the shelf)"})
    if payment is not None and request.user.has_perm(services.REQUEST_REFUND):
        # A back-office refund still pending: its task is retrying or gave up, or the
        # broker lost the message. Sending it again is safe (same provider key).
        for refund in refunds:
            if refund.status == "pending" and refund.idempotency_key.startswith(services.REFUND_KEY_PREFIX):
                actions.append(
                    {
                        "op": "resend_refund",
                        "label": f"Send refund #{refund.id} ({refund.amount} {refund.currency}) to the provider again",
                        "refund_id": refund.id,
                    }
                )
    return actions


def _order_or_404(order_id: int) -> Any:
    return order_selectors.order_get(order_id=order_id)


@staff_required
def order_case(request: HttpRequest, order_id: int) -> HttpResponse:
    try:
        order = _order_or_404(order_id)
    except NotFound as exc:
        messages.error(request, exc.message)
        return redirect("backoffice:search")
    events, parts = _timeline(order)
    return render(
        request,
        "backoffice/order_case.html",
        {
            "order": order,
            "events": events,
            "reservations": inventory_selectors.reservations_for_order(order.id),
            "actions": _order_actions(request, order, parts["runs"], parts["payment"], parts["refunds"]),
            "action_key": _new_key(),
            "threshold": approval_threshold(),
            "can_note": is_support(request.user),
            **parts,
        },
    )


def _order_preview(
    order: Any, op: str, run: Any, amount: str, runs: list, payment: Any, refund: Any = None
) -> dict:
    """What the action would do, in words and numbers."""
    effects: list[str] = []
    plan = None
    if op == "retry_now":
        effects.append(
            f"Saga #{run.id} ({run.saga_type}) runs step “{run.step}” again now, attempts reset to 0."
        )
        effects.append("External calls reuse their idempotency key: a charge or refund cannot happen twice.")
    elif op == "compensate":
        definition = saga_registry.get(run.saga_type)
        names = [s.name for s in definition.steps]
        done = names[: run.step_index + (1 if run.status == "failed" else 0)]
        effects.append(f"Saga #{run.id} undoes, in reverse: {', '.join(reversed(done)) or 'nothing yet'}.")
        if payment is not None and payment.status in ("captured", "partially_refunded"):
            effects.append(
                f"Money: {payment.refundable_amount} {payment.currency} goes back to the customer."
            )
        lines = ", ".join(f"{ln.quantity} x {ln.sku}" for ln in order.lines)
        effects.append(f"Stock: held units return to the shelf ({lines}).")
        effects.append("The order ends cancelled (cancelled_by_staff).")
    elif op == "mark_resolved":
        effects.append(f"Saga #{run.id} leaves the stuck list as resolved; nothing else changes.")
    elif op == "confirm":
        effects.append(
            f"Order {order.id}: pending → confirmed. Payment {payment.id} is captured ({payment.amount} {payment.currency})."
        )
    elif op == "cancel":
        cancel = services.order_cancel_plan(order_id=order.id)
        lines = ", ".join(f"{ln.quantity} x {ln.sku}" for ln in order.lines)
        effects.append(
            f"Order {order.id}: confirmed → cancelling → cancelled (cancelled_by_staff), through the "
            "orders app's cancellation saga: refund, restock, cancel."
        )
        effects.append(f"Money: {cancel.refund} {cancel.currency} back to the customer (full refund).")
        effects.append(f"Stock: {lines} back on the shelf.")
        if cancel.needs_approval:
            effects.append(
                f"Above {cancel.threshold} {cancel.currency}: the cancellation waits for a second person "
                "from finance to approve."
            )
    elif op == "resend_refund":
        effects.append(
            f"Refund #{refund.id} of {refund.amount} {refund.currency} is asked of the provider again now, "
            f"with its key {refund.idempotency_key!r}: the provider replays, the money goes back at most once."
        )
        effects.append("Stock: unchanged.")
    elif op == "refund":
        plan = services.refund_plan(order_id=order.id, amount=amount)
        effects.append(
            f"Money: {plan.amount} {plan.currency} back to the customer ({'full' if plan.full else 'partial'} refund; "
            f"{plan.refundable} refundable)."
        )
        effects.append("Stock: unchanged.")
        if plan.needs_approval:
            effects.append(
                f"Above {plan.threshold} {plan.currency}: the refund waits for a second person from finance to approve."
            )
    return {"effects": effects, "plan": plan}


@support_required
@require_POST
def order_action(request: HttpRequest, order_id: int) -> HttpResponse:
    back = reverse("backoffice:order", args=[order_id])
    op = request.POST.get("op", "")
    reason = request.POST.get("reason", "").strip()
    key = request.POST.get("action_key", "")
    try:
        order = _order_or_404(order_id)
    except NotFound as exc:
        messages.error(request, exc.message)
        return redirect("backoffice:search")
    if op == "note":
        if _act(
            request,
            "Note",
            lambda: services.order_note_add(order_id=order.id, by=request.user, text=reason, action_key=key),
        ):
            messages.success(request, "Note added.")
        return redirect(back)
    runs = saga_selectors.saga_runs_for_subject(subject_id=str(order.id))
    payment = payment_selectors.payment_for_order(order_id=order.id)
    refunds = payment_selectors.refunds_for_payment(payment_id=payment.id) if payment else []
    legal = {
        (a["op"], a.get("run_id"), a.get("refund_id"))
        for a in _order_actions(request, order, runs, payment, refunds)
    }
    run_id = _int(request.POST.get("run_id"))
    refund_id = _int(request.POST.get("refund_id"))
    wanted = (op, run_id if op in SAGA_OPS else None, refund_id if op == "resend_refund" else None)
    if wanted not in legal:
        messages.error(request, "That action is not possible for this order now.")
        return redirect(back)
    if not reason:
        messages.error(request, "A reason is required.")
        return redirect(back)
    run = next((r for r in runs if r.id == run_id), None)
    refund = next((r for r in refunds if r.id == refund_id), None)
    amount = request.POST.get("amount", "")
    if request.POST.get("confirm") != "1":
        try:
            preview = _order_preview(order, op, run, amount, runs, payment, refund)
        except ConcordError as exc:
            messages.error(request, exc.message)
            return redirect(back)
        return render(
            request,
            "backoffice/order_action_preview.html",
            {
                "order": order,
                "op": op,
                "run": run,
                "refund": refund,
                "reason": reason,
                "amount": amount,
                "action_key": key or _new_key(),
                **preview,
            },
        )
    if op in SAGA_OPS:
        if _act(request, SAGA_OPS[op][0], lambda: _saga_op(request, run, op, reason, key)):
            messages.success(request, f"{SAGA_OPS[op][0]}: done for saga #{run.id}.")
    elif op == "confirm":

        def confirm() -> Any:
            services.staff_action_record(
                key=key, by=request.user, action="order_confirm", reason=reason, order_id=order.id
            )
            return order_services.order_confirm(order_id=order.id, by=request.user, reason=reason)

        if _act(request, "Confirm", confirm):
            messages.success(request, f"Order {order.id} confirmed.")
    elif op == "refund":
        outcome = _act(
            request,
            "Refund",
            lambda: services.refund_request(
                order_id=order.id, amount=amount, reason=reason, by=request.user, action_key=key
            ),
        )
        if outcome and outcome.approval_id:
            messages.warning(request, f"Refund waits for finance approval (request #{outcome.approval_id}).")
        elif outcome:
            messages.success(
                request, f"Refund #{outcome.refund_id} created; it is being sent to the provider."
            )
    elif op == "cancel":
        approval_id = _act(
            request,
            "Cancel",
            lambda: services.order_cancel_request(
                order_id=order.id, reason=reason, by=request.user, action_key=key
            ),
        )
        if approval_id is True:  # _act's "done" for a service that returned None
            messages.success(request, f"Order {order.id} is being cancelled: refund, restock, cancel.")
        elif approval_id:
            messages.warning(
                request, f"The cancellation waits for finance approval (request #{approval_id})."
            )
    elif op == "resend_refund":
        _resend_refund(request, order.id, refund_id, reason, key)
    return redirect(back)


def _resend_refund(request: HttpRequest, order_id: int, refund_id: int, reason: str, key: str) -> None:
    """Claim the form key (committed), then call the provider outside any transaction."""
    try:
        refund = services.refund_resend_claim(
            refund_id=refund_id, order_id=order_id, by=request.user, reason=reason, action_key=key
        )
        sent = services.refund_send(payment_id=refund.payment_id, idempotency_key=refund.idempotency_key)
    except services.AlreadySubmitted as exc:
        messages.info(request, exc.message)
        return
    except ConcordError as exc:
        messages.error(request, f"Send refund: {exc.message}")
        return
    if sent.status == "succeeded":
        messages.success(request, f"Refund #{sent.refund_id} succeeded at the provider.")
    elif sent.status == "failed":
        messages.error(
            request, f"The provider refused refund #{sent.refund_id}: {sent.error or sent.outcome}."
        )
    else:
        messages.warning(
            request,
            f"Refund #{sent.refund_id} is still pending ({sent.outcome}: {sent.error}); try again later.",
        )


# --- Incidents ---------------------------------------------------------------------------


@staff_required
def incident_list(request: HttpRequest) -> HttpResponse:
    q = request.GET
    older = _int(q.get("older_than_minutes"))
    min_amount = None
    if q.get("min_amount"):
        try:
            min_amount = services.parse_amount(q["min_amount"])
        except ConcordError as exc:
            messages.error(request, exc.message)
    states = [q["state"]] if q.get("state") in IncidentState.values else None
    rows = recon_selectors.incidents_list(
        types=[q["type"]] if q.get("type") else None,
        severities=[q["severity"]] if q.get("severity") else None,
        states=states,
        detected_before=timezone.now() - timedelta(minutes=older) if older else None,
        min_amount=min_amount,
        assigned_to_id=request.user.pk if q.get("mine") == "1" else None,
        sort=q.get("sort") or "amount",
        limit=PAGE_SIZE,
    )
    return render(
        request,
        "backoffice/incident_list.html",
        {
            "rows": rows,
            "filters": q,
            "types": IncidentType.choices,
            "severities": Severity.choices,
            "states": IncidentState.choices,
        },
    )


def _remediation(incident: Any) -> dict | None:
    """The suggested fix, as a link to the page where it is done (with its preview)."""
    if incident.saga_run_id and incident.order_id:
        return {
            "label": "Open the saga's order to retry or compensate it",
            "href": reverse("backoffice:order", args=[incident.order_id]),
        }
    if incident.type in ("duplicate_charge", "charge_without_order", "refund_missing") and incident.order_id:
        return {
            "label": "Refund the extra money from the order's case file",
            "href": reverse("backoffice:order", args=[incident.order_id]),
        }
    if incident.order_id:
        return {
            "label": "Open the order's case file",
            "href": reverse("backoffice:order", args=[incident.order_id]),
        }
    return None


REMEDIATION_LABELS = {
    "refund_extra_charges": "Refund the extra charges",
    "refund_charge": "Refund the charge",
    "confirm_order": "Confirm the order with this charge",
    "refund_payment": "Refund the payment",
    "release_stock": "Release the held stock",
    "retry_saga": "Retry the saga",
    "compensate_saga": "Compensate the saga",
}


def _remediation_actions(incident_id: int) -> list[dict]:
    """The reconciliation app's remediations for this incident's type (first = suggested)."""
    try:
        names = recon_services.remediation_actions(incident_id=incident_id)
    except ConcordError:
        return []
    return [
        {"action": n, "label": REMEDIATION_LABELS.get(n, n), "suggested": i == 0} for i, n in enumerate(names)
    ]


@staff_required
def incident_detail(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = recon_selectors.incident_get(incident_id=incident_id)
    if incident is None:
        messages.error(request, f"Incident {incident_id} does not exist.")
        return redirect("backoffice:incidents")
    live = incident.state in ("open", "acknowledged")
    return render(
        request,
        "backoffice/incident_detail.html",
        {
            "incident": incident,
            "live": live,
            "can_act": is_support(request.user) and live,
            "can_note": is_support(request.user),
            "remediation": _remediation(incident),
            "remediations": _remediation_actions(incident_id) if is_support(request.user) and live else [],
            "action_key": _new_key(),
        },
    )


INCIDENT_OPS = {
    "assign_me": "Assign to me",
    "acknowledge": "Acknowledge",
    "resolve": "Resolve",
    "dismiss": "Dismiss as false positive",
    "note": "Add note",
    "remediate": "Run remediation",
}


@support_required
@require_POST
def incident_action(request: HttpRequest, incident_id: int) -> HttpResponse:
    back = reverse("backoffice:incident", args=[incident_id])
    op = request.POST.get("op", "")
    reason = request.POST.get("reason", "").strip()
    key = request.POST.get("action_key", "")
    incident = recon_selectors.incident_get(incident_id=incident_id)
    if incident is None or op not in INCIDENT_OPS:
        messages.error(request, "Unknown incident or action.")
        return redirect("backoffice:incidents")
    if op == "assign_me" and not reason:
        reason = "Taking this one."
    if not reason:
        messages.error(request, "A reason is required.")
        return redirect(back)
    if op == "remediate":
        return _remediate(request, incident, reason, key)
    if op in ("resolve", "dismiss") and request.POST.get("confirm") != "1":
        effects = (
            ["The detector re-checks the condition; if it persists the incident reopens at once."]
            if op == "resolve"
            else ["The incident closes as a false positive; nothing else changes."]
        )
        return render(
            request,
            "backoffice/incident_action_preview.html",
            {
                "incident": incident,
                "op": op,
                "op_label": INCIDENT_OPS[op],
                "reason": reason,
                "effects": effects,
                "action_key": key or _new_key(),
            },
        )
    user = request.user

    def run() -> Any:
        services.staff_action_record(
            key=key,
            by=user,
            action=f"incident_{op}",
            reason=reason,
            order_id=incident.order_id,
            target=f"incident {incident_id}",
        )
        if op == "assign_me":
            return recon_services.incident_assign(incident_id=incident_id, assignee_id=user.pk, by=user)
        if op == "acknowledge":
            return recon_services.incident_acknowledge(incident_id=incident_id, by=user, reason=reason)
        if op == "dismiss":
            return recon_services.incident_dismiss(incident_id=incident_id, by=user, reason=reason)
        if op == "note":
            return recon_services.incident_add_note(incident_id=incident_id, by=user, text=reason)
        return recon_services.incident_resolve(incident_id=incident_id, by=user, reason=reason)

    result = _act(request, INCIDENT_OPS[op], run)
    if result is not None:
        if op == "resolve" and getattr(result, "reopened", False):
            messages.warning(
                request, "Resolved, but the re-check found the condition still there: it is open again."
            )
        else:
            messages.success(request, f"{INCIDENT_OPS[op]}: done.")
    return redirect(back)


def _remediate(request: HttpRequest, incident: Any, reason: str, key: str) -> HttpResponse:
    """Preview (reconciliation's dry run: what happens, money moved, stock changed),
    then apply. The form key is claimed in its own committed transaction first, since
    remediation_apply calls the provider and must not run inside one; the remediation
    itself is also once-only per (incident, action) in reconciliation."""
    back = reverse("backoffice:incident", args=[incident.id])
    action = request.POST.get("action", "")
    if action not in {a["action"] for a in _remediation_actions(incident.id)}:
        messages.error(request, "That remediation does not apply to this incident.")
        return redirect(back)
    label = REMEDIATION_LABELS.get(action, action)
    try:
        preview = recon_services.remediation_preview(incident_id=incident.id, action=action)
    except ConcordError as exc:
        messages.error(request, f"{label}: {exc.message}")
        return redirect(back)
    threshold = approval_threshold()
    needs_approval = preview.moves_money and preview.money_moved > threshold and not preview.already_applied
    if request.POST.get("confirm") != "1":
        return render(
            request,
            "backoffice/incident_remediation_preview.html",
            {
                "incident": incident,
                "action": action,
                "label": label,
                "preview": preview,
                "needs_approval": needs_approval,
                "threshold": threshold,
                "reason": reason,
                "action_key": key or _new_key(),
            },
        )
    if needs_approval and preview.allowed:
        approval_id = _act(
            request,
            label,
            lambda: services.remediation_request_approval(
                incident_id=incident.id,
                order_id=incident.order_id,
                action=action,
                amount=preview.money_moved,
                currency=preview.currency,
                reason=reason,
                by=request.user,
                action_key=key,
            ),
        )
        if approval_id:
            messages.warning(
                request, f"{label} waits for finance approval (request #{approval_id}): above {threshold}."
            )
        return redirect(back)
    try:
        action_id = services.staff_action_claim(
            key=key,
            by=request.user,
            action=f"remediate_{action}"[:48],
            reason=reason,
            order_id=incident.order_id,
            target=f"incident {incident.id}",
        )
    except services.AlreadySubmitted as exc:
        messages.info(request, exc.message)
        return redirect(back)
    except ConcordError as exc:
        messages.error(request, f"{label}: {exc.message}")
        return redirect(back)
    try:
        result = recon_services.remediation_apply(
            incident_id=incident.id, by=request.user, reason=reason, action=action
        )
    except ConcordError as exc:
        services.staff_action_set_outcome(action_id=action_id, outcome=f"{exc.code}: {exc.message}")
        messages.error(request, f"{label}: {exc.message}")
        return redirect(back)
    moved = f", {result.money_moved} {result.currency} moved" if result.money_moved else ""
    services.staff_action_set_outcome(action_id=action_id, outcome=f"{result.state}{moved}")
    if result.already_applied:
        messages.info(request, f"{label}: it was applied before; nothing was done twice.")
    elif result.state == "succeeded":
        messages.success(
            request, f"{label}: succeeded{moved}. The next reconciliation pass re-checks the incident."
        )
    elif result.state == "unknown":
        messages.warning(
            request, f"{label}: the provider's answer is unknown ({result.error}); run it again later."
        )
    else:
        messages.error(request, f"{label}: {result.state} ({result.error}).")
    return redirect(back)


# --- Approvals (finance) -----------------------------------------------------------------


@finance_required
def approval_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "pending")
    return render(
        request,
        "backoffice/approval_list.html",
        {
            "approvals": bo_selectors.approvals_list(status=status or None, limit=PAGE_SIZE),
            "status": status,
            "action_key": _new_key(),
            "threshold": approval_threshold(),
        },
    )


@finance_required
@require_POST
def approval_decide(request: HttpRequest, approval_id: int) -> HttpResponse:
    decision = request.POST.get("decision")
    reason = request.POST.get("reason", "")
    key = request.POST.get("action_key", "")
    if decision == "approve":
        outcome = _act(
            request,
            "Approve",
            lambda: services.approval_approve(
                approval_id=approval_id, by=request.user, reason=reason, action_key=key
            ),
        )
        if outcome and outcome.kind == "remediation":
            _carry_out_remediation(request, outcome.approval_id)
        elif outcome and outcome.kind == "cancel":
            messages.success(request, "Approved: the order is being cancelled (refund, restock, cancel).")
        elif outcome:
            messages.success(
                request, f"Approved: refund #{outcome.refund_id} created; it is being sent to the provider."
            )
    elif decision == "reject":
        if _act(
            request,
            "Reject",
            lambda: services.approval_reject(
                approval_id=approval_id, by=request.user, reason=reason, action_key=key
            ),
        ):
            messages.success(request, "Rejected.")
    else:
        messages.error(request, "Approve or reject?")
    return redirect("backoffice:approvals")


def _carry_out_remediation(request: HttpRequest, approval_id: int) -> None:
    try:
        result = services.approval_carry_out_remediation(approval_id=approval_id)
    except ConcordError as exc:
        messages.error(request, f"Approved, but the remediation failed: {exc.message}")
        return
    moved = f", {result.money_moved} {result.currency} moved" if result.money_moved else ""
    if result.state == "succeeded":
        messages.success(request, f"Approved: remediation {result.action} succeeded{moved}.")
    else:
        messages.warning(
            request,
            f"Approved: remediation {result.action} is {result.state} ({result.error}); apply it again later.",
        )


# --- Search ---------------------------------------------------------------------------------


@staff_required
def search(request: HttpRequest) -> HttpResponse:
    """One box: an order id, a customer email, a provider charge id or an Idempotency-Key.
    Also the filtered order list of the state map (?status=)."""
    q = (request.GET.get("q") or "").strip()
    status = request.GET.get("status") or None
    orders: list = []
    keys: list = []
    kind = ""
    try:
        if q.isdigit():
            kind = "order id"
            orders = order_selectors.orders_search(order_ids=[int(q)])
        elif "@" in q:
            kind = "email"
            orders = order_selectors.orders_search(customer_email=q, status=status, limit=PAGE_SIZE)
        elif q:
            kind = "charge id or idempotency key"
            order_ids = [p.order_id for p in payment_selectors.payments_by_charge_id(provider_charge_id=q)]
            keys = idempotency_selectors.idempotency_records_by_key(key=q)
            order_ids += [k.response_object_id for k in keys if k.response_object_id]
            orders = order_selectors.orders_search(order_ids=order_ids) if order_ids else []
        elif status:
            kind = f"status {status}"
            orders = order_selectors.orders_search(status=status, limit=PAGE_SIZE)
    except ConcordError as exc:
        messages.error(request, exc.message)
    if q.isdigit() and len(orders) == 1:
        return redirect("backoffice:order", order_id=orders[0].id)
    payments = payment_selectors.payments_for_orders(order_ids=[o.id for o in orders]) if orders else {}
    rows = [(o, payments.get(o.id)) for o in orders]
    return render(
        request,
        "backoffice/search.html",
        {"q": q, "kind": kind, "rows": rows, "keys": keys, "status": status or ""},
    )


# --- Finance ----------------------------------------------------------------------------------


def _date_range(request: HttpRequest) -> tuple[date, date]:
    today = timezone.now().date()
    try:
        end = date.fromisoformat(request.GET["end"]) if request.GET.get("end") else today
        start = (
            date.fromisoformat(request.GET["start"]) if request.GET.get("start") else end - timedelta(days=29)
        )
    except ValueError:
        messages.error(request, "Dates are YYYY-MM-DD; showing the last 30 days.")
        end, start = today, today - timedelta(days=29)
    if start > end:
        start, end = end, start
    if (end - start).days > 366:
        messages.warning(request, "At most one year at a time; the range was shortened.")
        start = end - timedelta(days=366)
    return start, end


def _per_day(metrics: dict, start: date, end: date) -> tuple[list[str], list[dict]]:
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    table: dict[tuple[str, str], dict] = {}
    for key in ("opened_per_day", "resolved_per_day"):
        for row in metrics[key]:
            entry = table.setdefault(
                (row["day"], row["type"]),
                {"day": row["day"], "type": row["type"], "opened": 0, "resolved": 0},
            )
            entry["opened" if key == "opened_per_day" else "resolved"] += row["count"]
    return days, sorted(table.values(), key=lambda r: (r["day"], r["type"]))


@finance_required
def finance(request: HttpRequest) -> HttpResponse:
    start, end = _date_range(request)
    metrics = recon_selectors.finance_metrics(
        start=start, end=end, orders_count=order_selectors.orders_count_between
    )
    days, rows = _per_day(metrics, start, end)
    opened = dict.fromkeys(days, 0)
    resolved = dict.fromkeys(days, 0)
    for r in rows:
        opened[r["day"]] += r["opened"]
        resolved[r["day"]] += r["resolved"]
    chart = charts.bar_chart(
        labels=days,
        series=[
            ("opened", "opened", list(opened.values())),
            ("resolved", "resolved", list(resolved.values())),
        ],
        title=f"Incidents opened and resolved per day, {start} to {end}",
    )
    mttr = metrics["mttr"]
    return render(
        request,
        "backoffice/finance.html",
        {
            "start": start,
            "end": end,
            "service_levels": slo.service_levels(start=start, end=end),
            "m": metrics,
            "rows": rows,
            "chart": chart,
            "mttr_p50": _duration(mttr["p50_seconds"]),
            "mttr_p90": _duration(mttr["p90_seconds"]),
        },
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


@finance_required
def finance_csv(request: HttpRequest) -> HttpResponse:
    start, end = _date_range(request)
    metrics = recon_selectors.finance_metrics(
        start=start, end=end, orders_count=order_selectors.orders_count_between
    )
    _, rows = _per_day(metrics, start, end)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="incidents-{start}-{end}.csv"'
    writer = csv.writer(response)
    writer.writerow(["day", "type", "opened", "resolved"])
    for r in rows:
        writer.writerow([r["day"], r["type"], r["opened"], r["resolved"]])
    writer.writerow([])
    writer.writerow(["metric", "value"])
    writer.writerow(["open_incidents_now", metrics["open_now"]["open"]])
    for c in metrics["open_now"]["by_currency"]:
        writer.writerow([f"open_money_at_risk_{c['currency']}", c["amount"]])
    writer.writerow(["mttr_p50_seconds", metrics["mttr"]["p50_seconds"] or ""])
    writer.writerow(["mttr_p90_seconds", metrics["mttr"]["p90_seconds"] or ""])
    writer.writerow(["incidents_per_1000_orders", metrics["per_1000_orders"] or ""])
    writer.writerow(["refunds_caused_count", metrics["refunds_caused"]["count"]])
    for c in metrics["refunds_caused"]["by_currency"]:
        writer.writerow([f"refunds_caused_amount_{c['currency']}", c["amount"]])
    for kind, count in metrics["fixes"].items():
        writer.writerow([f"fixes_{kind}", count])
    for level in slo.service_levels(start=start, end=end):
        met = "" if level.met is None else ("met" if level.met else "missed")
        writer.writerow([f"slo_{level.key}", level.value, level.target, met])
    return response


# --- State map ----------------------------------------------------------------------------------


@staff_required
def state_map(request: HttpRequest) -> HttpResponse:
    machines = []
    sources = (
        (
            "Orders",
            order_selectors.order_state_summary(),
            lambda s: reverse("backoffice:search") + f"?status={s}",
        ),
        ("Payments", payment_selectors.payment_state_summary(), None),
        (
            "Saga runs",
            saga_selectors.saga_state_summary(),
            lambda s: reverse("backoffice:sagas") + f"?all=1&status={s}",
        ),
    )
    for title, summary, link in sources:
        nodes = [
            charts.Node(
                state=s["state"],
                label=s["label"],
                count=s["count"],
                age=_age(s["oldest_at"]),
                href=link(s["state"]) if link else "#",
            )
            for s in summary["states"]
        ]
        machines.append(
            {
                "title": title,
                "nodes": nodes,
                "linked": link is not None,
                "svg": charts.state_graph(
                    nodes=nodes, transitions=summary["transitions"], title=f"{title}: states and transitions"
                ),
                "transitions": summary["transitions"],
            }
        )
    return render(request, "backoffice/state_map.html", {"machines": machines})
