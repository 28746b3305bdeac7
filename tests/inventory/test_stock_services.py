"""reserve / commit / release / restock / set_on_hand: counters, journal, audit rows, errors."""

from decimal import Decimal

import pytest
from django_fsm_log.models import StateLog

from core.errors import ConcordError, Conflict, NotFound
from inventory import services
from inventory.choices import MovementKind, ReservationState
from inventory.errors import OutOfStock, UnknownSku
from inventory.models import Reservation, StockMovement
from inventory.selectors import reservations_for_order, stock_level_get
from tests.inventory.factories import ProductFactory
from tests.inventory.helpers import assert_stock_conserved

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_products():
    ProductFactory(sku="A", on_hand=5)
    ProductFactory(sku="B", on_hand=3)


def _levels(*skus):
    return {sku: (stock_level_get(sku).on_hand, stock_level_get(sku).reserved) for sku in skus}


def test_reserve_holds_every_line_and_audits_creation(two_products, staff_user):
    result = services.stock_reserve(order_id=7, lines=[("B", 2), ("A", 1)], by=staff_user, reason="checkout")

    assert [(r.sku, r.quantity, r.state) for r in result] == [("A", 1, "held"), ("B", 2, "held")]
    assert _levels("A", "B") == {"A": (5, 1), "B": (3, 2)}
    logs = StateLog.objects.filter(transition="reserve").order_by("object_id")
    assert [(log.source_state, log.state, log.by, log.description) for log in logs] == [
        (None, "held", staff_user, "checkout")
    ] * 2
    assert_stock_conserved()


def test_reserve_merges_repeated_skus(two_products):
    services.stock_reserve(order_id=7, lines=[("A", 1), ("A", 2)])
    assert [(r.sku, r.quantity) for r in reservations_for_order(7)] == [("A", 3)]


def test_reserve_is_all_or_nothing(two_products):
    with pytest.raises(OutOfStock) as exc:
        services.stock_reserve(order_id=7, lines=[("A", 1), ("B", 4)])

    assert exc.value.code == "out_of_stock"
    assert exc.value.details == {"skus": ["B"], "requested": {"B": 4}, "available": {"B": 3}}
    assert _levels("A", "B") == {"A": (5, 0), "B": (3, 0)}
    assert not Reservation.objects.exists()


def test_reserve_lists_every_short_sku(two_products):
    with pytest.raises(OutOfStock) as exc:
        services.stock_reserve(order_id=7, lines=[("A", 6), ("B", 4)])
    assert exc.value.details["skus"] == ["A", "B"]


def test_reserve_unknown_sku(two_products):
    with pytest.raises(UnknownSku) as exc:
        services.stock_reserve(order_id=7, lines=[("A", 1), ("NOPE", 1)])
    assert exc.value.code == "unknown_sku"
    assert exc.value.details == {"skus": ["NOPE"]}
    assert _levels("A") == {"A": (5, 0)}


@pytest.mark.parametrize(
    ("lines", "code"),
    [
        ([], "empty_lines"),
        ([("A", 0)], "invalid_quantity"),
        ([("A", -1)], "invalid_quantity"),
        ([("A", True)], "invalid_quantity"),
        ([("A", 1.0)], "invalid_quantity"),
        ([("A",)], "invalid_lines"),
        ([(5, 1)], "unknown_sku"),
    ],
)
def test_reserve_rejects_bad_lines(two_products, lines, code):
    with pytest.raises(ConcordError) as exc:
        services.stock_reserve(order_id=7, lines=lines)
    assert exc.value.code == code


def test_commit_takes_units_off_the_shelf(two_products, staff_user):
    services.stock_reserve(order_id=7, lines=[("A", 2), ("B", 1)])

    result = services.stock_commit(order_id=7, by=staff_user, reason="paid")

    assert {r.state for r in result} == {ReservationState.COMMITTED}
    assert _levels("A", "B") == {"A": (3, 0), "B": (2, 0)}
    sales = StockMovement.objects.filter(kind=MovementKind.SALE).order_by("product_id")
    assert [(m.product_id, m.delta, m.order_id, m.by, m.reason) for m in sales] == [
        ("A", -2, 7, staff_user, "paid"),
        ("B", -1, 7, staff_user, "paid"),
    ]
    logs = StateLog.objects.filter(transition="commit")
    assert {(log.source_state, log.state, log.by_id, log.description) for log in logs} == {
        ("held", "committed", staff_user.pk, "paid")
    }
    assert logs.count() == 2
    assert_stock_conserved()


def test_release_gives_held_units_back(two_products):
    services.stock_reserve(order_id=7, lines=[("A", 2)])

    services.stock_release(order_id=7, reason="payment declined")

    assert _levels("A") == {"A": (5, 0)}
    log = StateLog.objects.get(transition="release")
    assert (log.source_state, log.state, log.by, log.description) == (
        "held",
        "released",
        None,
        "payment declined",
    )
    assert not StockMovement.objects.exclude(kind=MovementKind.ADJUST).exists()
    assert_stock_conserved()


def test_release_of_an_order_that_holds_nothing_is_a_no_op(two_products):
    assert services.stock_release(order_id=99, reason="compensate a reserve that failed") == []


