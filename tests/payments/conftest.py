from decimal import Decimal

import pytest

from payments import services

from .factories import PaymentFactory, StaffUserFactory


@pytest.fixture
def staff_user(db):
    return StaffUserFactory()


@pytest.fixture
def make_captured_payment(db):
    """A payment captured through the service (ledger posted, audit row written)."""

    def make(amount: Decimal = Decimal("100.00"), currency: str = "EUR"):
        payment = PaymentFactory(amount=amount, currency=currency)
        return services.payment_capture(
            payment_id=payment.pk, provider_charge_id=f"ch_{payment.pk}", reason="test capture"
        )

    return make
