"""A hand-written DBOS 3.4 checkout (bench only): the peer of issue #16's drain
comparisons, run as its own process by bench/saga_throughput.py (`--peer by_hand`).

The same three steps as Concord's checkout saga, written by hand against the same
tables with raw SQL (psycopg, one connection per workflow thread) and no domain
services — what a team using DBOS without Concord's services would write:

1. reserve: one transaction — the order's lines, a conditional UPDATE of each stock
   level (`on_hand >= reserved + q`, all-or-nothing) and the reservation rows
   (ON CONFLICT DO NOTHING: a re-run after a crash before DBOS checkpointed the
   step finds its rows and changes nothing).
2. charge: POST /v1/charges to the sandbox provider with the payment's fixed
   Idempotency-Key (a re-run replays the same charge); its answer is the step's
   output, which DBOS checkpoints.
3. confirm: one transaction — stock leaves the shelf, the reservations are
   committed, the payment captured with the charge id and the order confirmed
   (each UPDATE conditional on the state it moves from, so a re-run is a no-op).

No audit rows, no ledger, no provider-attempt timeline, no outbox events: DBOS's
own step checkpoints are the only record. Concord writes all of those too.

    python bench/checkout_dbos_by_hand.py <system database url> <worker concurrency> <executor id>

Environment: DATABASE_URL (Concord's tables), PSP_BASE_URL and PSP_API_KEY.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import httpx
import psycopg
from dbos import DBOS, DBOSConfig

QUEUE = "bench_checkout_by_hand"
WORKFLOW = "bench_checkout_by_hand"

_local = threading.local()


def _conn() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(os.environ["DATABASE_URL"])
    return conn


def _http() -> httpx.Client:
    client = getattr(_local, "http", None)
    if client is None:
        client = _local.http = httpx.Client(
            base_url=os.environ["PSP_BASE_URL"],
            headers={"Authorization": f"Bearer {os.environ['PSP_API_KEY']}"},
            timeout=httpx.Timeout(5.0, connect=2.0),
        )
    return client


def reserve(order_id: int) -> None:
    conn = _conn()
    with conn.transaction():
        lines = conn.execute(
            "SELECT sku, sum(quantity) FROM orders_orderline WHERE order_id = %s GROUP BY sku ORDER BY sku",
            [order_id],
        ).fetchall()
        held = conn.execute("SELECT count(*) FROM inventory_reservation WHERE order_id = %s", [order_id])
        if held.fetchone()[0]:
            return  # a re-run: reserved already
        for sku, quantity in lines:
            cur = conn.execute(
                "UPDATE inventory_stocklevel SET reserved = reserved + %s, updated_at = now() "
                "WHERE sku = %s AND on_hand >= reserved + %s",
                [quantity, sku, quantity],
            )
            if cur.rowcount != 1:
                raise RuntimeError(f"out of stock: {sku}")  # rolls the whole transaction back
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO inventory_reservation (order_id, sku, quantity, state, created_at, updated_at) "
                "VALUES (%s, %s, %s, 'held', now(), now()) ON CONFLICT DO NOTHING",
                [(order_id, sku, quantity) for sku, quantity in lines],
            )


def charge(payment_id: int) -> str:
    conn = _conn()
    with conn.transaction():
        row = conn.execute(
            "SELECT amount, currency, payment_method, order_id, provider_key FROM payments_payment WHERE id = %s",
            [payment_id],
        ).fetchone()
    amount, currency, method, order_id, key = row
    response = _http().post(
        "/v1/charges",
        json={
            "amount": int(amount * 100),
            "currency": currency,
            "payment_method": method,
            "reference": str(order_id),
        },
        headers={"Idempotency-Key": key},
    )
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "succeeded":
        raise RuntimeError(f"charge {body.get('id')} {body.get('status')}")
    return str(body["id"])


def confirm(order_id: int, payment_id: int, charge_id: str) -> None:
    conn = _conn()
    with conn.transaction():
        conn.execute(
            "UPDATE inventory_stocklevel s SET on_hand = s.on_hand - r.quantity, "
            "reserved = s.reserved - r.quantity, updated_at = now() "
            "FROM inventory_reservation r WHERE r.order_id = %s AND r.state = 'held' AND s.sku = r.sku",
            [order_id],
        )
        conn.execute(
            "UPDATE inventory_reservation SET state = 'committed', updated_at = now() "
            "WHERE order_id = %s AND state = 'held'",
            [order_id],
        )
        conn.execute(
            "UPDATE payments_payment SET status = 'captured', provider_charge_id = %s, updated_at = now() "
            "WHERE id = %s AND status = 'pending'",
            [charge_id, payment_id],
        )
        conn.execute(
            "UPDATE orders_order SET status = 'confirmed', updated_at = now() WHERE id = %s AND status = 'pending'",
            [order_id],
        )


def main() -> None:
    url, concurrency, executor_id = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    config: DBOSConfig = {
        "name": "concord-bench-by-hand",
        "system_database_url": url,
        "log_level": "WARNING",
        "sys_db_pool_size": concurrency + 5,
        "executor_id": executor_id,
    }
    DBOS(config=config)

    reserve_step = DBOS.step(name="reserve")(reserve)
    # A lost answer is retried with the same Idempotency-Key (the provider replays it).
    charge_step = DBOS.step(name="charge", retries_allowed=True, max_attempts=3)(charge)
    confirm_step = DBOS.step(name="confirm")(confirm)

    @DBOS.workflow(name=WORKFLOW)
    def checkout(order_id: int, payment_id: int) -> None:
        reserve_step(order_id)
        charge_id = charge_step(payment_id)
        confirm_step(order_id, payment_id, charge_id)

    DBOS.launch()
    # Polled every 20 ms (default 1 s), as for bench/saga_dbos_app.py.
    DBOS.register_queue(
        QUEUE, worker_concurrency=concurrency, polling_interval_sec=0.02, on_conflict="always_update"
    )
    print("dbos ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
