"""Back-office writes: the one flow every staff action goes through.

    operation_preview(...)  what the action would do (reads only)
    operation_submit(...)   do it, or ask finance first
    approval_approve(...)   finance approves: exactly the stored operation runs
    approval_reject(...)

The actions themselves are declared in backoffice.operations (who, when, preview, money,
the one domain service). The flow adds, the same for all of them:

- a person and a reason (core.audit), the operation's permission, and that it is
  offered now (the owning app's rule) — checked again here, whatever the page showed;
- a one-time form key: the StaffAction row (unique key) is written in the action's own
  transaction, so a second submit of the same form (a double click, a resend) changes
  nothing, and the row records who did what and why;
- the approval rule (operations.needs_approval): above the threshold the operation and
  its parameters are stored in an ApprovalRequest; approving runs exactly that;
- actions that call the provider run outside any transaction: their key is claimed in a
  committed transaction of its own first, and the row's outcome says how it ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django_fsm import can_proceed

from core.audit import check_person_and_reason, require_person
from core.errors import ConcordError, Conflict, NotFound
from core.sql import insert_unless_exists
from sagas.selectors import saga_runs_by_ids

from .conf import approval_threshold
from .models import ApprovalRequest, ApprovalStatus, StaffAction
from .operations import (
    APPROVED_AMOUNT,
    SAGA_OPERATIONS,
    Case,
    IncidentCase,
    Offer,
    Operation,
    OrderCase,
    Outcome,
    Preview,
    RunsCase,
    approval_decisions_serialise,
    approval_reason,
    needs_approval,
    operation_for,
    operation_get,
)
from .selectors import case_get

APPROVE = "backoffice.approve_refund"
MAX_KEY = 64


# The key an operation's run receives (a refund's key is REFUND_KEY_PREFIX + it): a
# form's one-time key and an approval's id live in separate namespaces, so no key a
# person can type into a form ever equals the one an approval will use (issue 13 item 4).
def form_run_key(action_key: str) -> str:
    return f"form:{action_key}"


def approval_run_key(approval_id: int) -> str:
    return f"approval:{approval_id}"


class AlreadySubmitted(ConcordError):
    code = "already_submitted"
    http_status = 409


class NotOffered(Conflict):
    code = "action_not_offered"


# --- the staff action record --------------------------------------------------------------


def staff_action_record(
    *,
    key: str,
    by: Any,
    action: str,
    reason: str,
    order_id: int | None = None,
    target: str = "",
    outcome: str = "",
    amount: Decimal | None = None,
    currency: str = "",
) -> int:
    """Claim the form's one-time key and record who did what and why. Call it inside
    the action's transaction: a second submit with the same key (a double click, a
    browser resend) raises AlreadySubmitted — waiting, if the first is still running,
    on the unique index until it commits (INSERT … ON CONFLICT DO NOTHING, core.sql:
    no IntegrityError, so no savepoint)."""
    reason = check_person_and_reason(by, reason)
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
        raise ConcordError("The form has expired; open it again.", code="action_key_invalid")
    row = StaffAction(
        key=key,
        user=by,
        action=action[:48],
        order_id=order_id,
        target=target[:128],
        reason=reason,
        outcome=outcome,
        amount=amount,
        currency=currency,
    )
    if not insert_unless_exists(row, conflict=["key"]):
        raise AlreadySubmitted(
            "This form was already submitted; nothing was done twice.", details={"key": key}
        )
    return row.pk


def staff_action_set_outcome(*, action_id: int, outcome: str) -> None:
    StaffAction.objects.filter(pk=action_id).update(outcome=outcome[:2000])


# --- one action ---------------------------------------------------------------------------


def _offered(operation: Operation, case: Case, user: Any, params: dict[str, Any]) -> Offer:
    offer = operation.offer_for(case, user, params)
    if offer is None:
        raise NotOffered(operation.unavailable, details={"operation": operation.name})
    return offer


def _operation(page: str, op: str) -> Operation:
    operation = operation_for(page, op)
    if operation is None:
        raise NotOffered("Unknown action.", details={"op": op})
    return operation


@dataclass(frozen=True)
class Proposed:
    """A previewed action: what the preview page shows."""

    operation: Operation
    case: Case
    offer: Offer
    preview: Preview
    needs_approval: bool
    threshold: Decimal
    approval_reason: str = ""  # why it waits for finance (the rule's words)


def operation_preview(
    *, page: str, subject_id: int, op: str, data: Mapping[str, Any], by: Any, reason: str
) -> Proposed:
    """What the action would do now, for the preview page: nothing changes. Refused
    (NotOffered) when it is not offered to this person now; a missing reason or an
    invalid input raises its ConcordError."""
    operation = _operation(page, op)
    case = case_get(page=page, subject_id=subject_id)
    params = operation.params_from(data)
    offer = _offered(operation, case, by, params)
    check_person_and_reason(by, reason or operation.reason_default)
    preview = operation.preview(case, params) if operation.preview else Preview([], dict(params))
    why = approval_reason(operation, case, preview, by)
    return Proposed(operation, case, offer, preview, bool(why), approval_threshold(), why)


@dataclass(frozen=True)
class Submitted:
    """What operation_submit did: ran the action (`outcome`), or stored it for
    approval (`approval_id`)."""

    operation: Operation
    label: str  # the action as the page named it (e.g. the remediation, the run)
    outcome: Outcome | None = None
    approval_id: int | None = None


def operation_submit(
    *, page: str, subject_id: int, op: str, data: Mapping[str, Any], by: Any, reason: str, action_key: str
) -> Submitted:
    """Do the action now, or — above the threshold — ask finance first."""
    operation = _operation(page, op)
    case = case_get(page=page, subject_id=subject_id)
    return _submit(operation, case, operation.params_from(data), by, reason, action_key)


def case_operation_submit(
    *, operation: Operation, case: Case, params: Mapping[str, Any], by: Any, reason: str, action_key: str
) -> Submitted:
    """The same flow on a case the caller assembled: one item of a bulk job
    (backoffice.bulk), checked, recorded and approved like a single action."""
    return _submit(operation, case, dict(params), by, reason, action_key)


def _subject(case: Case) -> dict[str, Any]:
    if isinstance(case, IncidentCase):
        return {"order_id": case.incident.order_id, "incident_id": case.incident.id}
    if isinstance(case, OrderCase):
        return {"order_id": case.order.id, "incident_id": None}
    return {"order_id": None, "incident_id": None}


def _target(case: Case, params: Mapping[str, Any]) -> str:
    about = f"incident {case.incident.id}" if isinstance(case, IncidentCase) else ""
    facts = ", ".join(f"{name} {value}" for name, value in params.items() if value not in (None, ""))
    return "; ".join(part for part in (about, facts) if part)


def _submit(
    operation: Operation, case: Case, params: dict[str, Any], by: Any, reason: str, action_key: str
) -> Submitted:
    reason = check_person_and_reason(by, reason or operation.reason_default)
    offer = _offered(operation, case, by, params)
    label = offer.label if operation.target_params else operation.label
    preview = operation.preview(case, params) if operation.preview is not None else None
    run_params = preview.params if preview is not None else params
    subject = _subject(case)
    record = {
        "key": action_key,
        "by": by,
        "action": operation.name,
        "reason": reason,
        "order_id": subject["order_id"],
        "target": _target(case, run_params),
    }
    moves_money = (
        preview is not None and bool(operation.approval_kind) and operation.moves_money and preview.money > 0
    )
    with transaction.atomic():
        if preview is not None and operation.approval_kind:
            # Concurrent requests on the same order or by the same person decide one at a
            # time, each seeing what the other asked: two forms sent at once cannot both
            # stay under the rule's totals.
            approval_decisions_serialise(order_id=subject["order_id"], user=by)
        if preview is not None and needs_approval(operation, case, preview, by):
            staff_action_record(**record, outcome="waits for approval")
            approval = ApprovalRequest.objects.create(
                operation=operation.name,
                params=run_params,
                kind=operation.approval_kind,
                order_id=subject["order_id"],
                incident_id=subject["incident_id"],
                amount=preview.money,
                currency=preview.currency,
                reason=reason,
                requested_by=by,
            )
            return Submitted(operation, label, approval_id=approval.pk)
        if moves_money:
            assert preview is not None
            # On this person's word alone: what the daily limit counts.
            record.update(amount=preview.money, currency=preview.currency)
        # The form's one-time key: a second submit meets it and changes nothing.
        action_id = staff_action_record(**record)
        if not operation.calls_provider:
            outcome = operation.run(case, run_params, by, reason, form_run_key(action_key))
            if outcome.audit:
                staff_action_set_outcome(action_id=action_id, outcome=outcome.audit)
            return Submitted(operation, label, outcome=outcome)
    return Submitted(
        operation, label, outcome=_run_outside_transaction(operation, case, run_params, record, action_id)
    )


def _run_outside_transaction(
    operation: Operation, case: Case, params: dict[str, Any], record: dict[str, Any], action_id: int
) -> Outcome:
    """The key was claimed and committed first, so a second submit is refused at once;
    the row stays as the audit even if the action then fails (its outcome says how)."""
    try:
        outcome = operation.run(case, params, record["by"], record["reason"], form_run_key(record["key"]))
    except ConcordError as exc:
        staff_action_set_outcome(action_id=action_id, outcome=f"{exc.code}: {exc.message}")
        raise
    staff_action_set_outcome(action_id=action_id, outcome=outcome.audit or outcome.level)
    return outcome


# --- one action on many saga runs (the stuck list) ---------------------------------------------------


def runs_operation_preview(
    *, op: str, run_ids: list[int], by: Any
) -> tuple[Operation, list[tuple[Any, bool]]]:
    """The bulk preview: each selected run, and whether the action is offered on it now."""
    operation = _runs_operation(op)
    case = RunsCase(runs=tuple(saga_runs_by_ids(run_ids=run_ids)))
    offered = {offer.params["run_id"] for offer in operation.offers(case, by)} if operation.may(by) else set()
    return operation, [(run, run.id in offered) for run in case.runs]


def runs_operation_submit(
    *, op: str, run_ids: list[int], by: Any, reason: str, action_key: str
) -> tuple[int, int, list[str]]:
    """Run the action on every selected run it is offered on, each in its own
    transaction with its own key (`<form key>-<run id>`). (done, not eligible, errors)."""
    operation, plan = runs_operation_preview(op=op, run_ids=run_ids, by=by)
    case = RunsCase(runs=tuple(run for run, _ in plan))
    done, skipped, errors = 0, 0, []
    for run, legal in plan:
        if not legal:
            skipped += 1
            continue
        try:
            _submit(operation, case, {"run_id": run.id}, by, reason, f"{action_key}-{run.id}")
        except ConcordError as exc:
            errors.append(f"Saga run {run.id}: {exc.message}")
        else:
            done += 1
    return done, skipped, errors


def _runs_operation(op: str) -> Operation:
    operation = next((o for o in SAGA_OPERATIONS.values() if o.op == op), None)
    if operation is None or op not in ("retry_now", "compensate"):
        raise NotOffered("Choose retry or compensate.")
    return operation


def saga_run_operation_submit(*, op: str, run_id: int, by: Any, reason: str, action_key: str) -> Submitted:
    """One of the saga engine's manual operations on one run, through the flow (the
    admin's buttons: backoffice.admin_flow)."""
    operation = next((o for o in SAGA_OPERATIONS.values() if o.op == op), None)
    if operation is None:
        raise NotOffered("Unknown action.", details={"op": op})
    case = RunsCase(runs=tuple(saga_runs_by_ids(run_ids=[run_id])))
    return _submit(operation, case, {"run_id": run_id}, by, reason, action_key)


