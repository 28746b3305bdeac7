"""Back-office writes: the one-time action key that makes a resubmitted form a no-op,
the staff note, the two-person rule for large refunds, and sending those refunds to
the provider (after commit, through backoffice.tasks.refund_send).

Everything else staff do goes through the owning app's services (sagas, orders,
payments, reconciliation); the views wrap each call with `staff_action_record` in
one transaction, so the action and its record commit together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django_fsm import can_proceed

from core.errors import ConcordError, Conflict, NotFound
from orders import selectors as order_selectors
from orders import services as order_services
from payments import selectors as payment_selectors
from payments import services as payment_services

from .conf import approval_threshold
from .models import ApprovalRequest, ApprovalStatus, StaffAction

REQUEST_REFUND = "backoffice.request_refund"
APPROVE_REFUND = "backoffice.approve_refund"
MAX_KEY = 64


class AlreadySubmitted(ConcordError):
    code = "already_submitted"
    http_status = 409


def _require_person(by: Any) -> None:
    if by is None or not getattr(by, "is_authenticated", False):
        raise ConcordError("A person must perform this action.", code="person_required", http_status=403)


def _clean_reason(reason: str | None) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ConcordError("A reason is required.", code="reason_required")
    return reason.strip()


def staff_action_record(
    *,
    key: str,
    by: Any,
    action: str,
    reason: str,
    order_id: int | None = None,
    target: str = "",
    outcome: str = "",
) -> int:
    """Claim the form's one-time key and record who did what and why. Call it inside
    the action's transaction: a second submit with the same key (a double click, a
    browser resend) raises AlreadySubmitted — waiting, if the first is still running,
    on the unique index until it commits."""
    _require_person(by)
    reason = _clean_reason(reason)
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
        raise ConcordError("The form has expired; open it again.", code="action_key_invalid")
    try:
        with transaction.atomic():
            row = StaffAction.objects.create(
                key=key,
                user=by,
                action=action[:48],
                order_id=order_id,
                target=target[:128],
                reason=reason,
                outcome=outcome,
            )
    except IntegrityError:
        raise AlreadySubmitted(
            "This form was already submitted; nothing was done twice.", details={"key": key}
        ) from None
    return row.pk


def staff_action_claim(**kwargs: Any) -> int:
    """staff_action_record in its own, committed transaction: for actions that call the
    provider and so must not run inside one (a resend, a remediation). A second submit
    is refused at once; the row stays as the audit even if the action then fails
    (its outcome says how it ended), and the page offers a fresh form."""
    with transaction.atomic():
        return staff_action_record(**kwargs)


def staff_action_set_outcome(*, action_id: int, outcome: str) -> None:
    StaffAction.objects.filter(pk=action_id).update(outcome=outcome[:2000])


def parse_amount(raw: Any) -> Decimal:
    try:
        amount = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise ConcordError(f"{raw!r} is not an amount.", code="amount_invalid") from None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise ConcordError("The amount must be positive with at most two decimals.", code="amount_invalid")
    return amount


@dataclass(frozen=True)
class RefundPlan:
    """What a refund request would do: shown as the preview, then carried out."""

    order_id: int
    payment_id: int
    amount: Decimal
    currency: str
    refundable: Decimal
    full: bool
    needs_approval: bool
    threshold: Decimal


def refund_plan(*, order_id: int, amount: Any) -> RefundPlan:
    payment = payment_selectors.payment_for_order(order_id=order_id)
    if payment is None:
        raise NotFound(f"Order {order_id} has no payment.", code="payment_not_found")
    if payment.status not in ("captured", "partially_refunded"):
        raise Conflict(
            f"The payment is {payment.status}; only captured money can be refunded.",
            code="payment_not_refundable",
        )
    refundable = payment.refundable_amount
    value = refundable if amount in (None, "", "full") else parse_amount(amount)
    if value > refundable:
        raise ConcordError(
            f"At most {refundable} {payment.currency} can be refunded.", code="refund_exceeds_captured"
        )
    threshold = approval_threshold()
    return RefundPlan(
        order_id=order_id,
        payment_id=payment.id,
        amount=value,
        currency=payment.currency,
        refundable=refundable,
        full=value == refundable,
        needs_approval=value > threshold,
        threshold=threshold,
    )


@dataclass(frozen=True)
class RefundOutcome:
    approval_id: int | None
    refund_id: int | None
    kind: str = ApprovalRequest.KIND_REFUND


REFUND_KEY_PREFIX = "backoffice:"


def _send_refund_after_commit(*, payment_id: int, idempotency_key: str) -> None:
    """Money must actually move: once the pending refund is committed, a Celery task
    asks the provider for it (backoffice.tasks.refund_send, with its retry policy).
    If the broker is down the refund stays pending and the case file offers
    "send again"; robust=True so a broker error never breaks the staff's request."""
    from . import tasks  # tasks imports this module

    transaction.on_commit(
        lambda: tasks.refund_send.delay(payment_id, idempotency_key),
        robust=True,
    )


