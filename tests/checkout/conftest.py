"""Fixtures of the order-saga tests (checkout and cancellation).

Most tests drive the saga in-process with `advance` (sagas.executor.advance_run,
the function the Celery task calls) against real PostgreSQL and the sandbox
provider subprocess; tests where delivery is the point start real workers
(`order_worker`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.db import transaction

from inventory.selectors import reservations_for_order, stock_check_conservation, stock_level_get
from orders.sagas import CHECKOUT, LOCAL_RETRY, PROVIDER_RETRY, register_order_sagas
from orders.selectors import order_get
from orders.services import order_place
from payments.choices import LedgerAccountCode
from payments.selectors import ledger_account_balance, ledger_unbalanced_transactions
from sagas.definition import RetryPolicy
from sagas.executor import advance_run
from sagas.selectors import saga_run_for_subject
from tests.inventory.factories import ProductFactory

# Retries due at once: a test's pass runs every attempt without sleeping.
NO_WAIT = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)


@pytest.fixture(autouse=True)
def _fast_saga_settings(settings) -> None:
    settings.SAGA_LEASE_MARGIN = 1.0
    settings.SAGA_SWEEP_GRACE = 0.0
    settings.SAGA_SWEEP_REQUEUE_AFTER = 1.0
    # Provider calls give up quickly (timeout_after_commit tests wait for this).
    settings.PSP_CONNECT_TIMEOUT = 1.0
    settings.PSP_READ_TIMEOUT = 1.0


@pytest.fixture
def saga_policies() -> Iterator[Callable[..., None]]:
    """saga_policies(local_retry=..., provider_retry=...) re-registers the order
    sagas with other retry policies for this test; the defaults come back after."""

    def use(**policies: RetryPolicy) -> None:
        register_order_sagas(replace=True, **policies)

    use(local_retry=NO_WAIT, provider_retry=NO_WAIT)
    yield use
    register_order_sagas(replace=True, local_retry=LOCAL_RETRY, provider_retry=PROVIDER_RETRY)


@pytest.fixture
def shop(transactional_db):
    """Two EUR products with stock 5 each, committed (workers and passes see them)."""
    ProductFactory(sku="MUG", price=Decimal("12.50"), on_hand=5)
    ProductFactory(sku="TEE", price=Decimal("20.00"), on_hand=5)
    return {"MUG": 5, "TEE": 5}


@pytest.fixture
def place() -> Callable[..., int]:
    """place(lines=[("MUG", 1)], payment_method="pm_card_ok") -> order id, committed."""

    def _place(lines=(("MUG", 2), ("TEE", 1)), payment_method: str = "pm_card_ok") -> int:
        with transaction.atomic():
            order = order_place(
                client_id=1,
                customer_email="buyer@example.com",
                currency="EUR",
                payment_method=payment_method,
                lines=list(lines),
            )
        return order.id

    return _place


def run_of(order_id: int, saga_type: str = CHECKOUT):
    return saga_run_for_subject(saga_type=saga_type, subject_id=str(order_id))


def advance(order_id: int, saga_type: str = CHECKOUT) -> str:
    run = run_of(order_id, saga_type)
    assert run is not None, f"no {saga_type} run for order {order_id}"
    return advance_run(run.id, worker_id="test")


def advance_until_rest(order_id: int, saga_type: str = CHECKOUT, timeout: float = 20.0) -> str:
    """Advance until the run is no longer active (backoffs included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        advance(order_id, saga_type)
        run = run_of(order_id, saga_type)
        if run.status not in ("running", "compensating"):
            return run.status
        time.sleep(0.05)
    raise AssertionError(f"run still {run.status} at {run.step} after {timeout}s: {run.last_error}")


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def provider_charges(psp, order_id: int) -> list[dict]:
    body = psp.request("GET", "/v1/charges", params={"reference": str(order_id), "limit": 100}).json()
    return body["data"]


def assert_invariants(psp, order_ids: list[int], initial_stock: dict[str, int]) -> None:
    """DESIGN §6 invariants 1-4 over the given orders (6 is checked by callers,
    which know whether the runs had time to end)."""
    from payments.selectors import payment_for_order

    for order_id in order_ids:
        order = order_get(order_id=order_id)
        payment = payment_for_order(order_id=order_id)
        charges = [c for c in provider_charges(psp, order_id) if c["status"] == "succeeded"]
        # 2: never more than one charge per order, never more than its total.
        assert len(charges) <= 1, f"order {order_id} charged {len(charges)} times"
        net = sum(c["amount"] - c.get("amount_refunded", 0) for c in charges)
        assert net <= int(order.total * 100)
        for c in charges:
            # 3: captured amount and currency are the order's.
            assert (c["amount"], c["currency"].upper()) == (int(order.total * 100), order.currency)
        # 1: money kept by the provider belongs to a confirmed order (or the run is
        # still settling it / a person must look: the caller checks those cases).
        if order.status == "confirmed":
            assert net == int(order.total * 100)
            assert payment.status == "captured" and payment.provider_charge_id == charges[0]["id"]
        if order.status == "cancelled":
            assert net == 0, f"cancelled order {order_id} still charged {net}"
    # 4: stock conservation: initial = on hand + sold; reserved = held; 0 <= reserved <= on hand.
    assert stock_check_conservation() == []
    sold = dict.fromkeys(initial_stock, 0)
    held = dict.fromkeys(initial_stock, 0)
    for order_id in order_ids:
        for r in reservations_for_order(order_id):
            if r.state == "committed":
                sold[r.sku] += r.quantity
            elif r.state == "held":
                held[r.sku] += r.quantity
    for sku, initial in initial_stock.items():
        level = stock_level_get(sku)
        assert initial == level.on_hand + sold[sku], sku
        assert level.reserved == held[sku], sku
        assert 0 <= level.reserved <= level.on_hand
    assert ledger_unbalanced_transactions() == []


def clearing_balance() -> Decimal:
    return ledger_account_balance(code=LedgerAccountCode.PROVIDER_CLEARING, currency="EUR")
