"""Reading orders: with lines in two queries, scoped to the client that placed them."""

import pytest

from core.errors import ConcordError, NotFound
from orders.choices import FailureReason
from orders.selectors import order_get, order_get_for_client, order_list_for_client
from orders.services import order_cancel, order_create
from tests.orders.factories import OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db


def test_order_get_with_lines_in_two_queries(django_assert_num_queries):
    order = OrderFactory()
    OrderLineFactory.create_batch(5, order=order)
    with django_assert_num_queries(2):
        dto = order_get(order_id=order.pk)
    assert len(dto.lines) == 5


def test_order_get_missing():
    with pytest.raises(NotFound):
        order_get(order_id=999)


def test_another_clients_order_is_not_found(catalog):
    placed = order_create(
        client_id=1,
        customer_email="a@example.com",
        currency="EUR",
        payment_method="pm_card_ok",
        lines=[("MUG", 1)],
    )

    assert order_get_for_client(client_id=1, order_id=placed.id) == placed
    with pytest.raises(NotFound) as exc:
        order_get_for_client(client_id=2, order_id=placed.id)
    assert exc.value.http_status == 404


def test_list_is_own_orders_newest_first_filtered_and_paged(django_assert_num_queries):
    mine = [OrderFactory(client_id=1) for _ in range(4)]
    OrderFactory(client_id=2)
    order_cancel(order_id=mine[1].pk, failure_reason=FailureReason.CANCELLED_BY_CLIENT, reason="")
    for order in mine:
        OrderLineFactory.create_batch(3, order=order)

    with django_assert_num_queries(2):
        page = order_list_for_client(client_id=1, limit=2)
    assert [o.id for o in page] == [mine[3].pk, mine[2].pk]
    rest = order_list_for_client(client_id=1, before_id=page[-1].id, limit=10)
    assert [o.id for o in rest] == [mine[1].pk, mine[0].pk]
    assert [o.id for o in order_list_for_client(client_id=1, status="cancelled")] == [mine[1].pk]
    assert all(len(o.lines) == 3 for o in page)


@pytest.mark.parametrize(
    ("kwargs", "code"), [({"status": "lost"}, "invalid_status"), ({"limit": 0}, "invalid_limit")]
)
def test_list_validation(kwargs, code):
    with pytest.raises(ConcordError) as exc:
        order_list_for_client(client_id=1, **kwargs)
    assert exc.value.code == code
