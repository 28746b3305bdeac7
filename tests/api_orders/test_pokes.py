"""The accepting request publishes no Celery message per order (issue 16): each
order's checkout is started by sagas.start_fresh, poked once per burst (a Redis
SET NX per order), and the outbox relay likewise. Real commits, so the on-commit
pokes run as in production; the messages go to the suite's broker."""

from __future__ import annotations

import pytest
from celery.signals import before_task_publish

from orders.models import Order
from sagas import tasks as saga_tasks
from sagas.selectors import saga_runs_fresh
from tests.api_orders.conftest import order_body, place

pytestmark = pytest.mark.django_db(transaction=True)

BURST = 12


@pytest.fixture
def published():
    names: list[str] = []

    def record(sender=None, **_):
        names.append(str(sender))

    before_task_publish.connect(record, weak=False)
    yield names
    before_task_publish.disconnect(record)


def test_a_burst_of_orders_publishes_one_start_not_one_message_per_order(
    catalog, shop, published, monkeypatch
):
    # The flag outlives the burst whatever the machine's load (production: 1 s).
    monkeypatch.setattr(saga_tasks, "FRESH_POKE_SECONDS", 60.0)

    responses = [place(shop, order_body()) for _ in range(BURST)]

    assert [r.status_code for r in responses] == [201] * BURST
    assert "sagas.advance" not in published
    assert published.count("sagas.start_fresh") == 1
    assert published.count("outbox.relay") <= 1
    assert len(published) <= 2  # for BURST orders: nothing per order
    # Every run is waiting for that one start_fresh, none was enqueued on its own.
    order_ids = {r.json()["id"] for r in responses}
    assert Order.objects.filter(pk__in=order_ids).count() == BURST
    assert len(saga_runs_fresh()) == BURST


def test_once_start_fresh_cleared_the_flag_the_next_order_pokes_again(catalog, shop, published, monkeypatch):
    monkeypatch.setattr(saga_tasks, "FRESH_POKE_SECONDS", 60.0)
    place(shop, order_body())
    place(shop, order_body())
    assert published.count("sagas.start_fresh") == 1

    monkeypatch.setattr(saga_tasks, "_advance", lambda run_id, hostname: "completed")
    monkeypatch.setattr(saga_tasks.advance, "delay", lambda run_id: None)
    assert saga_tasks.start_fresh.apply().get() == 2  # the queued task, run here
    place(shop, order_body())

    assert published.count("sagas.start_fresh") == 2
