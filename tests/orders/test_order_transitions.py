"""Order state machine: every legal and illegal move, on the model and through the services."""

import pytest
from django_fsm import TransitionNotAllowed
from django_fsm_log.models import StateLog

from core.errors import ConcordError, Conflict, NotFound
from orders import services
from orders.choices import FailureReason
from orders.choices import OrderStatus as S
from tests.orders.factories import OrderFactory

pytestmark = pytest.mark.django_db

# transition -> (source, target, extra kwargs)
LEGAL = {
    "confirm": (S.PENDING, S.CONFIRMED, {}),
    "cancel": (S.PENDING, S.CANCELLED, {"failure_reason": FailureReason.PAYMENT_DECLINED}),
    "request_cancellation": (S.PENDING, S.CANCELLING, {"failure_reason": FailureReason.CANCELLED_BY_CLIENT}),
    "begin_cancellation": (S.CONFIRMED, S.CANCELLING, {"failure_reason": FailureReason.CANCELLED_BY_CLIENT}),
    "finish_cancellation": (S.CANCELLING, S.CANCELLED, {}),
}
ILLEGAL = [(name, state) for name in LEGAL for state in S.values if state != LEGAL[name][0]]


@pytest.mark.parametrize("name", list(LEGAL))
def test_legal_model_transition_and_audit_row(staff_user, name):
    source, target, extra = LEGAL[name]
    order = OrderFactory(status=source)

    getattr(order, name)(by=staff_user, description="why not", **extra)
    order.save()

    order.refresh_from_db()
    assert order.status == target
    log = StateLog.objects.for_(order).get()
    assert (log.transition, log.source_state, log.state, log.by, log.description) == (
        name,
        source,
        target,
        staff_user,
        "why not",
    )


@pytest.mark.parametrize(("name", "source"), ILLEGAL)
def test_illegal_model_transition(name, source):
    order = OrderFactory(status=source)
    with pytest.raises(TransitionNotAllowed):
        getattr(order, name)(by=None, description="no", **LEGAL[name][2])
    assert not StateLog.objects.for_(order).exists()


@pytest.mark.parametrize("name", list(LEGAL))
def test_legal_service_transition_and_audit_row(staff_user, name):
    source, target, extra = LEGAL[name]
    order = OrderFactory(status=source)

    dto = getattr(services, f"order_{name}")(order_id=order.pk, by=staff_user, reason="ticket 12", **extra)

    assert dto.status == target
    log = StateLog.objects.for_(order).get()
    assert (log.source_state, log.state, log.by, log.description) == (source, target, staff_user, "ticket 12")
    if "failure_reason" in extra:
        assert dto.failure_reason == extra["failure_reason"]


# A repeat of a move that already happened is a no-op, so these sources are legal for the service.
SERVICE_NO_OPS = {
    ("confirm", S.CONFIRMED),
    ("cancel", S.CANCELLED),
    ("request_cancellation", S.CANCELLING),
    ("request_cancellation", S.CANCELLED),
    ("begin_cancellation", S.CANCELLING),
    ("begin_cancellation", S.CANCELLED),
    ("finish_cancellation", S.CANCELLED),
}


@pytest.mark.parametrize(("name", "source"), [c for c in ILLEGAL if c not in SERVICE_NO_OPS])
def test_illegal_service_transition_is_a_conflict(name, source):
    order = OrderFactory(status=source)

    with pytest.raises(Conflict) as exc:
        getattr(services, f"order_{name}")(order_id=order.pk, reason="", **LEGAL[name][2])

    assert exc.value.code == "illegal_transition"
    assert exc.value.details["status"] == source
    order.refresh_from_db()
    assert order.status == source
    assert not StateLog.objects.for_(order).exists()


@pytest.mark.parametrize(("name", "source"), sorted(SERVICE_NO_OPS))
def test_repeated_service_transition_changes_nothing(name, source):
    order = OrderFactory(status=source)
    before = (order.status, order.failure_reason, order.updated_at)

    getattr(services, f"order_{name}")(order_id=order.pk, reason="again", **LEGAL[name][2])

    order.refresh_from_db()
    assert (order.status, order.failure_reason, order.updated_at) == before
    assert not StateLog.objects.for_(order).exists()


