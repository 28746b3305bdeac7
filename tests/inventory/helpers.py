"""Assertions shared by the inventory tests."""

from django.db.models import Sum

from inventory.choices import ReservationState
from inventory.models import Reservation, StockLevel, StockMovement
from inventory.selectors import stock_check_conservation


def assert_stock_conserved() -> None:
    """DESIGN §6.4, checked twice: by the selector and by plain Python sums."""
    assert stock_check_conservation() == []
    for level in StockLevel.objects.all():
        moved = StockMovement.objects.filter(product_id=level.product_id).aggregate(s=Sum("delta"))["s"] or 0
        held = (
            Reservation.objects.filter(product_id=level.product_id, state=ReservationState.HELD).aggregate(
                s=Sum("quantity")
            )["s"]
            or 0
        )
        assert level.on_hand == moved, level
        assert level.reserved == held, level
        assert 0 <= level.reserved <= level.on_hand, level
