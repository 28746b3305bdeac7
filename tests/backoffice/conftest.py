"""Back-office fixtures: staff people of each role, a shop whose checkout runs through
the saga engine (tests/backoffice/saga_fixture.py), incidents."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backoffice.roles import FINANCE, SUPPORT, staff_create
from reconciliation.detectors import Finding
from reconciliation.services import incidents_report
from sagas.executor import advance_run
from sagas.selectors import saga_run_for_subject
from sagas.services import saga_start

from . import saga_fixture

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


class Shop:
    SKU = "BO-1"
    PRICE = Decimal("60.00")

    def __init__(self) -> None:
        from inventory.services import product_upsert, stock_set_on_hand

        product_upsert(sku=self.SKU, name="Back-office widget", price=self.PRICE, currency="EUR")
        stock_set_on_hand(sku=self.SKU, on_hand=10_000, reason="test stock")
        saga_fixture.PROVIDER["up"] = False

    def order(self, quantity: int = 1, email: str = "c@example.com") -> int:
        from orders.services import order_create

        return order_create(
            client_id=1,
            customer_email=email,
            currency="EUR",
            payment_method="pm_card_ok",
            lines=[(self.SKU, quantity)],
        ).id

    def failed_checkout(self, quantity: int = 1, email: str = "c@example.com") -> tuple[int, int]:
        """An order whose checkout saga failed at charge_payment (provider down). (order id, run id)"""
        saga_fixture.PROVIDER["up"] = False
        order_id = self.order(quantity, email)
        run_id = saga_start(saga_type=saga_fixture.NAME, subject_id=str(order_id))
        advance_run(run_id, worker_id="test")
        assert saga_run_for_subject(saga_type=saga_fixture.NAME, subject_id=str(order_id)).status == "failed"
        return order_id, run_id

    def confirmed(self, quantity: int = 1) -> int:
        saga_fixture.PROVIDER["up"] = True
        order_id = self.order(quantity)
        run_id = saga_start(saga_type=saga_fixture.NAME, subject_id=str(order_id))
        advance_run(run_id, worker_id="test")
        saga_fixture.PROVIDER["up"] = False
        return order_id


@pytest.fixture
def shop(db) -> Shop:
    return Shop()


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
