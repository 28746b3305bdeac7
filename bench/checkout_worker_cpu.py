"""CPU per checkout of a real Celery worker, and the Celery messages it costs (issue 16).

bench/checkout_cpu_profile.py measures one pass of `advance_run` in-process; this
one measures what the worker spends around it too (Celery's own work per task, the
start_fresh fan-out, the outbox relay and its consumers when the worker serves the
events queue). It places `--orders` orders in a burst (one order_place commit each,
whose on-commit poke starts the checkout, as the API does), waits until every one is
confirmed and prints:

- the worker's CPU (user + system of its whole session, prefork children included)
  per checkout;
- the Celery tasks the worker ran per checkout, by task name (from the worker's own
  "Task … succeeded" log lines, so the worker runs at --loglevel INFO);
- with --py-spy PATH (a py-spy binary), a sampled profile of the worker session:
  the top functions by own and inclusive samples.

    BENCH_WORKER_DB=concord_<you>_worker CELERY_BROKER_URL=redis://127.0.0.1:6379/<yours> \\
        .venv/bin/python bench/checkout_worker_cpu.py --orders 300 \\
        [--worker "--pool threads --concurrency 4 --queues celery,events,bulk"] [--py-spy /path/py-spy]

The default worker is the Procfile's `worker` line (prefork 2, saga queue) plus, when
it leaves the events queue to another process, the Procfile's `events` worker, each
counted apart. The databases `<BENCH_WORKER_DB>` and `…_psp` are recreated and dropped.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.saga_throughput import procfile_process, session_cpu_seconds  # noqa: E402

PY = ROOT / ".venv" / "bin" / "python"
DB_NAME = os.environ.get("BENCH_WORKER_DB", "concord_bench_worker")
PSP_KEY = "sk_test_bench"
TASK_DONE = re.compile(r"Task ([\w.]+)\[[^\]]+\] succeeded")


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
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--worker",
        default="",
        help="extra arguments for the Procfile's worker line (replacing its --pool, --concurrency "
        "and --queues when given); with --queues celery,events,bulk no events worker is started",
    )
    parser.add_argument("--py-spy", dest="py_spy", help="a py-spy binary: sample the worker session")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--logdir", default="/tmp/concord_bench_worker")
    args = parser.parse_args()

    server = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker:
        parser.error("set CELERY_BROKER_URL to a Redis database of your own (it is purged)")
    psp_db = f"{DB_NAME}_psp"
    psp_port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"{server}/{DB_NAME}",
        "CELERY_BROKER_URL": broker,
        "PSP_BASE_URL": f"http://127.0.0.1:{psp_port}",
        "PSP_API_KEY": PSP_KEY,
        "CONN_MAX_AGE": "60",
        "PSP_ALLOW_SANDBOX": "true",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    logdir = Path(args.logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    recreate(server, DB_NAME)
    recreate(server, psp_db)
    procs: list[subprocess.Popen] = []

    def start(name: str, argv: list[str], penv: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        log = logdir / f"{name}.log"
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=penv, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        procs.append(proc)
        return proc, log

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
        start(
            "psp",
            [str(PY), "-m", "gunicorn", "sandbox_psp.wsgi", "--bind", f"127.0.0.1:{psp_port}",
             "--worker-class", "gthread", "--workers", "2", "--threads", "8", "--no-control-socket",
             "--log-level", "warning"],
            psp_env,
        )  # fmt: skip
        extra = shlex.split(args.worker)
        base = without_options(procfile_process("worker"), {o for o in extra if o.startswith("--")})
        workers = {"worker": start("worker", base + extra, env)}
        queues = extra[extra.index("--queues") + 1] if "--queues" in extra else "celery"
        if "events" not in queues:
            workers["events"] = start("events", procfile_process("events"), env)
        measure(args, workers, server)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        from django.db import connections

        connections.close_all()
        drop(server, DB_NAME)
        drop(server, psp_db)


def measure(args, workers: dict[str, tuple[subprocess.Popen, Path]], server: str) -> None:
    import django

    django.setup()
    from decimal import Decimal

    from django.db import transaction

    from inventory.services import product_upsert, stock_set_on_hand
    from orders.models import Order
    from orders.services import order_place

    for sku, price in (("MUG", "12.50"), ("TEE", "20.00")):
        product_upsert(sku=sku, name=sku, price=Decimal(price), currency="EUR")
        stock_set_on_hand(sku=sku, on_hand=10_000_000, reason="bench")
    for name, (proc, log) in workers.items():
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def burst(n: int) -> list[int]:
        ids = []
        for _ in range(n):
            with transaction.atomic():
                ids.append(
                    order_place(
                        client_id=1,
                        customer_email="buyer@example.com",
                        currency="EUR",
                        payment_method="pm_card_ok",
                        lines=[("MUG", 2), ("TEE", 1)],
                    ).id
                )
        deadline = time.monotonic() + max(120.0, n * 0.5)
        while Order.objects.filter(pk__in=ids, status="confirmed").count() < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"orders not confirmed; logs in {args.logdir}")
            time.sleep(0.05)
        return ids

    def tasks_done() -> dict[str, collections.Counter]:
        return {
            name: collections.Counter(TASK_DONE.findall(log.read_text(errors="replace")))
            for name, (_, log) in workers.items()
        }

    def settle() -> None:
        # The relay and its consumers finish the burst's events (their tasks stop coming).
        last, quiet_since = tasks_done(), time.monotonic()
        while time.monotonic() - quiet_since < 2.0:
            time.sleep(0.25)
            now = tasks_done()
            if now != last:
                last, quiet_since = now, time.monotonic()

    burst(args.warmup)
    settle()
    before_tasks = tasks_done()
    before_cpu = {name: session_cpu_seconds([proc.pid]) for name, (proc, _) in workers.items()}
    spies = []
    if args.py_spy:
        for name, (proc, _) in workers.items():
            out = Path(args.logdir) / f"pyspy_{name}.txt"
            spies.append((name, out, subprocess.Popen(
                [args.py_spy, "record", "--pid", str(proc.pid), "--subprocesses", "--rate", "250", "--gil",
                 "--format", "raw", "--nonblocking", "-o", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )))  # fmt: skip
        time.sleep(1.0)
    load = os.getloadavg()[0]
    start = time.monotonic()
    burst(args.orders)
    settle()
    elapsed = time.monotonic() - start
    after_cpu = {name: session_cpu_seconds([proc.pid]) for name, (proc, _) in workers.items()}
    for _, _, spy in spies:
        spy.send_signal(signal.SIGINT)
    for _, _, spy in spies:
        spy.wait(30)
    after_tasks = tasks_done()
    n = args.orders
    total = 0.0
    for name in workers:
        cpu = (after_cpu[name] - before_cpu[name]) * 1000 / n
        total += cpu
        counts = after_tasks[name] - before_tasks[name]
        per = ", ".join(f"{task} {count / n:.2f}" for task, count in sorted(counts.items()))
        print(f"{name:7s} CPU {cpu:5.1f} ms/checkout; tasks/checkout {sum(counts.values()) / n:.2f}: {per}")
    print(
        f"{n} checkouts: worker CPU {total:.1f} ms/checkout (all workers), {n / elapsed:.1f} checkouts/s "
        f"incl. placing and settling; load {load:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    for name, out, _ in spies:
        print(f"\n== py-spy, {name} worker ({out}) ==")
        print_spy(out, args.top)


def without_options(argv: list[str], options: set[str]) -> list[str]:
    """argv without each `--option value` pair whose option is in `options`."""
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word in options:
            skip = True
        else:
            out.append(word)
    return out


def print_spy(path: Path, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        print("no samples")
        return
    print(f"{total} samples; own:")
    for frame, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f}% {frame[:160]}")
    print("inclusive:")
    for frame, n in inclusive.most_common(top * 2):
        print(f"  {100 * n / total:5.1f}% {frame[:160]}")


if __name__ == "__main__":
    main()
