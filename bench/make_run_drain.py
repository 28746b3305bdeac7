"""Drain rate of a burst of orders on `make run`: its own servers vs servers named.

    .venv/bin/python bench/make_run_drain.py [--orders 200] [--clients 8] [--rounds 1]
        [--modes default,named] [--single-worker]

Each round runs `make run` twice, each time in a fresh copy of the tree (the suite's
virtualenv linked in), and sends the same burst through the API: `--orders` orders
from `--clients` concurrent clients (one sku or two each, every tenth with a declined
card), then waits until every order is confirmed or cancelled.

- default: no DATABASE_URL / CELERY_BROKER_URL, as on a fresh machine: make run
  starts its own PostgreSQL and Redis under var/ (CONCORD_ENGINES=own, free ports;
  on a machine with servers on 5432/6379 the default would simply use those, which
  is the "named" case);
- named:   DATABASE_URL / CELERY_BROKER_URL name the machine's PostgreSQL
  (POSTGRES_URL, default postgres://postgres@127.0.0.1:5432; database
  concord_bench_drain and its _psp twin, recreated) and Redis (BENCH_REDIS_URL,
  default redis://127.0.0.1:6379/13).

`make run` runs the Procfile: the saga worker (`worker`, -Q celery) and the events
worker (`events`, -Q events,bulk). `--single-worker` runs the copy's Procfile as it was
before 2026-11-30 instead (its worker on every queue, no events worker), to compare.

Drain rate = orders / (first POST -> last order terminal). Prints both rates, the
ratio default/named (expected ~1: the same engines) and the load average around the
runs, then one JSON line for the record. API_THROTTLE_RATE is raised in both modes:
the bench measures the checkout, not the throttle.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.engines import free_port  # noqa: E402
from tests.fixtures.make_run import (  # noqa: E402
    MakeRun,
    clean_copy,
    make_tree,
    place_orders,
    run_env,
    wait_terminal,
)

DB_NAME = os.environ.get("BENCH_DRAIN_DB", "concord_bench_drain")


def recreate_databases(server_url: str) -> None:
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        for name in (DB_NAME, f"{DB_NAME}_psp"):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')


def drop_databases(server_url: str) -> None:
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        for name in (DB_NAME, f"{DB_NAME}_psp"):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def one_run(mode: str, args: argparse.Namespace, server_url: str, redis_url: str) -> dict:
    base = make_tree("concord-bench-")
    tree = clean_copy(base / "concord", venv=ROOT / ".venv")
    if args.single_worker:
        single_worker_procfile(tree / "Procfile")
    env = run_env(WEB_PORT=str(free_port()), PSP_PORT=str(free_port()), API_THROTTLE_RATE="1000000/min")
    if mode == "default":
        env.update(
            CONCORD_ENGINES="own", CONCORD_PG_PORT=str(free_port()), CONCORD_REDIS_PORT=str(free_port())
        )
    else:
        recreate_databases(server_url)
        env.update(DATABASE_URL=f"{server_url}/{DB_NAME}", CELERY_BROKER_URL=redis_url)
    run = MakeRun.start(tree, env, base / "make-run.log")
    try:
        ready_in = run.wait_ready()
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        burst = place_orders(f"{run.web_url}/api/v1", run.token, count=args.orders, clients=args.clients)
        if burst.errors:
            raise SystemExit(f"{mode}: the burst failed: {burst.errors[:3]}")
        accepted = time.monotonic() - started
        with run.api() as api:
            wait_terminal(api, {o["id"] for o in burst.orders}, timeout=600, poll=0.2)
        drained = time.monotonic() - started
        engines = [
            line for line in run.output().splitlines() if line.startswith(("Database  ", "Broker    "))
        ]
        return {
            "mode": mode,
            "engines": engines,
            "ready_seconds": round(ready_in, 1),
            "accepted_per_second": round(args.orders / accepted, 1),
            "drained_seconds": round(drained, 2),
            "drain_per_second": round(args.orders / drained, 2),
            "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2),
        }
    finally:
        run.stop()
        shutil.rmtree(base, ignore_errors=True)


def single_worker_procfile(path: Path) -> None:
    """The Procfile before the events worker: `worker` without its --queues (every
    queue), no `events` line."""
    lines = [
        re.sub(r" --queues \S+", "", line) if line.startswith("worker:") else line
        for line in path.read_text().splitlines()
        if not line.startswith("events:")
    ]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", default="default,named", help="which runs, comma-separated")
    parser.add_argument(
        "--single-worker",
        action="store_true",
        help="one worker on every queue (the Procfile before 2026-11-30), not the Procfile's two",
    )
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if not set(modes) <= {"default", "named"} or not modes:
        parser.error("--modes: default, named or both")
    server_url = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")

    runs = []
    try:
        for _ in range(args.rounds):
            for mode in modes:
                result = one_run(mode, args, server_url, redis_url)
                runs.append(result)
                print(
                    f"{mode:8} {result['drain_per_second']:6.2f} orders/s drained "
                    f"({result['drained_seconds']} s; accepted {result['accepted_per_second']}/s; "
                    f"ready in {result['ready_seconds']} s; load {result['load_before']} -> {result['load_after']})",
                    flush=True,
                )
                for line in result["engines"]:
                    print(f"         {line}")
    finally:
        drop_databases(server_url)

    rate = {
        mode: statistics.median(r["drain_per_second"] for r in runs if r["mode"] == mode) for mode in modes
    }
    ratio = rate["default"] / rate["named"] if len(rate) == 2 else None
    print(
        "drain rate: "
        + ", ".join(f"{mode} {value:.2f}/s" for mode, value in rate.items())
        + (f", ratio {ratio:.2f} (expected ~1)" if ratio is not None else "")
    )
    print(json.dumps({"bench": "make_run_drain", "orders": args.orders, "clients": args.clients,
                      "workers": "single" if args.single_worker else "procfile",
                      "ratio": ratio and round(ratio, 3), "runs": runs}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
