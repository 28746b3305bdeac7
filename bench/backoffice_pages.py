"""Back-office pages at scale (issues 7 and 16): server time of every page a support
person and a finance person open, at 10,000,000 orders and 1,000,000 saga runs, against
a floor page measured in the same run.

    BENCH_DATABASE=concord_bench_bo .venv/bin/python bench/backoffice_pages.py \
        [--orders 10000000] [--runs 1000000] [--incidents 200000] [--requests 200] \
        [--reuse] [--keep] [--explain]

Seeds a dedicated database (BENCH_DATABASE, default concord_bench_bo: dropped,
recreated and migrated; never a test database) with INSERT … SELECT generate_series,
the secondary indexes dropped during the load and built after it, then VACUUM ANALYZE:
orders over 90 days (94 % confirmed, 4 % cancelled, 2 % pending, a few cancelling; five
per customer e-mail), a payment and a checkout run for every tenth order (runs: 2 %
failed, 0.3 % compensation_failed, 0.5 % running, 3 % compensated), incidents (5 %
live), reconciliation runs, the search and finance read models, outbox events with
every consumer a little behind (docs/benchmarks.md, "Back office pages").

Then, in this process, Django's test Client (the whole request: URL routing, session
and auth middleware, the role check, the selectors' SQL, template rendering; no
network) GETs each page `--requests` times after a warm-up, as a logged-in support
user (finance for the finance page), with production's keeping of probes (5 s), the
overview's and waiting page's counts (5 s) and finance figures (60 s); the "cold" pages
throw those away before each request (the finance figures: aged past their 60 s, so the
kept ones are served and a refresh queued; the "range never computed" row deletes them
and the refresh lock: the refresh queued, the page saying "being computed"; the
"reloads" row keeps the lock: that page's reloads). Prints
p50/p95/max, SQL queries, the ratio to the floor (the search page with an empty
query: same middleware, login and role check, base template, no domain query) —
requested just before every sample of every page, so each ratio compares the two at
the same moments (a floor measured once, at the start, moved 4.7 → 8.2 ms between two
otherwise alike runs on one machine) —, the load average and a JSON line. Budget: p95 < 100 ms; target: p50 at most 3 times the floor.

PSP_BASE_URL points at a closed local port, so the provider probe is a refused
connection (with a real provider, one health-check round trip per 5 s per process).

Environment: POSTGRES_URL (server, default postgres://postgres@127.0.0.1:5432).
`--reuse` keeps an already seeded database (migrates it, skips the seed); `--keep`
leaves it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = os.environ.get("BENCH_DATABASE", "concord_bench_bo")
BUDGET_MS = 100.0

SEED_SQL = [
    # Orders over 90 days, oldest first.
    """
    INSERT INTO orders_order (client_id, customer_email, currency, total, payment_method,
                              status, failure_reason, created_at, updated_at)
    SELECT 1 + g % 50, 'c' || (g % __CUSTOMERS__) || '@example.com', 'EUR', 10 + (g % 90), 'pm_card_ok',
           CASE WHEN g % 100000 = 99 THEN 'cancelling'
                WHEN g % 100 < 94 THEN 'confirmed' WHEN g % 100 < 98 THEN 'cancelled' ELSE 'pending' END,
           CASE WHEN g % 100 BETWEEN 94 AND 97 OR g % 100000 = 99 THEN 'payment_declined' END,
           now() - interval '90 days' * ((__ORDERS__ - g)::float8 / __ORDERS__),
           now() - interval '90 days' * ((__ORDERS__ - g)::float8 / __ORDERS__) + interval '2 seconds'
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
           CASE WHEN s.status = 'running' AND (o.id / 10) % 2 = 0 THEN now() + interval '30 minutes'
                ELSE o.created_at + interval '30 minutes' END,
           NULL, o.created_at, o.updated_at
    FROM orders_order o
    -- by the run's number (o.id / 10): o.id itself is a multiple of ten here
    CROSS JOIN LATERAL (SELECT CASE
        WHEN (o.id / 10) % 1000 < 20 THEN 'failed'
        WHEN (o.id / 10) % 1000 < 23 THEN 'compensation_failed'
        WHEN (o.id / 10) % 1000 < 28 THEN 'running'
        WHEN (o.id / 10) % 1000 < 58 THEN 'compensated'
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
           now() - interval '90 days' * ((__INCIDENTS__ - g)::float8 / __INCIDENTS__),
           now() - interval '90 days' * ((__INCIDENTS__ - g)::float8 / __INCIDENTS__),
           NULL,
           CASE WHEN g % 100 >= 5 THEN now() - interval '90 days' * ((__INCIDENTS__ - g)::float8 / __INCIDENTS__)
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
    # A payment for every tenth order (those with a checkout run); 1 in 10,000 unknown.
    """
    INSERT INTO payments_payment (order_id, amount, currency, payment_method, status, provider_charge_id,
                                  failure_code, last_error, refunded_amount, created_at, updated_at, provider_key)
    SELECT o.id, o.total, 'EUR', 'pm_card_ok',
           CASE WHEN o.id % 100000 = 10 THEN 'unknown' WHEN o.status = 'cancelled' THEN 'failed' ELSE 'captured' END,
           CASE WHEN o.status = 'confirmed' THEN 'ch_bench_' || o.id END,
           '', '', 0, o.created_at, o.updated_at, 'pay_bench_' || o.id
    FROM orders_order o WHERE o.id % 10 = 0 AND o.id <= __RUNS__ * 10
    """,
    # The search read model: one row per order, as the consumer keeps it.
    """
    INSERT INTO readmodels_ordersearch (order_id, client_id, customer_email, currency, total, status,
        failure_reason, payment_id, payment_status, charge_id, idempotency_key, created_at)
    SELECT o.id, o.client_id, o.customer_email, o.currency, o.total, o.status, coalesce(o.failure_reason, ''),
           p.id, coalesce(p.status, ''), p.provider_charge_id, 'idem-' || o.id, o.created_at
    FROM orders_order o LEFT JOIN payments_payment p ON p.order_id = o.id
    """,
    # The finance read model: one row per day (EUR) over the 90 days.
    """
    INSERT INTO readmodels_financeday (day, currency, orders, captures, revenue, refunds, refunded, incidents,
        money_at_risk, dismissed, dismissed_at_risk, resolved, resolve_seconds)
    SELECT (now() - d * interval '1 day')::date, 'EUR', __ORDERS__ / 90, __ORDERS__ / 95, __ORDERS__ / 90 * 55,
           __ORDERS__ / 9000, __ORDERS__ / 9000 * 55, __INCIDENTS__ / 90, __INCIDENTS__ / 90 * 250,
           __INCIDENTS__ / 900, __INCIDENTS__ / 900 * 250, __INCIDENTS__ / 95, __INCIDENTS__ / 95 * 2400.0
    FROM generate_series(0, 89) AS d
    """,
    # The outbox: 50,000 sequenced events kept, the newest 20 not yet applied by any consumer.
    """
    INSERT INTO outbox_event (id, type, aggregatetype, aggregateid, payload, schema_version, created_at,
                              sequence, sequenced_at)
    SELECT gen_random_uuid(), 'order.placed', 'order', g::text, '{}'::jsonb, 1,
           now() - (50000 - g) * interval '100 milliseconds', g, now() - (50000 - g) * interval '100 milliseconds'
    FROM generate_series(1, 50000) AS g
    """,
    """
    INSERT INTO outbox_consumerstate (name, position, last_delivered_at, last_event_id, attempts,
        next_attempt_at, last_error, failing_since, created_at, updated_at)
    SELECT name, 49980, now() - interval '3 seconds', NULL, 0, NULL, '', NULL, now(), now()
    FROM unnest(ARRAY[__CONSUMERS__]) AS name
    """,
]

