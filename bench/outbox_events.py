"""The outbox, measured: relay throughput, end-to-end lag at a steady order rate, and
what the outbox costs the accepting path, each next to a floor from the same run.

    .venv/bin/python bench/outbox_events.py relay [--events 20000]
    .venv/bin/python bench/outbox_events.py lag [--rate 50] [--seconds 30]
    .venv/bin/python bench/outbox_events.py api [--clients 8] [--requests 150] [--rounds 2]
    .venv/bin/python bench/outbox_events.py notify [--threads 4] [--transactions 500]
    .venv/bin/python bench/outbox_events.py readmodels [--events 30000] [--rate 100] [--seconds 20]
    .venv/bin/python bench/outbox_events.py all

- relay: N events recorded (100 per transaction), then sequenced and dispatched to a
  no-op consumer in this process (outbox.relay). Floor: reading the same rows once in
  keyset batches and moving a cursor row per batch (the least any relay must do).
- lag: the whole stack (gunicorn web 2x4, the Procfile's two Celery workers — the saga
  worker with --concurrency, the events worker — beat, the sandbox provider) with orders POSTed at a steady --rate
  (open loop) for --seconds. A probe consumer (bench/outbox_probe.py) stores when each
  event was applied; lag = applied - recorded, p50/p99 per type. Also place ->
  confirmed (the checkout, started by the direct after-commit poke) and the relay lag
  of order.placed, which is what starting the checkout from the outbox would add.
- api: POST orders/ throughput with the outbox and without it (bench/api_settings_no_outbox:
  the order.placed event switched off), each against the floor endpoint of
  bench/api_throughput.py in the same rounds.
- readmodels: the throughput INTO the read models (readmodels.consumer: finance and
  search, their real handlers and statements) — N events of the checkout's mix (per
  order: order.placed; payment.captured and order.confirmed; every 10th order also
  payment.refunded) recorded and sequenced, then each consumer dispatched until caught
  up (outbox.relay.consumer_dispatch, its batch size). Peer, same events, same batches,
  same transaction per batch and cursor UPDATE: each event the consumer handles applied
  by ONE bare `INSERT ... ON CONFLICT DO UPDATE` into a table of the model's key and
  columns (what any per-event consumer must do at least); floor: one multi-row
  `INSERT ... ON CONFLICT` per batch. Then lag: orders recorded at a steady --rate
  (orders/s; 2 transactions each, as placed and confirmed are) for --seconds while this
  process relays in a loop (sequence, then each consumer one batch; 10 ms sleep when
  idle, where production is poked per commit): lag = commit of the consumer's batch -
  event's created_at, p50/p99, for a no-op consumer on the same stream (the relay's
  own part: dispatched first), then finance, then search (each also waits for the
  batches dispatched before it in the loop).
- notify: what LISTEN/NOTIFY would cost writers: small committing transactions from
  --threads connections with and without pg_notify(), and one idle poll of the relay.

Environment: POSTGRES_URL (server, default postgres://postgres@127.0.0.1:5432),
CELERY_BROKER_URL (required for lag and api: a Redis database of your own; it is
purged), BENCH_OUTBOX_DB (database name, default concord_bench_outbox; "_psp", "_api" and "_rm"
suffixes for the others). Prints a JSON line per part, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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
sys.path.insert(0, str(ROOT))

from bench import api_throughput as api  # noqa: E402
from bench.saga_throughput import Procs, drop, free_port, percentile, procfile_process, recreate  # noqa: E402

PY = ROOT / ".venv" / "bin" / "python"
CELERY = ROOT / ".venv" / "bin" / "celery"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
DB_NAME = os.environ.get("BENCH_OUTBOX_DB", "concord_bench_outbox")
SERVER = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _django(database: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.api_settings",
            "DATABASE_URL": f"{SERVER}/{database}",
            "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        }
    )
    import django

    django.setup()


# --- relay --------------------------------------------------------------------------


def relay(args) -> dict:
    recreate(SERVER, DB_NAME)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.api_settings",
        "DATABASE_URL": f"{SERVER}/{DB_NAME}",
    }
    subprocess.run([str(PY), "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    try:
        _django(DB_NAME)
        from django.db import connection, transaction

        import outbox.services
        from outbox import registry
        from outbox.dto import NewEvent
        from outbox.relay import consumer_dispatch, sequence_pending

        outbox.services.poke_on_commit = lambda: None  # this process relays itself: no Celery
        for name in registry.names():
            registry.unregister(name)
        registry.register(registry.Consumer("bench-noop", lambda event: None, batch_size=args.batch))
        payload = {
            "object": {"object": "order", "id": 1, "status": "confirmed", "total": "25.00", "lines": []}
        }
        for start in range(0, args.events, 100):
            with transaction.atomic():
                outbox.services.events_record(
                    NewEvent("order.confirmed", "order", start + i, payload)
                    for i in range(min(100, args.events - start))
                )

        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_cursor (id int PRIMARY KEY, position bigint NOT NULL)")
            cursor.execute("INSERT INTO bench_cursor VALUES (1, 0)")
        t0 = time.perf_counter()
        last, read = 0, 0
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT serial, payload FROM outbox_event WHERE serial > %s ORDER BY serial LIMIT %s",
                    [last, args.batch],
                )
                rows = cursor.fetchall()
                if not rows:
                    break
                last, read = rows[-1][0], read + len(rows)
                cursor.execute("UPDATE bench_cursor SET position = %s WHERE id = 1", [last])
        floor_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        while sequence_pending(limit=1000):
            pass
        sequence_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        applied = 0
        while True:
            result = consumer_dispatch("bench-noop", limit=args.batch)
            applied += result.applied
            if result.caught_up:
                break
        dispatch_s = time.perf_counter() - t0
        assert applied == args.events == read, (applied, read)
        relay_per_s = args.events / (sequence_s + dispatch_s)
        floor_per_s = read / floor_s
        result = {
            "part": "relay",
            "events": args.events,
            "batch": args.batch,
            "sequence_per_s": round(args.events / sequence_s),
            "dispatch_per_s": round(args.events / dispatch_s),
            "relay_per_s": round(relay_per_s),
            "floor_per_s": round(floor_per_s),
            "ratio": round(relay_per_s / floor_per_s, 2),
            "loadavg": _load(),
        }
        print(
            f"relay: {result['relay_per_s']} events/s (sequencing {result['sequence_per_s']}/s, "
            f"dispatch to a no-op consumer {result['dispatch_per_s']}/s); floor {result['floor_per_s']}/s; "
            f"ratio {result['ratio']}"
        )
        return result
    finally:
        from django.db import connections

        connections.close_all()
        drop(SERVER, DB_NAME)


# --- lag at a steady rate -------------------------------------------------------------


def lag(args) -> dict:
    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker:
        raise SystemExit("set CELERY_BROKER_URL to a Redis database of your own (it is purged)")
    psp_db, psp_port, web_port = f"{DB_NAME}_psp", free_port(), free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.api_settings",
        "DATABASE_URL": f"{SERVER}/{DB_NAME}",
        "CELERY_BROKER_URL": broker,
        "PSP_BASE_URL": f"http://127.0.0.1:{psp_port}",
        "PSP_API_KEY": "sk_test_bench",
        "API_THROTTLE_RATE": "100000000/min",
        "CONN_MAX_AGE": "60",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "RECONCILE_INTERVAL": "3600",
        "PYTHONUNBUFFERED": "1",
    }
    psp_env = {
        **env,
        "PSP_DATABASE_URL": f"{SERVER}/{psp_db}",
        "PSP_WEBHOOK_URL": "",
        "PSP_LOG_LEVEL": "WARNING",
    }
    recreate(SERVER, DB_NAME)
    recreate(SERVER, psp_db)
    subprocess.run([str(PY), "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [str(PY), "-m", "sandbox_psp", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=psp_env, check=True
    )
    token = (
        subprocess.run([str(PY), "-c", api.SEED % {"skus": api.SKUS}], cwd=ROOT, env=env, check=True,
                       capture_output=True, text=True).stdout.strip().splitlines()[-1]
    )  # fmt: skip
    logdir = Path(os.environ.get("BENCH_LOG_DIR", "/tmp/concord_bench_outbox"))
    logdir.mkdir(parents=True, exist_ok=True)
    procs = Procs(logdir)
    try:
        with psycopg.connect(f"{SERVER}/{DB_NAME}", autocommit=True) as conn:
            from bench.outbox_probe import CREATE_PROBE_TABLE

            conn.execute(CREATE_PROBE_TABLE)
        subprocess.run([str(CELERY), "-A", "config", "purge", "-f"], cwd=ROOT, env=env, capture_output=True)
        procs.start("psp", [str(GUNICORN), "sandbox_psp.wsgi", "--bind", f"127.0.0.1:{psp_port}",
                            "--worker-class", "gthread", "--workers", "1", "--threads", "8",
                            "--no-control-socket", "--log-level", "warning"], psp_env)  # fmt: skip
        procs.start("web", [str(GUNICORN), "config.wsgi", "--bind", f"127.0.0.1:{web_port}", "--workers", "2",
                            "--threads", "4", "--no-control-socket", "--log-level", "warning"], env)  # fmt: skip
        # The Procfile's two workers (the saga worker on `celery` with --concurrency, the
        # events worker on `events,bulk`), each importing the probe consumer: one worker
        # on every queue made the relay wait behind checkout chunks (sagas.advance_many).
        quiet = ["--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        workers = []
        for name in ("worker", "events"):
            command = procfile_process(name, concurrency=args.concurrency if name == "worker" else None)
            workers.append(procs.start(name, [*command, *quiet, "-I", "bench.outbox_probe"], env))
        procs.start("beat", [str(CELERY), "-A", "config", "beat", "--loglevel", "WARNING",
                             "--schedule", str(logdir / "beat-schedule")], env)  # fmt: skip
        base = f"http://127.0.0.1:{web_port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        time.sleep(3)  # the worker and beat finish starting
        for worker, worker_log in workers:
            if worker.poll() is not None:
                raise RuntimeError(worker_log.read_text()[-3000:])

        total = int(args.rate * args.seconds)
        late: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        next_index = iter(range(total))
        started = time.perf_counter() + 0.5

        def client() -> None:
            with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Token {token}"}) as http:
                while True:
                    with lock:
                        n = next(next_index, None)
                    if n is None:
                        return
                    due = started + n / args.rate
                    wait = due - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    response = http.post("/api/v1/orders/", json=api.order_body(n),
                                         headers={"Idempotency-Key": str(uuid.uuid4())})  # fmt: skip
                    with lock:
                        late.append(max(0.0, -wait))
                        if response.status_code != 201:
                            failures.append(f"{response.status_code} {response.text[:200]}")

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent_s = time.perf_counter() - started
        # Let everything drain: every order terminal and every event applied by the probe.
        deadline = time.monotonic() + 180
        with psycopg.connect(f"{SERVER}/{DB_NAME}", autocommit=True) as conn:
            while time.monotonic() < deadline:
                pending = conn.execute(
                    "SELECT (SELECT count(*) FROM orders_order WHERE status IN ('pending', 'cancelling')),"
                    " (SELECT count(*) FROM outbox_event e WHERE NOT EXISTS"
                    "  (SELECT 1 FROM bench_outbox_lag p WHERE p.event_id = e.id))"
                ).fetchone()
                if pending == (0, 0):
                    break
                time.sleep(0.5)
            rows = conn.execute(
                "SELECT type, extract(epoch FROM applied_at - recorded_at) FROM bench_outbox_lag"
            ).fetchall()
            confirm = [
                r[0]
                for r in conn.execute(
                    "SELECT extract(epoch FROM updated_at - created_at) FROM orders_order WHERE status = 'confirmed'"
                ).fetchall()
            ]
            statuses = dict(
                conn.execute("SELECT status, count(*) FROM orders_order GROUP BY status").fetchall()
            )
        by_type: dict[str, list[float]] = {}
        for event_type, seconds in rows:
            by_type.setdefault(event_type, []).append(float(seconds))
        everything = [s for values in by_type.values() for s in values]

        def summary(values: list[float]) -> dict:
            return {"n": len(values), "p50_ms": round(percentile(values, 0.5) * 1000, 1),
                    "p99_ms": round(percentile(values, 0.99) * 1000, 1)}  # fmt: skip

        result = {
            "part": "lag",
            "rate_asked": args.rate,
            "rate_sent": round(total / sent_s, 1),
            "orders": total,
            "failures": len(failures),
            "first_failure": failures[0] if failures else None,
            "client_late_p99_ms": round(percentile(late, 0.99) * 1000, 1) if late else 0,
            "statuses": statuses,
            "lag_all": summary(everything),
            "lag_by_type": {t: summary(v) for t, v in sorted(by_type.items())},
            "place_to_confirmed": summary([float(c) for c in confirm]) if confirm else None,
            "loadavg": _load(),
        }
        print(
            f"lag at {result['rate_sent']} orders/s for {args.seconds}s: all events p50 "
            f"{result['lag_all']['p50_ms']} ms, p99 {result['lag_all']['p99_ms']} ms (n={result['lag_all']['n']}); "
            f"place->confirmed p50 {result['place_to_confirmed'] and result['place_to_confirmed']['p50_ms']} ms"
        )
        for t, s in result["lag_by_type"].items():
            print(f"  {t:20s} n={s['n']:6d} p50 {s['p50_ms']:8.1f} ms  p99 {s['p99_ms']:8.1f} ms")
        return result
    finally:
        procs.stop_all()
        try:
            import redis

            redis.Redis.from_url(broker).delete("celery", "events")
        except Exception as exc:  # noqa: BLE001 - cleanup only
            print(f"(could not purge the broker queue: {exc})", file=sys.stderr)
        drop(SERVER, DB_NAME)
        drop(SERVER, psp_db)


# --- POST orders/ with and without the outbox ---------------------------------------------


def api_cost(args) -> dict:
    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker:
        raise SystemExit("set CELERY_BROKER_URL to a Redis database of your own (it is purged)")
    database = f"{DB_NAME}_api"
    env = {
        **os.environ,
        "DATABASE_URL": f"{SERVER}/{database}",
        "CELERY_BROKER_URL": broker,
        "API_THROTTLE_RATE": "100000000/min",
        "CONN_MAX_AGE": "60",
        "PYTHONPATH": str(ROOT),
    }
    recreate(SERVER, database)
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    try:
        env_on = {**env, "DJANGO_SETTINGS_MODULE": "bench.api_settings"}
        subprocess.run([str(PY), "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env_on, check=True)
        token = (
            subprocess.run([str(PY), "-c", api.SEED % {"skus": api.SKUS}], cwd=ROOT, env=env_on, check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()[-1]
        )  # fmt: skip
        for name, settings_module in (
            ("with", "bench.api_settings"),
            ("without", "bench.api_settings_no_outbox"),
        ):
            port = free_port()
            proc = subprocess.Popen(
                [str(GUNICORN), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
                 "--no-control-socket", "--log-level", "warning"],
                cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": settings_module},
            )  # fmt: skip
            servers[name] = (proc, f"http://127.0.0.1:{port}")
        for _, base in servers.values():
            for _ in range(100):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            api.hammer(base, "/bench/floor/", token, args.clients, 20)
            api.hammer(base, "/api/v1/orders/", token, args.clients, 20)
        runs: dict[str, list[dict]] = {"floor": [], "with": [], "without": []}
        for round_no in range(args.rounds):
            runs["floor"].append(
                api.hammer(servers["with"][1], "/bench/floor/", token, args.clients, args.requests)
            )
            # Alternate which goes first, so load drifting during a round hits both alike.
            for name in ("without", "with") if round_no % 2 == 0 else ("with", "without"):
                runs[name].append(
                    api.hammer(servers[name][1], "/api/v1/orders/", token, args.clients, args.requests)
                )
        merged = {name: api.merge(r) for name, r in runs.items()}
        floor = merged["floor"]["per_second"]
        result = {
            "part": "api",
            "clients": args.clients,
            "floor_per_s": round(floor, 1),
            "with_outbox_per_s": round(merged["with"]["per_second"], 1),
            "without_outbox_per_s": round(merged["without"]["per_second"], 1),
            "ratio_with_floor": round(merged["with"]["per_second"] / floor, 3),
            "ratio_without_floor": round(merged["without"]["per_second"] / floor, 3),
            "with_over_without": round(merged["with"]["per_second"] / merged["without"]["per_second"], 3),
            "p99_ms": {name: round(m["p99_ms"], 1) for name, m in merged.items()},
            "failures": sum(m["failures"] for m in merged.values()),
            "loadavg": _load(),
        }
        print(
            f"POST orders/: with the outbox {result['with_outbox_per_s']}/s, without {result['without_outbox_per_s']}/s "
            f"(with/without {result['with_over_without']}); floor {result['floor_per_s']}/s; "
            f"ratios to the floor {result['ratio_with_floor']} / {result['ratio_without_floor']}"
        )
        return result
    finally:
        for proc, _ in servers.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        try:
            import redis

            redis.Redis.from_url(broker).delete("celery", "events")
        except Exception as exc:  # noqa: BLE001
            print(f"(could not purge the broker queue: {exc})", file=sys.stderr)
        drop(SERVER, database)


# --- LISTEN/NOTIFY vs polling -------------------------------------------------------------


def notify(args) -> dict:
    database = f"{DB_NAME}_notify"
    recreate(SERVER, database)
    url = f"{SERVER}/{database}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id bigserial PRIMARY KEY, body text)")

        def writers(with_notify: bool) -> float:
            barrier = threading.Barrier(args.threads + 1)

            def work() -> None:
                with psycopg.connect(url) as conn:
                    barrier.wait()
                    for _ in range(args.transactions):
                        with conn.transaction():
                            conn.execute("INSERT INTO t (body) VALUES ('x')")
                            if with_notify:
                                conn.execute("SELECT pg_notify('outbox', '')")

            threads = [threading.Thread(target=work) for _ in range(args.threads)]
            for t in threads:
                t.start()
            barrier.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            return args.threads * args.transactions / (time.perf_counter() - t0)

        writers(False)  # warm-up
        plain = statistics.median(writers(False) for _ in range(3))
        notified = statistics.median(writers(True) for _ in range(3))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE e (serial bigint, sequence bigint)")
            conn.execute("CREATE INDEX ON e (serial) WHERE sequence IS NULL")
            t0 = time.perf_counter()
            for _ in range(1000):
                conn.execute("SELECT serial FROM e WHERE sequence IS NULL ORDER BY serial LIMIT 1").fetchall()
            poll_ms = time.perf_counter() - t0  # ms per poll = total seconds for 1000
        result = {
            "part": "notify",
            "threads": args.threads,
            "commits_per_s_plain": round(plain),
            "commits_per_s_with_notify": round(notified),
            "notify_ratio": round(notified / plain, 3),
            "idle_poll_ms": round(poll_ms, 3),
            "loadavg": _load(),
        }
        print(
            f"commits/s from {args.threads} writers: plain {result['commits_per_s_plain']}, with pg_notify "
            f"{result['commits_per_s_with_notify']} (ratio {result['notify_ratio']}); one idle poll "
            f"{result['idle_poll_ms']} ms"
        )
        return result
    finally:
        drop(SERVER, database)


# --- read models: events applied per second, and lag -------------------------------------

_FLOOR_SQL = {
    # model: (table, columns, key column)
    "finance": (
        "bench_rm_fact",
        "key text PRIMARY KEY, kind text, day date, currency text, amount numeric, at timestamptz",
        "key",
    ),
    "search": (
        "bench_rm_search",
        "order_id bigint PRIMARY KEY, status text, customer_email text, total numeric, "
        "payment_status text, charge_id text",
        "order_id",
    ),
}


def _checkout_events(first_order: int, orders: int, at: str):
    """The events of `orders` checkouts (NewEvent), as the services record them:
    per order, (order.placed,) then (payment.captured, order.confirmed[, payment.refunded])."""
    from outbox.dto import NewEvent

    for n in range(first_order, first_order + orders):
        order = {
            "object": "order",
            "id": n,
            "client_id": 1,
            "status": "pending",
            "failure_reason": "",
            "customer_email": f"c{n}@shop.example",
            "currency": "EUR",
            "total": "25.00",
            "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": "25.00", "line_total": "25.00"}],
            "created_at": at,
            "updated_at": at,
        }
        payment = {
            "object": "payment",
            "id": n,
            "order_id": n,
            "status": "captured",
            "amount": "25.00",
            "currency": "EUR",
            "refunded_amount": "0.00",
            "failure_code": None,
        }
        meta = {"charge_id": f"ch_{n}", "ledger_at": at}
        placed = [
            NewEvent("order.placed", "order", n, {"object": order, "meta": {"idempotency_key": f"k{n}"}})
        ]
        done = [
            NewEvent("payment.captured", "payment", n, {"object": payment, "meta": meta}),
            NewEvent("order.confirmed", "order", n, {"object": {**order, "status": "confirmed"}, "meta": {}}),
        ]
        if n % 10 == 0:
            refund = {"id": n, "amount": "5.00", "currency": "EUR", "status": "succeeded"}
            refunded = {
                **payment,
                "status": "partially_refunded",
                "refunded_amount": "5.00",
                "refund": refund,
            }
            done.append(NewEvent("payment.refunded", "payment", n, {"object": refunded, "meta": meta}))
        yield placed, done


def _bare_row(model: str, event_type: str, payload: dict | str) -> tuple | None:
    """What the bare peer stores for an event (None: not the model's)."""
    payload = json.loads(payload) if isinstance(payload, str) else payload  # Django's cursor: jsonb as text
    obj, meta = payload.get("object") or {}, payload.get("meta") or {}
    if model == "finance":
        if event_type == "order.placed":
            return (
                f"order:{obj['id']}",
                "order",
                obj["created_at"][:10],
                obj["currency"],
                obj["total"],
                obj["created_at"],
            )
        if event_type == "payment.captured":
            return (
                f"capture:{obj['id']}",
                "capture",
                meta["ledger_at"][:10],
                obj["currency"],
                obj["amount"],
                meta["ledger_at"],
            )
        if event_type == "payment.refunded":
            r = obj["refund"]
            return (
                f"refund:{r['id']}",
                "refund",
                meta["ledger_at"][:10],
                r["currency"],
                r["amount"],
                meta["ledger_at"],
            )
        return None
    if event_type.startswith("order."):
        return (obj["id"], obj["status"], obj["customer_email"], obj["total"], None, None)
    if event_type.startswith(("payment.", "refund.")):
        return (obj["order_id"], None, None, None, obj["status"], meta.get("charge_id"))
    return None


def _bare_apply(model: str, batch: int, *, per_event: bool) -> tuple[int, float]:
    """The same events, applied by bare INSERT ... ON CONFLICT (one per event, or one per
    batch), a transaction and a cursor UPDATE per batch. Returns (rows applied, seconds)."""
    from django.db import connection, transaction

    from readmodels.consumer import FINANCE, SEARCH, SEARCH_EVENT_TYPES
    from readmodels.facts import FINANCE_EVENT_TYPES

    table, columns, key = _FLOOR_SQL[model]
    wanted = list(FINANCE_EVENT_TYPES if model == FINANCE else SEARCH_EVENT_TYPES)
    names = [c.split()[0] for c in columns.split(", ")]
    if model == SEARCH:  # a payment's event leaves the order's own columns as they are
        update = ", ".join(f"{c} = coalesce(EXCLUDED.{c}, t.{c})" for c in names if c != key)
    else:
        update = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c != key)
    row_sql = "(" + ", ".join(["%s"] * len(names)) + ")"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({columns})")
        cursor.execute(
            "DROP TABLE IF EXISTS bench_rm_cursor; CREATE TABLE bench_rm_cursor (id int PRIMARY KEY, position bigint)"
        )
        cursor.execute("INSERT INTO bench_rm_cursor VALUES (1, 0)")
    last, applied = 0, 0
    t0 = time.perf_counter()
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT sequence, type, payload FROM outbox_event WHERE sequence > %s ORDER BY sequence LIMIT %s",
                [last, batch],
            )
            events = cursor.fetchall()
            if not events:
                break
            rows = [r for _, t, p in events if t in wanted and (r := _bare_row(model, t, p)) is not None]
            if per_event:
                for r in rows:
                    cursor.execute(
                        f"INSERT INTO {table} AS t VALUES {row_sql} ON CONFLICT ({key}) DO UPDATE SET {update}",
                        r,
                    )
            elif rows:
                unique = list({r[0]: r for r in rows}.values())  # one conflict per key per statement
                cursor.execute(
                    f"INSERT INTO {table} AS t VALUES {', '.join([row_sql] * len(unique))} "
                    f"ON CONFLICT ({key}) DO UPDATE SET {update}",
                    [v for r in unique for v in r],
                )
            applied += len(rows)
            last = events[-1][0]
            cursor.execute("UPDATE bench_rm_cursor SET position = %s WHERE id = 1", [last])
    return applied, time.perf_counter() - t0


