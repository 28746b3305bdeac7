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


def test_an_orders_two_pokes_share_one_redis_round_trip(catalog, shop, published, monkeypatch):
    """The outbox relay's flag and the saga start's are set in one pipeline after the
    commit (core.pokes' batch), not by a SET NX each."""
    import redis

    from outbox import tasks as outbox_tasks

    outbox_tasks.poke_clear(outbox_tasks.POKE_KEY)
    pipelines: list[list[str]] = []
    lone_set_nx: list[tuple] = []
    execute, command = redis.client.Pipeline.execute, redis.Redis.execute_command

    def pipeline_execute(self, *args, **kwargs):
        pipelines.append([str(c[0][1]) for c in self.command_stack])
        return execute(self, *args, **kwargs)

    def execute_command(self, *args, **kwargs):
        if args[0] == "SET" and "NX" in args:
            lone_set_nx.append(args)
        return command(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", pipeline_execute)
    monkeypatch.setattr(redis.Redis, "execute_command", execute_command)

    assert place(shop, order_body()).status_code == 201

    assert lone_set_nx == []
    assert len(pipelines) == 1
    assert [key.rsplit(":", 1)[-1] for key in pipelines[0]] == ["relay-poked", "start-fresh-poked"]
    assert sorted(published) == ["outbox.relay", "sagas.start_fresh"]