# (label, url, role): what a support person and a finance person open. "__ORDER__" is
# replaced by an order that has a payment, a checkout run and incidents; "__EMAIL__" and
# "__CHARGE__" by its customer's e-mail and its charge id.
SEEDED_TABLES = (
    "orders_order",
    "payments_payment",
    "sagas_sagarun",
    "reconciliation_incident",
    "readmodels_ordersearch",
    "outbox_event",
)

PAGES = [
    ("floor: search page, no query", "/backoffice/search/", "support"),
    ("overview", "/backoffice/", "support"),
    ("waiting by state (SLA)", "/backoffice/waiting/", "support"),
    ("stuck sagas (default: oldest first)", "/backoffice/sagas/", "support"),
    (
        "stuck sagas ?status=failed&step=charge_payment",
        "/backoffice/sagas/?status=failed&step=charge_payment",
        "support",
    ),
    (
        "stuck sagas ?error=HTTP 500&sort=attempts",
        "/backoffice/sagas/?error=HTTP+500&sort=attempts",
        "support",
    ),
    ("all sagas ?all=1 (every run)", "/backoffice/sagas/?all=1", "support"),
    (
        "all sagas ?all=1&status=completed&page=20",
        "/backoffice/sagas/?all=1&status=completed&page=20",
        "support",
    ),
    ("incidents (default: live, worst money first)", "/backoffice/incidents/", "support"),
    ("incidents ?state=resolved&sort=newest", "/backoffice/incidents/?state=resolved&sort=newest", "support"),
    (
        "incidents ?type=duplicate_charge&severity=high",
        "/backoffice/incidents/?type=duplicate_charge&severity=high",
        "support",
    ),
    ("search ?q=<customer e-mail>", "/backoffice/search/?q=__EMAIL__", "support"),
    ("search ?q=<charge id>", "/backoffice/search/?q=__CHARGE__", "support"),
    ("search ?status=confirmed (state map link)", "/backoffice/search/?status=confirmed", "support"),
    ("order case file", "/backoffice/orders/__ORDER__/", "support"),
    ("finance (last 30 days)", "/backoffice/finance/", "finance"),
    # The same pages with what they keep a while thrown away before every request: what
    # the first person after the interval waits (probes and counts: 5 s). The finance
    # figures are aged past their 60 s instead: what the first person after the interval
    # sees (the kept figures served, one refresh queued; its lock dropped each time, so
    # every request pays the queueing).
    ("overview, cold (probes not kept)", "/backoffice/", "support", "cold"),
    ("waiting by state, cold (counts not kept)", "/backoffice/waiting/", "support", "cold"),
    ("finance, cold (figures stale, refresh queued)", "/backoffice/finance/", "finance", "stale"),
    # Nothing kept for the range (never opened, or not for a day): never computed while
    # someone waits; the refresh is queued and the page says the figures are being
    # computed. Beat keeps the default range warm in production, so this is another
    # range's first view.
    ("finance, range never computed (being computed)", "/backoffice/finance/", "finance", "never"),
    # The same range's next views while its refresh is queued (the page reloads itself
    # every 3 s): pending at once, no second try.
    ("finance, new range's reloads (being computed)", "/backoffice/finance/", "finance", "pending"),
]