def readmodels(args) -> dict:
    database = f"{DB_NAME}_rm"
    recreate(SERVER, database)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.api_settings",
        "DATABASE_URL": f"{SERVER}/{database}",
    }
    subprocess.run([str(PY), "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    try:
        _django(database)
        from dataclasses import replace

        from django.db import connection, connections, transaction
        from django.utils import timezone

        import outbox.services
        from outbox import registry
        from outbox.relay import consumer_dispatch, sequence_pending
        from readmodels.consumer import CONSUMERS, FINANCE, SEARCH
        from readmodels.models import FinanceDay, FinanceFact, OrderSearch

        outbox.services.poke_on_commit = lambda: None  # this process relays itself: no Celery
        for name in registry.names():
            registry.unregister(name)
        for consumer in CONSUMERS:
            registry.register(consumer)

        def record(first: int, orders: int, *, per_order: bool) -> None:
            at = timezone.now().isoformat()
            if per_order:  # two transactions per order, as the checkout commits them
                for placed, done in _checkout_events(first, orders, at):
                    for events in (placed, done):
                        with transaction.atomic():
                            outbox.services.events_record(events)
                return
            batch = []
            for placed, done in _checkout_events(first, orders, at):
                batch += placed + done
                if len(batch) >= 300:
                    with transaction.atomic():
                        outbox.services.events_record(batch)
                    batch = []
            if batch:
                with transaction.atomic():
                    outbox.services.events_record(batch)

        # --- throughput: the consumers, the per-event peer and the batch floor --------------
        orders = max(1, args.events * 10 // 31)  # 3.1 events per order
        record(1, orders, per_order=False)
        while sequence_pending(limit=1000):
            pass
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM outbox_event")
            events = cursor.fetchone()[0]
        rates: dict[str, dict] = {}
        for consumer in CONSUMERS:
            t0 = time.perf_counter()
            handled = 0
            while True:
                result = consumer_dispatch(consumer.name)
                handled += result.handled
                if result.caught_up:
                    break
            seconds = time.perf_counter() - t0
            peer_rows, peer_s = _bare_apply(consumer.name, consumer.batch_size, per_event=True)
            floor_rows, floor_s = _bare_apply(consumer.name, consumer.batch_size, per_event=False)
            assert peer_rows == floor_rows == handled, (consumer.name, handled, peer_rows, floor_rows)
            rates[consumer.name] = {
                "handled": handled,
                "applied_per_s": round(handled / seconds),
                "peer_per_s": round(peer_rows / peer_s),
                "floor_per_s": round(floor_rows / floor_s),
                "ratio_to_peer": round(peer_s / seconds, 2),
                "ratio_to_floor": round(floor_s / seconds, 2),
            }
        assert FinanceFact.objects.count() and FinanceDay.objects.exists()
        assert OrderSearch.objects.count() == orders

        # --- lag at a steady rate -----------------------------------------------------------
        lags: dict[str, list[float]] = {"noop": [], FINANCE: [], SEARCH: []}  # dispatched in this order
        pending: dict[str, list] = {name: [] for name in lags}

        def timed(consumer):
            def handle(event):
                consumer.handle(event)
                pending[consumer.name].append(event.created_at)

            return replace(consumer, handle=handle)

        for consumer in CONSUMERS:
            registry.register(timed(consumer), replace=True)
        registry.register(
            registry.Consumer(
                "noop",
                lambda e: pending["noop"].append(e.created_at),
                batch_size=500,
                start=registry.START_NOW,
            )
        )
        consumer_dispatch("noop")  # its state, at the head
        stop = threading.Event()
        written = [0]

        def writer() -> None:
            try:
                start, n = time.monotonic(), 0
                while not stop.is_set():
                    due = start + n / args.rate
                    if due > time.monotonic():
                        time.sleep(due - time.monotonic())
                    record(orders + 1 + n, 1, per_order=True)
                    n += 1
                written[0] = n
            finally:
                connections.close_all()

        thread = threading.Thread(target=writer)
        thread.start()
        deadline = time.monotonic() + args.seconds
        try:
            while time.monotonic() < deadline:
                moved = sequence_pending(limit=1000)
                for name in lags:
                    result = consumer_dispatch(name)
                    moved += result.applied
                    now = timezone.now()
                    lags[name] += [(now - at).total_seconds() * 1000 for at in pending[name]]
                    pending[name].clear()
                if not moved:
                    time.sleep(0.01)
        finally:
            stop.set()
            thread.join()

        def pct(name: str) -> dict:
            values = lags[name]
            return {
                "events": len(values),
                "p50_ms": round(percentile(values, 0.5), 1) if values else None,
                "p99_ms": round(percentile(values, 0.99), 1) if values else None,
            }

        result = {
            "part": "readmodels",
            "events": events,
            "orders": orders,
            **rates,
            "lag": {"rate_orders_per_s": args.rate, "orders": written[0], **{n: pct(n) for n in lags}},
            "loadavg": _load(),
        }
        for name, rate in rates.items():
            print(
                f"{name}: {rate['applied_per_s']} events/s applied ({rate['handled']} handled of {events}); "
                f"bare INSERT ... ON CONFLICT per event {rate['peer_per_s']}/s (ratio {rate['ratio_to_peer']}), "
                f"per batch {rate['floor_per_s']}/s (ratio {rate['ratio_to_floor']})"
            )
        print(
            f"lag at {args.rate:g} orders/s ({written[0]} orders): "
            + "; ".join(f"{n} p50 {pct(n)['p50_ms']} ms p99 {pct(n)['p99_ms']} ms" for n in lags)
        )
        return result
    finally:
        from django.db import connections

        connections.close_all()
        drop(SERVER, database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["relay", "lag", "api", "notify", "readmodels", "all"])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--transactions", type=int, default=500)
    args = parser.parse_args()
    parts = {"notify": notify, "relay": relay, "api": api_cost, "lag": lag, "readmodels": readmodels}
    for name, run in parts.items():
        if args.part in (name, "all"):
            if name in ("relay", "readmodels") and args.part == "all":
                # These set up Django in this process; run each in a child so the others start clean.
                subprocess.run([str(PY), __file__, name, "--events", str(args.events)], check=True)
                continue
            print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
