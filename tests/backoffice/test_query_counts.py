"""List pages cost the same number of SQL queries for N rows as for 3N rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from outbox.relay import relay_pass

pytestmark = pytest.mark.django_db

N = 3


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _grow(make, count):
    for _ in range(count):
        make()


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (reverse("backoffice:sagas"), "saga"),
        (reverse("backoffice:overview"), "saga"),
        (reverse("backoffice:incidents"), "incident"),
        (reverse("backoffice:search") + "?q=same@example.com", "order"),
        (reverse("backoffice:search") + "?status=pending", "order"),
        (reverse("backoffice:states"), "saga"),
    ],
)
def test_list_pages_run_constant_sql(support, shop, make_incident, url, kind, settings):
    settings.PSP_BASE_URL = "http://127.0.0.1:9"
    make = {
        "saga": lambda: shop.failed_checkout(),
        "incident": lambda: make_incident(),
        # the search reads its read model: feed it (relay pass) so the rows are there
        "order": lambda: (shop.order(email="same@example.com"), relay_pass(budget=5)),
    }[kind]
    _grow(make, N)
    support.get(url)  # warm caches (content types, permissions)
    small = _queries(support, url)
    _grow(make, 2 * N)
    large = _queries(support, url)
    assert large == small


def test_finance_and_approvals_run_constant_sql(finance, support_user, shop, settings):
    from backoffice import services

    from .conftest import new_key

    settings.BACKOFFICE_APPROVAL_THRESHOLD = "1.00"

    def ask():
        services.operation_submit(
            page="order",
            subject_id=shop.confirmed(),
            op="refund",
            data={"amount": "10.00"},
            reason="x",
            by=support_user,
            action_key=new_key(),
        )

    _grow(ask, N)
    for url in (reverse("backoffice:approvals"), reverse("backoffice:finance")):
        finance.get(url)
        small = _queries(finance, url)
        _grow(ask, 2 * N)
        assert _queries(finance, url) == small, url
