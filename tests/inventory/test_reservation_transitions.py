"""Every legal and illegal move of the Reservation state machine, with its audit row."""

import pytest
from django_fsm import TransitionNotAllowed
from django_fsm_log.models import StateLog

from inventory.choices import ReservationState as S
from inventory.models import Reservation

LEGAL = [
    ("commit", S.HELD, S.COMMITTED),
    ("release", S.HELD, S.RELEASED),
    ("restock", S.COMMITTED, S.RETURNED),
]
ALL_TRANSITIONS = ["commit", "release", "restock"]
ILLEGAL = [
    (name, state)
    for name in ALL_TRANSITIONS
    for state in S.values
    if (name, state) not in {(n, src) for n, src, _ in LEGAL}
]


def _reservation(product, state):
    return Reservation.objects.create(order_id=1, product_id=product.sku, quantity=1, state=state)


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "source", "target"), LEGAL)
def test_legal_transition_changes_state_and_writes_audit_row(product, staff_user, name, source, target):
    reservation = _reservation(product, source)

    getattr(reservation, name)(by=staff_user, description="because")
    reservation.save()

    reservation.refresh_from_db()
    assert reservation.state == target
    log = StateLog.objects.for_(reservation).get()
    assert (log.transition, log.source_state, log.state) == (name, source, target)
    assert log.by == staff_user
    assert log.description == "because"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "source"), ILLEGAL)
def test_illegal_transition_is_refused_without_audit_row(product, name, source):
    reservation = _reservation(product, source)

    with pytest.raises(TransitionNotAllowed):
        getattr(reservation, name)(by=None, description="should not happen")

    assert reservation.state == source
    assert not StateLog.objects.for_(reservation).exists()


@pytest.mark.django_db
def test_state_cannot_be_assigned_by_hand(product):
    reservation = _reservation(product, S.HELD)
    with pytest.raises(AttributeError):
        reservation.state = S.RELEASED
