"""factory_boy factories for payments. A factory builds a pending row; states beyond
that are reached through the services (see conftest), so the ledger and the audit
log always match the state."""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from payments.models import Payment


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    order_id = factory.Sequence(lambda n: 10_000 + n)
    amount = Decimal("25.00")
    currency = "EUR"
    payment_method = "pm_card_ok"


class StaffUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