# --- approvals ------------------------------------------------------------------------------


def _lock_approval(approval_id: int) -> ApprovalRequest:
    approval = (
        ApprovalRequest.objects.select_for_update().select_related("requested_by").filter(pk=approval_id)
    )
    found = approval.first()
    if found is None:
        raise NotFound(f"Approval request {approval_id} does not exist.", code="approval_not_found")
    return found


def _require_approver(approval: ApprovalRequest, by: Any) -> None:
    require_person(by)
    if not by.has_perm(APPROVE):
        raise ConcordError("Only finance may approve refunds.", code="permission_denied", http_status=403)
    if approval.requested_by_id == by.pk:
        raise ConcordError(
            "A second person must approve: you asked for this refund.", code="second_person_required"
        )


@dataclass(frozen=True)
class Approved:
    approval_id: int
    outcome: Outcome


def _approval_case(approval: ApprovalRequest, operation: Operation) -> Case:
    subject_id = approval.incident_id if operation.page == "incident" else approval.order_id
    if subject_id is None:
        raise NotFound(f"Approval request {approval.pk} names no {operation.page}.", code="approval_invalid")
    return case_get(page=operation.page, subject_id=subject_id)


def _decision(
    approval_id: int, by: Any, reason: str, action_key: str, decision: str
) -> tuple[ApprovalRequest, bool]:
    """Lock the request and check the approver. (request, already): already when it was
    decided this way before; otherwise the decision's StaffAction (one-time key) is
    recorded and the caller applies the transition."""
    approval = _lock_approval(approval_id)
    _require_approver(approval, by)
    decided = ApprovalStatus.APPROVED if decision == "approve" else ApprovalStatus.REJECTED
    if approval.status == decided:
        return approval, True
    if not can_proceed(getattr(approval, decision)):
        raise Conflict(f"Approval request {approval_id} is {approval.status}.", code="approval_closed")
    staff_action_record(
        key=action_key,
        by=by,
        action=f"approval_{decision}",
        reason=reason,
        order_id=approval.order_id,
        target=f"approval {approval.pk}",
    )
    return approval, False