@dataclass(frozen=True)
class RefundSent:
    refund_id: int
    status: str  # the refund's state now: pending | succeeded | failed
    outcome: str  # the provider's answer: succeeded | declined | transient | unknown
    error: str = ""

    @property
    def pending(self) -> bool:
        return self.status == "pending"


def refund_send(*, payment_id: int, idempotency_key: str) -> RefundSent:
    """Ask the provider for a refund the back office created (never creates one: an
    unknown key is an error, not a new full refund). Retry-safe: the refund's fixed
    key makes the provider replay its first answer. Must run outside a transaction."""
    refund = next(
        (
            r
            for r in payment_selectors.refunds_for_payment(payment_id=payment_id)
            if r.idempotency_key == idempotency_key
        ),
        None,
    )
    if refund is None:
        raise NotFound(
            f"Payment {payment_id} has no refund with key {idempotency_key!r}.",
            code="refund_not_found",
            details={"payment_id": payment_id, "idempotency_key": idempotency_key},
        )
    if refund.status != "pending":
        return RefundSent(refund_id=refund.id, status=refund.status, outcome="already " + refund.status)
    result = payment_services.payment_refund_through_provider(
        payment_id=payment_id,
        reason=f"back-office refund {refund.id} sent to the provider",
        idempotency_key=idempotency_key,
    )
    now = result.refund or refund
    return RefundSent(refund_id=now.id, status=now.status, outcome=str(result.outcome), error=result.error)


def refund_resend_claim(*, refund_id: int, order_id: int, by: Any, reason: str, action_key: str) -> Any:
    """A person asks to send a pending back-office refund again (the task gave up, or
    the broker was down). Claims the form's one-time key in its own committed
    transaction — the provider call that follows must not run inside one — and
    returns the refund to send."""
    _require_person(by)
    if not by.has_perm(REQUEST_REFUND):
        raise ConcordError("You may not send refunds.", code="permission_denied", http_status=403)
    payment = payment_selectors.payment_for_order(order_id=order_id)
    refund = next(
        (
            r
            for r in (payment_selectors.refunds_for_payment(payment_id=payment.id) if payment else [])
            if r.id == refund_id
        ),
        None,
    )
    if refund is None or not refund.idempotency_key.startswith(REFUND_KEY_PREFIX):
        raise NotFound(f"Order {order_id} has no back-office refund {refund_id}.", code="refund_not_found")
    if refund.status != "pending":
        raise Conflict(f"Refund {refund_id} is {refund.status}; nothing to send.", code="refund_not_pending")
    staff_action_claim(
        key=action_key,
        by=by,
        action="refund_send",
        reason=reason,
        order_id=order_id,
        target=f"refund {refund.id}",
    )
    return refund


@transaction.atomic
def refund_request(*, order_id: int, amount: Any, reason: str, by: Any, action_key: str) -> RefundOutcome:
    """A refund from the back office. Up to the threshold it is created at once; above
    it, an ApprovalRequest waits for someone else from finance."""
    _require_person(by)
    if not by.has_perm(REQUEST_REFUND):
        raise ConcordError("You may not ask for refunds.", code="permission_denied", http_status=403)
    reason = _clean_reason(reason)
    plan = refund_plan(order_id=order_id, amount=amount)
    staff_action_record(
        key=action_key,
        by=by,
        action="refund_request",
        reason=reason,
        order_id=order_id,
        target=f"payment {plan.payment_id}: {plan.amount} {plan.currency}",
    )
    if plan.needs_approval:
        approval = ApprovalRequest.objects.create(
            order_id=order_id,
            payment_id=plan.payment_id,
            amount=plan.amount,
            currency=plan.currency,
            reason=reason,
            requested_by=by,
        )
        return RefundOutcome(approval_id=approval.pk, refund_id=None)
    refund = payment_services.refund_create(
        payment_id=plan.payment_id,
        amount=plan.amount,
        reason=f"{reason} (back office, {by.get_username()})",
        by=by,
        idempotency_key=f"{REFUND_KEY_PREFIX}{action_key}",
    )
    _send_refund_after_commit(payment_id=plan.payment_id, idempotency_key=refund.idempotency_key)
    return RefundOutcome(approval_id=None, refund_id=refund.id)


