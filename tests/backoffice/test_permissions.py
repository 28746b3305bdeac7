"""Every page checks who is asking: anonymous -> login, wrong role -> 403."""

import pytest
from django.test import Client
from django.urls import reverse

from .conftest import login

pytestmark = pytest.mark.django_db

STAFF_PAGES = ["overview", "sagas", "incidents", "search", "states"]
FINANCE_PAGES = ["finance", "finance-csv", "approvals"]


@pytest.mark.parametrize("name", STAFF_PAGES + FINANCE_PAGES)
def test_anonymous_is_sent_to_login(name):
    response = Client().get(reverse(f"backoffice:{name}"))
    assert response.status_code == 302
    assert response["Location"].startswith("/backoffice/login/?next=")


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_both_roles_open_the_staff_pages(name, support, finance):
    assert support.get(reverse(f"backoffice:{name}")).status_code == 200
    assert finance.get(reverse(f"backoffice:{name}")).status_code == 200


@pytest.mark.parametrize("name", FINANCE_PAGES)
def test_support_cannot_open_finance_pages(name, support, finance, superuser):
    assert support.get(reverse(f"backoffice:{name}")).status_code == 403
    assert finance.get(reverse(f"backoffice:{name}")).status_code == 200
    assert login(superuser).get(reverse(f"backoffice:{name}")).status_code == 200


def test_a_non_staff_account_gets_nothing(django_user_model):
    api_client = django_user_model.objects.create_user(username="shop", password="x")
    assert login(api_client).get(reverse("backoffice:overview")).status_code == 403


def test_finance_cannot_run_saga_actions(finance, shop):
    order_id, run_id = shop.failed_checkout()
    bulk = finance.post(
        reverse("backoffice:saga-bulk"),
        {"op": "retry_now", "run_ids": [run_id], "reason": "x", "confirm": "1"},
    )
    single = finance.post(
        reverse("backoffice:order-action", args=[order_id]),
        {"op": "retry_now", "run_id": run_id, "reason": "x", "confirm": "1", "action_key": "k1"},
    )
    assert bulk.status_code == single.status_code == 403
    # and the page does not offer them
    page = finance.get(reverse("backoffice:order", args=[order_id])).content.decode()
    assert "Retry now" not in page


def test_support_cannot_decide_approvals(support):
    response = support.post(
        reverse("backoffice:approval-decide", args=[1]), {"decision": "approve", "reason": "x"}
    )
    assert response.status_code == 403


def test_actions_need_csrf(support_user, shop):
    order_id, run_id = shop.failed_checkout()
    client = Client(enforce_csrf_checks=True)
    client.force_login(support_user)
    response = client.post(
        reverse("backoffice:order-action", args=[order_id]),
        {"op": "retry_now", "run_id": run_id, "reason": "x", "confirm": "1", "action_key": "k1"},
    )
    assert response.status_code == 403


def test_login_page_logs_staff_in():
    from backoffice.roles import SUPPORT, staff_create

    staff_create(username="lena", role=SUPPORT, password="lena-pass-123")
    client = Client()
    assert client.get(reverse("backoffice:login")).status_code == 200
    response = client.post(reverse("backoffice:login"), {"username": "lena", "password": "lena-pass-123"})
    assert response.status_code == 302 and response["Location"] == "/backoffice/"
    assert client.get(reverse("backoffice:overview")).status_code == 200
