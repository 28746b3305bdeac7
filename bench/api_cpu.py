"""Python CPU per request of the four endpoints of bench/api_throughput.py, in-process.

    .venv/bin/python bench/api_cpu.py [--requests 300] [--rounds 10] [--profile orders]

Django's test Client (the whole middleware, DRF, the views; no network, no
gunicorn) against a dedicated database (BENCH_API_DB, default
concord_bench_api_cpu: recreated and dropped). Prints process CPU ms per request
(time.process_time: this process only, so the machine's load barely moves it;
PostgreSQL's and Redis's own work is not in it), wall ms, and the SQL statements
and transactions each request made. `--profile NAME` prints cProfile's top
functions for that endpoint. `--rounds N` splits the requests into N rounds that
rotate the endpoints and reports the median round's CPU (and the lowest): on a
machine other jobs share, a burst then hits every endpoint, not just one. A JSON
line ends the output.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB_NAME = os.environ.get("BENCH_API_DB", "concord_bench_api_cpu")
SERVER = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--profile", default=None, choices=["orders", "floor", "bare", "guarantee"])
    parser.add_argument("--settings", default="bench.api_settings")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="split the requests into rounds that rotate the endpoints; cpu_ms is the median "
        "round (other jobs' bursts hit every endpoint alike)",
    )
    args = parser.parse_args()

    from bench.api_throughput import ENDPOINTS, SEED, SKUS, order_body

    os.environ.update(
        DJANGO_SETTINGS_MODULE=args.settings,
        DATABASE_URL=f"{SERVER}/{DB_NAME}",
        API_THROTTLE_RATE="100000000/s",
        CONN_MAX_AGE="60",
    )
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    token = (
        subprocess.run(
            [sys.executable, "-c", SEED % {"skus": SKUS}],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )

    import django

    django.setup()
    from celery.signals import before_task_publish
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    published: list[str] = []
    before_task_publish.connect(lambda sender=None, **_: published.append(str(sender)), weak=False)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    counter = iter(range(10**9))

    def post(name: str) -> None:
        n = next(counter)
        response = client.post(
            ENDPOINTS[name],
            data=json.dumps(order_body(n)),
            content_type="application/json",
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 201, response.content

    results: dict[str, dict] = {}
    for name in ENDPOINTS:
        for _ in range(30):  # warm-up
            post(name)
        with CaptureQueriesContext(connection) as ctx:
            post(name)
        sql = [q["sql"] for q in ctx.captured_queries]
        results[name] = {
            "statements": len(sql),
            "commits": sum(1 for s in sql if s.strip().upper().startswith("COMMIT")),
        }
    rounds = max(1, args.rounds)
    per_round = max(1, args.requests // rounds)
    cpu_rounds: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
    wall_total = dict.fromkeys(ENDPOINTS, 0.0)
    sent = dict.fromkeys(ENDPOINTS, 0)
    profilers = {name: cProfile.Profile(time.process_time) for name in ENDPOINTS if name == args.profile}
    names = list(ENDPOINTS)
    for index in range(rounds):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            profiler = profilers.get(name)
            published.clear()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            for _ in range(per_round):
                post(name)
            if profiler:
                profiler.disable()
            cpu_rounds[name].append(1000 * (time.process_time() - cpu0) / per_round)
            wall_total[name] += time.perf_counter() - wall0
            sent[name] += len(published)
    for name in ENDPOINTS:
        n = per_round * rounds
        results[name] = {
            "cpu_ms": round(statistics.median(cpu_rounds[name]), 3),
            "cpu_ms_min": round(min(cpu_rounds[name]), 3),
            "wall_ms": round(1000 * wall_total[name] / n, 3),
            **results[name],
            # Celery messages sent during the measured requests (the pokes), per request.
            "publishes": round(sent[name] / n, 3),
        }
        profiler = profilers.get(name)
        if profiler:
            profiler.dump_stats(f"api_cpu_{name}.prof")  # for pstats / snakeviz
            stats = pstats.Stats(profiler).sort_stats("cumulative")
            stats.print_stats(
                r"/work/|celery|kombu|redis|rest_framework/(views|request|serializers|fields)", 80
            )
    connection.close()
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    for name, r in results.items():
        print(
            f"{name:9} cpu {r['cpu_ms']:6.2f} ms/request (min round {r['cpu_ms_min']:.2f})  "
            f"wall {r['wall_ms']:6.2f} ms  "
            f"statements {r['statements']}  publishes {r['publishes']}/request"
        )
    print(
        f"cpu ratio bare/orders = {results['bare']['cpu_ms'] / results['orders']['cpu_ms']:.3f}, "
        f"floor/orders = {results['floor']['cpu_ms'] / results['orders']['cpu_ms']:.3f}, "
        f"guarantee/orders = {results['guarantee']['cpu_ms'] / results['orders']['cpu_ms']:.3f}, "
        f"floor/guarantee = {results['floor']['cpu_ms'] / results['guarantee']['cpu_ms']:.3f}"
    )
    print(json.dumps({"bench": "api_cpu", **results, "load": os.getloadavg()[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
