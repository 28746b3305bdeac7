"""Staff pages for support and finance: HTTP only.

Pages read through selectors (the apps', and backoffice.selectors for the cases actions
are decided on); every action goes through the one flow of backoffice.services (preview,
then confirm with a reason and a one-time key; or wait for approval), whose actions are
declared in backoffice.operations. A ConcordError becomes a message, never a 500.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from core.errors import ConcordError, NotFound
from idempotency import selectors as idempotency_selectors
from orders import selectors as order_selectors
from payments import selectors as payment_selectors
from readmodels import selectors as rm_selectors
from reconciliation import selectors as recon_selectors
from reconciliation.choices import IncidentState, IncidentType, Severity
from reconciliation.services import remediation_actions_by_type
from sagas import registry as saga_registry
from sagas import selectors as saga_selectors
from sagas.choices import ACTIVE_STATUSES, ATTENTION_STATUSES, RunStatus

from . import bulk, charts, operations, probes, roles, runbooks, services, sla
from . import selectors as bo_selectors
from .conf import approval_threshold, counts_seconds
from .models import ApprovalStatus
from .paging import COUNT_CAP, PAGE_SIZE, page_of
from .permissions import finance_required, is_support, staff_required, support_required

# The saga list's state filter, those waiting for a person first.
SAGA_STATUSES = (
    *ATTENTION_STATUSES,
    *ACTIVE_STATUSES,
    RunStatus.COMPLETED,
    RunStatus.COMPENSATED,
    RunStatus.RESOLVED,
)


def _new_key() -> str:
    return uuid.uuid4().hex


def _age(moment: datetime | None) -> str:
    return timesince(moment) if moment else "—"


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


# --- Overview ------------------------------------------------------------------------


def _overview_counts() -> dict[str, Any]:
    """The overview's count panels: numbers a person reads, not rows they click."""
    return {
        # Not saga_state_summary: that scans every run ever made; the overview needs
        # only the runs waiting for a person, which partial indexes serve.
        "attention": saga_selectors.saga_attention_counts(),
        "severity": recon_selectors.incidents_live_by_severity(),
        "at_risk": recon_selectors.incidents_open_at_risk(),
        "last_run": recon_selectors.reconciliation_run_latest(),
        "pending_approvals": bo_selectors.approvals_pending_count(),
        "sla_states": sla.attention_counts(),
    }


def _clock(moment: datetime) -> str:
    """`{{ moment|date:"H:i:s" }}`, formatted once: the overview and the waiting page say
    "as of" it beside every count (up to eight times; the filter costs ~50 µs each)."""
    return timezone.localtime(moment).strftime("%H:%M:%S")


@staff_required
def overview(request: HttpRequest) -> HttpResponse:
    # The count panels are kept a few seconds per process (BACKOFFICE_COUNTS_SECONDS)
    # and say "as of" when they were read; the lists (the items needing attention, the
    # oldest stuck sagas) are read at every request, so what a person just fixed leaves
    # them at once.
    counts, counted_at = probes.kept_as_of("overview:counts", _overview_counts, seconds=counts_seconds())
    reachable, detail = bo_selectors.provider_status()
    return render(
        request,
        "backoffice/overview.html",
        {
            **counts,
            "counted_at": counted_at,
            "counted_at_text": _clock(counted_at),
            "counts_seconds": counts_seconds(),
            "stuck": saga_selectors.saga_runs_list(limit=5),
            "provider_ok": reachable,
            "provider_detail": detail,
            "late": sla.attention_items(),
            "systems": sla.systems_health(provider=(reachable, detail)),
        },
    )


@staff_required
def waiting(request: HttpRequest) -> HttpResponse:
    """Every SLA state's items, oldest first, with their age (backoffice.sla). The
    per-state counts are kept a few seconds, as the overview's (BACKOFFICE_COUNTS_SECONDS),
    and say "as of"; the items are read at every request."""
    counts, counted_at = probes.kept_as_of("waiting:counts", sla.state_counts, seconds=counts_seconds())
    return render(
        request,
        "backoffice/waiting.html",
        {
            "states": sla.states_waiting(limit=PAGE_SIZE, counts=counts),
            "counted_at": counted_at,
            "counted_at_text": _clock(counted_at),
            "counts_seconds": counts_seconds(),
        },
    )


