"""Inventory admin: only legal, permitted transitions are offered; running one is audited."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_fsm_log.models import StateLog

from inventory import services
from inventory.models import Product, Reservation, StockMovement
from inventory.selectors import stock_level_get
from tests.inventory.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:inventory_reservation_changelist")


def _offered_actions(client, url=CHANGELIST):
    response = client.get(url)
    assert response.status_code == 200
    if response.context["action_form"] is None:  # the admin hides the bar when nothing is offered
        return set()
    return {name for name, _ in response.context["action_form"].fields["action"].choices if name}


@pytest.fixture
def reservations():
    ProductFactory(sku="A", on_hand=10)
    services.stock_reserve(order_id=1, lines=[("A", 2)])
    services.stock_reserve(order_id=2, lines=[("A", 3)])
    services.stock_commit(order_id=2, reason="paid")


def test_release_is_offered_only_when_some_reservation_is_held(client, stock_keeper, reservations):
    client.force_login(stock_keeper)
    assert _offered_actions(client) == {"transition_release"}
    # Filtered to committed reservations, releasing is never legal.
    assert _offered_actions(client, CHANGELIST + "?state__exact=committed") == set()

    services.stock_release(order_id=1, reason="gone")
    assert _offered_actions(client) == set()


def test_release_is_not_offered_without_the_permission(client, reservations):
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_reservation"))
    client.force_login(viewer)
    assert _offered_actions(client) == set()


def test_running_release_writes_the_user_and_reason(client, stock_keeper, reservations):
    client.force_login(stock_keeper)
    held = Reservation.objects.get(order_id=1)

    response = client.post(
        CHANGELIST,
        {"action": "transition_release", "_selected_action": [held.pk], "reason": "customer phoned"},
        follow=True,
    )

    assert response.status_code == 200
    held.refresh_from_db()
    assert held.state == "released"
    log = StateLog.objects.for_(held).get(transition="release")
    assert (log.by, log.description, log.source_state, log.state) == (
        stock_keeper,
        "customer phoned",
        "held",
        "released",
    )
    assert stock_level_get("A").reserved == 0


def test_release_without_a_reason_changes_nothing(client, stock_keeper, reservations):
    client.force_login(stock_keeper)
    held = Reservation.objects.get(order_id=1)

    response = client.post(
        CHANGELIST,
        {"action": "transition_release", "_selected_action": [held.pk], "reason": " "},
        follow=True,
    )

    held.refresh_from_db()
    assert held.state == "held"
    assert "Give a reason" in response.content.decode()


def test_release_skips_objects_where_it_is_illegal(client, stock_keeper, reservations):
    client.force_login(stock_keeper)
    committed = Reservation.objects.get(order_id=2)

    response = client.post(
        CHANGELIST,
        {"action": "transition_release", "_selected_action": [committed.pk], "reason": "try"},
        follow=True,
    )

    committed.refresh_from_db()
    assert committed.state == "committed"
    assert "not allowed" in response.content.decode()


def test_reservation_page_shows_history(admin_client, reservations):
    held = Reservation.objects.get(order_id=2)
    response = admin_client.get(reverse("admin:inventory_reservation_change", args=[held.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "committed" in body
    assert "paid" in body  # the StateLog inline shows the reason


def test_product_added_in_admin_gets_a_stock_row(admin_client):
    response = admin_client.post(
        reverse("admin:inventory_product_add"),
        {"sku": "NEW-1", "name": "New", "price": "3.00", "currency": "EUR", "active": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Product.objects.get(sku="NEW-1").price == Decimal("3.00")
    assert stock_level_get("NEW-1").on_hand == 0


def test_product_admin_refuses_precision_the_currency_lacks(admin_client):
    response = admin_client.post(
        reverse("admin:inventory_product_add"),
        {"sku": "YEN", "name": "Yen thing", "price": "3.50", "currency": "JPY", "active": "on"},
    )
    assert response.status_code == 200
    assert not Product.objects.filter(sku="YEN").exists()


def test_stock_take_action(admin_client, admin_user):
    ProductFactory(sku="A", on_hand=4)
    level_pk = Product.objects.get(sku="A").stock.pk

    admin_client.post(
        reverse("admin:inventory_stocklevel_changelist"),
        {"action": "set_on_hand", "_selected_action": [level_pk], "on_hand": "9", "reason": "yearly count"},
    )

    assert stock_level_get("A").on_hand == 9
    movement = StockMovement.objects.latest("id")
    assert (movement.delta, movement.by, movement.reason) == (5, admin_user, "yearly count")


@pytest.mark.parametrize(
    "name", ["inventory_product", "inventory_stocklevel", "inventory_reservation", "inventory_stockmovement"]
)
def test_every_model_has_an_admin_page(admin_client, reservations, name):
    assert admin_client.get(reverse(f"admin:{name}_changelist")).status_code == 200
