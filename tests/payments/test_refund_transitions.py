"""Every legal and illegal Refund transition, and the audit row of each."""

from decimal import Decimal

import pytest
from django_fsm import TransitionNotAllowed

from core.errors import Conflict
from payments import services
from payments.choices import PaymentStatus, RefundStatus
from payments.models import Refund

from .helpers import payment_in_state, state_logs

pytestmark = pytest.mark.django_db


def _refund_in_state(status: str) -> Refund:
    payment = payment_in_state(PaymentStatus.CAPTURED)
    dto = services.refund_create(payment_id=payment.pk, amount=Decimal("5.00"), reason="customer asked")
    if status == RefundStatus.SUCCEEDED:
        services.refund_succeed(refund_id=dto.id, provider_refund_id=f"re_{dto.id}", reason="setup")
    elif status == RefundStatus.FAILED:
        services.refund_fail(refund_id=dto.id, failure_code="expired_card", reason="setup")
    return Refund.objects.get(pk=dto.id)


def test_refund_starts_pending_with_deterministic_key():
    payment = payment_in_state(PaymentStatus.CAPTURED)

    first = services.refund_create(payment_id=payment.pk, amount=Decimal("5.00"), reason="a")
    second = services.refund_create(payment_id=payment.pk, amount=Decimal("5.00"), reason="b")

    assert (first.status, first.currency, first.reason) == (RefundStatus.PENDING, payment.currency, "a")
    assert [first.idempotency_key, second.idempotency_key] == [
        f"{payment.pk}:refund:1",
        f"{payment.pk}:refund:2",
    ]


def test_succeed_writes_audit_row(staff_user):
    refund = _refund_in_state(RefundStatus.PENDING)

    dto = services.refund_succeed(
        refund_id=refund.pk, provider_refund_id="re_ok", by=staff_user, reason="done"
    )

    assert (dto.status, dto.provider_refund_id) == (RefundStatus.SUCCEEDED, "re_ok")
    log = state_logs(refund)[-1]
    assert (log.source_state, log.state, log.transition, log.by, log.description) == (
        RefundStatus.PENDING,
        RefundStatus.SUCCEEDED,
        "succeed",
        staff_user,
        "done",
    )


def test_fail_writes_audit_row_and_frees_the_amount():
    refund = _refund_in_state(RefundStatus.PENDING)
    payment_id = refund.payment_id

    dto = services.refund_fail(refund_id=refund.pk, failure_code="expired_card", reason="provider refused")

    assert (dto.status, dto.failure_code) == (RefundStatus.FAILED, "expired_card")
    log = state_logs(refund)[-1]
    assert (log.source_state, log.state, log.by, log.description) == (
        RefundStatus.PENDING,
        RefundStatus.FAILED,
        None,
        "provider refused",
    )
    # the failed refund no longer reserves its 5.00: the whole 100.00 is refundable
    services.refund_create(payment_id=payment_id, amount=Decimal("100.00"), reason="all")


@pytest.mark.parametrize("source", [RefundStatus.SUCCEEDED, RefundStatus.FAILED])
@pytest.mark.parametrize("name", ["succeed", "fail"])
def test_illegal_model_transition_is_refused(source, name):
    refund = _refund_in_state(source)
    before = len(state_logs(refund))
    kwargs = {"provider_refund_id": "re_x"} if name == "succeed" else {"failure_code": "x"}

    with pytest.raises(TransitionNotAllowed):
        getattr(refund, name)(**kwargs)

    assert refund.status == source
    assert len(state_logs(refund)) == before


def test_failed_refund_cannot_succeed_through_the_service():
    refund = _refund_in_state(RefundStatus.FAILED)

    with pytest.raises(Conflict) as excinfo:
        services.refund_succeed(refund_id=refund.pk, provider_refund_id="re_late", reason="r")

    assert excinfo.value.code == "illegal_transition"
    refund.refresh_from_db()
    assert refund.status == RefundStatus.FAILED
    assert refund.ledger_transactions.count() == 0


def test_succeeded_refund_cannot_fail_through_the_service():
    refund = _refund_in_state(RefundStatus.SUCCEEDED)

    with pytest.raises(Conflict) as excinfo:
        services.refund_fail(refund_id=refund.pk, failure_code="x", reason="r")

    assert excinfo.value.code == "illegal_transition"
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED


def test_succeeded_refund_with_another_provider_id_is_a_conflict():
    refund = _refund_in_state(RefundStatus.SUCCEEDED)

    with pytest.raises(Conflict) as excinfo:
        services.refund_succeed(refund_id=refund.pk, provider_refund_id="re_other", reason="r")

    assert excinfo.value.code == "provider_refund_id_mismatch"