def database_url(server_url: str) -> str:
    return f"{server_url}/{DB_NAME}"


def _migrate(server_url: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url(server_url),
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
        },
        check=True,
    )


def prepare_database(server_url: str, *, reuse: bool) -> bool:
    """(Re)create and migrate the bench database; True if it must be seeded. A reused
    database is migrated too (a new index is built on the seeded rows)."""
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if exists and reuse:
            with psycopg.connect(database_url(server_url)) as db:
                try:
                    seeded = db.execute("SELECT count(*) FROM orders_order").fetchone()[0] > 0
                except psycopg.Error:
                    seeded = False
            if seeded:
                _migrate(server_url)
                return False
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    _migrate(server_url)
    return True


def seed(server_url: str, *, orders: int, runs: int, incidents: int) -> dict[str, float]:
    if runs * 10 > orders:
        raise SystemExit("--runs may be at most --orders / 10 (one run per tenth order)")
    from outbox import registry  # after django_setup: the registered consumers

    timings = {}
    sizes = {
        "__ORDERS__": orders,
        "__RUNS__": runs,
        "__INCIDENTS__": incidents,
        "__CUSTOMERS__": max(1, orders // 5),  # five orders per customer
    }
    consumers = ", ".join(f"'{name}'" for name in registry.names())
    with psycopg.connect(database_url(server_url), autocommit=True) as conn:
        # Secondary indexes are dropped during the load and built after it (a sorted
        # build is several times faster than 10M inserts into each); the primary keys
        # and the constraints' own indexes stay.
        indexes = conn.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = ANY(%s) AND NOT i.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
            [list(SEEDED_TABLES)],
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        for sql in SEED_SQL:
            for token, value in sizes.items():
                sql = sql.replace(token, str(int(value)))
            sql = sql.replace("__CONSUMERS__", consumers)
            started = time.perf_counter()
            conn.execute(sql)  # no parameters: psycopg sends the text as is (% is modulo)
            timings[sql.split("INTO", 1)[1].split("(", 1)[0].strip()] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            conn.execute(definition)
        timings["secondary indexes"] = time.perf_counter() - started
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


def _case_order() -> tuple[int, str, str]:
    """An order with a payment, a checkout run and an incident (the case file's worst
    ordinary case), its customer's e-mail and its charge id."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT o.id, o.customer_email, p.provider_charge_id FROM orders_order o "
            "JOIN payments_payment p ON p.order_id = o.id "
            "JOIN reconciliation_incident i ON i.order_id = o.id "
            "WHERE p.provider_charge_id IS NOT NULL ORDER BY o.id LIMIT 1"
        )
        row = cursor.fetchone()
    if row is None:
        raise SystemExit("no order with a payment and an incident: seed with more incidents")
    return row


def measure(requests: int) -> list[dict]:
    from urllib.parse import quote

    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.signals import request_started
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from backoffice.roles import FINANCE, SUPPORT, staff_create

    settings.ALLOWED_HOSTS = ["*"]
    clients = {}
    for role, name in ((SUPPORT, "bench-support"), (FINANCE, "bench-finance")):
        user = User.objects.filter(username=name).first() or staff_create(
            username=name, role=role, password="bench-pass-1"
        )
        clients[role] = Client()
        clients[role].force_login(user)
    order_id, email, charge = _case_order()
    pages = [
        (
            label,
            url.replace("__ORDER__", str(order_id))
            .replace("__EMAIL__", quote(email))
            .replace("__CHARGE__", quote(charge)),
            role,
            cold[0] if cold else "",
        )
        for label, url, role, *cold in PAGES
    ]
    # Production's defaults (the test settings read every probe afresh).
    settings.BACKOFFICE_PROBE_SECONDS = 5.0
    settings.BACKOFFICE_COUNTS_SECONDS = 5.0  # the overview's and waiting page's counts
    settings.BACKOFFICE_FINANCE_FIGURES_SECONDS = 60.0
    from django.core.cache import cache
    from django.utils import timezone

    from backoffice import finance, probes

    def throw_away() -> None:
        probes.forget()

    def forget_figures() -> None:
        """A range with nothing kept and no refresh queued: its first view."""
        probes.forget()
        key = finance.figures_key(*finance.default_range())
        cache.delete_many([key, key + ":refresh"])

    def figures_pending() -> None:
        """Nothing kept, its refresh queued (the lock held): the first view's reloads."""
        probes.forget()
        key = finance.figures_key(*finance.default_range())
        cache.delete(key)
        cache.set(key + ":refresh", timezone.now(), timeout=60)

    def age_figures() -> None:
        """What a view sees 60 s after the figures were computed: kept, stale, no
        refresh queued yet (the lock dropped: this request queues it); probes expired too."""
        probes.forget()
        key = finance.figures_key(*finance.default_range())
        kept = cache.get(key)
        if kept is None:  # the first time: computed once, outside the samples
            start, end = finance.default_range()
            kept = finance.figures_refresh(start=start, end=end)
        cache.set(key, {**kept, "figures_at": timezone.now() - timedelta(seconds=61)}, timeout=3600)
        cache.delete(key + ":refresh")

    befores = {
        "cold": throw_away,
        "stale": age_figures,
        "never": forget_figures,
        "pending": figures_pending,
    }
    _, floor_url, floor_role, *_ = pages[0]
    floor_client = clients[floor_role]
    results = []
    for label, url, role, cold in pages:
        client = clients[role]
        before = befores.get(cold, lambda: None)
        slow = cold == "cold"
        for _ in range(1 if slow else 10):  # warm-up: connection, template cache, plan cache
            assert client.get(url).status_code == 200, url
        # Django empties connection.queries when a request starts; unhook that while counting.
        request_started.disconnect(reset_queries)
        try:
            before()
            with CaptureQueriesContext(connection) as captured:
                client.get(url)
            query_count = len(captured)  # now: later requests empty connection.queries again
        finally:
            request_started.connect(reset_queries)
        samples = []
        floors = []  # the floor page, requested just before each sample: the same moments
        load = os.getloadavg()[0]
        for _ in range(3 if slow else requests):
            started = time.perf_counter()
            assert floor_client.get(floor_url).status_code == 200
            floors.append((time.perf_counter() - started) * 1000)
            before()
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        samples.sort()
        p50, floor = statistics.median(samples), statistics.median(floors)
        results.append(
            {
                "page": label,
                "url": url,
                "queries": query_count,
                "p50_ms": round(p50, 2),
                "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
                "max_ms": round(samples[-1], 2),
                "floor_p50_ms": round(floor, 2),
                "ratio_p50_to_floor": round(p50 / floor, 2),
                "load": round((load + os.getloadavg()[0]) / 2, 2),
            }
        )
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
                "every saga run, capped count (?all=1)",
                "SELECT count(*) FROM (SELECT 1 FROM sagas_sagarun LIMIT 10001) t",
            ),
            (
                "confirmed orders in the search model, capped count (?status=confirmed)",
                "SELECT count(*) FROM (SELECT 1 FROM readmodels_ordersearch WHERE status = 'confirmed' "
                "LIMIT 10001) t",
            ),
            (
                "search by e-mail (lower() = the index)",
                "SELECT order_id FROM readmodels_ordersearch WHERE lower(customer_email) = 'c370@example.com' "
                "ORDER BY order_id DESC LIMIT 50",
            ),
            (
                "unacknowledged incidents past 15 min (overview, waiting)",
                "SELECT count(*) FROM reconciliation_incident WHERE state = 'open' "
                "AND detected_at < now() - interval '15 minutes'",
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
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--incidents", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--explain", action="store_true", help="print the plans of the heaviest queries")
    args = parser.parse_args()
    server_url = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")

    must_seed = prepare_database(server_url, reuse=args.reuse)
    django_setup(server_url)
    if must_seed:
        print(f"seeding {args.orders:,} orders, {args.runs:,} saga runs, {args.incidents:,} incidents …")
        for table, seconds in seed(
            server_url, orders=args.orders, runs=args.runs, incidents=args.incidents
        ).items():
            print(f"  {table}: {seconds:.1f} s")
    results = measure(args.requests)
    print(
        f"\n{'page':<50} {'SQL':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'floor':>7} {'x floor':>8} {'load':>5}"
    )
    for r in results:
        flag = "" if r["p95_ms"] < BUDGET_MS else "  OVER BUDGET"
        print(
            f"{r['page']:<50} {r['queries']:>4} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['max_ms']:>8.2f} "
            f"{r['floor_p50_ms']:>7.2f} {r['ratio_p50_to_floor']:>8.2f} {r['load']:>5.1f}{flag}"
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
