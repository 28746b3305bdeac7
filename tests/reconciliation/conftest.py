"""Fixtures of the reconciliation tests: staff people, provider records written directly
into reconciliation's own tables (the detectors' SQL under test), findings."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from backoffice.roles import FINANCE, SUPPORT, staff_create
from reconciliation.amounts import minor_to_major
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
