"""The case file resolves a saga without the admin: skip-step with its permission,
the customer's other orders, approvals named by kind."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from backoffice.models import ApprovalRequest, StaffAction
from backoffice.roles import SUPPORT
from outbox.relay import relay_pass
from sagas.selectors import saga_action_log, saga_run_get

pytestmark = pytest.mark.django_db


def _post(client, order_id, **data):
    return client.post(reverse("backoffice:order-action", args=[order_id]), data, follow=True)


def test_skip_step_is_offered_previewed_and_recorded_on_the_case_file(support, shop):
    order_id, run_id = shop.failed_checkout()
    page = support.get(reverse("backoffice:order", args=[order_id])).content.decode()
    assert f"Skip the current step (saga #{run_id})" in page

    preview = _post(
        support, order_id, op="skip_step", run_id=run_id, reason="charged by hand", action_key="s1"
    )
    assert "moves past step “charge_payment”" in preview.content.decode()
    assert saga_run_get(run_id=run_id).status == "failed"  # a preview changes nothing

    data = {
        "op": "skip_step",
        "run_id": run_id,
        "reason": "charged by hand",
        "action_key": "s1",
        "confirm": "1",
    }
    _post(support, order_id, **data)
    again = _post(support, order_id, **data)  # a double submit skips nothing more

    run = saga_run_get(run_id=run_id)
    assert run.status == "running" and run.step != "charge_payment"
    [action] = saga_action_log(run_id=run_id)
    assert (action.action, action.by_username, action.reason) == ("skip_step", "sam", "charged by hand")
    assert StaffAction.objects.filter(action="saga_skip_step").count() == 1
    assert "not possible for this order now" in again.content.decode()


def test_skip_step_needs_its_permission_whatever_the_form_says(support_user, shop):
    Group.objects.get(name=SUPPORT).permissions.remove(Permission.objects.get(codename="skip_step"))
    client = __import__("django.test", fromlist=["Client"]).Client()
    client.force_login(User.objects.get(pk=support_user.pk))
    order_id, run_id = shop.failed_checkout()

    page = client.get(reverse("backoffice:order", args=[order_id])).content.decode()
    forged = _post(client, order_id, op="skip_step", run_id=run_id, reason="x", action_key="s2", confirm="1")

    assert "Skip the current step" not in page
    assert forged.status_code == 200
    assert saga_run_get(run_id=run_id).status == "failed"
    assert not StaffAction.objects.filter(action="saga_skip_step").exists()


def test_the_case_file_links_the_customers_other_orders_and_names_approvals_by_kind(
    support, support_user, shop
):
    shop.provider_recovers()
    mine = [shop.order(email="Repeat@Example.com") for _ in range(3)]
    shop.order(email="someone-else@example.com")
    ApprovalRequest.objects.create(
        operation="order_cancel", kind="cancel", order_id=mine[0], amount="60.00", currency="EUR",
        reason="customer asked", requested_by=support_user,
    )  # fmt: skip

    relay_pass(budget=5)  # the other orders come from the search read model

    page = support.get(reverse("backoffice:order", args=[mine[0]])).content.decode()

    others = page[page.index("The customer's other orders") :]
    assert f'href="/backoffice/orders/{mine[1]}/"' in others
    assert f'href="/backoffice/orders/{mine[2]}/"' in others
    assert "someone-else" not in others
    assert "<strong>Cancel the order</strong>" in page
