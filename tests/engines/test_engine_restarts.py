"""PostgreSQL and Redis restarted under a storm of orders (DESIGN §6: nothing lost).

The test starts its own PostgreSQL and Redis (free ports, a temporary folder; the
machine's shared servers are never touched) and `make run` on them, named by
DATABASE_URL / CELERY_BROKER_URL. Clients place orders without pause, retrying a
503 with the same Idempotency-Key after Retry-After. Meanwhile Redis is stopped for
3 s and restarted, then PostgreSQL (fast shutdown: open connections are cut).

Asserted: every answer is a 201 or a 503 with Retry-After (never a 500); while Redis
was down the web kept accepting orders (the throttle counted locally, the lost pokes
were logged); afterwards every accepted order is terminal, each confirmed order is
charged exactly once and no cancelled one is charged, no key made two orders, and
stock is conserved.
"""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

from scripts.engines import Postgres, Redis, free_port
from tests.fixtures.make_run import (
    MakeRun,
    all_orders,
    available_stock,
    charges_by_reference,
    make_tree,
    place_orders,
    run_env,
    sold,
    wait_gone,
    wait_terminal,
)

from .conftest import ports
from .test_make_run import CONSERVATION

pytestmark = pytest.mark.slow

DOWN_FOR = 3.0


@pytest.fixture
def engines():
    base = make_tree("concord-engines-")
    pg = Postgres(base / "postgres", free_port(), base / "log" / "postgres.log")
    redis = Redis(base / "redis", free_port(), base / "log" / "redis.log")
    pg.start()
    redis.start()
    try:
        yield pg, redis
    finally:
        redis.stop()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_orders_survive_redis_and_postgresql_restarts_under_load(tree, engines, tmp_path):
    pg, redis = engines
    env = run_env(
        DATABASE_URL=pg.url(),
        CELERY_BROKER_URL=redis.url(),
        # A quicker sweeper, so runs whose poke was lost are found within seconds.
        SAGA_SWEEP_INTERVAL="1",
        SAGA_SWEEP_GRACE="1",
        SAGA_SWEEP_REQUEUE_AFTER="5",
        **ports("WEB_PORT", "PSP_PORT"),
    )
    run = MakeRun.start(tree, env, tmp_path / "make-run.log")
    try:
        run.wait_ready()
        # Up to 1,000 orders of one or two of 8 products would outrun the demo's 100 units
        # on a fast machine; stock enough that every cancellation must be a decline.
        run.manage("seed_demo", "--stock", "2000")
        api = run.api()
        stock_before = available_stock(api)

        # given: a steady stream of orders
        stop, result = threading.Event(), {}
        load = threading.Thread(
            target=lambda: result.update(
                burst=place_orders(
                    f"{run.web_url}/api/v1",
                    run.token,
                    count=1000,
                    clients=4,
                    pause=0.05,
                    stop=stop,
                    key_prefix="storm",
                )
            )
        )
        load.start()
        # when: Redis, then PostgreSQL, are down for a few seconds each
        time.sleep(3)
        redis.restart(down_for=DOWN_FOR)
        time.sleep(3)
        pg.restart(down_for=DOWN_FOR)
        time.sleep(3)
        stop.set()
        load.join(timeout=240)
        assert not load.is_alive()
        burst = result["burst"]

        # then: the API answered 201 or 503 + Retry-After, never anything else
        assert burst.errors == [], burst.errors[:10]
        assert set(burst.statuses) <= {201, 503}, burst.statuses
        assert burst.statuses[503] > 0, "the PostgreSQL restart was not felt: no 503"
        assert burst.missing_retry_after == 0
        out = run.output()
        assert "throttle counters unavailable" in out  # Redis was down while orders came in...
        assert "poke not sent" in out  # ...and they were accepted all the same
        web = [line for line in out.splitlines() if " web.1 " in line]
        assert not [line for line in web if "Internal Server Error" in line or "Traceback" in line]

        # and: every accepted order ends, charged once, stock conserved
        ids = {order["id"] for order in burst.orders}
        assert len(ids) == len(burst.orders) > 50
        _, orders = wait_terminal(api, ids, timeout=240)
        assert {o["id"] for o in all_orders(api)} == ids  # no key made a second order
        time.sleep(2)  # webhooks of the last charges
        charges = charges_by_reference(run.psp_url)
        for order in orders:
            succeeded = [c for c in charges.get(str(order["id"]), []) if c["status"] == "succeeded"]
            if order["status"] == "confirmed":
                assert len(succeeded) == 1, (order, succeeded)
            else:
                assert order["failure_reason"] == "payment_declined" and succeeded == [], (order, succeeded)
        units = sold(orders)
        assert available_stock(api) == {sku: n - units[sku] for sku, n in stock_before.items()}
        assert json.loads(run.manage("shell", "-c", CONSERVATION).strip().splitlines()[-1]) == []
    except BaseException:
        run.kill()
        raise
    started = run.processes()
    run.stop()
    assert wait_gone(started) == set()
