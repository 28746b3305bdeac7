from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import override_settings
from rest_framework.test import APIClient

from backoffice.roles import ROLE_PERMISSIONS, roles_ensure
from inventory import selectors as inventory_selectors

pytestmark = pytest.mark.django_db


def _call(*args, **kwargs) -> str:
    out = StringIO()
    call_command(*args, stdout=out, **kwargs)
    return out.getvalue()


def test_create_api_client_prints_a_working_token_on_the_last_line():
    output = _call("create_api_client", "shop-a")
    token = output.strip().splitlines()[-1]
    response = APIClient().get("/api/v1/products/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200, response.content
    assert User.objects.get(username="shop-a").groups.filter(name="api_clients").exists()
    assert not User.objects.get(username="shop-a").is_staff


@pytest.mark.parametrize("name", ["", "has space", "x" * 151, "semi;colon"])
def test_create_api_client_rejects_bad_names(name):
    with pytest.raises(CommandError):
        _call("create_api_client", name)


def test_create_api_client_refuses_a_duplicate():
    _call("create_api_client", "shop-a")
    with pytest.raises(CommandError, match="already exists"):
        _call("create_api_client", "shop-a")


@pytest.mark.parametrize("role", ["support", "finance"])
def test_create_staff_puts_the_user_in_the_role_group(role):
    _call("create_staff", "alice", role=role, password="a-long-password")
    user = User.objects.get(username="alice")
    assert user.is_staff and not user.is_superuser
    assert list(user.groups.values_list("name", flat=True)) == [role]
    assert user.check_password("a-long-password")


def test_create_staff_rejects_an_unknown_role_and_a_short_password():
    with pytest.raises(CommandError):
        _call("create_staff", "bob", role="janitor", password="a-long-password")
    with pytest.raises(CommandError):
        _call("create_staff", "bob", role="support", password="short")
    assert not User.objects.filter(username="bob").exists()


def test_create_staff_without_password_and_without_a_terminal_fails_clearly(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(CommandError, match="--password"):
        _call("create_staff", "bob", role="support")


def test_roles_grant_every_listed_permission():
    groups = roles_ensure()
    for role, labels in ROLE_PERMISSIONS.items():
        granted = {f"{p.content_type.app_label}.{p.codename}" for p in groups[role].permissions.all()}
        assert set(labels) <= granted
    support_perms = {p.codename for p in groups["support"].permissions.all()}
    assert "view_order" in support_perms
    assert not groups["api_clients"].permissions.exists()


@override_settings(DEMO_MODE=True)
def test_seed_demo_is_idempotent_and_stock_flag_sets_every_product():
    first = _call("seed_demo")
    products = inventory_selectors.product_list(after_sku=None, limit=100)
    assert len(products) >= 5
    assert {p.available for p in products} == {100}
    assert "support" in first and "finance" in first and "Token" in first

    # Running again changes nothing, and prints the same (working) demo token.
    assert _call("seed_demo") == first
    again = inventory_selectors.product_list(after_sku=None, limit=100)
    assert again == products
    assert User.objects.filter(username__in=["admin", "support", "finance", "demo-shop"]).count() == 4
    assert Group.objects.get(name="support").user_set.filter(username="support").exists()

    # --stock sets every product's on-hand stock.
    _call("seed_demo", stock=7)
    assert {p.available for p in inventory_selectors.product_list(after_sku=None, limit=100)} == {7}


@override_settings(DEMO_MODE=True)
def test_seed_demo_rejects_a_negative_stock():
    with pytest.raises(CommandError):
        _call("seed_demo", stock=-1)


def test_seed_demo_refuses_to_create_demo_logins_outside_the_local_demo():
    # The test settings, like production, leave DEMO_MODE off.
    with pytest.raises(CommandError, match="only in the local demo"):
        _call("seed_demo")
    assert not User.objects.filter(username__in=["admin", "support", "finance", "demo-shop"]).exists()
