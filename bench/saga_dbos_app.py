"""DBOS version of the checkout (bench only), run as its own process by
bench/saga_throughput.py: a workflow of three DBOS steps on a queue with
`worker_concurrency` = the bench's concurrency. Its system database lives in the
same PostgreSQL database as Concord's tables (schema "dbos").

    python bench/saga_dbos_app.py <system database url> <worker concurrency> [<executor id>]

With several processes (the bench's prefork mode), each has its own executor id:
DBOS recovers the unfinished workflows of its executor id at launch, so two
processes sharing one would re-run each other's work.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django

django.setup()

from dbos import DBOS, DBOSConfig  # noqa: E402

from bench import saga_steps  # noqa: E402

QUEUE = "bench_checkout"
WORKFLOW = "bench_checkout"


def main() -> None:
    url, concurrency = sys.argv[1], int(sys.argv[2])
    executor_id = sys.argv[3] if len(sys.argv) > 3 else "bench-0"
    config: DBOSConfig = {
        "name": "concord-bench",
        "system_database_url": url,
        "log_level": "WARNING",
        "sys_db_pool_size": concurrency + 5,
        "executor_id": executor_id,
    }
    DBOS(config=config)

    @DBOS.step(name="reserve")
    def reserve(order_id: int) -> None:
        saga_steps.reserve(order_id)

    @DBOS.step(name="charge", retries_allowed=True, max_attempts=3)  # same key: replayed
    def charge(payment_id: int) -> str:
        return saga_steps.charge(payment_id)

    @DBOS.step(name="confirm")
    def confirm(order_id: int) -> None:
        saga_steps.confirm(order_id)

    @DBOS.workflow(name=WORKFLOW)
    def checkout(order_id: int, payment_id: int) -> None:
        reserve(order_id)
        charge(payment_id)
        confirm(order_id)

    DBOS.launch()
    # DBOS's queue is polled (default every 1 s); a short interval keeps its
    # latency comparable with Concord's push delivery (Redis).
    DBOS.register_queue(
        QUEUE, worker_concurrency=concurrency, polling_interval_sec=0.02, on_conflict="always_update"
    )
    print("dbos ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
