"""GET orders/ (own orders, filters, cursor pagination) and GET orders/{id}/."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import Order
from orders.services import order_cancel
from tests.api_orders.conftest import ORDERS_URL, place

pytestmark = pytest.mark.django_db


def _ids(response):
    assert response.status_code == 200, response.content
    return [o["id"] for o in response.json()["results"]]


def test_list_is_newest_first_with_the_order_json(catalog, shop):
    first, second = place(shop).json(), place(shop).json()

    body = shop.get(ORDERS_URL).json()

    assert body["results"] == [second, first]
    assert body["next"] is None


def test_cursor_pagination_walks_every_order_once(catalog, shop):
    placed = [place(shop).json()["id"] for _ in range(5)]

    seen, url, pages = [], f"{ORDERS_URL}?limit=2", 0
    while url:
        body = shop.get(url).json()
        seen += [o["id"] for o in body["results"]]
        url, pages = body["next"], pages + 1

    assert seen == sorted(placed, reverse=True)
    assert pages == 3


def test_a_new_order_does_not_shift_the_next_page(catalog, shop):
    placed = [place(shop).json()["id"] for _ in range(4)]
    page1 = shop.get(f"{ORDERS_URL}?limit=2").json()

    place(shop)
    page2 = shop.get(page1["next"]).json()

    assert [o["id"] for o in page2["results"]] == sorted(placed, reverse=True)[2:]


def test_filter_by_status(catalog, shop):
    kept, cancelled = place(shop).json()["id"], place(shop).json()["id"]
    order_cancel(order_id=cancelled, failure_reason="cancelled_by_staff", reason="test")

    assert _ids(shop.get(f"{ORDERS_URL}?status=cancelled")) == [cancelled]
    assert _ids(shop.get(f"{ORDERS_URL}?status=pending")) == [kept]
    assert _ids(shop.get(f"{ORDERS_URL}?status=confirmed")) == []


def test_filter_by_created_range_is_half_open(catalog, shop):
    old, mid, new = (place(shop).json()["id"] for _ in range(3))
    base = timezone.now().replace(microsecond=0) - timedelta(days=10)
    for offset, order_id in enumerate([old, mid, new]):
        Order.objects.filter(pk=order_id).update(created_at=base + timedelta(days=offset))

    def query(**params):
        return _ids(shop.get(ORDERS_URL, {k: v.isoformat() for k, v in params.items()}))

    assert query(created_gte=base + timedelta(days=1)) == [new, mid]
    assert query(created_lt=base + timedelta(days=1)) == [old]
    assert query(created_gte=base, created_lt=base + timedelta(days=2)) == [mid, old]
    assert query(created_gte=base + timedelta(days=3)) == []


def test_filters_survive_pagination(catalog, shop):
    [place(shop) for _ in range(3)]
    cancelled = [place(shop).json()["id"] for _ in range(3)]
    for order_id in cancelled:
        order_cancel(order_id=order_id, failure_reason="cancelled_by_staff", reason="test")

    page1 = shop.get(f"{ORDERS_URL}?status=cancelled&limit=2").json()
    page2 = shop.get(page1["next"]).json()

    assert "status=cancelled" in page1["next"]
    assert [o["id"] for o in page1["results"] + page2["results"]] == sorted(cancelled, reverse=True)
    assert page2["next"] is None


def test_detail_returns_the_order(catalog, shop):
    placed = place(shop).json()

    response = shop.get(f"{ORDERS_URL}{placed['id']}/")

    assert response.status_code == 200
    assert response.json() == placed


def test_detail_of_a_missing_order_is_404(db, shop):
    response = shop.get(f"{ORDERS_URL}12345/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
