"""Saga throughput: N checkouts through real workers, against a DBOS workflow and a
plain Celery chain doing the same three steps, in one run.

    .venv/bin/python bench/saga_throughput.py [--orders 200] [--concurrency 4]
        [--pool threads|prefork] [--rounds 1] [--compare services|by_hand]

The issue #16 comparisons, one command each (docs/benchmarks.md, "Saga throughput"):

    --compare by_hand --pool prefork --concurrency 2   # (a) target concord/dbos_by_hand >= 1.0
    --compare by_hand --pool threads --concurrency 4   # (b) target >= 1.0
    --compare services --pool threads|prefork          # (c) target concord/dbos >= 1.2
    --compare by_hand_guarantees --pool prefork --concurrency 2   # the note's measure:
        # concord, the plain by-hand peer and the guarantee peer in one run
    --single-worker   # with by_hand[_guarantees]: one worker on every queue (before
        # 2026-11-30 the Procfile's), instead of the Procfile's worker + events worker

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
  With `--compare by_hand` the Celery workers are the Procfile's (log level INFO,
  gossip, mingle and heartbeat on): `worker` on the saga queue with `--pool`/
  `--concurrency` as given, and `events` (the events and bulk queues) as the
  Procfile runs it; both count as Concord's CPU.
- dbos_guarantees (`--compare by_hand_guarantees`, beside dbos_by_hand): served by
  bench/checkout_dbos_guarantees.py, the same hand-written steps also writing every
  row Concord's checkout writes for its guarantees (ledger, provider attempt, audit
  rows, stock movements, outbox events; each transition re-read under lock). Its
  events are then delivered in this process by Concord's own relay pass and
  notification sender, reported apart (delivery CPU per saga). The run ends with
  the rows each system wrote per checkout, per table.
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
import contextlib
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
COMPARISONS = {
    "services": ("concord", "dbos", "chain"),
    "by_hand": ("concord", "dbos_by_hand"),
    # The guarantee peer (bench/checkout_dbos_guarantees.py) beside the plain one:
    # what Concord's guarantees cost on the fastest engine, and Concord's distance to it.
    "by_hand_guarantees": ("concord", "dbos_by_hand", "dbos_guarantees"),
}
TARGETS = {"dbos": 1.2, "dbos_by_hand": 1.0}
# Comparisons whose Concord worker is the Procfile's.
PROCFILE_COMPARISONS = ("by_hand", "by_hand_guarantees")
# The by-hand peers' events (order.placed from the placement, and the guarantee
# peer's payment.captured and order.confirmed) are delivered by the bench after each
# of their rounds, not poked to Concord's worker (which would deliver them uncounted).
RECORDS_EVENTS = ("dbos_by_hand", "dbos_guarantees")
# The DBOS process of each peer, and its queue/workflow name.
DBOS_APPS = {"dbos": ("bench/saga_dbos_app.py", "bench_checkout"),
             "dbos_by_hand": ("bench/checkout_dbos_by_hand.py", "bench_checkout_by_hand"),
             "dbos_guarantees": ("bench/checkout_dbos_guarantees.py", "bench_checkout_guarantees")}  # fmt: skip


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
        help="services: concord, dbos (Concord's services), chain; by_hand: concord, dbos_by_hand; "
        "by_hand_guarantees: concord, dbos_by_hand, dbos_guarantees (the hand-written peer writing "
        "every row Concord's guarantees require)",
    )
    parser.add_argument(
        "--saga-queue-only",
        action="store_true",
        help="the worker serves only the saga queue (-Q celery), not the events queue: "
        "what the outbox relay and its consumers cost the Procfile worker",
    )
    parser.add_argument(
        "--single-worker",
        action="store_true",
        help="one worker serves every queue (the Procfile's worker line without its -Q and no "
        "events worker: the Procfile before 2026-11-30), for comparison with the default",
    )
    parser.add_argument(
        "--events-pool",
        choices=["solo", "prefork", "threads"],
        default=None,
        help="the events worker's pool instead of the Procfile's (its concurrency stays 1)",
    )
    args = parser.parse_args()
    if args.saga_queue_only and (args.single_worker or args.compare == "by_hand_guarantees"):
        # Nobody would relay Concord's events; the guarantee peer's relay drain would.
        parser.error("--saga-queue-only goes with --compare by_hand only (and not --single-worker)")

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
    events_worker = None
    if args.compare in PROCFILE_COMPARISONS:
        # The Procfile's worker (saga queue), with the bench's pool and concurrency; every
        # queue with --single-worker. Its events worker as is, unless --single-worker or
        # --saga-queue-only (nobody relays Concord's events then).
        worker_args = procfile_process("worker", pool=args.pool, concurrency=args.concurrency,
                                       every_queue=args.single_worker)  # fmt: skip
        if not (args.single_worker or args.saga_queue_only):
            events_worker, _ = procs.start(
                "events_worker",
                procfile_process(
                    "events", pool=args.events_pool, concurrency=1 if args.events_pool else None
                ),
                env,
            )
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
    if events_worker is not None:
        sessions["concord"].append(events_worker.pid)
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
        # The by-hand peers' order.placed is delivered by the bench's relay drain.
        unpoked = (
            mock.patch("outbox.services.poke_on_commit", return_value=None)
            if peer in RECORDS_EVENTS
            else contextlib.nullcontext()
        )
        with unpoked, transaction.atomic():
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
        "dbos_guarantees": lambda: place_dbos("dbos_guarantees"),
        "chain": place_chain,
    }
    systems = {name: places[name] for name in systems_measured}

    from unittest import mock

    import redis

    from outbox.models import Event
    from outbox.relay import relay_pass

    broker_client = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    # With --saga-queue-only nobody serves the events queue: its tasks stay queued.
    served_queues = ("celery",) if args.saga_queue_only else ("celery", "events", "bulk")

    def settle() -> None:
        """Wait until no task is queued or running, so a round's CPU is its own:
        the previous round's relays and notification sends are done."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            queued = sum(broker_client.llen(q) for q in served_queues)
            if not queued and not broker_client.hlen("unacked"):
                return
            time.sleep(0.2)
        print("settle: tasks still queued after 120 s", flush=True)

    def relay_drain() -> tuple[int, float]:
        """The delivery of a peer's events (the peer only records them), in this
        process: Concord's own relay pass until no event is left to sequence, then
        the notification sender its consumer would poke (not poked: sent here, so
        the worker does not do it uncounted). Returns the events sequenced and the
        CPU seconds it took."""
        from notifications.sending import send_pending

        before = time.process_time()
        sequenced = 0
        with mock.patch("notifications.consumer.poke_sender", return_value=None):
            while True:
                result = relay_pass()
                sequenced += result.sequenced
                if not result.more and not Event.objects.filter(sequence__isnull=True).exists():
                    break
        # The worker logs each e-mail to its log file; here it goes nowhere.
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            send_pending()
        return sequenced, time.process_time() - before

    last_ids: dict[str, list[int]] = {}

    def measure(name: str, n: int) -> dict:
        place = systems[name]
        settle()
        cpu_before = session_cpu_seconds(sessions[name])
        db_before = database_cpu_ticks(DB_NAME)
        ids = [place() for _ in range(n)]
        deadline = time.monotonic() + max(120.0, n * 0.5)
        while Order.objects.filter(pk__in=ids, status="confirmed").count() < n:
            if time.monotonic() > deadline:
                stuck = Order.objects.filter(pk__in=ids).exclude(status="confirmed").count()
                raise RuntimeError(f"{name}: {stuck} of {n} orders not confirmed; logs in {procs.logdir}")
            time.sleep(0.05)
        cpu = session_cpu_seconds(sessions[name]) - cpu_before
        db_cpu = database_cpu_since(db_before)
        rows = list(Order.objects.filter(pk__in=ids).values_list("created_at", "updated_at"))
        latencies = [(u - c).total_seconds() for c, u in rows]
        span = (max(u for _, u in rows) - min(c for c, _ in rows)).total_seconds()
        relay_ms = relay_db_ms = None
        if name in RECORDS_EVENTS:
            db_before_drain = database_cpu_ticks(DB_NAME)
            _, relay_cpu = relay_drain()
            relay_ms = relay_cpu * 1000 / n
            relay_db_ms = database_cpu_since(db_before_drain) * 1000 / n
            # Every checkout recorded its order.confirmed event, and the drain sequenced it.
            confirmed_events = Event.objects.filter(
                type="order.confirmed", aggregate_id__in=[str(i) for i in ids], sequence__isnull=False
            ).count()
            if name == "dbos_guarantees" and confirmed_events != n:
                raise RuntimeError(
                    f"{name}: {confirmed_events} order.confirmed events relayed for {n} checkouts"
                )
        last_ids[name] = ids
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
            # PostgreSQL's CPU for the bench database (its backends, placement included).
            "db_cpu_ms_per_saga": db_cpu * 1000 / n,
            # Peers that only record events: CPU per saga of relaying them afterwards
            # (Concord's relay pass in the bench process), not in cpu_ms_per_saga.
            "relay_cpu_ms_per_saga": relay_ms,
            "relay_db_cpu_ms_per_saga": relay_db_ms,
        }

    for name in systems:  # warm-up: imports, connection pools, JIT-less caches
        measure(name, 10)
    results: dict[str, list[dict]] = {name: [] for name in systems}
    for round_no in range(args.rounds):
        for name in systems:
            result = measure(name, args.orders)
            results[name].append(result)
            print(
                f"round {round_no + 1} {name:15s} {result['sagas_per_s']:7.1f} sagas/s"
                f"  p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  cpu {result['cpu_ms_per_saga']:5.1f} ms/saga"
                + (
                    f" (+ delivery {result['relay_cpu_ms_per_saga']:.1f}, db {result['relay_db_cpu_ms_per_saga']:.1f})"
                    if result["relay_cpu_ms_per_saga"]
                    else ""
                )
                + f"  db cpu {result['db_cpu_ms_per_saga']:5.1f} ms/saga  load {result['load1']:.1f}",
                flush=True,
            )
    summary = {
        name: {
            key: statistics.median(r[key] for r in rs)
            for key in ("sagas_per_s", "p50_ms", "p99_ms", "cpu_ms_per_saga", "db_cpu_ms_per_saga")
        }
        for name, rs in results.items()
    }
    for name, rs in results.items():
        if name in RECORDS_EVENTS:
            for key in ("relay_cpu_ms_per_saga", "relay_db_cpu_ms_per_saga"):
                summary[name][key] = statistics.median(r[key] for r in rs)
    captured = Order.objects.filter(status="confirmed").count()
    inventory = {name: rows_per_checkout(ids) for name, ids in last_ids.items()}
    print("rows written per checkout (last round; placement's own rows excluded):")
    tables = sorted({table for rows in inventory.values() for table in rows})
    print(f"  {'table':28s}" + "".join(f"{name:>16s}" for name in inventory))
    for table in tables:
        print(f"  {table:28s}" + "".join(f"{inventory[name].get(table, 0):16.2f}" for name in inventory))
    print()
    print(f"{'system':15s} {'sagas/s':>9s} {'p50 ms':>9s} {'p99 ms':>9s} {'cpu ms':>9s} {'db cpu ms':>9s}")
    for name, s in summary.items():
        print(
            f"{name:15s} {s['sagas_per_s']:9.1f} {s['p50_ms']:9.1f} {s['p99_ms']:9.1f} {s['cpu_ms_per_saga']:9.1f} {s['db_cpu_ms_per_saga']:9.1f}"
        )
    ratios = {}
    for name in summary:
        if name == "concord":
            continue
        ratio = summary["concord"]["sagas_per_s"] / summary[name]["sagas_per_s"]
        ratios[f"concord/{name}"] = ratio
        target = TARGETS.get(name)
        if target:
            verdict = f"target >= {target}: {'met' if ratio >= target else 'NOT met'}"
        elif name == "dbos_guarantees":
            verdict = "the hand-written peer writing every row Concord's guarantees require"
        else:
            verdict = "no durability: the floor"
        print(f"concord/{name:13s} throughput ratio: {ratio:.2f} ({verdict})")
    if "dbos_guarantees" in summary:
        g, plain, c = summary["dbos_guarantees"], summary["dbos_by_hand"], summary["concord"]
        ratios["dbos_guarantees/dbos_by_hand"] = g["sagas_per_s"] / plain["sagas_per_s"]
        ratios["cpu concord/dbos_by_hand"] = c["cpu_ms_per_saga"] / plain["cpu_ms_per_saga"]
        ratios["cpu concord/dbos_guarantees"] = c["cpu_ms_per_saga"] / g["cpu_ms_per_saga"]
        ratios["cpu dbos_guarantees/dbos_by_hand"] = g["cpu_ms_per_saga"] / plain["cpu_ms_per_saga"]
        print(
            f"dbos_guarantees/dbos_by_hand throughput ratio: {ratios['dbos_guarantees/dbos_by_hand']:.2f} "
            "(what the guarantees cost on DBOS)"
        )
        print(
            "CPU per saga, concord/dbos_by_hand {:.2f}, concord/dbos_guarantees {:.2f}, "
            "dbos_guarantees/dbos_by_hand {:.2f}; the guarantee peer's events delivered after each round (relay + notification sends): "
            "{:.1f} ms/saga more".format(
                ratios["cpu concord/dbos_by_hand"],
                ratios["cpu concord/dbos_guarantees"],
                ratios["cpu dbos_guarantees/dbos_by_hand"],
                g["relay_cpu_ms_per_saga"],
            )
        )
    print(
        json.dumps(
            {
                "bench": "saga_throughput",
                "compare": args.compare,
                "orders": args.orders,
                "concurrency": args.concurrency,
                "pool": args.pool,
                "saga_queue_only": args.saga_queue_only,
                "workers": "single" if args.single_worker else "procfile",
                "events_worker": events_worker is not None,
                "events_pool": args.events_pool or "procfile",
                "rounds": args.rounds,
                "confirmed_total": captured,
                "summary": summary,
                "rounds_detail": results,
                "ratios": ratios,
                "rows_per_checkout": inventory,
                "loadavg": os.getloadavg(),
            }
        )
    )


