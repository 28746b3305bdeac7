"""The actions of an order's case file (and the stuck list's bulk saga actions).

Each is declared once: when it is offered (the owning app's rule), what it would do,
the money it moves and the one service it calls. The flow (backoffice.services) does
the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from core.errors import ConcordError, Conflict
from orders.choices import CHECKOUT, FailureReason, OrderStatus
from orders.selectors import order_confirm_paid_refusal
from orders.services import order_confirm_paid, order_request_cancel
from payments.choices import RefundStatus
from payments.services import refund_create, refund_send
from sagas import registry as saga_registry
from sagas.choices import ManualAction, RunStatus
from sagas.dto import SagaRunDTO
from sagas.selectors import saga_operations_allowed
from sagas.services import saga_compensate, saga_mark_resolved, saga_retry_now, saga_skip_step
from webhooks.choices import DeliveryStatus, EndpointStatus
from webhooks.services import webhook_delivery_replay

from .. import tasks
from ..conf import approval_threshold
from ..models import ApprovalKind
from ..permissions import is_support
from .base import Input, Offer, Operation, OrderCase, Outcome, Params, Preview, RunsCase

REQUEST_REFUND = "backoffice.request_refund"
CANCEL_ORDER = "orders.cancel_order"
CONFIRM_ORDER = "orders.change_order"
# Refunds the back office creates carry keys with this prefix: "send again" is offered
# for those only (a saga's refunds are the saga's to retry).
REFUND_KEY_PREFIX = "backoffice:"


def _lines(case: OrderCase) -> str:
    return ", ".join(f"{ln.quantity} x {ln.sku}" for ln in case.order.lines)


def _refundable(case: OrderCase) -> Decimal:
    return case.refundable


def _checkout_run(case: OrderCase) -> SagaRunDTO | None:
    return next((run for run in case.runs if run.saga_type == CHECKOUT), None)


def _run_of(case: RunsCase, params: Params) -> SagaRunDTO:
    run = next((run for run in case.runs if run.id == params.get("run_id")), None)
    if run is None:
        raise Conflict("No such saga run here.", code="saga_not_found")
    return run


# --- the saga engine's manual operations, per run -------------------------------------------


def _preview_retry(case: RunsCase, run: SagaRunDTO) -> list[str]:
    return [
        f"Saga #{run.id} ({run.saga_type}) runs step “{run.step}” again now, attempts reset to 0.",
        "External calls reuse their idempotency key: a charge or refund cannot happen twice.",
    ]


def _preview_compensate(case: RunsCase, run: SagaRunDTO) -> list[str]:
    names = [s.name for s in saga_registry.get(run.saga_type).steps]
    done = names[: run.step_index + (1 if run.status == RunStatus.FAILED else 0)]
    effects = [f"Saga #{run.id} undoes, in reverse: {', '.join(reversed(done)) or 'nothing yet'}."]
    if isinstance(case, OrderCase):
        if case.refundable:
            effects.append(f"Money: {case.refundable} {case.order.currency} goes back to the customer.")
        effects.append(f"Stock: held units return to the shelf ({_lines(case)}).")
        effects.append("The order ends cancelled (cancelled_by_staff).")
    return effects


def _preview_skip(case: RunsCase, run: SagaRunDTO) -> list[str]:
    undo = " (its compensation)" if run.status == RunStatus.COMPENSATION_FAILED else ""
    return [
        f"Saga #{run.id} ({run.saga_type}) moves past step “{run.step}”{undo} without running it: you "
        "assert its effect is already in place (checked by hand, e.g. on the provider's dashboard).",
        "Nothing is sent to the provider; the saga continues with the next step.",
    ]


def _preview_resolve(case: RunsCase, run: SagaRunDTO) -> list[str]:
    return [f"Saga #{run.id} leaves the stuck list as resolved; nothing else changes."]


def _saga_operation(
    action: ManualAction,
    label: str,
    effects: Callable[[RunsCase, SagaRunDTO], list[str]],
    service: Callable[[SagaRunDTO, Any, str], Any],
) -> Operation:
    """One of the saga engine's manual operations, offered per run when
    sagas.selectors.saga_operations_allowed says so (its permission included)."""

    def offers(case: RunsCase, user: Any) -> list[Offer]:
        return [
            Offer(operation, f"{label} (saga #{run.id})", {"run_id": run.id})
            for run in case.runs
            if action in saga_operations_allowed(run=run, user=user)
        ]

    def preview(case: RunsCase, params: Params) -> Preview:
        return Preview(effects=effects(case, _run_of(case, params)), params=dict(params))

    def run(case: RunsCase, params: Params, by: Any, reason: str, key: str) -> Outcome:
        saga_run = _run_of(case, params)
        service(saga_run, by, reason)
        return Outcome(f"{label}: done for saga #{saga_run.id}.")

    operation = Operation(
        name=f"saga_{action}",
        op=str(action),
        page="order",
        label=label,
        offers=offers,
        preview=preview,
        run=run,
        target_params=("run_id",),
    )
    return operation


SAGA_OPERATIONS: dict[str, Operation] = {
    ManualAction.RETRY_NOW: _saga_operation(
        ManualAction.RETRY_NOW,
        ManualAction.RETRY_NOW.label,
        _preview_retry,
        lambda run, by, reason: saga_retry_now(run_id=run.id, by=by, reason=reason),
    ),
    ManualAction.COMPENSATE: _saga_operation(
        ManualAction.COMPENSATE,
        "Compensate (undo and cancel)",
        _preview_compensate,
        lambda run, by, reason: saga_compensate(
            run_id=run.id, by=by, reason=reason, failure_code=FailureReason.CANCELLED_BY_STAFF
        ),
    ),
    # Offered, like in the admin, only to holders of sagas.skip_step (saga_operations_allowed).
    ManualAction.SKIP_STEP: _saga_operation(
        ManualAction.SKIP_STEP,
        ManualAction.SKIP_STEP.label,
        _preview_skip,
        # The step the person saw: a repeated submit does not skip the next step too.
        lambda run, by, reason: saga_skip_step(run_id=run.id, by=by, reason=reason, step=run.step),
    ),
    ManualAction.MARK_RESOLVED: _saga_operation(
        ManualAction.MARK_RESOLVED,
        ManualAction.MARK_RESOLVED.label,
        _preview_resolve,
        lambda run, by, reason: saga_mark_resolved(run_id=run.id, by=by, reason=reason),
    ),
}


# --- confirm a paid order ---------------------------------------------------------------------


def _confirm_offers(case: OrderCase, user: Any) -> list[Offer]:
    refusal = order_confirm_paid_refusal(
        order=case.order, payment=case.payment, checkout_run=_checkout_run(case)
    )
    return [] if refusal is not None else [Offer(CONFIRM, "Confirm the order manually")]


def _confirm_preview(case: OrderCase, params: Params) -> Preview:
    payment = case.payment
    assert payment is not None
    effects = [
        f"Order {case.order.id}: pending → confirmed. Payment {payment.id} is captured "
        f"({payment.amount} {payment.currency}).",
        f"Stock: {_lines(case)} leave the shelf (the held reservation is committed).",
    ]
    run = _checkout_run(case)
    if run is not None and run.status in (RunStatus.FAILED, RunStatus.COMPENSATION_FAILED):
        effects.append(f"Saga #{run.id} ({run.saga_type}, {run.status}) is marked resolved.")
    return Preview(effects=effects, params={})


def _confirm_run(case: OrderCase, params: Params, by: Any, reason: str, key: str) -> Outcome:
    order_confirm_paid(order_id=case.order.id, by=by, reason=reason)
    return Outcome(f"Order {case.order.id} confirmed.", summary=f"order {case.order.id} confirmed")


CONFIRM = Operation(
    name="order_confirm",
    op="confirm",
    page="order",
    label="Confirm",
    permission=CONFIRM_ORDER,
    offers=_confirm_offers,
    preview=_confirm_preview,
    run=_confirm_run,
)


# --- refund ---------------------------------------------------------------------------------------


def parse_amount(raw: Any) -> Decimal:
    try:
        amount = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise ConcordError(f"{raw!r} is not an amount.", code="amount_invalid") from None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise ConcordError("The amount must be positive with at most two decimals.", code="amount_invalid")
    return amount


def _refund_offers(case: OrderCase, user: Any) -> list[Offer]:
    refundable = _refundable(case)
    if refundable <= 0:
        return []
    note = f"{case.order.currency}, at most {refundable}; above {approval_threshold()} needs finance approval"
    return [Offer(REFUND, "Refund (full or partial)", {"amount": str(refundable)}, note=note)]


def _refund_preview(case: OrderCase, params: Params) -> Preview:
    refundable = _refundable(case)
    raw = params.get("amount")
    amount = refundable if raw in (None, "", "full") else parse_amount(raw)
    if amount > refundable:
        raise ConcordError(
            f"At most {refundable} {case.order.currency} can be refunded.", code="refund_exceeds_captured"
        )
    kind = "full" if amount == refundable else "partial"
    return Preview(
        effects=[
            f"Money: {amount} {case.order.currency} back to the customer ({kind} refund; "
            f"{refundable} refundable).",
            "Stock: unchanged.",
        ],
        params={"amount": str(amount)},
        money=amount,
        currency=case.order.currency,
    )


def _refund_run(case: OrderCase, params: Params, by: Any, reason: str, key: str) -> Outcome:
    """A pending refund with a key fixed by the form (or the approval); once it is
    committed, a Celery task asks the provider for it (backoffice.tasks.refund_send,
    with its retry policy). If the broker is down the refund stays pending and the case
    file offers "send again"; robust=True so a broker error never breaks the request."""
    assert case.payment is not None
    refund = refund_create(
        payment_id=case.payment.id,
        amount=Decimal(params["amount"]),
        reason=f"{reason} (back office, {by.get_username()})",
        by=by,
        idempotency_key=f"{REFUND_KEY_PREFIX}{key}",
    )
    payment_id, refund_key = case.payment.id, refund.idempotency_key
    transaction.on_commit(lambda: tasks.refund_send.delay(payment_id, refund_key), robust=True)
    return Outcome(
        f"Refund #{refund.id} created; it is being sent to the provider.",
        summary=f"refund #{refund.id} created; it is being sent to the provider",
        audit=f"refund {refund.id}: {refund.amount} {refund.currency}",
        facts={"refund_id": refund.id},
    )


REFUND = Operation(
    name="refund_request",
    op="refund",
    page="order",
    label="Refund",
    permission=REQUEST_REFUND,
    offers=_refund_offers,
    preview=_refund_preview,
    run=_refund_run,
    inputs=(Input("amount", "Amount"),),
    approval_kind=ApprovalKind.REFUND,
)


# --- cancel a confirmed order ---------------------------------------------------------------------


def _cancel_offers(case: OrderCase, user: Any) -> list[Offer]:
    if case.order.status != OrderStatus.CONFIRMED:
        return []
    return [Offer(CANCEL, "Cancel the order (full refund, stock back on the shelf)")]


def _cancel_preview(case: OrderCase, params: Params) -> Preview:
    money = _refundable(case)
    return Preview(
        effects=[
            f"Order {case.order.id}: confirmed → cancelling → cancelled (cancelled_by_staff), through the "
            "orders app's cancellation saga: refund, restock, cancel.",
            f"Money: {money} {case.order.currency} back to the customer (full refund).",
            f"Stock: {_lines(case)} back on the shelf.",
        ],
        params={},
        money=money,
        currency=case.order.currency,
    )


def _cancel_run(case: OrderCase, params: Params, by: Any, reason: str, key: str) -> Outcome:
    order_request_cancel(
        order_id=case.order.id, by=by, reason=reason, failure_reason=FailureReason.CANCELLED_BY_STAFF
    )
    return Outcome(
        f"Order {case.order.id} is being cancelled: refund, restock, cancel.",
        summary="the order is being cancelled (refund, restock, cancel)",
    )


CANCEL = Operation(
    name="order_cancel",
    op="cancel",
    page="order",
    label="Cancel",
    permission=CANCEL_ORDER,
    offers=_cancel_offers,
    preview=_cancel_preview,
    run=_cancel_run,
    approval_kind=ApprovalKind.CANCEL,
)


# --- send a back-office refund again ------------------------------------------------------------------


def _resend_offers(case: OrderCase, user: Any) -> list[Offer]:
    # A back-office refund still pending: its task is retrying or gave up, or the broker
    # lost the message. Sending it again is safe (same provider key).
    return [
        Offer(
            RESEND,
            f"Send refund #{refund.id} ({refund.amount} {refund.currency}) to the provider again",
            {"refund_id": refund.id},
        )
        for refund in case.refunds
        if refund.status == RefundStatus.PENDING and refund.idempotency_key.startswith(REFUND_KEY_PREFIX)
    ]


def _refund_of(case: OrderCase, params: Params) -> Any:
    refund = next((r for r in case.refunds if r.id == params.get("refund_id")), None)
    if refund is None:
        raise Conflict("No such refund here.", code="refund_not_found")
    return refund


def _resend_preview(case: OrderCase, params: Params) -> Preview:
    refund = _refund_of(case, params)
    return Preview(
        effects=[
            f"Refund #{refund.id} of {refund.amount} {refund.currency} is asked of the provider again now, "
            f"with its key {refund.idempotency_key!r}: the provider replays, the money goes back at most once.",
            "Stock: unchanged.",
        ],
        params=dict(params),
    )


def _resend_run(case: OrderCase, params: Params, by: Any, reason: str, key: str) -> Outcome:
    refund = _refund_of(case, params)
    sent = refund_send(refund_id=refund.id, by=by, reason=reason)
    assert sent.refund is not None
    if sent.refund.status == RefundStatus.SUCCEEDED:
        return Outcome(f"Refund #{refund.id} succeeded at the provider.", audit=str(sent.outcome))
    if sent.refund.status == RefundStatus.FAILED:
        return Outcome(
            f"The provider refused refund #{refund.id}: {sent.error or sent.outcome}.",
            level="error",
            audit=f"{sent.outcome}: {sent.error}",
        )
    return Outcome(
        f"Refund #{refund.id} is still pending ({sent.outcome}: {sent.error}); try again later.",
        level="warning",
        audit=f"{sent.outcome}: {sent.error}",
    )


RESEND = Operation(
    name="refund_send",
    op="resend_refund",
    page="order",
    label="Send refund",
    permission=REQUEST_REFUND,
    offers=_resend_offers,
    preview=_resend_preview,
    run=_resend_run,
    target_params=("refund_id",),
    calls_provider=True,
)


# --- replay a webhook delivery the shop never took ------------------------------------------------------


def _replay_offers(case: OrderCase, user: Any) -> list[Offer]:
    # A failed delivery: every attempt of the retry schedule failed and the endpoint
    # was disabled. (Pending ones are still being retried by the sender.)
    return [
        Offer(
            REPLAY_DELIVERY,
            f"Replay webhook delivery #{d.id} ({d.event_type} to {d.endpoint_url})",
            {"delivery_id": d.id},
        )
        for d in case.deliveries
        if d.status == DeliveryStatus.FAILED and d.endpoint_status != EndpointStatus.DELETED
    ]


def _delivery_of(case: OrderCase, params: Params) -> Any:
    delivery = next((d for d in case.deliveries if d.id == params.get("delivery_id")), None)
    if delivery is None:
        raise Conflict("No such webhook delivery here.", code="delivery_not_found")
    return delivery


def _replay_preview(case: OrderCase, params: Params) -> Preview:
    d = _delivery_of(case, params)
    effects = [
        f"Webhook delivery #{d.id} ({d.event_type}, event {d.event_id}) is sent to {d.endpoint_url} "
        "again now, with the same webhook-id: the shop can tell it is the same event."
    ]
    if d.endpoint_status == EndpointStatus.DISABLED:
        effects.append(
            f"The endpoint is enabled again (it was disabled: {d.endpoint_disabled_reason[:200]}); "
            "its waiting deliveries follow, in order."
        )
    effects.append("Money and stock: unchanged.")
    return Preview(effects=effects, params=dict(params))


def _replay_run(case: OrderCase, params: Params, by: Any, reason: str, key: str) -> Outcome:
    d = _delivery_of(case, params)
    webhook_delivery_replay(delivery_id=d.id, by=by, reason=reason)
    return Outcome(
        f"Webhook delivery #{d.id} is being sent again.", audit=f"webhook delivery {d.id} replayed"
    )


REPLAY_DELIVERY = Operation(
    name="webhook_replay",
    op="replay_delivery",
    page="order",
    label="Replay delivery",
    allowed=is_support,
    offers=_replay_offers,
    preview=_replay_preview,
    run=_replay_run,
    target_params=("delivery_id",),
)


# --- a note on the case file ----------------------------------------------------------------------------


def _note_offers(case: OrderCase, user: Any) -> list[Offer]:
    return [Offer(NOTE, "Add a note")]


def _note_run(case: OrderCase, params: Params, by: Any, reason: str, key: str) -> Outcome:
    # The staff action the flow records is the note (its reason is the text).
    return Outcome("Note added.")


NOTE = Operation(
    name="note",
    op="note",
    page="order",
    label="Note",
    allowed=is_support,
    offers=_note_offers,
    run=_note_run,
)


ORDER_OPERATIONS: tuple[Operation, ...] = (
    *SAGA_OPERATIONS.values(),
    CONFIRM,
    REFUND,
    CANCEL,
    RESEND,
    REPLAY_DELIVERY,
    NOTE,
)
