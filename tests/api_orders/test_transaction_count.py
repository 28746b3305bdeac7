"""One transaction per accepted order (DESIGN §7, issue 16): the order's commit and
nothing else — no autocommitted statement before it (the API token lookup used to
be one: 1.9 transactions per order), none after it."""

from unittest import mock

import pytest
from django.db import connection

from orders.models import Order
from tests.api_orders.conftest import order_body, place

pytestmark = pytest.mark.django_db(transaction=True)


class _Transactions:
    """Counts commits, and statements run in autocommit mode (each one its own
    transaction), on the default connection."""

    def __init__(self) -> None:
        self.autocommitted: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        if connection.get_autocommit():
            self.autocommitted.append(sql)
        return execute(sql, params, many, context)


def test_an_accepted_order_is_one_commit_and_no_other_transaction(catalog, shop, settings):
    settings.API_TOKEN_CACHE_SECONDS = 5
    place(shop)  # the client's token is looked up (and remembered) once per process

    transactions = _Transactions()
    with (
        mock.patch.object(connection, "commit", wraps=connection.commit) as commit,
        connection.execute_wrapper(transactions),
    ):
        response = place(shop, order_body())

    assert response.status_code == 201, response.content
    assert commit.call_count == 1
    assert transactions.autocommitted == []
    assert Order.objects.filter(pk=response.json()["id"]).exists()


def test_without_the_token_cache_the_lookup_is_the_one_extra_transaction(catalog, shop, settings):
    settings.API_TOKEN_CACHE_SECONDS = 0
    place(shop)

    transactions = _Transactions()
    with (
        mock.patch.object(connection, "commit", wraps=connection.commit) as commit,
        connection.execute_wrapper(transactions),
    ):
        response = place(shop, order_body())

    assert response.status_code == 201, response.content
    assert commit.call_count == 1
    assert len(transactions.autocommitted) == 1
    assert "apitokens_apitoken" in transactions.autocommitted[0]
