"""The shop floor of the operations tests: orders in every state support meets, a person
acting through the back office's one flow, and the world settling afterwards.

Orders go through the real checkout against the sandbox provider. States:
- confirmed;
- charge_failing: the provider answered 5xx, the checkout gave up (payment pending);
- payment_unknown: the provider charged, its answer was lost, the checkout gave up;
- charged_but_stuck: the same, and a lookup found the charge (payment captured);
- declined: the card was declined (cancelled);
- refund_unsent: confirmed, with a back-office refund the provider did not answer.
"""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal
from typing import Any

from django.db import transaction

from backoffice import services as bo_services
from backoffice import tasks
from backoffice.operations import REFUND_KEY_PREFIX, Offer, offers_for
from backoffice.selectors import order_case
from inventory.services import product_upsert, stock_set_on_hand
from orders.services import order_place
from payments.selectors import payment_for_order, refunds_for_payment
from payments.services import payment_resolve_by_lookup
from sagas.choices import ACTIVE_STATUSES
from sagas.executor import advance_run
from sagas.selectors import saga_runs_for_subject

STATES = ("confirmed", "charge_failing", "payment_unknown", "charged_but_stuck", "declined", "refund_unsent")
PRICE = Decimal("60.00")  # two units are above the tests' approval threshold (100.00)
_skus = itertools.count(1)


def new_key() -> str:
    return uuid.uuid4().hex


class Floor:
    def __init__(self, psp: Any, support: Any, finance: Any) -> None:
        self.psp, self.support, self.finance = psp, support, finance
        psp.clear_faults()
        self.sku = f"FLOOR-{next(_skus)}"
        product_upsert(sku=self.sku, name="Floor widget", price=PRICE, currency="EUR")
        stock_set_on_hand(sku=self.sku, on_hand=50, reason="test stock")
        self.orders: list[int] = []

    def place(self, state: str, quantity: int = 1) -> int:
        psp = self.psp
        if state == "charge_failing":
            psp.set_faults(error_rate=1.0)
        elif state in ("payment_unknown", "charged_but_stuck"):
            psp.set_faults(timeout_after_commit_rate=1.0, timeout_seconds=1)
        method = "pm_card_declined" if state == "declined" else "pm_card_ok"
        with transaction.atomic():
            order_id = order_place(
                client_id=1,
                customer_email="floor@example.com",
                currency="EUR",
                payment_method=method,
                lines=[(self.sku, quantity)],
            ).id
        self._advance(order_id)
        psp.clear_faults()
        if state == "charged_but_stuck":
            payment_resolve_by_lookup(payment_id=payment_for_order(order_id=order_id).id)
        if state == "refund_unsent":
            psp.set_faults(error_rate=1.0)
            self.act(
                order_id, "refund", {"amount": "10.00"}, reason="setup: refund while the provider is down"
            )
            psp.clear_faults()
        self.orders.append(order_id)
        return order_id

    def offers(self, order_id: int) -> list[Offer]:
        return offers_for("order", order_case(order_id=order_id), self.support)

    def act(
        self, order_id: int, op: str, params: dict[str, Any], *, reason: str, approve: bool = True
    ) -> Any:
        """Submit the action as support; what waits for approval is decided by finance."""
        submitted = bo_services.operation_submit(
            page="order", subject_id=order_id, op=op, data=params, by=self.support, reason=reason,
            action_key=new_key(),
        )  # fmt: skip
        if submitted.approval_id is not None:
            if approve:
                bo_services.approval_approve(
                    approval_id=submitted.approval_id, by=self.finance, reason="checked", action_key=new_key()
                )
            else:
                bo_services.approval_reject(
                    approval_id=submitted.approval_id, by=self.finance, reason="no", action_key=new_key()
                )
        return submitted

    def settle(self) -> None:
        """What workers do once the provider answers: runs go on until they rest, and
        back-office refunds still pending are sent."""
        for order_id in self.orders:
            self._advance(order_id)
            payment = payment_for_order(order_id=order_id)
            for refund in refunds_for_payment(payment_id=payment.id) if payment else []:
                if refund.status == "pending" and refund.idempotency_key.startswith(REFUND_KEY_PREFIX):
                    tasks.refund_send(payment.id, refund.idempotency_key)

    def _advance(self, order_id: int) -> None:
        for _ in range(5):
            active = [
                r for r in saga_runs_for_subject(subject_id=str(order_id)) if r.status in ACTIVE_STATUSES
            ]
            if not active:
                return
            for run in active:
                advance_run(run.id, worker_id="floor")
