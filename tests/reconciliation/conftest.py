"""Fixtures of the reconciliation tests: staff people, provider records written directly
into reconciliation's own tables (the detectors' SQL under test), findings."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from backoffice.roles import FINANCE, SUPPORT, staff_create
from reconciliation.amounts import minor_to_major, order_id_from_reference
from reconciliation.detectors import Finding
from reconciliation.models import ProviderCharge, ProviderRefund

_ids = itertools.count(1)


@pytest.fixture
def support_user(db) -> User:
    return staff_create(username="sam-support", role=SUPPORT, password="pw-support-1")


@pytest.fixture
def finance_user(db) -> User:
    return staff_create(username="fay-finance", role=FINANCE, password="pw-finance-1")


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser(username="root", password="pw-root-1", email="")


@pytest.fixture
def make_finding():
    def make(key: str = "42", *, type: str = "duplicate_charge", amount: str = "10.00", **extra) -> Finding:
        return Finding(
            type=type,
            fingerprint=f"{type}:{key}",
            severity="high",
            order_id=int(key) if key.isdigit() else None,
            charge_id=extra.pop("charge_id", f"ch_{key}"),
            amount_at_risk=Decimal(amount),
            currency=extra.pop("currency", "EUR"),
            details=extra.pop("details", {"reference": key}),
            **extra,
        )

    return make


@pytest.fixture
def provider_charge(db):
    """A charge row as the sync would have stored it (for detector SQL tests)."""

    def make(reference: str, amount_minor: int = 2500, *, status: str = "succeeded", currency: str = "EUR",
             refunded_minor: int = 0, created: int | None = None) -> ProviderCharge:  # fmt: skip
        n = next(_ids)
        return ProviderCharge.objects.create(
            provider_id=f"ch_test_{n}",
            reference=reference,
            order_id=order_id_from_reference(reference),
            amount_minor=amount_minor,
            amount=minor_to_major(amount_minor, currency),
            currency=currency,
            status=status,
            amount_refunded_minor=refunded_minor,
            amount_refunded=minor_to_major(refunded_minor, currency),
            created=datetime.fromtimestamp(created or 1_700_000_000 + n, tz=UTC),
        )

    return make


@pytest.fixture
def provider_refund(db):
    def make(
        charge: ProviderCharge, amount_minor: int | None = None, *, status: str = "succeeded"
    ) -> ProviderRefund:
        n = next(_ids)
        amount_minor = charge.amount_minor if amount_minor is None else amount_minor
        return ProviderRefund.objects.create(
            provider_id=f"re_test_{n}",
            charge_provider_id=charge.provider_id,
            amount_minor=amount_minor,
            amount=minor_to_major(amount_minor, charge.currency),
            currency=charge.currency,
            status=status,
            created=datetime.fromtimestamp(1_700_100_000 + n, tz=UTC),
        )

    return make


# --- Concord state reached through the owning apps' services ------------------------


@pytest.fixture(autouse=True)
def _no_settle_grace(settings):
    """Detectors skip rows younger than SETTLE_SECONDS (work in flight); tests create the
    inconsistency and check at once."""
    settings.RECONCILIATION = {**settings.RECONCILIATION, "SETTLE_SECONDS": 0}


class Shop:
    """Orders, stock and payments driven through inventory/orders/payments services, the way
    the checkout saga drives them (reserve -> charge -> capture -> commit -> confirm)."""

    SKU = "RECON-1"
    PRICE = Decimal("25.00")

    def __init__(self, stock: int = 100):
        from inventory.services import product_upsert, stock_set_on_hand

        product_upsert(sku=self.SKU, name="Recon widget", price=self.PRICE, currency="EUR")
        stock_set_on_hand(sku=self.SKU, on_hand=stock, reason="test stock")

    def order(self, quantity: int = 1) -> int:
        from orders.services import order_create

        return order_create(
            client_id=1,
            customer_email="c@example.com",
            currency="EUR",
            payment_method="pm_card_ok",
            lines=[(self.SKU, quantity)],
        ).id

    def reserve(self, order_id: int, quantity: int = 1) -> None:
        from inventory.services import stock_reserve

        stock_reserve(order_id=order_id, lines=[(self.SKU, quantity)], reason="checkout")

    def payment(self, order_id: int, amount: Decimal | None = None):
        from payments.services import payment_create

        return payment_create(
            order_id=order_id, amount=amount or self.PRICE, currency="EUR", payment_method="pm_card_ok"
        )

    def charge(self, client, order_id: int, key: str, amount_minor: int = 2500):
        result = client.create_charge(
            amount=amount_minor, currency="EUR", payment_method="pm_card_ok", reference=str(order_id),
            idempotency_key=key,
        )  # fmt: skip
        return result.charge

    def checkout(self, client, quantity: int = 1, *, amount_minor: int | None = None) -> tuple[int, str]:
        """A complete, consistent checkout; returns (order id, charge id)."""
        from inventory.services import stock_commit
        from orders.services import order_confirm
        from payments.services import payment_capture

        order_id = self.order(quantity)
        self.reserve(order_id, quantity)
        payment = self.payment(order_id, self.PRICE * quantity)
        charge = self.charge(
            client, order_id, payment.charge_idempotency_key, amount_minor or int(self.PRICE * quantity * 100)
        )
        payment_capture(payment_id=payment.id, provider_charge_id=charge.id, reason="charged")
        stock_commit(order_id=order_id, reason="confirmed")
        order_confirm(order_id=order_id, reason="checkout complete")
        return order_id, charge.id

    def cancel_confirmed_without_refund(self, order_id: int) -> None:
        """A cancellation that restocked and finished but never refunded (the bug)."""
        from inventory.services import stock_restock
        from orders.services import order_begin_cancellation, order_finish_cancellation

        order_begin_cancellation(
            order_id=order_id, failure_reason="cancelled_by_staff", reason="customer asked"
        )
        stock_restock(order_id=order_id, reason="cancelled")
        order_finish_cancellation(order_id=order_id, reason="cancelled")


@pytest.fixture
def shop(db) -> Shop:
    return Shop()
