"""Python CPU of happy checkouts in one process (issue 16): where the worker's time goes.

Places N orders (not measured), then runs each checkout's pass with
`sagas.executor.advance_run` — the function the Celery task calls — in this process,
against the sandbox provider as a real process (its own gunicorn and database, latency
0, no faults). Prints the CPU (`time.process_time`) per checkout (p50, mean), the
statements per checkout, and with --profile a cProfile (timer: process CPU) of all
the passes: the top functions by own time and by cumulative time.

    BENCH_PROFILE_DB=concord_<you>_prof .venv/bin/python bench/checkout_cpu_profile.py \
        --orders 100 [--profile] [--settings config.settings.test]

The databases `<BENCH_PROFILE_DB>` and `…_psp` are recreated and dropped.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv" / "bin" / "python"
DB_NAME = os.environ.get("BENCH_PROFILE_DB", "concord_bench_profile")
PSP_KEY = "sk_test_bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recreate(server: str, name: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop(server: str, name: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--settings", default="config.settings.test")
    parser.add_argument("--dump", help="write the raw cProfile stats here")
    parser.add_argument("--show", action="store_true", help="print the statements of the last checkout")
    args = parser.parse_args()

    server = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker:
        parser.error("set CELERY_BROKER_URL to a Redis database of your own")
    psp_db = f"{DB_NAME}_psp"
    psp_port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": args.settings,
        "DATABASE_URL": f"{server}/{DB_NAME}",
        "CELERY_BROKER_URL": broker,
        "PSP_BASE_URL": f"http://127.0.0.1:{psp_port}",
        "PSP_API_KEY": PSP_KEY,
        "CONN_MAX_AGE": "60",
        "PSP_ALLOW_SANDBOX": "true",
    }
    os.environ.update(env)
    recreate(server, DB_NAME)
    recreate(server, psp_db)
    psp = None
    try:
        subprocess.run(
            [str(PY), "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
        )
        psp_env = {
            **env,
            "PSP_DATABASE_URL": f"{server}/{psp_db}",
            "PSP_WEBHOOK_URL": "",
            "PSP_LOG_LEVEL": "WARNING",
        }
        subprocess.run(
            [str(PY), "-m", "sandbox_psp", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=psp_env,
            check=True,
        )
        psp = subprocess.Popen(
            [str(PY), "-m", "gunicorn", "sandbox_psp.wsgi", "--bind", f"127.0.0.1:{psp_port}",
             "--worker-class", "gthread", "--workers", "2", "--threads", "8", "--no-control-socket",
             "--log-level", "warning"],
            cwd=ROOT, env=psp_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", psp_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        measure(args)
    finally:
        if psp is not None and psp.poll() is None:
            os.killpg(psp.pid, signal.SIGTERM)
            psp.wait(10)
        from django.db import connections

        connections.close_all()
        drop(server, DB_NAME)
        drop(server, psp_db)


def measure(args) -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from decimal import Decimal

    from django.db import connection, transaction

    from inventory.services import product_upsert, stock_set_on_hand
    from orders.sagas import CHECKOUT
    from orders.services import order_place
    from sagas.executor import advance_run
    from sagas.selectors import saga_run_for_subject

    for sku, price in (("MUG", "12.50"), ("TEE", "20.00")):
        product_upsert(sku=sku, name=sku, price=Decimal(price), currency="EUR")
        stock_set_on_hand(sku=sku, on_hand=10_000_000, reason="bench")

    def place() -> int:
        with transaction.atomic():
            order = order_place(
                client_id=1,
                customer_email="buyer@example.com",
                currency="EUR",
                payment_method="pm_card_ok",
                lines=[("MUG", 2), ("TEE", 1)],
            )
        return saga_run_for_subject(saga_type=CHECKOUT, subject_id=str(order.id)).id

    statements: list[int] = []
    last: list[str] = []

    def count(execute, sql, params, many, context):
        statements[-1] += 1
        if args.show:
            last.append(sql)
        return execute(sql, params, many, context)

    for _ in range(args.warmup):
        assert advance_run(place(), worker_id="bench") == "completed"
    runs = [place() for _ in range(args.orders)]
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    cpu: list[float] = []
    load = os.getloadavg()[0]
    with connection.execute_wrapper(count):
        for run_id in runs:
            statements.append(0)
            last.clear()
            start = time.process_time()
            if profiler:
                profiler.enable()
            outcome = advance_run(run_id, worker_id="bench")
            if profiler:
                profiler.disable()
            cpu.append((time.process_time() - start) * 1000)
            assert outcome == "completed", outcome
    print(
        f"{args.orders} checkouts: CPU ms/checkout p50 {statistics.median(cpu):.1f} mean {statistics.mean(cpu):.1f} "
        f"min {min(cpu):.1f}; statements/checkout {statistics.median(statements):.0f}; "
        f"load {load:.1f} -> {os.getloadavg()[0]:.1f}" + (" (under cProfile)" if profiler else "")
    )
    if args.show:
        print("\n".join(f"{i + 1:2d} {sql[:220]}" for i, sql in enumerate(last)))
    if profiler:
        if args.dump:
            profiler.dump_stats(args.dump)
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
