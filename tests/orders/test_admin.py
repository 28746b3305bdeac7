"""Orders admin: read-only records, cancellations offered only when legal and permitted."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_fsm_log.models import StateLog

from orders.models import Order
from tests.inventory.factories import UserFactory
from tests.orders.factories import OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:orders_order_changelist")


def _offered(client, url=CHANGELIST):
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["action_form"]
    return set() if form is None else {name for name, _ in form.fields["action"].choices if name}


def test_only_transitions_legal_for_orders_on_the_page_are_offered(client, support_user):
    client.force_login(support_user)
    OrderFactory(status="cancelled")
    assert _offered(client) == set()

    OrderFactory(status="pending")
    assert _offered(client) == {"transition_cancel"}

    OrderFactory(status="confirmed")
    assert _offered(client) == {"transition_cancel", "transition_begin_cancellation"}
    assert _offered(client, CHANGELIST + "?status__exact=confirmed") == {"transition_begin_cancellation"}
    # Confirming and finishing a cancellation belong to the sagas, never to a person.
    OrderFactory(status="cancelling")
    assert "transition_confirm" not in _offered(client)
    assert "transition_finish_cancellation" not in _offered(client)


def test_nothing_is_offered_without_the_cancel_permission(client):
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_order"))
    OrderFactory(status="pending")
    client.force_login(viewer)
    assert _offered(client) == set()


def test_cancel_action_writes_the_user_and_reason(client, support_user):
    client.force_login(support_user)
    order = OrderFactory(status="pending")

    client.post(
        CHANGELIST,
        {"action": "transition_cancel", "_selected_action": [order.pk], "reason": "fraud suspected"},
        follow=True,
    )

    order.refresh_from_db()
    assert (order.status, order.failure_reason) == ("cancelled", "cancelled_by_staff")
    log = StateLog.objects.for_(order).get()
    assert (log.by, log.description, log.source_state, log.state, log.transition) == (
        support_user,
        "fraud suspected",
        "pending",
        "cancelled",
        "cancel",
    )


def test_action_refuses_without_reason_and_skips_illegal_objects(client, support_user):
    client.force_login(support_user)
    pending = OrderFactory(status="pending")
    confirmed = OrderFactory(status="confirmed")

    response = client.post(
        CHANGELIST,
        {"action": "transition_cancel", "_selected_action": [pending.pk], "reason": ""},
        follow=True,
    )
    assert "Give a reason" in response.content.decode()
    response = client.post(
        CHANGELIST,
        {"action": "transition_cancel", "_selected_action": [pending.pk, confirmed.pk], "reason": "dupe"},
        follow=True,
    )

    assert "not allowed" in response.content.decode()
    assert Order.objects.get(pk=pending.pk).status == "cancelled"
    assert Order.objects.get(pk=confirmed.pk).status == "confirmed"
    assert not StateLog.objects.for_(confirmed).exists()


def test_begin_cancellation_action(client, support_user):
    client.force_login(support_user)
    order = OrderFactory(status="confirmed")

    client.post(
        CHANGELIST,
        {
            "action": "transition_begin_cancellation",
            "_selected_action": [order.pk],
            "reason": "customer call",
        },
    )

    order.refresh_from_db()
    assert (order.status, order.failure_reason) == ("cancelling", "cancelled_by_staff")
    assert StateLog.objects.for_(order).get().by == support_user


def test_order_page_is_read_only_and_shows_history(admin_client, support_user):
    order = OrderFactory(status="pending")
    OrderLineFactory(order=order, sku="MUG")
    admin_client.post(
        CHANGELIST, {"action": "transition_cancel", "_selected_action": [order.pk], "reason": "history check"}
    )

    response = admin_client.get(reverse("admin:orders_order_change", args=[order.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    assert "history check" in body
    assert "MUG" in body
    assert 'name="total"' not in body  # no editable money field


@pytest.mark.parametrize("name", ["orders_order", "orders_orderline"])
def test_every_model_has_an_admin_page(admin_client, name):
    OrderLineFactory()
    assert admin_client.get(reverse(f"admin:{name}_changelist")).status_code == 200
