"""Every legal and illegal Payment transition, and the audit row of each legal one."""

import uuid
from decimal import Decimal

import pytest
from django_fsm import TransitionNotAllowed

from core.errors import Conflict
from payments import services
from payments.choices import PaymentStatus as S
from payments.models import Payment

from .helpers import payment_in_state, state_logs

pytestmark = pytest.mark.django_db

TRANSITION_KWARGS = {
    "capture": {"provider_charge_id": "ch_model"},
    "fail": {"failure_code": "card_declined"},
    "mark_unknown": {"error": "timeout"},
    "refund_partially": {},
    "refund_fully": {},
}
LEGAL = {
    S.PENDING: {"capture": S.CAPTURED, "fail": S.FAILED, "mark_unknown": S.UNKNOWN},
    S.UNKNOWN: {"capture": S.CAPTURED, "fail": S.FAILED},
    S.CAPTURED: {"refund_partially": S.PARTIALLY_REFUNDED, "refund_fully": S.REFUNDED},
    S.PARTIALLY_REFUNDED: {"refund_partially": S.PARTIALLY_REFUNDED, "refund_fully": S.REFUNDED},
    S.FAILED: {},
    S.REFUNDED: {},
}
ILLEGAL = [(state, name) for state in LEGAL for name in TRANSITION_KWARGS if name not in LEGAL[state]]
LEGAL_PAIRS = [(state, name, target) for state, moves in LEGAL.items() for name, target in moves.items()]


@pytest.mark.parametrize(("source", "name", "target"), LEGAL_PAIRS)
def test_legal_model_transition_moves_state_and_writes_audit_row(source, name, target, staff_user):
    payment = payment_in_state(source)
    before = len(state_logs(payment))

    getattr(payment, name)(by=staff_user, description=f"why {name}", **TRANSITION_KWARGS[name])

    assert payment.status == target
    log = state_logs(payment)[-1]
    assert len(state_logs(payment)) == before + 1
    assert (log.source_state, log.state, log.transition) == (source, target, name)
    assert log.by == staff_user
    assert log.description == f"why {name}"


@pytest.mark.parametrize(("source", "name"), ILLEGAL)
def test_illegal_model_transition_is_refused(source, name):
    payment = payment_in_state(source)
    before = len(state_logs(payment))

    with pytest.raises(TransitionNotAllowed):
        getattr(payment, name)(**TRANSITION_KWARGS[name])

    assert payment.status == source
    assert len(state_logs(payment)) == before


def test_status_cannot_be_assigned_by_hand():
    payment = payment_in_state(S.PENDING)
    with pytest.raises(AttributeError):
        payment.status = S.CAPTURED


# --- through the services: audit row with who and why ----------------------------


@pytest.mark.parametrize("source", [S.PENDING, S.UNKNOWN])
def test_capture_service_from(source, staff_user):
    payment = payment_in_state(source)

    dto = services.payment_capture(
        payment_id=payment.pk, provider_charge_id="ch_1", by=staff_user, reason="looked it up"
    )

    assert (dto.status, dto.provider_charge_id) == (S.CAPTURED, "ch_1")
    log = state_logs(payment)[-1]
    assert (log.source_state, log.state, log.by, log.description) == (
        source,
        S.CAPTURED,
        staff_user,
        "looked it up",
    )


@pytest.mark.parametrize("source", [S.PENDING, S.UNKNOWN])
def test_fail_service_from(source):
    payment = payment_in_state(source)

    dto = services.payment_fail(payment_id=payment.pk, failure_code="card_declined", reason="declined")

    assert (dto.status, dto.failure_code) == (S.FAILED, "card_declined")
    log = state_logs(payment)[-1]
    assert (log.source_state, log.state, log.by, log.description) == (source, S.FAILED, None, "declined")


def test_mark_unknown_service_keeps_the_error():
    payment = payment_in_state(S.PENDING)

    dto = services.payment_mark_unknown(payment_id=payment.pk, error="read timeout", reason="no answer")

    assert (dto.status, dto.last_error) == (S.UNKNOWN, "read timeout")
    log = state_logs(payment)[-1]
    assert (log.source_state, log.state, log.description) == (S.PENDING, S.UNKNOWN, "no answer")


