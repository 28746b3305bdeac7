"""A storm of orders through real worker processes (checkout and cancellation sagas,
the relay, the read-model consumers), with declines, cancellations and refunds, a
worker SIGKILLed mid-storm and events handed over twice: afterwards both read models
equal a full recomputation from the source tables (DESIGN §6.10)."""

from __future__ import annotations

import random
import time

import pytest
from django.db import connection, transaction

from orders.services import order_place, order_request_cancel
from outbox.models import ConsumerState
from outbox.selectors import consumer_lag
from readmodels import services
from readmodels.consumer import FINANCE, SEARCH
from readmodels.models import FinanceDay, OrderSearch

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def worker_env(psp) -> dict[str, str]:
    return {
        "PSP_BASE_URL": psp.base_url,
        "PSP_API_KEY": psp.api_key,
        "PSP_CONNECT_TIMEOUT": "1",
        "PSP_READ_TIMEOUT": "3",
        "OUTBOX_POLL_INTERVAL": "0.5",
        "RECONCILE_INTERVAL": "3600",
        "READ_MODELS_CHECK_INTERVAL": "3600",
    }


def wait_until(predicate, what: str, timeout: float = 120.0, log=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log()[-3000:]}")


def scalar(sql: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def runs_at_rest() -> bool:
    return scalar("SELECT count(*) FROM sagas_sagarun WHERE status IN ('running', 'compensating')") == 0


def models_caught_up() -> bool:
    return all(lag.pending == 0 for lag in consumer_lag() if lag.name in (FINANCE, SEARCH))


def snapshot() -> tuple[dict, dict]:
    days = {
        (r["day"], r["currency"]): {k: v for k, v in r.items() if k not in ("id", "day", "currency")}
        for r in FinanceDay.objects.values()
    }
    search = {r["order_id"]: r for r in OrderSearch.objects.values()}
    return days, search


def place(n: int, rng: random.Random) -> list[int]:
    ids = []
    for i in range(n):
        with transaction.atomic():
            ids.append(
                order_place(
                    client_id=1,
                    customer_email=f"storm{i % 7}@example.com",
                    currency="EUR",
                    payment_method="pm_card_declined" if rng.random() < 0.25 else "pm_card_ok",
                    lines=[("MUG", rng.randint(1, 3)), ("TEE", rng.randint(1, 2))] if i % 3 else [("MUG", 1)],
                ).id
            )
    return ids


def cancel(order_id: int) -> None:
    with transaction.atomic():
        order_request_cancel(order_id=order_id, reason="storm")


def test_read_models_equal_a_full_recomputation_after_a_storm(psp, big_shop, celery_worker_factory, settings):
    settings.READ_MODELS_DRIFT_GRACE = 0
    rng = random.Random(11)
    first = celery_worker_factory("storm", beat=True, env=worker_env(psp))

    # a storm: orders (a quarter declined), some cancelled while pending
    orders = place(40, rng)
    for order_id in orders[::9]:
        cancel(order_id)
    time.sleep(1.0)
    first.kill()  # SIGKILL mid-storm: a relay or a saga step dies half-way

    second = celery_worker_factory("after", beat=True, env=worker_env(psp))
    wait_until(runs_at_rest, "every checkout to end", log=second.log)
    confirmed = [
        o
        for o in orders
        if scalar(f"SELECT count(*) FROM orders_order WHERE id = {o} AND status = 'confirmed'")
    ]
    for order_id in confirmed[:8]:
        cancel(order_id)  # confirmed: refunded by the cancellation saga
    orders += place(10, rng)
    wait_until(
        lambda: runs_at_rest() and models_caught_up(), "sagas and read models to settle", log=second.log
    )
    assert scalar("SELECT count(*) FROM payments_refund WHERE status = 'succeeded'") >= 8
    assert scalar("SELECT count(*) FROM orders_order WHERE failure_reason = 'payment_declined'") > 0

    # duplicates: the last 60 events handed over again to both models
    fed = snapshot()
    ConsumerState.objects.filter(pk__in=[FINANCE, SEARCH]).update(position=models_position() - 60)
    wait_until(models_caught_up, "the replayed events", log=second.log)
    time.sleep(1.0)
    assert snapshot() == fed

    # equal to a fresh recomputation: the drift check finds nothing, and a rebuild
    # from the source tables produces the same rows
    assert [d.differences for d in services.read_models_check(confirm=False, full=True)] == [[], []]
    assert sum(r["orders"] for r in fed[0].values()) == len(orders)
    services.read_models_rebuild()
    rebuilt = snapshot()
    assert rebuilt[0] == fed[0]
    strip = lambda rows: {k: {**v, "idempotency_key": None} for k, v in rows.items()}  # noqa: E731
    assert strip(rebuilt[1]) == strip(fed[1])


def models_position() -> int:
    return min(ConsumerState.objects.filter(pk__in=[FINANCE, SEARCH]).values_list("position", flat=True))
