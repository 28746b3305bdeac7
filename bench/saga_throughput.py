"""Saga throughput: N checkouts through real workers, against a DBOS workflow and a
plain Celery chain doing the same three steps, in one run.

    .venv/bin/python bench/saga_throughput.py [--orders 200] [--concurrency 4]
        [--pool threads|prefork] [--rounds 1] [--compare services|by_hand]

The issue #16 comparisons, one command each (docs/benchmarks.md, "Saga throughput"):

    --compare by_hand --pool prefork --concurrency 2   # (a) target concord/dbos_by_hand >= 1.0
    --compare by_hand --pool threads --concurrency 4   # (b) target >= 1.0
    --compare services --pool threads|prefork          # (c) target concord/dbos >= 1.2

Sets up a dedicated database (concord_bench_saga, dropped and recreated; DBOS's
system tables go in the same database, schema "dbos") and the sandbox provider
(its own database concord_bench_saga_psp, latency 0, no faults), then for each
system places `--orders` orders from this process as fast as it can and waits
until all of them are confirmed:

- concord: order_place (order, payment, saga run: one commit) -> a Celery worker
  (`--pool`, `--concurrency`) runs the checkout saga (leases, step log, checkpoints).
- dbos: order_create + payment_create (one commit), then DBOSClient.enqueue onto a
  queue served by bench/saga_dbos_app.py: a workflow of three @DBOS.step. With
  `--pool threads`, one DBOS process with `--concurrency` workflow threads; with
  `--pool prefork`, `--concurrency` DBOS processes with one each — the same
  parallelism the Celery worker gets.
- dbos_by_hand (`--compare by_hand`): the same order + payment commit and enqueue,
  served by bench/checkout_dbos_by_hand.py: the three steps hand-written in raw SQL
  and one HTTP call, no domain services, no audit rows (the issue's DBOS peer).
  With `--compare by_hand` the Celery worker is the Procfile's (log level INFO,
  gossip, mingle and heartbeat on), with `--pool`/`--concurrency` as given.
- chain: order_create + payment_create (one commit), then on commit a Celery chain
  reserve -> charge -> confirm (bench/saga_chain_tasks.py) on the same worker:
  no durability beyond Celery's own (the floor).

All three call the same domain services (bench/saga_steps.py for the other two).
Reported per system: sagas/s = N / (last confirmation - first placement), and
p50/p99 of placement -> confirmed (the order's created_at -> updated_at; the orders
are placed in a burst, so this includes queueing). Ratios: concord/dbos (target
>= 1.0) and concord/chain.

Environment: POSTGRES_URL (server, default postgres://postgres@127.0.0.1:5432),
CELERY_BROKER_URL (required: a Redis database nobody else uses — its default
queue is purged at the start, and the worker would run anyone's tasks on it),
BENCH_SAGA_DB (database name, default concord_bench_saga; the provider's gets "_psp").
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
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv" / "bin" / "python"
CELERY = ROOT / ".venv" / "bin" / "celery"
# BENCH_SAGA_DB names the databases, so two people can run the bench at once.
DB_NAME = os.environ.get("BENCH_SAGA_DB", "concord_bench_saga")
PSP_DB_NAME = f"{DB_NAME}_psp"
PSP_KEY = "sk_test_bench"
SKUS = ["BENCH-MUG", "BENCH-TEE"]
# Systems measured per comparison, and the target of concord / each peer.
COMPARISONS = {"services": ("concord", "dbos", "chain"), "by_hand": ("concord", "dbos_by_hand")}
TARGETS = {"dbos": 1.2, "dbos_by_hand": 1.0}
# The DBOS process of each peer, and its queue/workflow name.
DBOS_APPS = {"dbos": ("bench/saga_dbos_app.py", "bench_checkout"),
             "dbos_by_hand": ("bench/checkout_dbos_by_hand.py", "bench_checkout_by_hand")}  # fmt: skip


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


class Procs:
    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        log = self.logdir / f"{name}.log"
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc, log

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def wait_for_log(proc: subprocess.Popen, log: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name} exited:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    raise TimeoutError(f"{text!r} not in {log.name}:\n{log.read_text()[-3000:]}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--pool", choices=["threads", "prefork"], default="threads")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--compare",
        choices=sorted(COMPARISONS),
        default="services",
        help="services: concord, dbos (Concord's services), chain; by_hand: concord, dbos_by_hand",
    )
    parser.add_argument(
        "--saga-queue-only",
        action="store_true",
        help="the worker serves only the saga queue (-Q celery), not the events queue: "
        "what the outbox relay and its consumers cost the Procfile worker",
    )
    args = parser.parse_args()

    server = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker:
        parser.error("set CELERY_BROKER_URL to a Redis database of your own (it is purged)")
    database_url = f"{server}/{DB_NAME}"
    psp_port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker,
        "PSP_BASE_URL": f"http://127.0.0.1:{psp_port}",
        "PSP_API_KEY": PSP_KEY,
        # Persistent database connections, as in production (docs/deployment.md) and
        # as DBOS keeps its pool: the default 0 reconnects for every Celery task.
        "CONN_MAX_AGE": "60",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    logdir = Path(os.environ.get("BENCH_LOG_DIR", "/tmp/concord_bench_saga"))
    logdir.mkdir(parents=True, exist_ok=True)
    procs = Procs(logdir)

    print(f"setting up {DB_NAME} and {PSP_DB_NAME} ...", flush=True)
    recreate(server, DB_NAME)
    recreate(server, PSP_DB_NAME)
    subprocess.run([str(PY), "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    psp_env = {
        **env,
        "PSP_DATABASE_URL": f"{server}/{PSP_DB_NAME}",
        "PSP_WEBHOOK_URL": "",
        "PSP_LOG_LEVEL": "WARNING",
    }
    subprocess.run(
        [str(PY), "-m", "sandbox_psp", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=psp_env, check=True
    )
    try:
        run(args, env, psp_env, psp_port, procs, database_url)
    finally:
        procs.stop_all()
        from django.db import connections

        connections.close_all()
        drop(server, DB_NAME)
        drop(server, PSP_DB_NAME)


def run(args, env, psp_env, psp_port, procs: Procs, database_url: str) -> None:
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from decimal import Decimal

    from celery import chain
    from django.db import transaction

    from config.celery_app import app
    from inventory.services import product_upsert, stock_set_on_hand
    from orders.models import Order
    from orders.services import order_create, order_place
    from payments.services import payment_create

    for i, sku in enumerate(SKUS):
        product_upsert(sku=sku, name=sku, price=Decimal("9.50") + i, currency="EUR")
        stock_set_on_hand(sku=sku, on_hand=10_000_000, reason="bench")
    app.control.purge()

    psp, psp_log = procs.start(
        "psp",
        [
            str(PY), "-m", "gunicorn", "sandbox_psp.wsgi", "--bind", f"127.0.0.1:{psp_port}",
            "--worker-class", "gthread", "--workers", "2", "--threads", "8", "--no-control-socket",
            "--log-level", "warning",
        ],
        psp_env,
    )  # fmt: skip
    systems_measured = COMPARISONS[args.compare]
    if args.compare == "by_hand":
        worker_args = procfile_worker(args.pool, args.concurrency)
        if args.saga_queue_only:
            worker_args += ["-Q", "celery"]
    else:
        worker_args = [
            str(CELERY), "-A", "config", "worker", "--loglevel", "WARNING", "--pool", args.pool,
            "--concurrency", str(args.concurrency), "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-I", "bench.saga_chain_tasks",
        ]  # fmt: skip
    worker, worker_log = procs.start("worker", worker_args, env)
    sys_db_url = database_url.replace("postgres://", "postgresql://", 1)
    # Same parallelism for DBOS: threads mode = one process with `concurrency`
    # workflow threads (like the threads worker); prefork mode = `concurrency`
    # processes with one each (like the prefork worker's child processes).
    if args.pool == "threads":
        layout = [(args.concurrency, "bench-0")]
    else:
        layout = [(1, f"bench-{i}") for i in range(args.concurrency)]
    # Whose CPU time counts for each system: the worker's session (its prefork
    # children included) or the peer's DBOS processes.
    sessions: dict[str, list[int]] = {"concord": [worker.pid], "chain": [worker.pid]}
    for peer in (name for name in systems_measured if name in DBOS_APPS):
        script = DBOS_APPS[peer][0]
        for i, (threads, executor_id) in enumerate(layout):
            dbos_proc, dbos_log = procs.start(
                f"{peer}-{i}", [str(PY), script, sys_db_url, str(threads), f"{peer}-{executor_id}"], env
            )
            sessions.setdefault(peer, []).append(dbos_proc.pid)
            wait_for_log(dbos_proc, dbos_log, "dbos ready")
    time.sleep(1.0)  # the worker and the provider finish starting meanwhile
    if worker.poll() is not None or psp.poll() is not None:
        raise RuntimeError(
            f"worker or provider died:\n{worker_log.read_text()[-2000:]}\n{psp_log.read_text()[-2000:]}"
        )

    from dbos import DBOSClient

    dbos_client = DBOSClient(system_database_url=sys_db_url)
    lines = [(SKUS[0], 1), (SKUS[1], 2)]
    common = {
        "client_id": 1,
        "customer_email": "bench@example.com",
        "currency": "EUR",
        "payment_method": "pm_card_ok",
    }

    def place_concord() -> int:
        with transaction.atomic():
            return order_place(lines=lines, **common).id

    def place_dbos(peer: str = "dbos") -> int:
        with transaction.atomic():
            order = order_create(lines=lines, **common)
            payment = payment_create(
                order_id=order.id, amount=order.total, currency="EUR", payment_method="pm_card_ok"
            )
        name = DBOS_APPS[peer][1]
        dbos_client.enqueue({"workflow_name": name, "queue_name": name}, order.id, payment.id)
        return order.id

    def place_chain() -> int:
        with transaction.atomic():
            order = order_create(lines=lines, **common)
            payment = payment_create(
                order_id=order.id, amount=order.total, currency="EUR", payment_method="pm_card_ok"
            )
            flow = chain(
                app.signature("bench.chain_reserve", args=(order.id,), immutable=True),
                app.signature("bench.chain_charge", args=(payment.id,), immutable=True),
                app.signature("bench.chain_confirm", args=(order.id,), immutable=True),
            )
            transaction.on_commit(flow.delay)
        return order.id

    places = {
        "concord": place_concord,
        "dbos": place_dbos,
        "dbos_by_hand": lambda: place_dbos("dbos_by_hand"),
        "chain": place_chain,
    }
    systems = {name: places[name] for name in systems_measured}

    def measure(name: str, n: int) -> dict:
        place = systems[name]
        cpu_before = session_cpu_seconds(sessions[name])
        ids = [place() for _ in range(n)]
        deadline = time.monotonic() + max(120.0, n * 0.5)
        while Order.objects.filter(pk__in=ids, status="confirmed").count() < n:
            if time.monotonic() > deadline:
                stuck = Order.objects.filter(pk__in=ids).exclude(status="confirmed").count()
                raise RuntimeError(f"{name}: {stuck} of {n} orders not confirmed; logs in {procs.logdir}")
            time.sleep(0.05)
        cpu = session_cpu_seconds(sessions[name]) - cpu_before
        rows = list(Order.objects.filter(pk__in=ids).values_list("created_at", "updated_at"))
        latencies = [(u - c).total_seconds() for c, u in rows]
        span = (max(u for _, u in rows) - min(c for c, _ in rows)).total_seconds()
        return {
            "system": name,
            "orders": n,
            "sagas_per_s": n / span,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "load1": os.getloadavg()[0],
            # CPU (user + system) of the system's own processes per saga: the
            # Python work a pool can spread over cores (prefork) or not (threads).
            "cpu_ms_per_saga": cpu * 1000 / n,
        }

    for name in systems:  # warm-up: imports, connection pools, JIT-less caches
        measure(name, 10)
    results: dict[str, list[dict]] = {name: [] for name in systems}
    for round_no in range(args.rounds):
        for name in systems:
            result = measure(name, args.orders)
            results[name].append(result)
            print(
                f"round {round_no + 1} {name:12s} {result['sagas_per_s']:7.1f} sagas/s"
                f"  p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  cpu {result['cpu_ms_per_saga']:5.1f} ms/saga  load {result['load1']:.1f}",
                flush=True,
            )
    summary = {
        name: {
            key: statistics.median(r[key] for r in rs)
            for key in ("sagas_per_s", "p50_ms", "p99_ms", "cpu_ms_per_saga")
        }
        for name, rs in results.items()
    }
    captured = Order.objects.filter(status="confirmed").count()
    print()
    print(f"{'system':13s} {'sagas/s':>9s} {'p50 ms':>9s} {'p99 ms':>9s} {'cpu ms':>9s}")
    for name, s in summary.items():
        print(
            f"{name:13s} {s['sagas_per_s']:9.1f} {s['p50_ms']:9.1f} {s['p99_ms']:9.1f} {s['cpu_ms_per_saga']:9.1f}"
        )
    ratios = {}
    for name in summary:
        if name == "concord":
            continue
        ratio = summary["concord"]["sagas_per_s"] / summary[name]["sagas_per_s"]
        ratios[f"concord/{name}"] = ratio
        target = TARGETS.get(name)
        verdict = (
            f"target >= {target}: {'met' if ratio >= target else 'NOT met'}"
            if target
            else "no durability: the floor"
        )
        print(f"concord/{name:13s} throughput ratio: {ratio:.2f} ({verdict})")
    print(
        json.dumps(
            {
                "bench": "saga_throughput",
                "compare": args.compare,
                "orders": args.orders,
                "concurrency": args.concurrency,
                "pool": args.pool,
                "saga_queue_only": args.saga_queue_only,
                "rounds": args.rounds,
                "confirmed_total": captured,
                "summary": summary,
                "rounds_detail": results,
                "ratios": ratios,
                "loadavg": os.getloadavg(),
            }
        )
    )


def session_cpu_seconds(leaders: list[int]) -> float:
    """User + system CPU seconds of every live process in the sessions led by
    `leaders` (each started with start_new_session), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state ppid pgrp session ... utime(12) stime(13).
        if int(fields[3]) in leaders:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def procfile_worker(pool: str, concurrency: int) -> list[str]:
    """The Procfile's worker command, with the bench's pool and concurrency (and no
    pidfile: a real worker of this checkout may own it)."""
    line = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith("worker:"))
    words = line.split(":", 1)[1].split()
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in ("--pidfile", "--concurrency", "--pool"):
            skip = True
            continue
        out.append(str(ROOT / word) if word.startswith(".venv/") else word)
    return [*out, "--pool", pool, "--concurrency", str(concurrency)]


if __name__ == "__main__":
    main()
