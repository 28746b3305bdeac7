"""The checkout's three steps as plain functions, for the comparison runs of
bench/saga_throughput.py (a DBOS workflow and a plain Celery chain). They call the
same domain services the Concord checkout saga calls, so the three systems do the
same work; only the orchestration differs."""

from __future__ import annotations

from django.db import transaction


def reserve(order_id: int) -> None:
    from inventory.services import stock_reserve
    from orders.selectors import order_get

    order = order_get(order_id=order_id)
    stock_reserve(order_id=order_id, lines=[(ln.sku, ln.quantity) for ln in order.lines], reason="bench")


def charge(payment_id: int) -> str:
    from payments.services import payment_charge

    outcome = payment_charge(payment_id=payment_id)
    if outcome.outcome != "succeeded":
        raise RuntimeError(f"charge {outcome.outcome}: {outcome.error}")
    return outcome.payment.provider_charge_id or ""


def confirm(order_id: int) -> None:
    from inventory.services import stock_commit
    from orders.services import order_confirm

    with transaction.atomic():
        stock_commit(order_id=order_id, reason="bench")
        order_confirm(order_id=order_id, reason="bench")