def rows_per_checkout(order_ids: list[int]) -> dict[str, float]:
    """Rows the checkout of these orders wrote (INSERTed, or UPDATEd for the rows it
    moves), per table, divided by the number of orders: the row inventory of one
    checkout. The placement's rows (order, lines, payment, the order's first audit
    row, order.placed) are left out: every system writes them before the checkout."""
    from django.db import connection

    n = len(order_ids)
    queries = {
        "inventory_reservation": "SELECT count(*) FROM inventory_reservation WHERE order_id = ANY(%(o)s)",
        "inventory_stockmovement": "SELECT count(*) FROM inventory_stockmovement WHERE order_id = ANY(%(o)s)",
        "payments_providerattempt": "SELECT count(*) FROM payments_providerattempt a JOIN payments_payment p "
        "ON p.id = a.payment_id WHERE p.order_id = ANY(%(o)s)",
        "payments_ledgertransaction": "SELECT count(*) FROM payments_ledgertransaction t JOIN payments_payment p "
        "ON p.id = t.payment_id WHERE p.order_id = ANY(%(o)s)",
        "payments_ledgerentry": "SELECT count(*) FROM payments_ledgerentry e JOIN payments_ledgertransaction t "
        "ON t.id = e.transaction_id JOIN payments_payment p ON p.id = t.payment_id WHERE p.order_id = ANY(%(o)s)",
        "statelog: reservations": "SELECT count(*) FROM django_fsm_log_statelog l JOIN django_content_type c "
        "ON c.id = l.content_type_id AND c.model = 'reservation' JOIN inventory_reservation r "
        "ON r.id = l.object_id WHERE r.order_id = ANY(%(o)s)",
        "statelog: payment": "SELECT count(*) FROM django_fsm_log_statelog l JOIN django_content_type c "
        "ON c.id = l.content_type_id AND c.model = 'payment' JOIN payments_payment p "
        "ON p.id = l.object_id WHERE p.order_id = ANY(%(o)s) AND l.transition <> 'create'",
        "statelog: order": "SELECT count(*) FROM django_fsm_log_statelog l JOIN django_content_type c "
        "ON c.id = l.content_type_id AND c.model = 'order' WHERE l.object_id = ANY(%(o)s) AND l.state <> 'pending'",
        "statelog: saga run": "SELECT count(*) FROM django_fsm_log_statelog l JOIN django_content_type c "
        "ON c.id = l.content_type_id AND c.model = 'sagarun' JOIN sagas_sagarun s ON s.id = l.object_id "
        "WHERE s.subject_id = ANY(%(s)s) AND l.state <> 'running'",
        "sagas_sagasteplog": "SELECT count(*) FROM sagas_sagasteplog g JOIN sagas_sagarun s ON s.id = g.run_id "
        "WHERE s.subject_id = ANY(%(s)s)",
        "outbox_event": "SELECT count(*) FROM outbox_event WHERE "
        "(type = 'order.confirmed' AND aggregateid = ANY(%(s)s)) OR (type = 'payment.captured' AND aggregateid IN "
        "(SELECT id::text FROM payments_payment WHERE order_id = ANY(%(o)s)))",
    }
    out = {}
    with connection.cursor() as cursor:
        for table, sql in queries.items():
            cursor.execute(sql, {"o": order_ids, "s": [str(i) for i in order_ids]})
            out[table] = cursor.fetchone()[0] / n
    return out


