"""Back-office pages at scale (issue 7): server time of the overview, stuck-saga and
incident pages with 1,000,000 orders and 100,000 saga runs, against a floor page.

    .venv/bin/python bench/backoffice_pages.py [--orders 1000000] [--runs 100000]
        [--incidents 20000] [--requests 200] [--reuse] [--keep]

Seeds a dedicated database (concord_bench_bo: dropped, recreated and migrated; never a
test database) with INSERT … SELECT generate_series — orders over 90 days (94 %
confirmed, 4 % cancelled, 2 % pending), checkout saga runs for every tenth order
(2 % failed, 0.3 % compensation_failed, 0.5 % running of which half past their SLA,
3 % compensated, the rest completed), incidents (5 % live) and reconciliation runs —
then ANALYZEs. Then, in this process, Django's test Client (the whole request: URL
routing, session and auth middleware, the role check, the selectors' SQL, template
rendering; no network) GETs each page `--requests` times after a warm-up, as a
logged-in support user, and prints p50/p95/max and the ratio to the floor: the
search page with an empty query (same middleware, login and role check, base
template, no domain query). Budget: p95 < 100 ms.

The overview probes the provider's /healthz; here PSP_BASE_URL points at a closed
local port, so the probe is a refused connection (well under a millisecond). With a
real provider the overview adds that round trip (at most
BACKOFFICE_PROVIDER_PROBE_TIMEOUT, 0.5 s).

Environment: POSTGRES_URL (server, default postgres://postgres@127.0.0.1:5432).
`--reuse` keeps an already seeded database (skips the seed); `--keep` leaves it.
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

import psycopg

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = "concord_bench_bo"
BUDGET_MS = 100.0

SEED_SQL = [
    # Orders over 90 days, oldest first.
    """
    INSERT INTO orders_order (client_id, customer_email, currency, total, payment_method,
                              status, failure_reason, created_at, updated_at)
    SELECT 1 + g % 50, 'c' || g || '@example.com', 'EUR', 10 + (g % 90), 'pm_card_ok',
           CASE WHEN g % 100 < 94 THEN 'confirmed' WHEN g % 100 < 98 THEN 'cancelled' ELSE 'pending' END,
           CASE WHEN g % 100 BETWEEN 94 AND 97 THEN 'payment_declined' END,
           now() - (__ORDERS__ - g) * interval '7776 milliseconds' * 1000000 / __ORDERS__,
           now() - (__ORDERS__ - g) * interval '7776 milliseconds' * 1000000 / __ORDERS__ + interval '2 seconds'
    FROM generate_series(1, __ORDERS__) AS g
    """,
    # One checkout run for every tenth order (subject = order id).
    """
    INSERT INTO sagas_sagarun (saga_type, subject_id, status, step_index, step, direction, attempts,
                               next_attempt_at, lease_owner, lease_expires_at, last_error, failure_code,
                               context, abort_requested, sla_at, swept_at, created_at, updated_at)
    SELECT 'checkout', (o.id)::text, s.status,
           CASE WHEN s.status IN ('failed', 'running') THEN 1 ELSE 0 END,
           CASE WHEN s.status IN ('failed', 'running') THEN 'charge_payment'
                WHEN s.status = 'compensation_failed' THEN 'release_stock' ELSE '' END,
           CASE WHEN s.status LIKE 'compensat%' THEN 'backward' ELSE 'forward' END,
           CASE WHEN s.status IN ('failed', 'compensation_failed') THEN 10 ELSE 0 END,
           CASE WHEN s.status = 'running' THEN o.created_at + interval '1 minute' END,
           '', NULL,
           CASE WHEN s.status IN ('failed', 'running') THEN 'charge transient: HTTP 500: provider_error Simulated failure'
                WHEN s.status = 'compensation_failed' THEN 'refund refused: HTTP 402 refund_declined' ELSE '' END,
           CASE WHEN s.status LIKE 'compensat%' THEN 'payment_declined' ELSE '' END,
           '{}'::jsonb, false,
           -- half of the running runs are past their SLA (stuck), half are fresh
           CASE WHEN s.status = 'running' AND o.id % 2 = 0 THEN now() + interval '30 minutes'
                ELSE o.created_at + interval '30 minutes' END,
           NULL, o.created_at, o.updated_at
    FROM orders_order o
    CROSS JOIN LATERAL (SELECT CASE
        WHEN o.id % 1000 < 20 THEN 'failed'
        WHEN o.id % 1000 < 23 THEN 'compensation_failed'
        WHEN o.id % 1000 < 28 THEN 'running'
        WHEN o.id % 1000 < 58 THEN 'compensated'
        ELSE 'completed' END AS status) s
    WHERE o.id % 10 = 0 AND o.id <= __RUNS__ * 10
    """,
    # Incidents over the same 90 days; 5 % still live.
    """
    INSERT INTO reconciliation_incident (type, severity, state, fingerprint, order_id, payment_id, charge_id,
        sku, saga_run_id, amount_at_risk, currency, details, detected_at, last_seen_at, acknowledged_at,
        resolved_at, resolution_kind, resolution_reason, reopened_count)
    SELECT (ARRAY['duplicate_charge','charge_without_order','refund_missing','stock_drift','stuck_saga'])[1 + g % 5],
           (ARRAY['low','medium','high','critical'])[1 + g % 4],
           CASE WHEN g % 100 < 4 THEN 'open' WHEN g % 100 < 5 THEN 'acknowledged'
                WHEN g % 100 < 90 THEN 'resolved' ELSE 'dismissed' END,
           'bench:' || g, g * 37, NULL, 'ch_bench_' || g, NULL, NULL, (g % 500) + 0.5, 'EUR', '{}'::jsonb,
           now() - (__INCIDENTS__ - g) * interval '388 seconds' * 20000 / __INCIDENTS__,
           now() - (__INCIDENTS__ - g) * interval '388 seconds' * 20000 / __INCIDENTS__,
           NULL,
           CASE WHEN g % 100 >= 5 THEN now() - (__INCIDENTS__ - g) * interval '388 seconds' * 20000 / __INCIDENTS__
                + interval '40 minutes' END,
           CASE WHEN g % 100 >= 90 THEN 'dismissed' WHEN g % 100 >= 5 THEN 'auto' ELSE '' END,
           CASE WHEN g % 100 >= 5 THEN 'bench' ELSE '' END, 0
    FROM generate_series(1, __INCIDENTS__) AS g
    """,
    """
    INSERT INTO reconciliation_reconciliationrun (started_at, finished_at, status, rows_scanned, found,
                                                  opened, auto_resolved, errors, detectors)
    SELECT now() - g * interval '1 minute', now() - g * interval '1 minute' + interval '3 seconds',
           'succeeded', 1000000, 3, 1, 1, '[]'::jsonb, '[]'::jsonb
    FROM generate_series(1, 2000) AS g
    """,
]

PAGES = [
    ("floor: search page, no query", "/backoffice/search/"),
    ("overview", "/backoffice/"),
    ("stuck sagas (default: oldest first)", "/backoffice/sagas/"),
    (
        "stuck sagas ?status=failed&step=charge_payment",
        "/backoffice/sagas/?status=failed&step=charge_payment",
    ),
    ("stuck sagas ?error=HTTP 500&sort=attempts", "/backoffice/sagas/?error=HTTP+500&sort=attempts"),
    ("incidents (default: live, worst money first)", "/backoffice/incidents/"),
    ("incidents ?state=resolved&sort=newest", "/backoffice/incidents/?state=resolved&sort=newest"),
]


def database_url(server_url: str) -> str:
    return f"{server_url}/{DB_NAME}"


def prepare_database(server_url: str, *, reuse: bool) -> bool:
    """(Re)create and migrate the bench database; True if it must be seeded."""
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if exists and reuse:
            with psycopg.connect(database_url(server_url)) as db:
                try:
                    if db.execute("SELECT count(*) FROM orders_order").fetchone()[0] > 0:
                        return False
                except psycopg.Error:
                    pass
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url(server_url)},
        check=True,
    )
    return True


def seed(server_url: str, *, orders: int, runs: int, incidents: int) -> dict[str, float]:
    if runs * 10 > orders:
        raise SystemExit("--runs may be at most --orders / 10 (one run per tenth order)")
    timings = {}
    sizes = {"__ORDERS__": orders, "__RUNS__": runs, "__INCIDENTS__": incidents}
    with psycopg.connect(database_url(server_url), autocommit=True) as conn:
        for sql in SEED_SQL:
            for token, value in sizes.items():
                sql = sql.replace(token, str(int(value)))
            started = time.perf_counter()
            conn.execute(sql)  # no parameters: psycopg sends the text as is (% is modulo)
            timings[sql.split("INTO", 1)[1].split("(", 1)[0].strip()] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        timings["vacuum analyze"] = time.perf_counter() - started
    return timings


def django_setup(server_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url(server_url)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    os.environ["PSP_BASE_URL"] = "http://127.0.0.1:9"  # closed port: the probe is refused at once
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def measure(requests: int) -> list[dict]:
    from django.conf import settings
    from django.core.signals import request_started
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from backoffice.roles import SUPPORT, staff_create

    settings.ALLOWED_HOSTS = ["*"]
    from django.contrib.auth.models import User

    user = User.objects.filter(username="bench-support").first() or staff_create(
        username="bench-support", role=SUPPORT, password="bench-pass-1"
    )
    client = Client()
    client.force_login(user)
    results = []
    for label, url in PAGES:
        for _ in range(10):  # warm-up: connection, template cache, plan cache
            assert client.get(url).status_code == 200, url
        # Django empties connection.queries when a request starts; unhook that while counting.
        request_started.disconnect(reset_queries)
        try:
            with CaptureQueriesContext(connection) as captured:
                client.get(url)
            query_count = len(captured)  # now: later requests empty connection.queries again
        finally:
            request_started.connect(reset_queries)
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        samples.sort()
        results.append(
            {
                "page": label,
                "url": url,
                "queries": query_count,
                "p50_ms": round(statistics.median(samples), 2),
                "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
                "max_ms": round(samples[-1], 2),
            }
        )
    floor = results[0]["p50_ms"]
    for r in results:
        r["ratio_p50_to_floor"] = round(r["p50_ms"] / floor, 2)
    return results


def explain() -> None:
    """The plans of the pages' heaviest queries, for the record."""
    from django.db import connection

    with connection.cursor() as cursor:
        for title, sql in (
            (
                "saga state summary (overview)",
                "SELECT status, count(id), min(updated_at) FROM sagas_sagarun GROUP BY status",
            ),
            (
                "stuck sagas, oldest first",
                "SELECT id FROM sagas_sagarun WHERE (status IN ('failed','compensation_failed') OR "
                "(status IN ('running','compensating') AND sla_at <= now())) ORDER BY created_at, id LIMIT 50",
            ),
            (
                "live incidents, worst money first",
                "SELECT id FROM reconciliation_incident WHERE state IN ('open','acknowledged') "
                "ORDER BY amount_at_risk DESC, detected_at, id LIMIT 50",
            ),
        ):
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY ON) " + sql)
            plan = "\n    ".join(row[0] for row in cursor.fetchall())
            print(f"  {title}:\n    {plan}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--incidents", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--explain", action="store_true", help="print the plans of the heaviest queries")
    args = parser.parse_args()
    server_url = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")

    must_seed = prepare_database(server_url, reuse=args.reuse)
    if must_seed:
        print(f"seeding {args.orders:,} orders, {args.runs:,} saga runs, {args.incidents:,} incidents …")
        for table, seconds in seed(
            server_url, orders=args.orders, runs=args.runs, incidents=args.incidents
        ).items():
            print(f"  {table}: {seconds:.1f} s")
    django_setup(server_url)
    results = measure(args.requests)
    print(f"\n{'page':<50} {'SQL':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'x floor':>8}")
    for r in results:
        flag = "" if r["p95_ms"] < BUDGET_MS else "  OVER BUDGET"
        print(
            f"{r['page']:<50} {r['queries']:>4} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['max_ms']:>8.2f} "
            f"{r['ratio_p50_to_floor']:>8.2f}{flag}"
        )
    if args.explain:
        explain()
    print(
        json.dumps(
            {"bench": "backoffice_pages", "orders": args.orders, "runs": args.runs, "results": results}
        )
    )
    if not args.keep:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
