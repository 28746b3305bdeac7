"""Saga actions from the case file and the stuck list: reason, preview, one-time keys."""

import pytest
from django.urls import reverse

from backoffice.models import StaffAction
from sagas.executor import advance_run
from sagas.selectors import saga_action_log, saga_run_get

pytestmark = pytest.mark.django_db


def _post(client, order_id, **data):
    return client.post(reverse("backoffice:order-action", args=[order_id]), data, follow=True)


def test_retry_needs_a_reason_and_shows_a_preview_first(support, shop):
    order_id, run_id = shop.failed_checkout()

    no_reason = _post(support, order_id, op="retry_now", run_id=run_id, reason=" ", action_key="k1")
    preview = _post(
        support, order_id, op="retry_now", run_id=run_id, reason="provider is back", action_key="k1"
    )

    assert "A reason is required." in no_reason.content.decode()
    assert "What will happen" in preview.content.decode()
    assert "charge_payment" in preview.content.decode()
    assert saga_run_get(run_id=run_id).status == "failed"  # a preview changes nothing


def test_retry_after_the_provider_recovers_confirms_the_order(support, shop):
    order_id, run_id = shop.failed_checkout()
    shop.provider_recovers()

    response = _post(
        support,
        order_id,
        op="retry_now",
        run_id=run_id,
        reason="provider is back",
        action_key="k1",
        confirm="1",
    )
    advance_run(run_id, worker_id="test")  # the worker the on-commit poke wakes

    assert "Retry now: done" in response.content.decode()
    assert saga_run_get(run_id=run_id).status == "completed"
    page = support.get(reverse("backoffice:order", args=[order_id])).content.decode()
    assert 'badge confirmed">confirmed' in page
    [action] = saga_action_log(run_id=run_id)
    assert (action.by_username, action.reason) == ("sam", "provider is back")


def test_a_double_submit_does_nothing_twice(support, shop):
    order_id, run_id = shop.failed_checkout()
    data = {"op": "retry_now", "run_id": run_id, "reason": "again", "action_key": "same-key", "confirm": "1"}

    _post(support, order_id, **data)
    advance_run(run_id, worker_id="test")  # provider still down: failed again
    second = _post(support, order_id, **data)

    assert "already submitted" in second.content.decode()
    assert len(saga_action_log(run_id=run_id)) == 1
    assert StaffAction.objects.filter(key="same-key").count() == 1


def test_an_illegal_action_is_refused_with_a_message(support, shop):
    order_id = shop.confirmed()
    from sagas.selectors import saga_runs_for_subject

    [run] = saga_runs_for_subject(subject_id=str(order_id))
    response = _post(
        support, order_id, op="retry_now", run_id=run.id, reason="x", action_key="k", confirm="1"
    )
    assert response.status_code == 200
    assert "not possible for this order now" in response.content.decode()


def test_compensate_preview_names_money_and_stock_then_cancels(support, shop):
    order_id, run_id = shop.failed_checkout(quantity=2)

    preview = _post(
        support, order_id, op="compensate", run_id=run_id, reason="customer gave up", action_key="c1"
    )
    text = preview.content.decode()
    assert "2 x BO-1" in text and "cancelled" in text
    shop.provider_recovers()  # the compensation looks the charge up at the provider

    _post(
        support,
        order_id,
        op="compensate",
        run_id=run_id,
        reason="customer gave up",
        action_key="c1",
        confirm="1",
    )
    advance_run(run_id, worker_id="test")
    assert saga_run_get(run_id=run_id).status == "compensated"
    from orders.selectors import order_get

    order = order_get(order_id=order_id)
    assert (order.status, order.failure_reason) == ("cancelled", "cancelled_by_staff")


def test_bulk_retry_previews_then_retries_only_eligible_runs(support, shop):
    failed = [shop.failed_checkout()[1] for _ in range(3)]
    healthy = shop.confirmed()
    from sagas.selectors import saga_runs_for_subject

    healthy_run = saga_runs_for_subject(subject_id=str(healthy))[0].id
    data = {
        "op": "retry_now",
        "run_ids": [*failed, healthy_run],
        "reason": "provider back",
        "action_key": "bulk1",
    }

    preview = support.post(reverse("backoffice:saga-bulk"), data).content.decode()
    assert "<strong>3</strong> of 4 selected runs" in preview
    done = support.post(
        reverse("backoffice:saga-bulk"), {**data, "confirm": "1"}, follow=True
    ).content.decode()
    again = support.post(
        reverse("backoffice:saga-bulk"), {**data, "confirm": "1"}, follow=True
    ).content.decode()

    assert "3 run(s) done, 1 not eligible" in done
    assert "0 run(s) done" in again
    assert all(saga_run_get(run_id=r).status == "running" for r in failed)
    assert all(len(saga_action_log(run_id=r)) == 1 for r in failed)


def test_saga_list_filters(support, shop):
    shop.failed_checkout()
    page = support.get(
        reverse("backoffice:sagas") + "?status=failed&step=charge_payment&error=HTTP+500"
    ).content
    assert b"charge transient: HTTP 500" in page
    empty = support.get(reverse("backoffice:sagas") + "?error=no-such-error").content
    assert b"No saga runs match." in empty
