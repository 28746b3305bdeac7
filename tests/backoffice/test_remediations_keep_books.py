"""Every remediation, run from the incident page's flow, leaves the books agreeing: stock
conserved, ledger balanced, payments and provider in agreement, and the next
reconciliation pass opens nothing the pass before had not seen (the incident it fixed
resolves)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from backoffice import services as bo_services
from inventory.services import stock_restock
from orders.services import order_begin_cancellation, order_cancel, order_finish_cancellation
from reconciliation.selectors import incident_get, incidents_list
from reconciliation.services import reconcile_run
from tests.fixtures.books import assert_books_agree, reconcile_opens_nothing

from .floor import Floor, new_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def floor(psp, fast_checkout, support_user, finance_user, settings) -> Floor:
    settings.RECONCILIATION = {
        **settings.RECONCILIATION,
        "SETTLE_SECONDS": 0,
        "PENDING_ORDER_SLA_SECONDS": 0,
    }
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "1000.00"
    settings.PSP_READ_TIMEOUT = 0.3
    return Floor(psp, support_user, finance_user)


def _duplicate_charge(floor: Floor) -> int:
    order_id = floor.place("confirmed")
    floor.psp.client().create_charge(
        amount=6000, currency="EUR", payment_method="pm_card_ok", reference=str(order_id),
        idempotency_key=f"app-retry-{order_id}",
    )  # fmt: skip
    return order_id


def _orphan_charge(floor: Floor) -> int:
    floor.psp.client().create_charge(
        amount=1234, currency="EUR", payment_method="pm_card_ok", reference="no-such-order",
        idempotency_key=f"orphan-{new_key()}",
    )  # fmt: skip
    return 0


def _cancelled_without_refund(floor: Floor) -> int:
    order_id = floor.place("confirmed")
    order_begin_cancellation(order_id=order_id, failure_reason="cancelled_by_staff", reason="setup")
    stock_restock(order_id=order_id, reason="setup")
    order_finish_cancellation(order_id=order_id, reason="setup: refund forgotten")
    return order_id


def _stock_held_for_a_cancelled_order(floor: Floor) -> int:
    order_id = floor.place("charge_failing")
    order_cancel(order_id=order_id, failure_reason="cancelled_by_staff", reason="setup: behind the saga")
    return order_id


CASES: dict[str, tuple[Callable[[Floor], int], str, str]] = {
    # name: (setup -> order id, incident type, remediation)
    "refund_extra_charges": (_duplicate_charge, "duplicate_charge", "refund_extra_charges"),
    "refund_orphan_charge": (_orphan_charge, "charge_without_order", "refund_charge"),
    "refund_lost_charge": (lambda f: f.place("payment_unknown"), "charge_without_order", "refund_charge"),
    "confirm_order": (lambda f: f.place("payment_unknown"), "charge_without_order", "confirm_order"),
    "refund_payment": (_cancelled_without_refund, "refund_missing", "refund_payment"),
    "release_stock": (_stock_held_for_a_cancelled_order, "stock_drift", "release_stock"),
    "retry_saga": (lambda f: f.place("charge_failing"), "stuck_saga", "retry_saga"),
    "compensate_saga": (lambda f: f.place("charge_failing"), "stuck_saga", "compensate_saga"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_remediation_keeps_the_books_agreeing(floor, support_user, case):
    setup, incident_type, action = CASES[case]
    order_id = setup(floor)
    reconcile_run()  # opens the incident (and whatever else the situation is)
    [incident] = incidents_list(order_id=order_id or None, types=[incident_type])

    submitted = bo_services.operation_submit(
        page="incident", subject_id=incident.id, op="remediate", data={"action": action},
        by=support_user, reason=f"test: {action}", action_key=new_key(),
    )  # fmt: skip
    floor.settle()

    assert submitted.outcome is not None and submitted.outcome.level == "success", submitted
    assert_books_agree(floor.psp)
    reconcile_opens_nothing()
    assert incident_get(incident_id=incident.id).state == "resolved"
