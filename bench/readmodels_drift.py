"""The read models' drift check, full against bounded, as history grows (not a test).

    .venv/bin/python bench/readmodels_drift.py --orders 100000 --orders 400000 [--days 180]

For each size: N confirmed, captured orders spread evenly over --days days up to now,
loaded server-side (INSERT ... SELECT generate_series) into a dedicated database
(BENCH_DRIFT_DB, default concord_bench_drift; created, migrated and dropped here);
the read models written from them in SQL, as a rebuild would write them (the full
check below proves they agree; --rebuild runs readmodels.services.read_models_rebuild
instead, minutes at 10^5 orders); then, on the same data:

- full: read_models_check(full=True) — every day and every order recomputed and
  compared (what every scheduled check did before 2026-11-30);
- bounded: read_models_check() as beat runs it (the last READ_MODELS_CHECK_RECENT_DAYS
  days, the next READ_MODELS_CHECK_OLD_DAYS older days and READ_MODELS_CHECK_OLD_ORDERS
  older order ids, the suspects), three times in a row (the cursors move), median.

Reports wall time, statements and rows compared of each, and the ratio, with the load
average. The ledger and incidents are left empty (finance facts: orders only): the
ledger's triggers refuse rows without their entries, and orders are most of the rows.
Environment: POSTGRES_URL (server, default postgres://postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.saga_throughput import drop, recreate  # noqa: E402

PY = ROOT / ".venv" / "bin" / "python"
SERVER = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
DB_NAME = os.environ.get("BENCH_DRIFT_DB", "concord_bench_drift")


def _load(n: int, days: int) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("TRUNCATE orders_order, payments_payment CASCADE")
        # Order i at now - days + i * (days / n): evenly spread, the last one now.
        spread = "now() - make_interval(secs => %s * (1 - i::float8 / %s))"
        cur.execute(
            "INSERT INTO orders_order (id, client_id, customer_email, currency, total, payment_method, status, "
            f"created_at, updated_at) SELECT i, 1, 'c' || i || '@example.com', 'EUR', 25.00, 'pm_card_ok', "
            f"'confirmed', {spread}, {spread} FROM generate_series(1, %s) i",
            [days * 86400, n, days * 86400, n, n],
        )
        cur.execute(
            "INSERT INTO payments_payment (order_id, amount, currency, payment_method, status, provider_charge_id, "
            "failure_code, last_error, refunded_amount, created_at, updated_at, provider_key) "
            "SELECT id, 25.00, 'EUR', 'pm_card_ok', 'captured', 'ch_' || id, '', '', 0, created_at, updated_at, "
            "'pk_' || id FROM orders_order"
        )


def _read_models_by_sql() -> None:
    """What read_models_rebuild writes for these orders (facts, day sums, search rows)."""
    from django.db import connection

    day = "(created_at AT TIME ZONE 'UTC')::date"
    with connection.cursor() as cur:
        cur.execute("TRUNCATE readmodels_financefact, readmodels_financeday, readmodels_ordersearch")
        cur.execute(
            "INSERT INTO readmodels_financefact (key, kind, day, currency, amount, seconds, incident_type, at) "
            f"SELECT 'order:' || id, 'order', {day}, currency, total, 0, '', "
            "date_trunc('milliseconds', created_at) FROM orders_order"
        )
        cur.execute(
            "INSERT INTO readmodels_financeday (day, currency, orders, captures, revenue, refunds, refunded, "
            "incidents, money_at_risk, dismissed, dismissed_at_risk, resolved, resolve_seconds) "
            "SELECT day, currency, count(*), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 FROM readmodels_financefact "
            "GROUP BY day, currency"
        )
        cur.execute(
            "INSERT INTO readmodels_ordersearch (order_id, client_id, customer_email, currency, total, status, "
            "failure_reason, payment_id, payment_status, charge_id, idempotency_key, created_at) "
            "SELECT o.id, o.client_id, o.customer_email, o.currency, o.total, o.status, '', p.id, p.status, "
            "p.provider_charge_id, NULL, o.created_at FROM orders_order o JOIN payments_payment p ON p.order_id = o.id"
        )


def _timed(fn):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    return result, seconds, len(queries)


def run(n: int, days: int, *, rebuild: bool) -> dict:
    from django.db import connection

    from readmodels import services

    _load(n, days)
    _, rebuild_s, _ = _timed(services.read_models_rebuild if rebuild else _read_models_by_sql)
    services.drift_memory_clear()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    full, full_s, full_q = _timed(lambda: services.read_models_check(confirm=False, full=True))
    assert [d.differences for d in full] == [[], []], [d.differences[:3] for d in full]
    bounded = [_timed(lambda: services.read_models_check(confirm=False)) for _ in range(3)]
    for drifts, _, _ in bounded:
        assert [d.differences for d in drifts] == [[], []]
    bounded_s = statistics.median(s for _, s, _ in bounded)
    result = {
        "orders": n,
        "days": days,
        "rebuild_s" if rebuild else "written_by_sql_s": round(rebuild_s, 2),
        "full_s": round(full_s, 3),
        "full_statements": full_q,
        "full_compared": {d.model: d.compared for d in full},
        "bounded_s": round(bounded_s, 3),
        "bounded_statements": max(q for _, _, q in bounded),
        "bounded_compared": {d.model: max(b[0][i].compared for b in bounded) for i, d in enumerate(full)},
        "ratio_bounded_to_full": round(bounded_s / full_s, 3),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    print(
        f"{n} orders over {days} days: full check {result['full_s']} s ({full_q} statements), "
        f"bounded {result['bounded_s']} s ({result['bounded_statements']} statements), "
        f"ratio {result['ratio_bounded_to_full']}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, action="append")
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument(
        "--rebuild", action="store_true", help="read_models_rebuild, not SQL, writes the models"
    )
    args = parser.parse_args()
    recreate(SERVER, DB_NAME)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"{SERVER}/{DB_NAME}",
    }
    subprocess.run([str(PY), "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")})
    try:
        import django

        django.setup()
        for n in args.orders or [100_000]:
            print(json.dumps(run(n, args.days, rebuild=args.rebuild)), flush=True)
    finally:
        from django.db import connections

        connections.close_all()
        drop(SERVER, DB_NAME)


if __name__ == "__main__":
    main()
