"""The order sagas (DESIGN §3), declared for the engine in sagas/.

checkout (subject: the order id; context: {"payment_id"}):

    reserve_stock  -> charge_payment -> confirm_order
    release_stock  <- refund_payment
    then on_compensated: the order is cancelled with the run's failure code
    (or, when a person cancelled it, cancelling -> cancelled).

order_cancellation (a confirmed order; subject: the order id):

    refund_payment -> restock -> finish_cancellation

confirm_order is orders.services.order_confirm_paid, the one recipe every caller uses
to confirm a paid order. External steps follow the charge's call / record split: the
provider is asked with no transaction open and the answer is recorded in the step's
checkpoint (charge_payment -> record_charge, refund_payment -> record_refund).

Failure codes are the order's failure reasons, so the hook can copy them:
- out_of_stock: reserve_stock found too little stock (nothing was charged);
- payment_declined: the card said no (card_declined, insufficient_funds, ...);
- payment_failed: the provider refused the request for another permanent reason
  (invalid payment method, key reused...), or staff compensate a run whose
  charge could not be completed;
- cancelled_by_client / cancelled_by_staff: an abort (order_request_cancel).

When the charge keeps failing transiently (provider down, answers lost) the run
ends `failed` after its attempts, the order stays `pending` and the run is on the
stuck list: a person retries (the same key replays the charge) or compensates.

Every step is idempotent: stock by one reservation set per order, the charge by
the payment's fixed idempotency key, refunds by keys derived from the run and
step (ctx.idempotency_key()), order transitions by being no-ops when repeated.
"""

from __future__ import annotations

import functools
from datetime import timedelta

from django.conf import settings
from django.db import connection

from core.errors import ConcordError, Conflict, NotFound
from core.sql import column
from inventory.errors import OutOfStock, UnknownSku
from inventory.services import stock_release, stock_reserve, stock_restock
from payments.choices import PaymentStatus
from payments.selectors import payment_for_order, payment_get
from payments.services import (
    ChargeCall,
    Outcome,
    RefundCall,
    payment_charge_call,
    payment_charge_record,
    payment_fail,
    payment_refund_through_provider,
    payment_resolve_by_lookup,
    refund_call,
    refund_open,
    refund_record,
)
from sagas import registry
from sagas.definition import RetryPolicy, SagaDefinition, Step, StepContext, StepResult, done, fail, retry

from .choices import CHECKOUT, ORDER_CANCELLATION, FailureReason, OrderStatus
from .models import OrderLine
from .services import order_cancel_after_checkout, order_confirm_paid, order_finish_cancellation

__all__ = ["CHECKOUT", "ORDER_CANCELLATION", "register_order_sagas"]

_CAPTURED = (PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED)
_UNSETTLED = (PaymentStatus.PENDING, PaymentStatus.UNKNOWN)


def _order_id(ctx: StepContext) -> int:
    return int(ctx.subject_id)


def _payment_id(ctx: StepContext) -> int | None:
    payment_id = ctx.context.get("payment_id")
    if payment_id is not None:
        return int(payment_id)
    payment = payment_for_order(order_id=_order_id(ctx))
    return payment.id if payment is not None else None


def _why(ctx: StepContext, what: str) -> str:
    return f"{ctx.saga_type} run {ctx.run_id}: {what}"


# --- checkout steps ------------------------------------------------------------------


@functools.cache
def _lines_sql() -> str:
    table = connection.ops.quote_name(OrderLine._meta.db_table)
    sku, quantity, order = (column(OrderLine, name) for name in ("sku", "quantity", "order"))
    return f"SELECT {sku}, {quantity} FROM {table} WHERE {order} = %s ORDER BY id"  # noqa: S608


def _lines_wanted(order_id: int) -> list[tuple[str, int]]:
    """(sku, quantity) of the order's lines, in their order: a statement built once
    per process (the ORM compiled it for every checkout: issue 16)."""
    with connection.cursor() as cursor:
        cursor.execute(_lines_sql(), [order_id])
        return [(sku, quantity) for sku, quantity in cursor.fetchall()]


def reserve_stock(ctx: StepContext) -> StepResult:
    order_id = _order_id(ctx)
    lines = _lines_wanted(order_id)
    try:
        stock_reserve(order_id=order_id, lines=lines, reason=_why(ctx, "reserve stock"))
    except (OutOfStock, UnknownSku) as exc:
        # Permanent: the reservation is all-or-nothing, so nothing is held.
        return fail(str(exc), FailureReason.OUT_OF_STOCK)
    return done()


def release_stock(ctx: StepContext) -> StepResult:
    stock_release(order_id=_order_id(ctx), reason=_why(ctx, f"release stock ({ctx.failure_code})"))
    return done()