def test_partial_then_full_refund_moves_payment_with_audit_rows(staff_user):
    payment = payment_in_state(S.CAPTURED, amount=Decimal("30.00"))

    first = services.refund_create(payment_id=payment.pk, amount=Decimal("10.00"), reason="r1")
    services.refund_succeed(refund_id=first.id, provider_refund_id="re_1", by=staff_user, reason="ok 1")
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == (S.PARTIALLY_REFUNDED, Decimal("10.00"))

    second = services.refund_create(payment_id=payment.pk, amount=Decimal("20.00"), reason="r2")
    services.refund_succeed(refund_id=second.id, provider_refund_id="re_2", by=staff_user, reason="ok 2")
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == (S.REFUNDED, Decimal("30.00"))

    logs = state_logs(payment)
    assert [
        (entry.source_state, entry.state, entry.transition, entry.description) for entry in logs[-2:]
    ] == [
        (S.CAPTURED, S.PARTIALLY_REFUNDED, "refund_partially", "ok 1"),
        (S.PARTIALLY_REFUNDED, S.REFUNDED, "refund_fully", "ok 2"),
    ]
    assert all(entry.by == staff_user for entry in logs[-2:])


@pytest.mark.parametrize(
    ("source", "call"),
    [
        (
            S.FAILED,
            lambda pid: services.payment_capture(payment_id=pid, provider_charge_id="ch_x", reason="r"),
        ),
        (S.CAPTURED, lambda pid: services.payment_fail(payment_id=pid, failure_code="x", reason="r")),
        (S.REFUNDED, lambda pid: services.payment_fail(payment_id=pid, failure_code="x", reason="r")),
        (
            S.PARTIALLY_REFUNDED,
            lambda pid: services.payment_fail(payment_id=pid, failure_code="x", reason="r"),
        ),
        (S.CAPTURED, lambda pid: services.payment_mark_unknown(payment_id=pid, error="e", reason="r")),
        (S.FAILED, lambda pid: services.payment_mark_unknown(payment_id=pid, error="e", reason="r")),
        (S.REFUNDED, lambda pid: services.payment_mark_unknown(payment_id=pid, error="e", reason="r")),
    ],
)
def test_illegal_service_call_is_a_conflict_and_changes_nothing(source, call):
    payment = payment_in_state(source)
    before = (len(state_logs(payment)), payment.ledger_transactions.count())

    with pytest.raises(Conflict) as excinfo:
        call(payment.pk)

    assert excinfo.value.code == "illegal_transition"
    reloaded = Payment.objects.get(pk=payment.pk)
    assert reloaded.status == source
    assert (len(state_logs(payment)), payment.ledger_transactions.count()) == before


@pytest.mark.parametrize("source", [S.PENDING, S.UNKNOWN, S.FAILED, S.REFUNDED])
def test_refund_of_money_not_held_is_a_conflict(source):
    payment = payment_in_state(source)

    with pytest.raises(Conflict) as excinfo:
        services.refund_create(payment_id=payment.pk, amount=Decimal("1.00"), reason="r")

    assert excinfo.value.code == "payment_not_refundable"
    assert payment.refunds.filter(status="pending").count() == 0


def test_capture_with_another_charge_id_after_capture_is_a_conflict():
    payment = payment_in_state(S.CAPTURED)

    with pytest.raises(Conflict) as excinfo:
        services.payment_capture(payment_id=payment.pk, provider_charge_id="ch_other", reason="r")

    assert excinfo.value.code == "provider_charge_id_mismatch"


def test_one_charge_cannot_capture_two_payments():
    first = payment_in_state(S.CAPTURED)
    second = payment_in_state(S.PENDING)

    with pytest.raises(Conflict) as excinfo:
        services.payment_capture(
            payment_id=second.pk, provider_charge_id=first.provider_charge_id, reason="r"
        )

    assert excinfo.value.code == "provider_charge_id_taken"


def test_charge_idempotency_key_is_fixed_per_payment():
    payment = payment_in_state(S.PENDING)
    dto = services.payment_create(
        order_id=payment.order_id,
        amount=payment.amount,
        currency=payment.currency,
        payment_method=payment.payment_method,
    )
    assert payment.charge_idempotency_key == dto.charge_idempotency_key
    assert uuid.UUID(payment.charge_idempotency_key)  # random, not derived from the id
    assert payment_in_state(S.PENDING).charge_idempotency_key != payment.charge_idempotency_key