@pytest.mark.parametrize("name", list(LEGAL))
def test_each_service_twice_writes_one_audit_row(name):
    source, target, extra = LEGAL[name]
    order = OrderFactory(status=source)
    call = getattr(services, f"order_{name}")

    call(order_id=order.pk, reason="first", **extra)
    call(order_id=order.pk, reason="second", **extra)

    order.refresh_from_db()
    assert order.status == target
    assert list(StateLog.objects.for_(order).values_list("description", flat=True)) == ["first"]


def test_cancel_keeps_the_first_reason():
    order = OrderFactory()
    services.order_cancel(order_id=order.pk, failure_reason=FailureReason.OUT_OF_STOCK, reason="")
    again = services.order_cancel(
        order_id=order.pk, failure_reason=FailureReason.CANCELLED_BY_CLIENT, reason=""
    )
    assert again.failure_reason == FailureReason.OUT_OF_STOCK


@pytest.mark.parametrize(
    ("service", "failure_reason"),
    [("order_cancel", "bored"), ("order_begin_cancellation", FailureReason.PAYMENT_DECLINED)],
)
def test_failure_reason_must_fit_the_move(service, failure_reason):
    order = OrderFactory(status=S.PENDING if service == "order_cancel" else S.CONFIRMED)
    with pytest.raises(ConcordError) as exc:
        getattr(services, service)(order_id=order.pk, failure_reason=failure_reason, reason="")
    assert exc.value.code == "invalid_failure_reason"


def test_a_person_must_give_a_reason(staff_user):
    order = OrderFactory()
    with pytest.raises(ConcordError) as exc:
        services.order_cancel(
            order_id=order.pk, failure_reason=FailureReason.CANCELLED_BY_STAFF, by=staff_user, reason=""
        )
    assert exc.value.code == "reason_required"


def test_unknown_order_is_not_found():
    with pytest.raises(NotFound):
        services.order_confirm(order_id=123456, reason="")


def test_status_cannot_be_assigned_by_hand():
    order = OrderFactory()
    with pytest.raises(AttributeError):
        order.status = S.CONFIRMED


# --- the checkout's on_compensated hook ----------------------------------------------


def _audit(order):
    return list(
        StateLog.objects.for_(order).order_by("id").values_list("source_state", "state", "transition")
    )


def test_checkout_compensated_cancels_a_pending_order_with_the_runs_reason():
    order = OrderFactory(status=S.PENDING)

    dto = services.order_cancel_after_checkout(
        order_id=order.pk, failure_reason=FailureReason.PAYMENT_DECLINED, reason="run 1 compensated"
    )

    assert (dto.status, dto.failure_reason) == (S.CANCELLED, FailureReason.PAYMENT_DECLINED)
    assert _audit(order) == [(S.PENDING, S.CANCELLED, "cancel")]


def test_checkout_compensated_finishes_a_cancelling_order_keeping_the_persons_reason():
    order = OrderFactory(status=S.PENDING)
    services.order_request_cancellation(
        order_id=order.pk, failure_reason=FailureReason.CANCELLED_BY_CLIENT, reason="client asked"
    )

    dto = services.order_cancel_after_checkout(
        order_id=order.pk, failure_reason=FailureReason.PAYMENT_FAILED, reason="run 1 compensated"
    )
    again = services.order_cancel_after_checkout(
        order_id=order.pk, failure_reason=FailureReason.PAYMENT_FAILED, reason="run 1 compensated"
    )

    assert (dto.status, dto.failure_reason) == (S.CANCELLED, FailureReason.CANCELLED_BY_CLIENT)
    assert again == dto
    assert _audit(order) == [
        (S.PENDING, S.CANCELLING, "request_cancellation"),
        (S.CANCELLING, S.CANCELLED, "finish_cancellation"),
    ]


def test_checkout_compensated_never_cancels_a_confirmed_order():
    order = OrderFactory(status=S.CONFIRMED)

    with pytest.raises(Conflict) as exc:
        services.order_cancel_after_checkout(
            order_id=order.pk, failure_reason=FailureReason.PAYMENT_FAILED, reason="run 1 compensated"
        )

    assert exc.value.code == "illegal_transition"
    order.refresh_from_db()
    assert order.status == S.CONFIRMED and not StateLog.objects.for_(order).exists()