CANCEL_ORDER = "orders.cancel_order"


@dataclass(frozen=True)
class CancelPlan:
    order_id: int
    refund: Decimal  # what the cancellation saga gives back (0: nothing was captured)
    currency: str
    needs_approval: bool
    threshold: Decimal


def order_cancel_plan(*, order_id: int) -> CancelPlan:
    order = order_selectors.order_get(order_id=order_id)
    if order.status != "confirmed":
        raise Conflict(
            f"Order {order_id} is {order.status}; only a confirmed order is cancelled this way.",
            code="order_not_cancellable",
        )
    payment = payment_selectors.payment_for_order(order_id=order_id)
    refund = (
        payment.refundable_amount
        if payment is not None and payment.status in ("captured", "partially_refunded")
        else Decimal("0")
    )
    threshold = approval_threshold()
    return CancelPlan(
        order_id=order_id,
        refund=refund,
        currency=order.currency,
        needs_approval=refund > threshold,
        threshold=threshold,
    )


@transaction.atomic
def order_cancel_request(*, order_id: int, reason: str, by: Any, action_key: str) -> int | None:
    """Staff cancel a confirmed order through the orders app (order_request_cancel: the
    order moves to cancelling and its cancellation saga refunds in full, restocks and
    cancels). Refunding more than the threshold waits for finance: returns the
    ApprovalRequest id then, else None."""
    _require_person(by)
    if not by.has_perm(CANCEL_ORDER):
        raise ConcordError("You may not cancel orders.", code="permission_denied", http_status=403)
    reason = _clean_reason(reason)
    plan = order_cancel_plan(order_id=order_id)
    staff_action_record(
        key=action_key,
        by=by,
        action="order_cancel",
        reason=reason,
        order_id=order_id,
        target=f"order {order_id}: refund {plan.refund} {plan.currency}",
    )
    if plan.needs_approval:
        payment = payment_selectors.payment_for_order(order_id=order_id)
        return ApprovalRequest.objects.create(
            kind=ApprovalRequest.KIND_CANCEL,
            order_id=order_id,
            payment_id=payment.id if payment else None,
            amount=plan.refund,
            currency=plan.currency,
            reason=reason,
            requested_by=by,
        ).pk
    order_services.order_request_cancel(
        order_id=order_id, by=by, reason=reason, failure_reason="cancelled_by_staff"
    )
    return None


REMEDIATE_MONEY = "reconciliation.refund_incident"


@transaction.atomic
def remediation_request_approval(
    *,
    incident_id: int,
    order_id: int | None,
    action: str,
    amount: Decimal,
    currency: str,
    reason: str,
    by: Any,
    action_key: str,
) -> int:
    """A remediation that moves more than the threshold waits for someone else from
    finance, like a large refund. Returns the ApprovalRequest id."""
    _require_person(by)
    if not by.has_perm(REMEDIATE_MONEY):
        raise ConcordError(
            "You may not run remediations that move money.", code="permission_denied", http_status=403
        )
    reason = _clean_reason(reason)
    staff_action_record(
        key=action_key,
        by=by,
        action="remediation_request",
        reason=reason,
        order_id=order_id,
        target=f"incident {incident_id}: {action} {amount} {currency}",
    )
    approval = ApprovalRequest.objects.create(
        kind=ApprovalRequest.KIND_REMEDIATION,
        order_id=order_id,
        incident_id=incident_id,
        remediation_action=action,
        amount=amount,
        currency=currency,
        reason=reason,
        requested_by=by,
    )
    return approval.pk


def approval_carry_out_remediation(*, approval_id: int) -> Any:
    """After finance approved a remediation (committed), run it — outside any
    transaction, since it calls the provider. It runs as the person who asked (they
    hold the remediation permissions; the approval row says who approved), and
    reconciliation keeps it once-only per incident and action, so calling this again
    returns the first result."""
    from reconciliation import services as recon_services

    approval = ApprovalRequest.objects.select_related("requested_by", "decided_by").get(pk=approval_id)
    if approval.kind != ApprovalRequest.KIND_REMEDIATION or approval.status != ApprovalStatus.APPROVED:
        raise Conflict(
            f"Approval request {approval_id} is not an approved remediation.", code="approval_closed"
        )
    return recon_services.remediation_apply(
        incident_id=approval.incident_id,
        by=approval.requested_by,
        reason=f"{approval.reason} (approved by {approval.decided_by.get_username()}: {approval.decision_reason})",
        action=approval.remediation_action,
    )


