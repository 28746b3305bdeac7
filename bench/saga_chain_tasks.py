"""Plain Celery chain version of the checkout (bench only): three tasks, no saga
bookkeeping — no run row, no lease, no step log, no compensation. The floor."""

from __future__ import annotations

from celery import shared_task

from bench import saga_steps


@shared_task(name="bench.chain_reserve", ignore_result=True)
def chain_reserve(order_id: int) -> None:
    saga_steps.reserve(order_id)


# A lost answer (a keep-alive connection closed under the call) is retried with the
# payment's same idempotency key, or one order of a round never confirms and the
# round fails; the floor gets this much help, nothing more.
@shared_task(name="bench.chain_charge", ignore_result=True, autoretry_for=(RuntimeError,), max_retries=3)
def chain_charge(payment_id: int) -> None:
    saga_steps.charge(payment_id)


@shared_task(name="bench.chain_confirm", ignore_result=True)
def chain_confirm(order_id: int) -> None:
    saga_steps.confirm(order_id)