def charge_payment(ctx: StepContext) -> ChargeCall | StepResult:
    """External: no transaction is open while the provider is asked. The payment's
    fixed idempotency key makes every retry the same request. Nothing is written
    here: record_charge writes the answer in the step's checkpoint (one commit).
    A worker that dies in between loses nothing: the retry asks again with the
    same key and the provider replays the same charge."""
    payment_id = _payment_id(ctx)
    if payment_id is None:
        return fail("the order has no payment", FailureReason.PAYMENT_FAILED)
    return payment_charge_call(payment_id=payment_id, timeout=ctx.remaining())


def record_charge(ctx: StepContext, call: ChargeCall | StepResult) -> StepResult:
    """charge_payment's apply, inside the checkpoint transaction: the provider
    attempt and the capture (ledger) / failure / unknown mark of the payment."""
    if isinstance(call, StepResult):
        return call
    charged = payment_charge_record(call=call)
    if charged.outcome == Outcome.SUCCEEDED:
        return done({"provider_charge_id": charged.payment.provider_charge_id})
    if charged.outcome == Outcome.DECLINED:
        code = FailureReason.PAYMENT_DECLINED if charged.card_declined else FailureReason.PAYMENT_FAILED
        return fail(charged.error or charged.failure_code or "declined", code)
    return retry(f"charge {charged.outcome}: {charged.error}")


def refund_payment(ctx: StepContext) -> StepResult:
    """Compensation of charge_payment: whatever the charge did, undo it.

    A payment still pending or unknown is resolved first by asking the provider
    (its records, by reference = order id) — never by guessing. The step's lease
    expired or the attempt ended before we got here, so no request of ours is
    still in flight: a charge the provider does not know was never made. A
    captured payment is refunded in full with a key fixed for this run and step.
    """
    payment_id = _payment_id(ctx)
    if payment_id is None:
        return done()
    payment = payment_get(payment_id=payment_id)
    if payment.status in _UNSETTLED:
        try:
            payment = payment_resolve_by_lookup(
                payment_id=payment_id, not_found_means_failed=True, timeout=ctx.remaining()
            )
        except ConcordError as exc:
            return retry(f"could not look the charge up: {exc}")
    if payment.status in (PaymentStatus.FAILED, PaymentStatus.REFUNDED):
        return done()
    if payment.status not in _CAPTURED:
        return retry(f"payment {payment_id} is still {payment.status}")
    refunded = payment_refund_through_provider(
        payment_id=payment_id,
        reason=_why(ctx, f"refund ({ctx.failure_code})"),
        idempotency_key=ctx.idempotency_key(),
        timeout=ctx.remaining(),
    )
    if refunded.outcome == Outcome.SUCCEEDED:
        return done({"refund_id": refunded.refund.id if refunded.refund else None})
    if refunded.outcome == Outcome.DECLINED:
        # A refused refund is for a person: compensation_failed puts the run on the stuck list.
        return fail(f"refund refused: {refunded.error}", refunded.failure_code or "refund_declined")
    return retry(f"refund {refunded.outcome}: {refunded.error}")


_ORDER_NOT_FOUND = NotFound.code  # orders.services._lock's


def confirm_order(ctx: StepContext) -> StepResult:
    """Local: order_confirm_paid — stock leaves the shelf and the order is confirmed
    in one commit (the payment was captured by charge_payment). It locks the order
    and refuses (Conflict, before any write) one that is not pending: the status
    it found under the lock decides here."""
    order_id = _order_id(ctx)
    try:
        order_confirm_paid(
            order_id=order_id, reason=_why(ctx, "stock reserved and payment captured"), during_checkout=True
        )
    except NotFound as exc:
        if exc.code != _ORDER_NOT_FOUND or exc.details.get("order_id") != order_id:
            raise
        return fail(f"order {order_id} is gone", FailureReason.PAYMENT_FAILED)
    except Conflict as exc:
        status = exc.details.get("status") if exc.code == "illegal_transition" else None
        if status in (OrderStatus.CANCELLED, OrderStatus.CANCELLING):
            # A client was told the order is cancelling (or it was cancelled behind
            # the saga's back): never confirm it; compensating refunds the charge
            # and the hook finishes the cancellation.
            return fail(
                f"the order is {status}",
                exc.details.get("failure_reason") or FailureReason.CANCELLED_BY_STAFF,
            )
        # Cannot happen after charge_payment succeeded; never confirm unpaid goods.
        return retry(f"{exc.code}: {exc.message}")
    return done()


def checkout_compensated(ctx: StepContext) -> None:
    reason = ctx.failure_code if ctx.failure_code in FailureReason.values else FailureReason.PAYMENT_FAILED
    payment_id = _payment_id(ctx)
    if payment_id is not None and payment_get(payment_id=payment_id).status == PaymentStatus.PENDING:
        # Still pending here means the provider was never asked (a charge attempt
        # would have been resolved by refund_payment): close it so no payment of a
        # cancelled order waits for money forever.
        payment_fail(
            payment_id=payment_id, failure_code="not_charged", reason=_why(ctx, f"order cancelled: {reason}")
        )
    # pending -> cancelled with the run's reason; cancelling (a person asked) ->
    # cancelled with the reason recorded then.
    order_cancel_after_checkout(
        order_id=_order_id(ctx), failure_reason=reason, reason=_why(ctx, f"checkout compensated: {reason}")
    )