# --- Stuck sagas -----------------------------------------------------------------------


@staff_required
def saga_list(request: HttpRequest) -> HttpResponse:
    q = request.GET
    try:
        filters = bulk.list_filters(bulk.SAGA, q, request.user, statuses=SAGA_STATUSES)
    except ConcordError as exc:
        messages.error(request, exc.message)
        filters = bulk.list_filters(bulk.SAGA, {}, request.user, statuses=SAGA_STATUSES)
    pager = page_of(request, saga_selectors.saga_runs_count(cap=COUNT_CAP, **filters), cap=COUNT_CAP)
    runs = saga_selectors.saga_runs_list(
        **filters, sort=q.get("sort") or "oldest", limit=pager.size, offset=pager.offset
    )
    return render(
        request,
        "backoffice/saga_list.html",
        {
            "runs": runs,
            "pager": pager,
            "filters": q,
            "filter_values": bulk.filter_values(bulk.SAGA, q),
            "statuses": SAGA_STATUSES,
            "saga_types": saga_registry.names(),
            "can_act": is_support(request.user),
            "action_key": _new_key(),
        },
    )


@support_required
@require_POST
def saga_bulk(request: HttpRequest) -> HttpResponse:
    """Retry or compensate the selected runs: a preview (which runs it applies to now),
    then each run through the same operation as on an order's case file."""
    op = request.POST.get("op", "")
    reason = request.POST.get("reason", "").strip()
    ids = [i for i in (_int(v) for v in request.POST.getlist("run_ids")) if i is not None][:PAGE_SIZE]
    key = request.POST.get("action_key", "")
    back = reverse("backoffice:sagas")
    if not ids:
        messages.error(request, "Select at least one saga run.")
        return redirect(back)
    if not reason:
        messages.error(request, "A reason is required.")
        return redirect(back)
    try:
        operation, plan = services.runs_operation_preview(op=op, run_ids=ids, by=request.user)
    except ConcordError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    if request.POST.get("confirm") != "1":
        context = {
            "op": op,
            "op_label": operation.label,
            "reason": reason,
            "plan": plan,
            "legal_count": sum(1 for _, ok in plan if ok),
            "action_key": key or _new_key(),
        }
        return render(request, "backoffice/saga_bulk_preview.html", context)
    done, skipped, errors = services.runs_operation_submit(
        op=op, run_ids=ids, by=request.user, reason=reason, action_key=key
    )
    for error in errors:
        messages.error(request, error)
    messages.success(request, f"{operation.label}: {done} run(s) done, {skipped} not eligible.")
    return redirect(back)


# --- Order case file ---------------------------------------------------------------------


@staff_required
def order_case(request: HttpRequest, order_id: int) -> HttpResponse:
    try:
        case_file = bo_selectors.order_case_file(order_id=order_id)
    except NotFound as exc:
        messages.error(request, exc.message)
        return redirect("backoffice:search")
    case = case_file.case
    offers = operations.offers_for("order", case, request.user)
    # The customer's other orders come from the search read model (indexed by e-mail;
    # the orders table is not, so its hot insert path pays for no search index): an
    # order placed a moment ago shows once the model has it (its lag is on the search page).
    email = case.order.customer_email
    found: list = []
    found_total = 0
    if "@" in email:
        found = rm_selectors.orders_for_email(email=email, limit=11)
        found_total = (  # fewer than asked for: that is all of them, no count needed
            rm_selectors.order_search_count(q=email, cap=COUNT_CAP) if len(found) == 11 else len(found)
        )
    others = [o for o in found if o.order_id != case.order.id]
    # This order is one of the customer's (unless the model has not applied it yet).
    others_total = found_total - (1 if len(others) < len(found) or found_total > len(found) else 0)
    return render(
        request,
        "backoffice/order_case.html",
        {
            "order": case.order,
            "payment": case.payment,
            "refunds": case.refunds,
            "runs": case.runs,
            "events": case_file.events,
            "reservations": case_file.reservations,
            "incidents": case_file.incidents,
            "approvals": case_file.approvals,
            "notifications": case_file.notifications,
            "deliveries": case.deliveries,
            "actions": [o for o in offers if o.op != "note"],
            "can_note": any(o.op == "note" for o in offers),
            "action_key": _new_key(),
            "threshold": approval_threshold(),
            "other_orders": others[:10],
            "other_orders_total": others_total,
        },
    )


