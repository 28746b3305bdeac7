"""The guarantee peer (bench only): a hand-written DBOS 3.4 checkout that writes what
Concord's guarantees require, run as its own process by bench/saga_throughput.py
(`--compare by_hand_guarantees`). Issue #16's note asks what the guarantees cost on
the fastest engine; bench/checkout_dbos_by_hand.py is the same checkout without them.

The same three DBOS steps, raw SQL (psycopg, one connection per workflow thread),
no ORM and no domain services, but every row of the same kind Concord's checkout
writes into the same tables (docs/benchmarks.md, "Saga throughput", row inventory),
each state change re-read under lock and refused when illegal:

1. reserve — one transaction: the order's lines; each stock level's conditional
   UPDATE (`on_hand >= reserved + q`, in sku order: the lock order Concord uses);
   the reservation rows and one audit row (django-fsm-log StateLog) per reservation
   (None -> held), in one statement. A re-run finds its reservations and stops.
2. charge — the payment read; POST /v1/charges with the payment's fixed
   Idempotency-Key; then one transaction: the payment locked and refused unless
   pending (a re-run finding it captured by the same charge is a no-op); the
   provider-attempt row (the timeline); the payment captured; the ledger's double
   entry (transaction + two entries in one statement, refused unless both accounts
   exist); the audit row (pending -> captured); the outbox event payment.captured
   with the ledger row's timestamp. The charge-id uniqueness is the database's
   constraint (Concord also asks first, to keep its transaction usable).
3. confirm — one transaction: the order locked and refused unless pending (a
   re-run finding it confirmed is a no-op); the payment must be captured; the
   reservations locked and refused unless all held; stock leaves the shelf; the
   reservations committed; the stock movements (sale); the order confirmed; the
   audit rows (2 reservations held -> committed, the order pending -> confirmed) in
   one statement; the outbox event order.confirmed with the order and its lines.

What it does not write, and why: the saga run row, its step log and its "complete"
audit row — DBOS's workflow status and step outputs (its system tables) are this
peer's run record and checkpoints. Delivering the events (the relay) is not in the
peer's process: bench/saga_throughput.py drains them with Concord's own relay pass
after each round and reports that cost apart.

    python bench/checkout_dbos_guarantees.py <system database url> <worker concurrency> <executor id>

Environment: DATABASE_URL (Concord's tables), PSP_BASE_URL and PSP_API_KEY.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from dbos import DBOS, DBOSConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.checkout_dbos_by_hand import _conn, _http

QUEUE = "bench_checkout_guarantees"
WORKFLOW = "bench_checkout_guarantees"
SCHEMA_VERSION = 2  # of the payment and order events (payments/events.py, orders/events.py)

_content_types: dict[str, int] = {}


class Refused(Exception):
    """An illegal transition, refused under lock: the step fails, nothing is written."""


def _ct(model: str) -> int:
    if not _content_types:
        rows = (
            _conn()
            .execute(
                "SELECT app_label || '.' || model, id FROM django_content_type "
                "WHERE (app_label, model) IN (('inventory', 'reservation'), ('payments', 'payment'), ('orders', 'order'))"
            )
            .fetchall()
        )
        _content_types.update(rows)
        _conn().commit()
    return _content_types[model]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _event(conn, event_type: str, aggregate_type: str, aggregate_id: int, payload: dict) -> None:
    conn.execute(
        "INSERT INTO outbox_event (id, type, aggregatetype, aggregateid, payload, schema_version, created_at) "
        "VALUES (%s, %s, %s, %s, %s::jsonb, %s, now())",
        [uuid.uuid4(), event_type, aggregate_type, str(aggregate_id), json.dumps(payload), SCHEMA_VERSION],
    )


def reserve(order_id: int) -> None:
    ct = _ct("inventory.reservation")
    conn = _conn()
    with conn.transaction():
        if conn.execute(
            "SELECT 1 FROM inventory_reservation WHERE order_id = %s LIMIT 1", [order_id]
        ).fetchone():
            return  # a re-run: reserved already
        lines = conn.execute(
            "SELECT sku, sum(quantity) FROM orders_orderline WHERE order_id = %s GROUP BY sku ORDER BY sku",
            [order_id],
        ).fetchall()
        for sku, quantity in lines:
            cur = conn.execute(
                "UPDATE inventory_stocklevel SET reserved = reserved + %s, updated_at = now() "
                "WHERE sku = %s AND on_hand >= reserved + %s",
                [quantity, sku, quantity],
            )
            if cur.rowcount != 1:
                raise Refused(f"out of stock: {sku}")  # rolls the whole transaction back
        conn.execute(
            "WITH r AS (INSERT INTO inventory_reservation (order_id, sku, quantity, state, created_at, updated_at) "
            "  SELECT %(order)s, sku, quantity, 'held', now(), now() FROM unnest(%(skus)s::varchar[], %(qs)s::int[]) "
            "  AS l(sku, quantity) RETURNING id) "
            "INSERT INTO django_fsm_log_statelog "
            "(timestamp, by_id, source_state, state, transition, content_type_id, object_id, description) "
            "SELECT now(), NULL, NULL, 'held', 'reserve', %(ct)s, id, %(why)s FROM r",
            {
                "order": order_id,
                "skus": [sku for sku, _ in lines],
                "qs": [q for _, q in lines],
                "ct": ct,
                "why": f"checkout of order {order_id}: reserve stock",
            },
        )


def charge(payment_id: int) -> str:
    ct = _ct("payments.payment")
    conn = _conn()
    with conn.transaction():
        row = conn.execute(
            "SELECT amount, currency, payment_method, order_id, provider_key, status, provider_charge_id "
            "FROM payments_payment WHERE id = %s",
            [payment_id],
        ).fetchone()
    amount, currency, method, order_id, key, status, charge_id = row
    if status == "captured":
        return charge_id  # a re-run after the capture committed
    attempt_id = f"pa_{uuid.uuid4().hex}"
    started = time.monotonic()
    response = _http().post(
        "/v1/charges",
        json={
            "amount": int(amount * 100),
            "currency": currency,
            "payment_method": method,
            "reference": str(order_id),
        },
        headers={"Idempotency-Key": key, "X-Request-Id": attempt_id},
    )
    duration_ms = int((time.monotonic() - started) * 1000)
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "succeeded":
        raise RuntimeError(f"charge {body.get('id')} {body.get('status')}")
    charge_id = str(body["id"])
    with conn.transaction():
        status, captured_by, refunded = conn.execute(
            "SELECT status, provider_charge_id, refunded_amount FROM payments_payment "
            "WHERE id = %s FOR UPDATE",
            [payment_id],
        ).fetchone()
        if status == "captured" and captured_by == charge_id:
            return charge_id  # a re-run: captured by this charge already
        if status != "pending":
            raise Refused(f"payment {payment_id} cannot capture from {status}")
        conn.execute(
            "INSERT INTO payments_providerattempt (payment_id, refund_id, charge_id, kind, idempotency_key, outcome, "
            "provider_object_id, http_status, error, duration_ms, attempt_id, created_at) "
            "VALUES (%s, NULL, %s, 'charge', %s, 'succeeded', %s, %s, '', %s, %s, now())",
            [payment_id, charge_id, key, charge_id, response.status_code, duration_ms, attempt_id],
        )
        conn.execute(
            "UPDATE payments_payment SET status = 'captured', provider_charge_id = %s, failure_code = '', "
            "updated_at = now() WHERE id = %s",
            [charge_id, payment_id],
        )
        # The double entry: provider clearing debited, customer funds credited.
        ledger_at, entries = conn.execute(
            "WITH t AS (INSERT INTO payments_ledgertransaction (kind, currency, payment_id, refund_id, reference, "
            "  memo, created_at) VALUES ('capture', %(cur)s, %(pay)s, NULL, %(ref)s, %(memo)s, now()) "
            "  RETURNING id, created_at), "
            "e AS (INSERT INTO payments_ledgerentry (transaction_id, account_id, amount, currency) "
            "  SELECT t.id, a.id, v.amount, %(cur)s FROM t CROSS JOIN (VALUES ('provider_clearing', %(amt)s::numeric), "
            "  ('customer_funds', -%(amt)s::numeric)) AS v(code, amount) "
            "  JOIN payments_ledgeraccount a ON a.code = v.code AND a.currency = %(cur)s RETURNING 1) "
            "SELECT t.created_at, (SELECT count(*) FROM e) FROM t",
            {
                "cur": currency,
                "pay": payment_id,
                "ref": f"payment:{payment_id}:capture",
                "memo": f"Charge {charge_id} for order {order_id}",
                "amt": amount,
            },
        ).fetchone()
        if entries != 2:
            raise Refused(f"ledger accounts missing for {currency}")  # rolls the capture back
        conn.execute(
            "INSERT INTO django_fsm_log_statelog "
            "(timestamp, by_id, source_state, state, transition, content_type_id, object_id, description) "
            "VALUES (now(), NULL, 'pending', 'captured', 'capture', %s, %s, %s)",
            [ct, payment_id, f"provider charge {charge_id} succeeded"],
        )
        document = {
            "object": "payment",
            "id": payment_id,
            "order_id": order_id,
            "status": "captured",
            "amount": str(amount),
            "currency": currency,
            "refunded_amount": str(refunded),
            "failure_code": None,
        }
        _event(
            conn,
            "payment.captured",
            "payment",
            payment_id,
            {"object": document, "meta": {"charge_id": charge_id, "ledger_at": _iso(ledger_at)}},
        )
    return charge_id


def confirm(order_id: int) -> None:
    ct_reservation, ct_order = _ct("inventory.reservation"), _ct("orders.order")
    why = f"checkout of order {order_id}: stock reserved and payment captured"
    conn = _conn()
    with conn.transaction():
        order = conn.execute(
            "SELECT status, client_id, customer_email, currency, total, created_at FROM orders_order "
            "WHERE id = %s FOR UPDATE",
            [order_id],
        ).fetchone()
        if order[0] == "confirmed":
            return  # a re-run
        if order[0] != "pending":
            raise Refused(f"order {order_id} cannot confirm from {order[0]}")
        paid = conn.execute("SELECT status FROM payments_payment WHERE order_id = %s", [order_id]).fetchone()
        if paid is None or paid[0] != "captured":
            raise Refused(f"order {order_id}: payment not captured")
        # The reservations and their stock levels locked in sku order (the order the
        # reserve step locks them in: no deadlock between two checkouts).
        held = conn.execute(
            "SELECT r.state FROM inventory_reservation r JOIN inventory_stocklevel s ON s.sku = r.sku "
            "WHERE r.order_id = %s ORDER BY r.sku FOR UPDATE",
            [order_id],
        ).fetchall()
        if not held or any(state != "held" for (state,) in held):
            raise Refused(f"order {order_id}: reservations not held")
        conn.execute(
            "UPDATE inventory_stocklevel s SET on_hand = s.on_hand - r.quantity, "
            "reserved = s.reserved - r.quantity, updated_at = now() "
            "FROM inventory_reservation r WHERE r.order_id = %s AND s.sku = r.sku",
            [order_id],
        )
        conn.execute(
            "WITH r AS (UPDATE inventory_reservation SET state = 'committed', updated_at = now() "
            "  WHERE order_id = %(order)s RETURNING id, sku, quantity), "
            "m AS (INSERT INTO inventory_stockmovement (sku, delta, kind, order_id, by_id, reason, created_at) "
            "  SELECT sku, -quantity, 'sale', %(order)s, NULL, %(why)s, now() FROM r) "
            "INSERT INTO django_fsm_log_statelog "
            "(timestamp, by_id, source_state, state, transition, content_type_id, object_id, description) "
            "SELECT now(), NULL::integer, 'held'::varchar, 'committed'::varchar, 'commit'::varchar, "
            "  %(ctr)s::integer, id::integer, %(why)s::text FROM r "
            "UNION ALL SELECT now(), NULL, 'pending', 'confirmed', 'confirm', %(cto)s, %(order)s, %(why)s",
            {"order": order_id, "why": why, "ctr": ct_reservation, "cto": ct_order},
        )
        updated_at = conn.execute(
            "UPDATE orders_order SET status = 'confirmed', failure_reason = NULL, updated_at = now() "
            "WHERE id = %s RETURNING updated_at",
            [order_id],
        ).fetchone()[0]
        lines = conn.execute(
            "SELECT sku, quantity, unit_price, line_total FROM orders_orderline WHERE order_id = %s ORDER BY id",
            [order_id],
        ).fetchall()
        _, client_id, email, currency, total, created_at = order
        document = {
            "object": "order",
            "client_id": client_id,
            "id": order_id,
            "status": "confirmed",
            "failure_reason": None,
            "customer_email": email,
            "currency": currency,
            "total": str(total),
            "lines": [
                {
                    "sku": sku,
                    "quantity": q,
                    "unit_price": str(Decimal(price)),
                    "line_total": str(Decimal(line)),
                }
                for sku, q, price, line in lines
            ],
            "created_at": _iso(created_at),
            "updated_at": _iso(updated_at),
        }
        _event(conn, "order.confirmed", "order", order_id, {"object": document, "meta": {}})


def main() -> None:
    url, concurrency, executor_id = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    config: DBOSConfig = {
        "name": "concord-bench-guarantees",
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
        charge_step(payment_id)
        confirm_step(order_id)

    DBOS.launch()
    DBOS.register_queue(
        QUEUE, worker_concurrency=concurrency, polling_interval_sec=0.02, on_conflict="always_update"
    )
    print("dbos ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
