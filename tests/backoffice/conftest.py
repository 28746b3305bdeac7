"""Back-office fixtures: staff people of each role, a shop whose orders go through the
real checkout saga against the sandbox provider, incidents."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client

from backoffice.roles import FINANCE, SUPPORT, staff_create
from orders.sagas import CHECKOUT, LOCAL_RETRY, PROVIDER_RETRY, register_order_sagas
from orders.services import order_place
from reconciliation.detectors import Finding
from reconciliation.services import incidents_report
from sagas.definition import RetryPolicy
from sagas.executor import advance_run
from sagas.selectors import saga_run_for_subject

_keys = itertools.count(1)


@pytest.fixture
def support_user(db) -> User:
    return staff_create(username="sam", role=SUPPORT, password="support-pass-1")


@pytest.fixture
def support_user2(db) -> User:
    return staff_create(username="sue", role=SUPPORT, password="support-pass-2")


@pytest.fixture
def finance_user(db) -> User:
    return staff_create(username="fay", role=FINANCE, password="finance-pass-1")


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser(username="root", password="root-pass-1", email="")


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def support(support_user) -> Client:
    return login(support_user)


@pytest.fixture
def finance(finance_user) -> Client:
    return login(finance_user)


# The checkout gives up on the first failed charge (so a test reaches `failed` in one
# pass); local steps retry at once. The defaults come back after each test.
ONCE = RetryPolicy(max_attempts=1, base_delay=0.0, max_delay=0.0, jitter=0.0)
NO_WAIT = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)


@pytest.fixture
def fast_checkout() -> Iterator[None]:
    register_order_sagas(replace=True, local_retry=NO_WAIT, provider_retry=ONCE)
    yield
    register_order_sagas(replace=True, local_retry=LOCAL_RETRY, provider_retry=PROVIDER_RETRY)


class Shop:
    """Orders placed through the real checkout (orders.services.order_place, the
    checkout saga of orders/sagas.py) against the sandbox provider; the test drives
    the run with sagas.executor.advance_run, as a worker would."""

    SKU = "BO-1"
    PRICE = Decimal("60.00")

    def __init__(self, psp) -> None:
        from inventory.services import product_upsert, stock_set_on_hand

        self.psp = psp
        product_upsert(sku=self.SKU, name="Back-office widget", price=self.PRICE, currency="EUR")
        stock_set_on_hand(sku=self.SKU, on_hand=10_000, reason="test stock")

    def provider_down(self) -> None:
        self.psp.set_faults(error_rate=1.0)

    def provider_recovers(self) -> None:
        self.psp.clear_faults()

    def order(self, quantity: int = 1, email: str = "c@example.com") -> int:
        """Placed (order, payment, checkout run in one commit), not yet advanced."""
        with transaction.atomic():
            return order_place(
                client_id=1,
                customer_email=email,
                currency="EUR",
                payment_method="pm_card_ok",
                lines=[(self.SKU, quantity)],
            ).id

    def run_id(self, order_id: int) -> int:
        return saga_run_for_subject(saga_type=CHECKOUT, subject_id=str(order_id)).id

    def advance(self, order_id: int) -> str:
        advance_run(self.run_id(order_id), worker_id="test")
        return saga_run_for_subject(saga_type=CHECKOUT, subject_id=str(order_id)).status

    def failed_checkout(self, quantity: int = 1, email: str = "c@example.com") -> tuple[int, int]:
        """An order whose checkout failed at charge_payment: the provider answers 5xx
        to every call (and keeps doing so until provider_recovers()). (order id, run id)"""
        self.provider_down()
        order_id = self.order(quantity, email)
        assert self.advance(order_id) == "failed"
        return order_id, self.run_id(order_id)

    def confirmed(self, quantity: int = 1) -> int:
        """A confirmed order, charged at the sandbox provider."""
        self.provider_recovers()
        order_id = self.order(quantity)
        assert self.advance(order_id) == "completed"
        return order_id


@pytest.fixture
def shop(db, psp, fast_checkout) -> Shop:
    return Shop(psp)


@pytest.fixture
def make_incident(db):
    def make(
        *,
        order_id: int | None = None,
        type: str = "duplicate_charge",
        amount: str = "40.00",
        severity: str = "high",
    ):
        n = next(_keys)
        reported = incidents_report(
            findings=[
                Finding(
                    type=type,
                    fingerprint=f"{type}:bo:{n}",
                    severity=severity,
                    order_id=order_id,
                    charge_id=f"ch_bo_{n}",
                    amount_at_risk=Decimal(amount),
                    currency="EUR",
                    details={"reference": str(order_id or n)},
                )
            ]
        )
        return reported[0].incident_id

    return make


def new_key() -> str:
    return f"test-key-{next(_keys)}"


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", on_timeout=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{on_timeout()[-3000:]}")


def duplicate_charge_found(shop: Shop, settings) -> tuple[int, int, str, str]:
    """A confirmed order that the customer's app paid twice (a retry with a new key),
    found by the duplicate_charge detector: (incident id, order id, kept charge id,
    extra charge id)."""
    from payments.selectors import payment_for_order
    from reconciliation.detectors import detector_get
    from reconciliation.selectors import incidents_list
    from reconciliation.services import reconcile_run

    settings.RECONCILIATION = {**settings.RECONCILIATION, "SETTLE_SECONDS": 0}
    order_id = shop.confirmed()
    kept = payment_for_order(order_id=order_id).provider_charge_id
    extra = shop.psp.client().create_charge(
        amount=6000, currency="EUR", payment_method="pm_card_ok", reference=str(order_id),
        idempotency_key="app-retry-with-a-new-key",
    ).charge  # fmt: skip
    reconcile_run(detectors=[detector_get("duplicate_charge")])
    [incident] = incidents_list(order_id=order_id, types=["duplicate_charge"])
    return incident.id, order_id, kept, extra.id