# --- cancellation of a confirmed order -------------------------------------------------


def cancellation_refund(ctx: StepContext) -> RefundCall | StepResult:
    """External, the refund's call half: the pending refund (keyed by run and step,
    so every retry finds the same one) is created in a short transaction of its own,
    then the provider is asked with no transaction open. record_refund writes the
    answer in the step's checkpoint."""
    payment_id = _payment_id(ctx)
    if payment_id is None:
        return done()
    payment = payment_get(payment_id=payment_id)
    if payment.status not in _CAPTURED:
        return done()  # refunded already (or never captured): nothing to give back
    refund = refund_open(
        payment_id=payment_id,
        reason=_why(ctx, f"order cancelled ({ctx.context.get('failure_reason', '')})"),
        idempotency_key=ctx.idempotency_key(),
    )
    if refund is None:
        return done()  # nothing left to refund
    return refund_call(refund_id=refund.id, timeout=ctx.remaining())


def record_refund(ctx: StepContext, call: RefundCall | StepResult) -> StepResult:
    """cancellation_refund's apply, inside the checkpoint: the provider attempt and
    the refund's success (ledger posted) or failure."""
    if isinstance(call, StepResult):
        return call
    refunded = refund_record(call=call, reason=_why(ctx, "refunded"))
    if refunded.outcome == Outcome.SUCCEEDED:
        return done({"refund_id": call.refund_id})
    # A refused refund is retried until the attempts run out, so the run ends
    # `failed` (stuck list, order still `cancelling`) for a person — a forward
    # `fail` would compensate nothing and hide the money still owed. A retry after
    # a refusal opens no new refund: the key names the refused one.
    return retry(f"refund {refunded.outcome}: {refunded.error}")


def cancellation_restock(ctx: StepContext) -> StepResult:
    try:
        stock_restock(order_id=_order_id(ctx), reason=_why(ctx, "order cancelled"))
    except NotFound:
        pass  # the order held no stock
    return done()


def cancellation_finish(ctx: StepContext) -> StepResult:
    order_finish_cancellation(order_id=_order_id(ctx), reason=_why(ctx, "refunded and restocked"))
    return done()


# --- definitions ---------------------------------------------------------------------


def _provider_step_timeout() -> float:
    """Long enough for one provider call (connect + read) and the bookkeeping
    around it; the lease adds SAGA_LEASE_MARGIN on top."""
    return float(settings.PSP_CONNECT_TIMEOUT) + float(settings.PSP_READ_TIMEOUT) + 2.0


LOCAL_RETRY = RetryPolicy(max_attempts=5, base_delay=0.2, max_delay=5.0)
# About ten minutes of provider trouble before a person is asked to look.
PROVIDER_RETRY = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=120.0)


def checkout_definition(
    *, local_retry: RetryPolicy = LOCAL_RETRY, provider_retry: RetryPolicy = PROVIDER_RETRY
) -> SagaDefinition:
    provider_timeout = _provider_step_timeout()
    return SagaDefinition(
        name=CHECKOUT,
        steps=(
            Step("reserve_stock", reserve_stock, release_stock, retry=local_retry, timeout=10.0),
            Step(
                "charge_payment",
                charge_payment,
                refund_payment,
                retry=provider_retry,
                timeout=provider_timeout,
                transactional=False,
                apply=record_charge,
            ),
            Step("confirm_order", confirm_order, retry=local_retry, timeout=10.0),
        ),
        sla=timedelta(minutes=30),
        on_compensated=checkout_compensated,
        subject_log_key="order_id",
    )


def cancellation_definition(
    *, local_retry: RetryPolicy = LOCAL_RETRY, provider_retry: RetryPolicy = PROVIDER_RETRY
) -> SagaDefinition:
    return SagaDefinition(
        name=ORDER_CANCELLATION,
        steps=(
            Step(
                "refund_payment",
                cancellation_refund,
                retry=provider_retry,
                timeout=_provider_step_timeout(),
                transactional=False,
                apply=record_refund,
            ),
            Step("restock", cancellation_restock, retry=local_retry, timeout=10.0),
            Step("finish_cancellation", cancellation_finish, retry=local_retry, timeout=10.0),
        ),
        sla=timedelta(minutes=30),
        subject_log_key="order_id",
    )


def register_order_sagas(*, replace: bool = False, **policies: RetryPolicy) -> None:
    """Called from OrdersConfig.ready(); tests re-register with faster policies."""
    registry.register(checkout_definition(**policies), replace=replace)
    registry.register(cancellation_definition(**policies), replace=replace)
