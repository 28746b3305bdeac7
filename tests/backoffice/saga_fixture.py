"""A small checkout-shaped saga for the back-office tests, registered on import.

Until orders/sagas.py defines the real checkout, this stands in for it with the same
steps: reserve_stock -> charge_payment -> confirm_order, using the real inventory,
payments and orders services. `PROVIDER["up"]` decides whether the charge step's
provider "answers": while it is down the step reports a transient failure, and with
one attempt allowed the run fails at once and waits for a person.
"""

from __future__ import annotations

from datetime import timedelta

from inventory import services as inventory_services
from orders import selectors as order_selectors
from orders import services as order_services
from payments import selectors as payment_selectors
from payments import services as payment_services
from sagas import registry
from sagas.definition import RetryPolicy, SagaDefinition, Step, StepContext, StepResult, done, retry

NAME = "bo_test_checkout"
PROVIDER = {"up": False}
ONCE = RetryPolicy(max_attempts=1, base_delay=0.0, max_delay=0.0, jitter=0.0)


def _reserve(ctx: StepContext) -> StepResult:
    order = order_selectors.order_get(order_id=int(ctx.subject_id))
    inventory_services.stock_reserve(
        order_id=order.id, lines=[(ln.sku, ln.quantity) for ln in order.lines], reason="checkout"
    )
    return done()


def _release(ctx: StepContext) -> StepResult:
    inventory_services.stock_release(order_id=int(ctx.subject_id), reason="checkout compensated")
    return done()


def _charge(ctx: StepContext) -> StepResult:
    order = order_selectors.order_get(order_id=int(ctx.subject_id))
    payment = payment_selectors.payment_for_order(order_id=order.id) or payment_services.payment_create(
        order_id=order.id, amount=order.total, currency=order.currency, payment_method=order.payment_method
    )
    if not PROVIDER["up"]:
        return retry("provider timeout: no answer within 5.0 s")
    payment_services.payment_capture(
        payment_id=payment.id, provider_charge_id=f"ch_test_{order.id}", reason="charged"
    )
    return done()


def _confirm(ctx: StepContext) -> StepResult:
    order_id = int(ctx.subject_id)
    inventory_services.stock_commit(order_id=order_id, reason="confirmed")
    order_services.order_confirm(order_id=order_id, reason="checkout complete")
    return done()


def _cancel(ctx: StepContext) -> None:
    order_services.order_cancel(
        order_id=int(ctx.subject_id),
        failure_reason=ctx.failure_code or "payment_failed",
        reason="compensated",
    )


DEFINITION = registry.register(
    SagaDefinition(
        name=NAME,
        steps=(
            Step("reserve_stock", _reserve, _release, retry=ONCE),
            Step("charge_payment", _charge, None, retry=ONCE),
            Step("confirm_order", _confirm, None, retry=ONCE),
        ),
        sla=timedelta(minutes=15),
        on_compensated=_cancel,
    ),
    replace=True,
)