def database_cpu_ticks(name: str) -> dict[int, int]:
    """CPU ticks (user + system) of each live PostgreSQL backend connected to the
    database `name` (same machine), by pid, from /proc: the server's share."""
    marker = f" {name} ".encode()
    ticks = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
            if not cmdline.startswith(b"postgres: ") or marker not in cmdline:
                continue
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return ticks


def database_cpu_since(before: dict[int, int]) -> float:
    """CPU seconds the bench database's backends spent since `before`
    (database_cpu_ticks): each live backend's increase, new ones whole. A backend
    that exits meanwhile (a connection past CONN_MAX_AGE) takes its last seconds
    with it: a lower bound."""
    now = database_cpu_ticks(DB_NAME)
    return sum(t - before.get(pid, 0) for pid, t in now.items()) / os.sysconf("SC_CLK_TCK")


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


def procfile_process(
    name: str, *, pool: str | None = None, concurrency: int | None = None, every_queue: bool = False
) -> list[str]:
    """The Procfile's `name` line as a command: with the bench's pool and concurrency if
    given, without its --queues if `every_queue`, and never its pidfile (a real worker of
    this checkout may own it)."""
    line = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith(f"{name}:"))
    words = line.split(":", 1)[1].split()
    if words[0] == "exec":  # under honcho's `sh -c` it makes the program replace the shell; here no shell
        words = words[1:]
    dropped = {"--pidfile"}
    if pool:
        dropped.add("--pool")
    if concurrency:
        dropped.add("--concurrency")
    if every_queue:
        dropped.update(("--queues", "-Q"))
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in dropped:
            skip = True
            continue
        out.append(str(ROOT / word) if word.startswith(".venv/") else word)
    if concurrency:
        out += ["--concurrency", str(concurrency)]
    if pool:
        out += ["--pool", pool]
    return out


if __name__ == "__main__":
    main()