def test_restock_returns_sold_units(two_products, staff_user):
    services.stock_reserve(order_id=7, lines=[("A", 2)])
    services.stock_commit(order_id=7, reason="paid")

    services.stock_restock(order_id=7, by=staff_user, reason="customer cancelled")

    assert _levels("A") == {"A": (5, 0)}
    movement = StockMovement.objects.get(kind=MovementKind.RETURN)
    assert (movement.delta, movement.order_id) == (2, 7)
    log = StateLog.objects.get(transition="restock")
    assert (log.source_state, log.state, log.by, log.description) == (
        "committed",
        "returned",
        staff_user,
        "customer cancelled",
    )
    assert_stock_conserved()


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ("released", "commit"),
        ("committed", "release"),
        ("returned", "release"),
        ("held", "restock"),
        ("released", "restock"),
        ("released", "reserve"),
        ("returned", "reserve"),
    ],
)
def test_illegal_service_moves_raise_conflict(two_products, setup, action):
    services.stock_reserve(order_id=7, lines=[("A", 2)])
    if setup == "released":
        services.stock_release(order_id=7, reason="")
    if setup in ("committed", "returned"):
        services.stock_commit(order_id=7, reason="")
    if setup == "returned":
        services.stock_restock(order_id=7, reason="")
    before = _levels("A")

    if action == "reserve":
        again = lambda: services.stock_reserve(order_id=7, lines=[("A", 2)])  # noqa: E731
    else:
        again = lambda: getattr(services, f"stock_{action}")(order_id=7, reason="")  # noqa: E731

    with pytest.raises(Conflict) as exc:
        again()

    assert exc.value.code == "illegal_transition"
    assert _levels("A") == before


def test_reserve_again_with_different_lines_is_a_conflict(two_products):
    services.stock_reserve(order_id=7, lines=[("A", 2)])
    with pytest.raises(Conflict) as exc:
        services.stock_reserve(order_id=7, lines=[("A", 3)])
    assert exc.value.code == "reservation_mismatch"
    assert _levels("A") == {"A": (5, 2)}


@pytest.mark.parametrize("action", ["commit", "restock"])
def test_commit_or_restock_without_reservations_is_not_found(two_products, action):
    with pytest.raises(NotFound) as exc:
        getattr(services, f"stock_{action}")(order_id=404, reason="")
    assert exc.value.code == "reservations_not_found"


def test_a_person_must_give_a_reason(two_products, staff_user):
    services.stock_reserve(order_id=7, lines=[("A", 2)])
    with pytest.raises(ConcordError) as exc:
        services.stock_release(order_id=7, by=staff_user, reason="  ")
    assert exc.value.code == "reason_required"
    assert _levels("A") == {"A": (5, 2)}


# --- set_on_hand -------------------------------------------------------------------


def test_set_on_hand_journals_the_difference(two_products, staff_user):
    services.stock_set_on_hand(sku="A", on_hand=8, by=staff_user, reason="stock take")
    services.stock_set_on_hand(sku="A", on_hand=6, by=staff_user, reason="broken units")

    deltas = list(StockMovement.objects.filter(product_id="A").values_list("delta", "kind", "reason"))
    assert deltas == [
        (5, "adjust", "factory stock"),
        (3, "adjust", "stock take"),
        (-2, "adjust", "broken units"),
    ]
    assert _levels("A") == {"A": (6, 0)}
    assert_stock_conserved()


def test_set_on_hand_refuses_to_go_below_reserved(two_products):
    services.stock_reserve(order_id=7, lines=[("A", 4)])
    with pytest.raises(Conflict) as exc:
        services.stock_set_on_hand(sku="A", on_hand=3, reason="count")
    assert exc.value.code == "below_reserved"
    assert _levels("A") == {"A": (5, 4)}
    services.stock_set_on_hand(sku="A", on_hand=4, reason="count")
    assert _levels("A") == {"A": (4, 4)}


@pytest.mark.parametrize(
    ("kwargs", "code", "error"),
    [
        ({"sku": "NOPE", "on_hand": 1, "reason": "x"}, "unknown_sku", UnknownSku),
        ({"sku": "A", "on_hand": -1, "reason": "x"}, "invalid_quantity", ConcordError),
        ({"sku": "A", "on_hand": 1, "reason": " "}, "reason_required", ConcordError),
    ],
)
def test_set_on_hand_validation(two_products, kwargs, code, error):
    with pytest.raises(error) as exc:
        services.stock_set_on_hand(**kwargs)
    assert exc.value.code == code


# --- product_upsert ------------------------------------------------------------------


def test_product_upsert_creates_then_updates(db):
    created = services.product_upsert(sku="P1", name="Pen", price=Decimal("1.50"), currency="EUR")
    assert (created.sku, created.price, created.available) == ("P1", Decimal("1.50"), 0)
    assert stock_level_get("P1").on_hand == 0

    updated = services.product_upsert(sku="P1", name="Pen", price=Decimal("1.75"), currency="EUR")
    assert updated.price == Decimal("1.75")


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"sku": "has space"}, "invalid_sku"),
        ({"sku": ""}, "invalid_sku"),
        ({"name": " "}, "invalid_name"),
        ({"price": 1.5}, "invalid_price"),
        ({"price": Decimal("-1")}, "invalid_price"),
        ({"price": Decimal("1.005")}, "invalid_price"),
        ({"price": Decimal("1.50"), "currency": "JPY"}, "invalid_price"),
        ({"price": Decimal("NaN")}, "invalid_price"),
        ({"currency": "XXX"}, "invalid_currency"),
    ],
)
def test_product_upsert_validation(db, kwargs, code):
    args = {"sku": "P1", "name": "Pen", "price": Decimal("1.50"), "currency": "EUR", **kwargs}
    with pytest.raises(ConcordError) as exc:
        services.product_upsert(**args)
    assert exc.value.code == code
