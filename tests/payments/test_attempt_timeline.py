"""ProviderAttempt: one row per provider call, read back as a payment's timeline."""

from decimal import Decimal

import pytest

from core.errors import ConcordError, NotFound
from payments import selectors, services
from payments.choices import PaymentStatus, ProviderAttemptKind, ProviderAttemptOutcome

from .helpers import payment_in_state

pytestmark = pytest.mark.django_db


def test_attempts_are_recorded_and_read_back_in_order():
    payment = payment_in_state(PaymentStatus.PENDING)
    key = payment.charge_idempotency_key

    services.provider_attempt_record(
        payment_id=payment.pk,
        kind=ProviderAttemptKind.CHARGE,
        idempotency_key=key,
        outcome=ProviderAttemptOutcome.UNKNOWN,
        error="read timeout after 5.0s",
        duration_ms=5003,
    )
    services.provider_attempt_record(
        payment_id=payment.pk,
        kind=ProviderAttemptKind.CHARGE,
        idempotency_key=key,
        outcome=ProviderAttemptOutcome.SUCCEEDED,
        provider_object_id="ch_123",
        http_status=200,
        duration_ms=41,
    )

    timeline = selectors.provider_attempts_for_payment(payment_id=payment.pk)
    assert [(a.outcome, a.idempotency_key, a.provider_object_id, a.http_status) for a in timeline] == [
        (ProviderAttemptOutcome.UNKNOWN, key, "", None),
        (ProviderAttemptOutcome.SUCCEEDED, key, "ch_123", 200),
    ]
    assert timeline[0].error == "read timeout after 5.0s"


def test_refund_attempt_is_linked_to_its_refund():
    payment = payment_in_state(PaymentStatus.CAPTURED)
    refund = services.refund_create(payment_id=payment.pk, amount=Decimal("1.00"), reason="r")

    dto = services.provider_attempt_record(
        payment_id=payment.pk,
        refund_id=refund.id,
        kind=ProviderAttemptKind.REFUND,
        idempotency_key=refund.idempotency_key,
        outcome=ProviderAttemptOutcome.TRANSIENT,
        http_status=503,
    )

    assert (dto.refund_id, dto.kind, dto.http_status) == (refund.id, "refund", 503)


@pytest.mark.parametrize(
    ("overrides", "error", "code"),
    [
        ({"kind": "teleport"}, ConcordError, "attempt_kind_invalid"),
        ({"outcome": "maybe"}, ConcordError, "attempt_outcome_invalid"),
        ({"payment_id": 999_999}, NotFound, "payment_not_found"),
        ({"refund_id": 999_999}, NotFound, "refund_not_found"),
    ],
)
def test_bad_attempts_are_refused(overrides, error, code):
    payment = payment_in_state(PaymentStatus.PENDING)
    kwargs = {
        "payment_id": payment.pk,
        "kind": ProviderAttemptKind.CHARGE,
        "idempotency_key": "k",
        "outcome": ProviderAttemptOutcome.SUCCEEDED,
    } | overrides

    with pytest.raises(error) as excinfo:
        services.provider_attempt_record(**kwargs)

    assert excinfo.value.code == code