def _lock_approval(approval_id: int) -> ApprovalRequest:
    approval = ApprovalRequest.objects.select_for_update().filter(pk=approval_id).first()
    if approval is None:
        raise NotFound(f"Approval request {approval_id} does not exist.", code="approval_not_found")
    return approval


def _require_approver(approval: ApprovalRequest, by: Any) -> None:
    _require_person(by)
    if not by.has_perm(APPROVE_REFUND):
        raise ConcordError("Only finance may approve refunds.", code="permission_denied", http_status=403)
    if approval.requested_by_id == by.pk:
        raise ConcordError(
            "A second person must approve: you asked for this refund.", code="second_person_required"
        )


@transaction.atomic
def approval_approve(*, approval_id: int, by: Any, reason: str, action_key: str) -> RefundOutcome:
    """Finance approves: the refund is created now, keyed by the approval so it can
    never be created twice. Approving an approved request changes nothing."""
    reason = _clean_reason(reason)
    approval = _lock_approval(approval_id)
    _require_approver(approval, by)
    if approval.status == ApprovalStatus.APPROVED:
        return RefundOutcome(approval_id=approval.pk, refund_id=approval.refund_id, kind=approval.kind)
    if not can_proceed(approval.approve):
        raise Conflict(f"Approval request {approval_id} is {approval.status}.", code="approval_closed")
    staff_action_record(
        key=action_key,
        by=by,
        action="refund_approve" if approval.kind == ApprovalRequest.KIND_REFUND else "remediation_approve",
        reason=reason,
        order_id=approval.order_id,
        target=f"approval {approval.pk}",
    )
    if approval.kind == ApprovalRequest.KIND_CANCEL:
        # In this transaction: the order moves to cancelling and its saga starts on commit.
        order_services.order_request_cancel(
            order_id=approval.order_id,
            by=by,
            reason=f"{approval.reason} (asked by {approval.requested_by.get_username()}, approved: {reason})",
            failure_reason="cancelled_by_staff",
        )
        approval.approve(None, by=by, description=reason)
        approval.save()
        return RefundOutcome(approval_id=approval.pk, refund_id=None, kind=approval.kind)
    if approval.kind == ApprovalRequest.KIND_REMEDIATION:
        # Carried out after commit by the caller (approval_carry_out_remediation).
        approval.approve(None, by=by, description=reason)
        approval.save()
        return RefundOutcome(approval_id=approval.pk, refund_id=None, kind=approval.kind)
    refund = payment_services.refund_create(
        payment_id=approval.payment_id,
        amount=approval.amount,
        reason=f"{approval.reason} (asked by {approval.requested_by.get_username()}, "
        f"approved by {by.get_username()}: {reason})",
        by=by,
        idempotency_key=f"{REFUND_KEY_PREFIX}approval:{approval.pk}",
    )
    approval.approve(refund.id, by=by, description=reason)
    approval.save()
    _send_refund_after_commit(payment_id=approval.payment_id, idempotency_key=refund.idempotency_key)
    return RefundOutcome(approval_id=approval.pk, refund_id=refund.id)


@transaction.atomic
def approval_reject(*, approval_id: int, by: Any, reason: str, action_key: str) -> None:
    reason = _clean_reason(reason)
    approval = _lock_approval(approval_id)
    _require_approver(approval, by)
    if approval.status == ApprovalStatus.REJECTED:
        return
    if not can_proceed(approval.reject):
        raise Conflict(f"Approval request {approval_id} is {approval.status}.", code="approval_closed")
    staff_action_record(
        key=action_key,
        by=by,
        action="refund_reject",
        reason=reason,
        order_id=approval.order_id,
        target=f"approval {approval.pk}",
    )
    approval.reject(by=by, description=reason)
    approval.save()


@transaction.atomic
def order_note_add(*, order_id: int, by: Any, text: str, action_key: str) -> int:
    """A note on an order's case file (support writes what they found or told the customer)."""
    if not getattr(by, "is_staff", False) and not getattr(by, "is_superuser", False):
        raise ConcordError("Only staff may add notes.", code="permission_denied", http_status=403)
    return staff_action_record(key=action_key, by=by, action="note", reason=text, order_id=order_id)