@support_required
@require_POST
def order_action(request: HttpRequest, order_id: int) -> HttpResponse:
    return _perform(
        request, page="order", subject_id=order_id, back=reverse("backoffice:order", args=[order_id])
    )


# --- Incidents ---------------------------------------------------------------------------


@staff_required
def incident_list(request: HttpRequest) -> HttpResponse:
    q = request.GET
    try:
        filters = bulk.list_filters(bulk.INCIDENT, q, request.user)
    except ConcordError as exc:
        messages.error(request, exc.message)
        filters = bulk.list_filters(bulk.INCIDENT, {}, request.user)
    pager = page_of(request, recon_selectors.incidents_count(cap=COUNT_CAP, **filters), cap=COUNT_CAP)
    rows = recon_selectors.incidents_list(
        **filters, sort=q.get("sort") or "amount", limit=pager.size, offset=pager.offset
    )
    return render(
        request,
        "backoffice/incident_list.html",
        {
            "rows": rows,
            "pager": pager,
            "filters": q,
            "filter_values": bulk.filter_values(bulk.INCIDENT, q),
            "types": IncidentType.choices,
            "severities": Severity.choices,
            "states": IncidentState.choices,
            "can_act": is_support(request.user),
            "support_people": roles.support_people() if is_support(request.user) else [],
            "remediations": sorted(
                {
                    (a, operations.remediation_label(a))
                    for acts in remediation_actions_by_type().values()
                    for a in acts
                }
            ),
        },
    )


@staff_required
def incident_detail(request: HttpRequest, incident_id: int) -> HttpResponse:
    try:
        case = bo_selectors.incident_case(incident_id=incident_id)
    except NotFound as exc:
        messages.error(request, exc.message)
        return redirect("backoffice:incidents")
    offers = operations.offers_for("incident", case, request.user)
    offered = {o.op: o for o in offers if o.op != "remediate"}
    description = recon_selectors.detector_descriptions().get(case.incident.type, "")
    return render(
        request,
        "backoffice/incident_detail.html",
        {
            "incident": case.incident,
            "live": case.live,
            "explained": runbooks.incident_explained(case.incident, description=description),
            "support_people": roles.support_people() if "assign" in offered else [],
            "offered": offered,
            # Remediations are shown while the incident is live; reconciliation refuses them after.
            "remediations": [o for o in offers if o.op == "remediate"] if case.live else [],
            "action_key": _new_key(),
        },
    )


@support_required
@require_POST
def incident_action(request: HttpRequest, incident_id: int) -> HttpResponse:
    return _perform(
        request,
        page="incident",
        subject_id=incident_id,
        back=reverse("backoffice:incident", args=[incident_id]),
    )


# --- The one preview-then-confirm flow ------------------------------------------------------


