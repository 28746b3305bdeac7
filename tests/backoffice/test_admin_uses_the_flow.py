"""The admin does not bypass the back office (issue 13, item 5): its actions run the
back office's operations, with the same permissions and the same approval rule."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from backoffice.models import ApprovalRequest, StaffAction
from orders.choices import ORDER_CANCELLATION
from orders.selectors import order_get
from sagas.models import SagaAction
from sagas.selectors import saga_run_for_subject

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:orders_order_changelist")


def _cancel_in_admin(client, order_id):
    data = {
        "action": "transition_begin_cancellation",
        "_selected_action": [order_id],
        "reason": "customer call",
    }
    return client.post(CHANGELIST, data, follow=True).content.decode()


def test_admin_cancel_of_a_confirmed_order_starts_the_cancellation_saga_through_the_back_office(
    client, support_user, shop, settings
):
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "100.00"
    order_id = shop.confirmed(quantity=1)  # 60.00
    client.force_login(support_user)

    _cancel_in_admin(client, order_id)

    assert order_get(order_id=order_id).status == "cancelling"
    assert saga_run_for_subject(saga_type=ORDER_CANCELLATION, subject_id=str(order_id)) is not None
    action = StaffAction.objects.get(order_id=order_id)
    assert (action.action, action.user, action.reason) == ("order_cancel", support_user, "customer call")


def test_admin_cancel_above_the_threshold_waits_for_finance_like_the_back_office(
    client, support_user, shop, settings
):
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "100.00"
    order_id = shop.confirmed(quantity=2)  # 120.00

    client.force_login(support_user)
    page = _cancel_in_admin(client, order_id)

    assert "waits for finance approval" in page
    assert order_get(order_id=order_id).status == "confirmed"
    assert ApprovalRequest.objects.get(order_id=order_id).kind == "cancel"
    assert saga_run_for_subject(saga_type=ORDER_CANCELLATION, subject_id=str(order_id)) is None


def test_skip_step_needs_the_same_permission_in_the_admin_and_the_back_office(client, support_user, shop):
    order_id, run_id = shop.failed_checkout()
    skip_url = reverse("admin:sagas_sagarun_operate", args=[run_id, "skip_step"])
    support_user.user_permissions.add(Permission.objects.get(codename="change_sagarun"))
    client.force_login(support_user)

    def offered():
        admin_page = client.get(reverse("admin:sagas_sagarun_change", args=[run_id])).content.decode()
        case = client.get(reverse("backoffice:order", args=[order_id])).content.decode()
        return skip_url in admin_page, "Skip step" in case or "skip_step" in case

    assert offered() == (True, True)  # support holds sagas.skip_step (backoffice/roles.py)

    support_user.groups.clear()
    support_user.user_permissions.set(
        Permission.objects.filter(codename__in=["change_sagarun", "view_sagarun", "retry_run", "view_order"])
    )
    support_user = type(support_user).objects.get(pk=support_user.pk)  # permission cache
    client.force_login(support_user)
    assert offered() == (False, False)
    client.post(skip_url, {"reason": "checked by hand"})
    assert not SagaAction.objects.filter(action="skip_step").exists()


def test_a_saga_operation_in_the_admin_is_a_back_office_staff_action(admin_client, admin_user, shop):
    _, run_id = shop.failed_checkout()
    shop.provider_recovers()

    admin_client.post(
        reverse("admin:sagas_sagarun_operate", args=[run_id, "skip_step"]),
        {"reason": "charge seen on dashboard"},
    )

    [action] = StaffAction.objects.filter(action="saga_skip_step")
    assert (action.user, action.reason, action.target) == (
        admin_user,
        "charge seen on dashboard",
        f"run_id {run_id}",
    )
    assert SagaAction.objects.get(action="skip_step").by == admin_user
