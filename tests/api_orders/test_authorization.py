"""Every read and write is scoped to the calling client; no token is 401."""

import pytest
from rest_framework.test import APIClient

from orders.selectors import order_get
from tests.api_orders.conftest import ORDERS_URL, PRODUCTS_URL, assert_envelope, cancel, order_body, place

pytestmark = pytest.mark.django_db


@pytest.fixture
def order_of_a(catalog, shop):
    return place(shop).json()


def test_client_b_cannot_see_client_a_order(order_of_a, other_shop):
    error = assert_envelope(other_shop.get(f"{ORDERS_URL}{order_of_a['id']}/"), 404, "not_found")
    # Exactly what a missing order looks like: nothing tells B the order exists.
    missing = assert_envelope(other_shop.get(f"{ORDERS_URL}{order_of_a['id'] + 1000}/"), 404, "not_found")
    assert error["message"].replace(str(order_of_a["id"]), "N") == missing["message"].replace(
        str(order_of_a["id"] + 1000), "N"
    )


def test_client_b_does_not_list_client_a_orders(order_of_a, shop, other_shop):
    place(other_shop, order_body(customer_email="b@example.com"))

    theirs = other_shop.get(ORDERS_URL).json()["results"]
    mine = shop.get(ORDERS_URL).json()["results"]

    assert [o["id"] for o in mine] == [order_of_a["id"]]
    assert order_of_a["id"] not in [o["id"] for o in theirs]
    assert len(theirs) == 1


def test_client_b_cannot_cancel_client_a_order(order_of_a, other_shop):
    assert_envelope(cancel(other_shop, order_of_a["id"]), 404, "not_found")

    assert order_get(order_id=order_of_a["id"]).status == "pending"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", PRODUCTS_URL),
        ("get", ORDERS_URL),
        ("post", ORDERS_URL),
        ("get", f"{ORDERS_URL}1/"),
        ("post", f"{ORDERS_URL}1/cancel/"),
    ],
)
def test_no_token_is_401(db, method, path):
    response = getattr(APIClient(), method)(path, {} if method == "post" else None, format="json")

    assert_envelope(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_is_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert_envelope(client.get(ORDERS_URL), 401, "authentication_failed")
