"""API throughput: POST /api/v1/orders/ against a floor endpoint, in one run.

    .venv/bin/python bench/api_throughput.py [--clients 8] [--requests 300] [--rounds 2]

Starts gunicorn (the Procfile's web command: 2 workers x 4 threads) on a free port
against a dedicated database (concord_bench_api, dropped and recreated), then has
`--clients` threads, each with its own keep-alive connection, POST as fast as they
can: unique Idempotency-Keys to orders/ (a real order: catalog read, order, lines,
audit row, payment, saga run, idempotency record, one commit, the worker poke),
and the same JSON to the floor (bench/api_urls.py: DRF view, one INSERT). Rounds
alternate floor and orders so drift hits both. Prints orders/s, p50/p99 and the
ratio (target >= 0.7), and a JSON line for the record.

Environment: POSTGRES_URL (server, default postgres://postgres@127.0.0.1:5432),
CELERY_BROKER_URL (default redis://127.0.0.1:6379/11; the pokes are deleted at
the end). No worker runs: the orders stay pending, which is what the API costs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
DB_NAME = "concord_bench_api"
SKUS = ["BENCH-MUG", "BENCH-TEE", "BENCH-CAP"]

SEED = """
import django; django.setup()
from decimal import Decimal
from django.contrib.auth.models import User
from django.db import connection
from apitokens.services import api_token_issue
from inventory.services import product_upsert, stock_set_on_hand
for i, sku in enumerate(%(skus)r):
    product_upsert(sku=sku, name=sku, price=Decimal("9.50") + i, currency="EUR")
    stock_set_on_hand(sku=sku, on_hand=1_000_000, reason="bench")
with connection.cursor() as c:
    c.execute("CREATE TABLE IF NOT EXISTS bench_floor_insert (id bigserial PRIMARY KEY, "
              "client_id bigint NOT NULL, body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")
user = User.objects.create_user("bench-client")
print(api_token_issue(user=user))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recreate_database(server_url: str) -> None:
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def drop_database(server_url: str) -> None:
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def order_body(n: int) -> dict:
    return {
        "customer_email": f"bench{n}@example.com",
        "currency": "EUR",
        "payment_method": "pm_card_ok",
        "lines": [{"sku": SKUS[0], "quantity": 1 + n % 3}, {"sku": SKUS[1], "quantity": 1}],
    }


def hammer(base: str, path: str, token: str, clients: int, per_client: int) -> dict:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        mine: list[float] = []
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Token {token}"}) as http:
            barrier.wait()
            for n in range(per_client):
                headers = {"Idempotency-Key": str(uuid.uuid4())}
                t0 = time.perf_counter()
                response = http.post(path, json=order_body(i * per_client + n), headers=headers)
                mine.append(time.perf_counter() - t0)
                if response.status_code != 201:
                    with lock:
                        failures.append(f"{response.status_code} {response.text[:200]}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "failures": failures,
    }


def merge(runs: list[dict]) -> dict:
    # Throughput over the summed time; percentiles from the per-round values (median of rounds).
    total = sum(r["requests"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    return {
        "requests": total,
        "per_second": total / seconds,
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "failures": sum(len(r["failures"]) for r in runs),
        "first_failure": next((r["failures"][0] for r in runs if r["failures"]), None),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=300, help="per client and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    server_url = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.api_settings",
        "DATABASE_URL": f"{server_url}/{DB_NAME}",
        "CELERY_BROKER_URL": broker,
        "API_THROTTLE_RATE": "100000000/min",  # the bench measures work, not the throttle
        "CONN_MAX_AGE": "60",  # persistent DB connections, as in production
        "PYTHONPATH": str(ROOT),
    }
    recreate_database(server_url)
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    token = (
        subprocess.run(
            [PY, "-c", SEED % {"skus": SKUS}], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [GUNICORN, "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
         "--threads", str(args.threads), "--no-control-socket", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("gunicorn did not come up")
        # Warm up both endpoints (imports, connections, caches) before measuring.
        hammer(base, "/bench/floor/", token, args.clients, 20)
        hammer(base, "/api/v1/orders/", token, args.clients, 20)
        floor_runs, order_runs = [], []
        for _ in range(args.rounds):
            floor_runs.append(hammer(base, "/bench/floor/", token, args.clients, args.requests))
            order_runs.append(hammer(base, "/api/v1/orders/", token, args.clients, args.requests))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    floor, orders = merge(floor_runs), merge(order_runs)
    ratio = orders["per_second"] / floor["per_second"]
    print(
        f"clients={args.clients} gunicorn={args.workers}x{args.threads} requests/endpoint={orders['requests']}"
    )
    for name, r in (("floor (1 INSERT)", floor), ("POST orders/", orders)):
        print(
            f"{name:18} {r['per_second']:8.1f}/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms"
            f"  failures {r['failures']}"
        )
    print(f"ratio orders/floor = {ratio:.2f} (target >= 0.7)")
    print(json.dumps({"floor": floor, "orders": orders, "ratio": round(ratio, 3), "args": vars(args)}))

    try:
        import redis

        redis.Redis.from_url(broker).delete("celery")  # the pokes nobody consumed
    except Exception as exc:  # noqa: BLE001 - cleanup only
        print(f"(could not purge the broker queue: {exc})", file=sys.stderr)
    drop_database(server_url)
    return 0 if floor["failures"] == 0 and orders["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