def _perform(request: HttpRequest, *, page: str, subject_id: int, back: str) -> HttpResponse:
    """POST of an action form: without confirm=1 a previewed action shows its preview
    (nothing changes); with it, or for an action without preview, it is submitted
    (done, or waiting for approval). Errors become messages, never a 500."""
    op = request.POST.get("op", "")
    reason = request.POST.get("reason", "").strip()
    key = request.POST.get("action_key", "")
    operation = operations.operation_for(page, op)
    label = operation.label if operation else op
    try:
        if operation is not None and operation.preview is not None and request.POST.get("confirm") != "1":
            proposed = services.operation_preview(
                page=page, subject_id=subject_id, op=op, data=request.POST, by=request.user, reason=reason
            )
            return render(
                request,
                "backoffice/operation_preview.html",
                {
                    "proposed": proposed,
                    "label": proposed.offer.label or proposed.operation.label,
                    "subject": f"{page} {subject_id}",
                    "reason": reason,
                    "action_key": key or _new_key(),
                    "action_url": request.path,
                    "back": back,
                },
            )
        submitted = services.operation_submit(
            page=page, subject_id=subject_id, op=op, data=request.POST, by=request.user, reason=reason,
            action_key=key,
        )  # fmt: skip
    except NotFound as exc:
        messages.error(request, exc.message)
        return redirect("backoffice:incidents" if page == "incident" else "backoffice:search")
    except (services.AlreadySubmitted, services.NotOffered) as exc:
        (messages.info if isinstance(exc, services.AlreadySubmitted) else messages.error)(
            request, exc.message
        )
        return redirect(back)
    except ConcordError as exc:
        messages.error(request, f"{label}: {exc.message}")
        return redirect(back)
    if submitted.approval_id is not None:
        messages.warning(
            request,
            f"{submitted.label} waits for finance approval (request #{submitted.approval_id}): "
            f"above {approval_threshold()}.",
        )
    elif submitted.outcome is not None:
        _say(request, submitted.outcome.level, submitted.outcome.message)
    return redirect(back)


def _say(request: HttpRequest, level: str, text: str) -> None:
    getattr(messages, level)(request, text)


# --- Approvals (finance) -----------------------------------------------------------------


@finance_required
def approval_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", ApprovalStatus.PENDING)
    pager = page_of(request, bo_selectors.approvals_count(status=status or None))
    return render(
        request,
        "backoffice/approval_list.html",
        {
            "approvals": bo_selectors.approvals_list(
                status=status or None, limit=pager.size, offset=pager.offset
            ),
            "pager": pager,
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
    try:
        if decision == "approve":
            approved = services.approval_approve(
                approval_id=approval_id, by=request.user, reason=reason, action_key=key
            )
            outcome = approved.outcome
            _say(
                request,
                outcome.level,
                f"Approved: {outcome.summary}." if outcome.summary else outcome.message,
            )
        elif decision == "reject":
            services.approval_reject(approval_id=approval_id, by=request.user, reason=reason, action_key=key)
            messages.success(request, "Rejected.")
        else:
            messages.error(request, "Approve or reject?")
    except services.AlreadySubmitted as exc:
        messages.info(request, exc.message)
    except ConcordError as exc:
        messages.error(request, f"{'Approve' if decision == 'approve' else 'Reject'}: {exc.message}")
    return redirect("backoffice:approvals")


# --- Search ---------------------------------------------------------------------------------


@staff_required
def search(request: HttpRequest) -> HttpResponse:
    """One box: an order id, a customer email, a provider charge id or an Idempotency-Key.
    Also the filtered order list of the state map (?status=). Reads the search read
    model (readmodels: eventual, its lag is on the page); an order id goes straight to
    the case file, which reads the order itself."""
    q = (request.GET.get("q") or "").strip()
    status = request.GET.get("status") or None
    if (
        q.isdigit()
        and int(q) < rm_selectors.MAX_ORDER_ID
        and order_selectors.orders_search(order_ids=[int(q)])
    ):
        return redirect("backoffice:order", order_id=int(q))
    kind, rows = "", []
    pager = None
    try:
        pager = page_of(
            request, rm_selectors.order_search_count(q=q, status=status, cap=COUNT_CAP), cap=COUNT_CAP
        )
        kind, rows = rm_selectors.order_search(q=q, status=status, limit=pager.size, offset=pager.offset)
    except ConcordError as exc:
        messages.error(request, exc.message)
    keys = (
        idempotency_selectors.idempotency_records_by_key(key=q)
        if q and not q.isdigit() and "@" not in q
        else []
    )
    lag = probes.read_model_lag("search")
    return render(
        request,
        "backoffice/search.html",
        {
            "q": q,
            "kind": kind,
            "rows": rows,
            "keys": keys,
            "status": status or "",
            "lag": lag,
            "pager": pager,
        },
    )


# --- Finance: backoffice/finance_views.py ---------------------------------------------------


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
