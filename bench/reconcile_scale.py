"""Reconciliation at scale (not a test): N provider charges against N payments.

    .venv/bin/python bench/reconcile_scale.py --rows 1000000 --rows 100000

For each size: loads, with COPY, into a dedicated database (concord_bench, created and
migrated here; never a test database) N confirmed orders with their lines, committed
reservations, captured payments and succeeded provider charges, plus a sprinkling of
seeded inconsistencies (orphan charges, second charges, wrong amounts, confirmed orders
without a charge). Then, in the same process and on the same data:

- the floor: the bare SQL anti-join "succeeded provider charges no payment recorded";
- the full pass: reconcile_run(sync=False, full=True) - every detector over everything,
  incident upserts, run row (no provider sync over HTTP);
- one minute of change: --change new orders (with lines, reservations, payments and
  provider charges, a few of them inconsistent) written as the apps and the sync would
  (updated_at / last_synced_at = now), then the scheduled pass: reconcile_run(sync=False),
  incremental for the per-order detectors (their checkpoints come from the full pass);
- a check: a second full pass must find exactly what the incremental pass left live.

Reports wall time and peak Python memory (tracemalloc) of each, the ratios to the bare
query, and the process's max RSS. The ledger is left empty on purpose: the clearing
detector then reports one currency-wide mismatch (it reads the provider's side from the
running balance the triggers keep while the charges load, and the ledger's from payments'
running balance; RECONCILIATION["KEPT_BALANCES"] = False sums every row instead — see
bench/reconcile_shared_ab.py for the A/B).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SEEDED = 50  # of each kind of inconsistency
CHANGE_SEEDED = 5  # of each kind, among the changed orders


def _setup_django(base_url: str, bench_db: str) -> None:
    import psycopg

    server = base_url.rsplit("/", 1)[0]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [bench_db]).fetchone():
            conn.execute(f'CREATE DATABASE "{bench_db}"')
    os.environ["DATABASE_URL"] = f"{server}/{bench_db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


TABLES = (
    "reconciliation_incidentnote", "reconciliation_remediation", "reconciliation_incident",
    "reconciliation_reconciliationrun", "reconciliation_providerrefund", "reconciliation_providercharge",
    "payments_ledgerentry", "payments_ledgertransaction", "payments_ledgeraccount",
    "payments_providerattempt", "payments_refund", "payments_payment",
    "inventory_reservation", "inventory_stockmovement", "inventory_stocklevel", "inventory_product",
    "orders_orderline", "orders_order", "sagas_sagastepLog", "django_fsm_log_statelog",
    "reconciliation_detectorcheckpoint",
)  # fmt: skip


def _load(n: int) -> None:
    """The same rows the apps and the sync would write, generated server-side
    (INSERT ... SELECT generate_series: seconds at 1M, where COPY from Python took minutes)."""
    from django.db import connection

    old = datetime(2026, 1, 1, tzinfo=UTC)
    created = old + timedelta(seconds=1)
    every = n // SEEDED
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE " + ", ".join(t.lower() for t in TABLES if _exists(cur, t.lower())) + " CASCADE"
        )
        cur.execute(
            "INSERT INTO inventory_product (sku, name, price, currency, active, created_at, updated_at) "
            "VALUES ('BENCH', 'bench', 25.00, 'EUR', true, %s, %s)",
            [old, old],
        )
        cur.execute(
            "INSERT INTO inventory_stocklevel (sku, on_hand, reserved, updated_at) VALUES ('BENCH', 0, 0, %s)",
            [old],
        )
        total = n + SEEDED  # the last SEEDED: confirmed, never charged
        cur.execute(
            "INSERT INTO orders_order (id, client_id, customer_email, currency, total, payment_method, status, "
            "created_at, updated_at) SELECT i, 1, 'c@example.com', 'EUR', 25.00, 'pm_card_ok', 'confirmed', %s, %s "
            "FROM generate_series(1, %s) i",
            [old, old, total],
        )
        cur.execute(
            "INSERT INTO orders_orderline (order_id, sku, quantity, unit_price, line_total) "
            "SELECT i, 'BENCH', 1, 25.00, 25.00 FROM generate_series(1, %s) i",
            [total],
        )
        cur.execute(
            "INSERT INTO inventory_reservation (order_id, sku, quantity, state, created_at, updated_at) "
            "SELECT i, 'BENCH', 1, 'committed', %s, %s FROM generate_series(1, %s) i",
            [old, old, total],
        )
        cur.execute(
            "INSERT INTO payments_payment (order_id, amount, currency, payment_method, status, provider_charge_id, "
            "failure_code, last_error, refunded_amount, created_at, updated_at, provider_key) "
            "SELECT i, 25.00, 'EUR', 'pm_card_ok', 'captured', 'ch_' || i, '', '', 0, %s, %s, 'pk_' || i "
            "FROM generate_series(1, %s) i",
            [old, old, total],
        )
        charge = (
            "INSERT INTO reconciliation_providercharge (provider_id, reference, order_id, amount_minor, amount, "
            "currency, status, amount_refunded_minor, amount_refunded, created, first_seen_at, last_synced_at) "
        )
        # seeded: a wrong amount for one order in every `every`
        cur.execute(
            charge + "SELECT 'ch_' || i, i::text, i, a, a / 100.0, 'EUR', 'succeeded', 0, 0, %s, %s, %s "
            "FROM (SELECT i, CASE WHEN i %% %s = 7 THEN 2600 ELSE 2500 END AS a "
            "      FROM generate_series(1, %s) i) g",
            [created, old, old, every, n],
        )
        # seeded: a second charge for a confirmed order
        cur.execute(
            charge + "SELECT 'ch_dup_' || i, i::text, i, 2500, 25.00, 'EUR', 'succeeded', 0, 0, %s, %s, %s "
            "FROM (SELECT 1 + k * %s AS i FROM generate_series(0, %s) k) g",
            [created, old, old, every, SEEDED - 1],
        )
        # seeded: a charge for an order that does not exist
        cur.execute(
            charge
            + "SELECT 'ch_orphan_' || k, (%s + k)::text, %s + k, 2500, 25.00, 'EUR', 'succeeded', 0, 0, "
            "%s, %s, %s FROM generate_series(0, %s) k",
            [10 * n, 10 * n, created, old, old, SEEDED - 1],
        )
        # As autovacuum leaves a table at rest: statistics, hint bits and visibility map set.
        cur.execute("VACUUM ANALYZE")


def _change(n: int, k: int) -> None:
    """k new orders after the full pass, as one minute of traffic would leave them: written
    two minutes ago (settled), charges just synced. Among them CHANGE_SEEDED each of: an
    orphan charge, a second charge, a wrong amount, a confirmed order without a charge."""
    from django.db import connection
    from django.utils import timezone

    now = timezone.now()
    written = now - timedelta(seconds=120)
    first = n + SEEDED + 1
    ids = range(first, first + k)
    uncharged = set(ids[-CHANGE_SEEDED:])
    with connection.cursor() as cur:
        raw = cur.cursor
        with raw.copy(
            "COPY orders_order (id, client_id, customer_email, currency, total, payment_method, status, "
            "created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in ids:
                copy.write_row(
                    (i, 1, "c@example.com", "EUR", "25.00", "pm_card_ok", "confirmed", written, written)
                )
        with raw.copy(
            "COPY orders_orderline (order_id, sku, quantity, unit_price, line_total) FROM STDIN"
        ) as copy:
            for i in ids:
                copy.write_row((i, "BENCH", 1, "25.00", "25.00"))
        with raw.copy(
            "COPY inventory_reservation (order_id, sku, quantity, state, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in ids:
                copy.write_row((i, "BENCH", 1, "committed", written, written))
        with raw.copy(
            "COPY payments_payment (order_id, amount, currency, payment_method, status, provider_charge_id, "
            "failure_code, last_error, refunded_amount, created_at, updated_at, provider_key) FROM STDIN"
        ) as copy:
            for i in ids:
                charge = None if i in uncharged else f"ch_{i}"
                status = "pending" if i in uncharged else "captured"
                copy.write_row(
                    (
                        i,
                        "25.00",
                        "EUR",
                        "pm_card_ok",
                        status,
                        charge,
                        "",
                        "",
                        "0",
                        written,
                        written,
                        f"pk_{i}",
                    )
                )
        with raw.copy(
            "COPY reconciliation_providercharge (provider_id, reference, order_id, amount_minor, amount, currency, "
            "status, amount_refunded_minor, amount_refunded, created, first_seen_at, last_synced_at) FROM STDIN"
        ) as copy:

            def row(provider_id, ref, amount=2500):
                return (provider_id, str(ref), ref, amount, f"{amount / 100:.2f}", "EUR", "succeeded", 0, "0",
                        written, now, now)  # fmt: skip

            for j, i in enumerate(ids):
                if i in uncharged:
                    continue
                copy.write_row(row(f"ch_{i}", i, 2600 if j < CHANGE_SEEDED else 2500))
                if CHANGE_SEEDED <= j < 2 * CHANGE_SEEDED:
                    copy.write_row(row(f"ch_dup_{i}", i))
            for j in range(CHANGE_SEEDED):
                copy.write_row(row(f"ch_orphan_new_{j}", 20 * n + j))


def _exists(cur, table: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
    return cur.fetchone()[0]


BARE = (
    "SELECT count(*) FROM reconciliation_providercharge c WHERE c.status = 'succeeded' "
    "AND NOT EXISTS (SELECT 1 FROM payments_payment p WHERE p.provider_charge_id = c.provider_id)"
)


def _measure(fn):
    tracemalloc.start()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak


def _bare():
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(BARE)
        return cur.fetchone()[0]


def _full():
    from reconciliation.services import reconcile_run

    return reconcile_run(sync=False, full=True)


def _scheduled():
    from reconciliation.services import reconcile_run

    return reconcile_run(sync=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, action="append", help="provider charges (= payments); repeatable")
    parser.add_argument("--change", type=int, default=1000, help="orders written between the passes")
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/concord")
    )
    parser.add_argument(
        "--bench-db", default="concord_bench", help="dedicated database (truncated, reloaded)"
    )
    parser.add_argument(
        "--merge-plans",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="RECONCILIATION['SHARED_JOIN_MERGE_PLANS'] (--no-merge-plans: the planner's hash joins)",
    )
    parser.add_argument(
        "--concurrent",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="RECONCILIATION['SHARED_JOIN_CONCURRENT'] (--no-concurrent: one connection)",
    )
    args = parser.parse_args()
    _setup_django(args.database_url, args.bench_db)
    from django.conf import settings

    settings.RECONCILIATION = {
        **getattr(settings, "RECONCILIATION", {}),
        "SHARED_JOIN_MERGE_PLANS": args.merge_plans,
        "SHARED_JOIN_CONCURRENT": args.concurrent,
    }
    from reconciliation.models import Incident, ReconciliationRun

    def mb(peak):
        return f"{peak / 1e6:.2f} MB"

    for n in args.rows or [100_000, 1_000_000]:
        t0 = time.perf_counter()
        _load(n)
        load = time.perf_counter() - t0
        _bare()  # warm the cache once, then measure on warm data
        # A worker has its cache client (and the redis package, 0.7 s to import) loaded
        # long before a pass: the first incident a pass opens pokes the outbox through it.
        # Load it here, so the first full pass is not charged for the process's imports.
        from django.core.cache import cache

        cache.get("bench:reconcile_scale:warm")
        load_before = os.getloadavg()
        # Floor and pass alternate: each pass's ratio is to the mean of the floor measured
        # right before and right after it (the machine is shared; its load drifts).
        orphans, bare_s, _ = _measure(_bare)
        full, full_s, full_peak = _measure(_full)
        _, bare_after_full_s, _ = _measure(_bare)
        _change(n, args.change)
        bare2, bare2_s, _ = _measure(_bare)  # the floor again, on the changed data
        inc, inc_s, inc_peak = _measure(_scheduled)
        _, bare2_after_s, _ = _measure(_bare)
        live_after_inc = Incident.objects.filter(state__in=["open", "acknowledged"]).count()
        check, check_s, _ = _measure(_full)
        _, bare3_s, _ = _measure(_bare)
        load_after = os.getloadavg()
        full_ratio = full_s / ((bare_s + bare_after_full_s) / 2)
        check_ratio = check_s / ((bare2_after_s + bare3_s) / 2)
        inc_ratio = inc_s / ((bare2_s + bare2_after_s) / 2)
        detail = ReconciliationRun.objects.get(pk=inc.run_id).detectors
        full_detail = ReconciliationRun.objects.get(pk=full.run_id).detectors
        modes = sorted({d.get("mode") for name, d in detail.items() if "mode" in d})
        by_type = dict(sorted(
            {t: Incident.objects.filter(type=t).count() for t in Incident.objects.values_list("type", flat=True).distinct()}.items()
        ))  # fmt: skip
        check_ok = check.opened == 0 and check.auto_resolved == 0 and check.found == live_after_inc
        print(f"rows={n} load={load:.1f}s  loadavg {load_before[0]:.2f} -> {load_after[0]:.2f}")
        print(
            f"  bare anti-join        {bare_s:7.2f} s  (after the full pass {bare_after_full_s:.2f} s)  orphans={orphans}"
        )
        print(
            f"  full pass             {full_s:7.2f} s  peak {mb(full_peak)}  RATIO full / bare {full_ratio:5.2f}x  found={full.found}"
        )
        print(
            f"  + {args.change} orders; bare again {bare2_s:7.2f} s (after the scheduled pass {bare2_after_s:.2f} s)  orphans={bare2}"
        )
        print(
            f"  scheduled pass        {inc_s:7.2f} s  peak {mb(inc_peak)}  RATIO scheduled / bare {inc_ratio:5.2f}x  found={inc.found} "
            f"opened={inc.opened} resolved={inc.auto_resolved} modes={modes} changes={detail.get('changes')}"
        )
        print(
            f"  check: full pass      {check_s:7.2f} s  RATIO {check_ratio:5.2f}x (bare after {bare3_s:.2f} s)  found={check.found} "
            f"opened={check.opened} resolved={check.auto_resolved} (live after the scheduled pass: {live_after_inc}) "
            f"{'OK' if check_ok else 'FAILED'}"
        )
        print("  per detector (scheduled): " + ", ".join(
            f"{k} {v['seconds']}" for k, v in detail.items() if "seconds" in v))  # fmt: skip
        print("  per detector (full): " + ", ".join(
            f"{k} {v['seconds']}" for k, v in full_detail.items() if "seconds" in v))  # fmt: skip
        print(f"  incidents by type: {by_type}")
        print(json.dumps({
            "bench": "reconcile_scale", "rows": n, "change": args.change, "merge_plans": args.merge_plans, "concurrent": args.concurrent,
            "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
            "bare_s": [round(x, 3) for x in (bare_s, bare_after_full_s, bare2_s, bare2_after_s, bare3_s)],
            "full_s": [round(full_s, 3), round(check_s, 3)],
            "full_ratio": [round(full_ratio, 2), round(check_ratio, 2)],
            "scheduled_s": round(inc_s, 3), "scheduled_ratio": round(inc_ratio, 2),
            "found": {"full": full.found, "scheduled": inc.found, "check": check.found},
            "check_ok": check_ok,
            "full_per_detector_s": {k: v["seconds"] for k, v in full_detail.items() if "seconds" in v},
            "scheduled_per_detector_s": {k: v["seconds"] for k, v in detail.items() if "seconds" in v},
        }))  # fmt: skip
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"max RSS of the process (loading included): {rss:.0f} MB")


if __name__ == "__main__":
    main()