def _plan_grew(operation: Operation, case: Case, approval: ApprovalRequest, params: dict) -> Preview | None:
    """The operation's plan now, if it moves more than was approved (issue 13, item 3):
    a later reconciliation pass may have refreshed the incident, a failed refund may have
    made more of the order refundable."""
    if operation.preview is None:
        return None
    now = operation.preview(case, params)
    grew = now.money > approval.amount or (now.money > 0 and now.currency != approval.currency)
    return now if grew else None


def _ask_again(approval: ApprovalRequest, operation: Operation, plan: Preview, by: Any) -> ApprovalRequest:
    """Close the request (its plan is not what was asked) and ask for the plan as it is now."""
    again = ApprovalRequest.objects.create(
        operation=approval.operation,
        params=plan.params,
        kind=approval.kind,
        order_id=approval.order_id,
        incident_id=approval.incident_id,
        amount=plan.money,
        currency=plan.currency,
        reason=approval.reason,
        requested_by=approval.requested_by,
    )
    approval.reject(
        by=by,
        description=(
            f"Not run: the plan grew from {approval.amount} {approval.currency} to {plan.money} "
            f"{plan.currency} since it was asked; asked again as approval #{again.pk}."
        ),
    )
    approval.save()
    return again


def approval_approve(*, approval_id: int, by: Any, reason: str, action_key: str) -> Approved:
    """Finance approves: the stored operation runs with the stored parameters, as the
    person who asked (they hold its permission; the approval names the approver), with
    its reason and the approver's — checked against the case as it is now (the order,
    the incident): an action no longer offered is refused.

    An approval binds what was approved (operation, parameters, amount): if the plan now
    moves more than the approved amount, nothing runs — the request is closed and asked
    again with the plan as it is now, for a second person to look at. A remediation also
    gets the approved amount as its ceiling, so a pass that refreshes the incident after
    this check still cannot make it move more.

    An operation in the database runs in the approval's transaction: approved iff it
    ran. One that calls the provider runs after the approval committed, outside any
    transaction; approving it again runs it again (it is once-only itself, so a
    provider outcome left unknown can be settled that way). Approving an approved
    request otherwise changes nothing."""
    reason = check_person_and_reason(by, reason)
    with transaction.atomic():
        approval, already = _decision(approval_id, by, reason, action_key, "approve")
        operation = operation_get(approval.operation)
        requester = approval.requested_by
        why = f"{approval.reason} (approved by {by.get_username()}: {reason})"
        params = {**approval.params, APPROVED_AMOUNT: str(approval.amount)}
        key = approval_run_key(approval.pk)
        if already and not operation.calls_provider:
            return Approved(approval.pk, Outcome("It was approved before; nothing was done twice.", "info"))
        if not already:
            case = _approval_case(approval, operation)
            _offered(operation, case, requester, params)
            grown = _plan_grew(operation, case, approval, params)
            if grown is not None:
                again = _ask_again(approval, operation, grown, by)
                return Approved(
                    approval.pk,
                    Outcome(
                        f"Not run: it would now move {grown.money} {grown.currency}, more than the "
                        f"{approval.amount} {approval.currency} asked for. Asked again as approval "
                        f"#{again.pk}.",
                        "warning",
                    ),
                )
            if not operation.calls_provider:
                outcome = operation.run(case, params, requester, why, key)
                approval.approve(refund_id=outcome.facts.get("refund_id"), by=by, description=reason)
                approval.save()
                return Approved(approval.pk, outcome)
            approval.approve(by=by, description=reason)
            approval.save()
    try:
        case = _approval_case(approval, operation)
        _offered(operation, case, requester, params)
        return Approved(approval.pk, operation.run(case, params, requester, why, key))
    except ConcordError as exc:
        failed = f"Approved, but {operation.label.lower()} failed: {exc.message}"
        return Approved(approval.pk, Outcome(failed, "error"))


@transaction.atomic
def approval_reject(*, approval_id: int, by: Any, reason: str, action_key: str) -> None:
    reason = check_person_and_reason(by, reason)
    approval, already = _decision(approval_id, by, reason, action_key, "reject")
    if not already:
        approval.reject(by=by, description=reason)
        approval.save()
