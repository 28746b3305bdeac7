"""Place -> confirmed latency on an idle stack, with where the time goes.

    .venv/bin/python bench/checkout_latency.py [--orders 60] [--gap 0.2] [--rounds 2]

Starts the stack as production runs it: the Procfile's `web` (gunicorn), `worker`
(Celery, prefork 2, the saga queue), `events` (Celery, the events and bulk queues) and `psp` (the sandbox provider, its own process and database)
commands, with production settings (JSON logs, PSP_ALLOW_SANDBOX, CONN_MAX_AGE=60 as
docs/deployment.md sizes it), on dedicated databases (BENCH_LATENCY_DB, default
concord_latency_bench, and its _psp twin; dropped and recreated) and a Redis database
(CELERY_BROKER_URL, required: it is purged). No beat: the sweeper is not on the
happy path, and its periodic tasks would only add noise to an idle stack.

Then places `--orders` orders through `POST /api/v1/orders/`, one at a time: each one
is confirmed before the next, and `--gap` seconds pass between them (an idle stack).
Per order it joins timestamps the stack already records (same machine, one clock):

- the client: POST sent, 201 received;
- the order's created_at (inside the accepting transaction);
- the task's publish time (the message's concord_sent_at header) and its queue wait
  (task_queued_ms, bound on every log line of the task by config/celery_app.py);
- the saga step log: started_at and duration_ms of each step (an external step's
  duration covers its call and the apply that records the answer in the checkpoint);
- the provider attempt's client-side duration_ms, and the sandbox's own time for the
  same request (gunicorn's access log, %(D)s, matched by X-Request-Id);
- the run's "completed" log line, written after the final checkpoint committed.

Printed: p50/p90/p99 of place -> confirmed (POST sent -> final commit) and of
created_at -> final commit, and the median of each segment between them, then one
JSON line. The floor printed beside it is the sum of the parts no design removes
here: the accepting request itself (POST -> 201) and the sandbox's round trip.

Environment: POSTGRES_URL (server, default postgres://postgres@127.0.0.1:5432),
CELERY_BROKER_URL (required), BENCH_LOG_DIR (default /tmp/concord_bench_latency).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv" / "bin" / "python"
DB_NAME = os.environ.get("BENCH_LATENCY_DB", "concord_latency_bench")
PSP_DB_NAME = f"{DB_NAME}_psp"
SKUS = ["BENCH-MUG", "BENCH-TEE"]
SEED = """
import django; django.setup()
from decimal import Decimal
from django.contrib.auth.models import User
from apitokens.services import api_token_issue
from inventory.services import product_upsert, stock_set_on_hand
for i, sku in enumerate(%(skus)r):
    product_upsert(sku=sku, name=sku, price=Decimal("9.50") + i, currency="EUR")
    stock_set_on_hand(sku=sku, on_hand=10_000_000, reason="bench")
print(api_token_issue(user=User.objects.create_user("bench-latency")))
"""
# The sandbox's access log: its own time per request, by the client's attempt id.
PSP_ACCESS_FORMAT = "psp-access %({x-request-id}i)s %(U)s %(s)s %(D)s"
SEGMENTS = (
    ("accept: POST -> order row", "post", "created"),
    ("accept: order row -> publish (commit, on_commit poke)", "created", "sent"),
    ("broker hop + worker wake-up (publish -> task start)", "sent", "task_start"),
    ("claim (task start -> reserve_stock starts)", "task_start", "reserve_start"),
    ("reserve_stock step", "reserve_start", "reserve_end"),
    ("reserve checkpoint (commit) -> charge starts", "reserve_end", "charge_start"),
    ("charge_payment step: its provider HTTP round trip", "charge_start", "http_end"),
    (
        "charge_payment step: the rest (payment read; the answer recorded in the checkpoint)",
        "http_end",
        "charge_end",
    ),
    ("charge checkpoint (commit) -> confirm_order starts (re-lock)", "charge_end", "confirm_start"),
    ("confirm_order step", "confirm_start", "confirm_end"),
    ("final checkpoint (commit)", "confirm_end", "completed"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recreate(server: str, name: str, *, create: bool = True) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


def procfile(env: dict[str, str]) -> dict[str, list[str]]:
    """The Procfile's commands, ${VAR:-default} expanded from `env`, without their `exec`
    (under honcho's `sh -c` it makes the program replace the shell; here there is no shell)."""

    def expand(match: re.Match) -> str:
        return env.get(match.group(1)) or match.group(2)

    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if command.strip():
            argv = shlex.split(re.sub(r"\$\{(\w+):-([^}]*)\}", expand, command))
            commands[name.strip()] = argv[1:] if argv[0] == "exec" else argv  # honcho's sh -c execs it
    return commands


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Stack:
    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env, self.logdir = env, logdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], **extra: str) -> None:
        log = (self.logdir / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**self.env, **extra},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.log(name)[-3000:]}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def wait_http(url: str, stack: Stack, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check()
        try:
            if httpx.get(url, timeout=1, headers={"X-Forwarded-Proto": "https"}).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def worker_events(text: str) -> dict[int, dict]:
    """Per saga run: the first task's publish time and queue wait, and the time the
    run's completion was logged (after its commit), and the deliveries (start_fresh
    or advance) that worked on it (a re-queue between steps shows up as more than one)."""
    runs: dict[int, dict] = {}
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        run_id = event.get("saga_run_id")
        # A fresh run's first pass runs inside sagas.start_fresh (its burst's poke),
        # later ones (handoffs) in sagas.advance.
        if run_id is None or event.get("task") not in ("sagas.advance", "sagas.start_fresh"):
            continue
        info = runs.setdefault(int(run_id), {"deliveries": set()})
        info["deliveries"].add(event.get("task_id"))
        if "sent" not in info and event.get("task_sent_at") is not None:
            info["sent"] = float(event["task_sent_at"])
            info["task_start"] = info["sent"] + float(event["task_queued_ms"]) / 1000
        if str(event.get("event", "")).endswith(" completed"):
            info["completed"] = ts(event["timestamp"])
    return runs


def psp_times(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == "psp-access" and parts[2] == "/v1/charges":
            out[parts[1]] = int(parts[4]) / 1000  # microseconds -> ms
    return out


def one(conn: psycopg.Connection, sql: str, params: list) -> tuple:
    row = conn.execute(sql, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row for {params}: {sql}")
    return row


def place_one(http: httpx.Client, conn: psycopg.Connection, n: int) -> dict:
    body = {
        "customer_email": f"latency{n}@example.com",
        "currency": "EUR",
        "payment_method": "pm_card_ok",
        "lines": [{"sku": SKUS[0], "quantity": 1}, {"sku": SKUS[1], "quantity": 2}],
    }
    post = time.time()
    response = http.post("/api/v1/orders/", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    answered = time.time()
    if response.status_code != 201:
        raise RuntimeError(f"{response.status_code} {response.text[:300]}")
    order_id = response.json()["id"]
    deadline = time.monotonic() + 30
    while True:
        status = one(conn, "SELECT status FROM orders_order WHERE id = %s", [order_id])[0]
        if status == "confirmed":
            break
        if status == "cancelled" or time.monotonic() > deadline:
            raise RuntimeError(f"order {order_id} is {status}")
        time.sleep(0.002)
    return {"order_id": order_id, "post": post, "answered": answered, "seen": time.time()}


def timelines(
    conn: psycopg.Connection, placed: list[dict], runs: dict[int, dict], psp: dict[str, float]
) -> list[dict]:
    out = []
    for p in placed:
        row = one(
            conn,
            "SELECT o.created_at, r.id FROM orders_order o JOIN sagas_sagarun r "
            "ON r.saga_type = 'checkout' AND r.subject_id = o.id::text WHERE o.id = %s",
            [p["order_id"]],
        )
        created, run_id = row[0].timestamp(), row[1]
        t = {**p, "created": created, "run_id": run_id}
        for step, started, ms in conn.execute(
            "SELECT step, started_at, duration_ms FROM sagas_sagasteplog WHERE run_id = %s AND outcome = 'done'",
            [run_id],
        ):
            name = step.split("_")[0]
            t[f"{name}_start"] = started.timestamp()
            t[f"{name}_end"] = started.timestamp() + ms / 1000
        attempt = one(
            conn,
            "SELECT a.duration_ms, a.attempt_id FROM payments_providerattempt a JOIN payments_payment p "
            "ON p.id = a.payment_id WHERE p.order_id = %s AND a.kind = 'charge' ORDER BY a.id LIMIT 1",
            [p["order_id"]],
        )
        t["provider_ms"], attempt_id = attempt
        if "charge_start" in t:
            # The step's duration covers the call and its apply (record_charge, inside
            # the checkpoint); the HTTP round trip is the provider attempt's own.
            t["http_end"] = t["charge_start"] + t["provider_ms"] / 1000
        t["sandbox_ms"] = psp.get(attempt_id)
        info = runs.get(run_id, {})
        t.update({k: info[k] for k in ("sent", "task_start", "completed") if k in info})
        t["deliveries"] = len(info.get("deliveries", ()))
        out.append(t)
    return out


def summarize(rows: list[dict]) -> dict:
    complete = [r for r in rows if all(k in r for _, a, b in SEGMENTS for k in (a, b))]
    e2e = [1000 * (r["completed"] - r["post"]) for r in complete]
    created = [1000 * (r["completed"] - r["created"]) for r in complete]
    segments = {label: statistics.median(1000 * (r[b] - r[a]) for r in complete) for label, a, b in SEGMENTS}
    accept = [1000 * (r["answered"] - r["post"]) for r in complete]
    return {
        "orders": len(complete),
        "p50_ms": pct(e2e, 0.5),
        "p90_ms": pct(e2e, 0.9),
        "p99_ms": pct(e2e, 0.99),
        "created_p50_ms": pct(created, 0.5),
        "created_p90_ms": pct(created, 0.9),
        "post_to_201_p50_ms": statistics.median(accept),
        "sent_to_201_p50_ms": statistics.median(1000 * (r["answered"] - r["sent"]) for r in complete),
        "provider_round_trip_p50_ms": statistics.median(r["provider_ms"] for r in complete),
        "sandbox_own_p50_ms": statistics.median(
            r["sandbox_ms"] for r in complete if r["sandbox_ms"] is not None
        )
        if any(r["sandbox_ms"] is not None for r in complete)
        else None,
        "observed_after_commit_p50_ms": statistics.median(
            1000 * (r["seen"] - r["completed"]) for r in complete
        ),
        "deliveries_per_run": statistics.mean(r["deliveries"] for r in complete),
        "segments_p50_ms": segments,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=60, help="per round")
    parser.add_argument("--gap", type=float, default=0.2, help="idle seconds between orders")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--conn-max-age", default="60")
    args = parser.parse_args()

    server = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker:
        parser.error("set CELERY_BROKER_URL to a Redis database of your own (it is purged)")
    logdir = Path(os.environ.get("BENCH_LOG_DIR", "/tmp/concord_bench_latency"))
    logdir.mkdir(parents=True, exist_ok=True)
    web_port, psp_port = free_port(), free_port()
    api_key = "sk_live_" + secrets.token_hex(20)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": f"{server}/{DB_NAME}",
        "CELERY_BROKER_URL": broker,
        "CONN_MAX_AGE": args.conn_max_age,
        "WEB_PORT": str(web_port),
        "PSP_PORT": str(psp_port),
        "PSP_BASE_URL": f"http://127.0.0.1:{psp_port}",
        "PSP_ALLOW_SANDBOX": "true",
        "PSP_API_KEY": api_key,
        "PSP_WEBHOOK_SECRET": secrets.token_hex(24),
        "PSP_DATABASE_URL": f"{server}/{PSP_DB_NAME}",
        "PSP_WEBHOOK_URL": "",  # the confirmation path does not wait for webhooks
        "PSP_LOG_LEVEL": "WARNING",
        # The order-confirmed e-mail is sent by the same worker, after the confirmation;
        # no SMTP server here, so it goes to memory (no refused connections, no retries).
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "API_THROTTLE_RATE": "100000000/min",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    recreate(server, DB_NAME)
    recreate(server, PSP_DB_NAME)
    subprocess.run([str(PY), "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [str(PY), "-m", "sandbox_psp", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    token = subprocess.run(
        [str(PY), "-c", SEED % {"skus": SKUS}], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    subprocess.run(
        [str(PY), "-c", "import django; django.setup(); from config.celery_app import app; app.control.purge()"],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip

    commands = procfile(env)
    worker = list(commands["worker"])
    worker[worker.index("--pidfile") + 1] = str(logdir / "worker.pid")
    events = list(commands["events"])
    events[events.index("--pidfile") + 1] = str(logdir / "events.pid")
    stack = Stack(env, logdir)
    try:
        stack.start("psp", [*commands["psp"], "--access-logformat", PSP_ACCESS_FORMAT])
        # The worker's INFO lines are its saga step and run lines: the timeline.
        stack.start("worker", worker, LOG_LEVEL="INFO")
        stack.start("events", events)
        stack.start("web", commands["web"])
        wait_http(f"http://127.0.0.1:{psp_port}/healthz", stack)
        wait_http(f"http://127.0.0.1:{web_port}/healthz", stack)
        deadline = time.monotonic() + 60
        while "ready" not in stack.log("worker") and time.monotonic() < deadline:
            stack.check()
            time.sleep(0.2)
        results = []
        headers = {"Authorization": f"Token {token}", "X-Forwarded-Proto": "https"}
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{web_port}", headers=headers, timeout=30) as http,
            psycopg.connect(f"{server}/{DB_NAME}", autocommit=True) as conn,
        ):
            for n in range(5):  # warm-up: imports, connections, kept clients in every process
                place_one(http, conn, -n - 1)
            time.sleep(1)
            for round_no in range(args.rounds):
                load_before = os.getloadavg()
                placed = []
                for n in range(args.orders):
                    placed.append(place_one(http, conn, round_no * args.orders + n))
                    time.sleep(args.gap)
                time.sleep(0.5)  # the last completion line reaches the log
                runs = worker_events(stack.log("worker"))
                result = summarize(timelines(conn, placed, runs, psp_times(stack.log("psp"))))
                result["loadavg_before"] = load_before
                result["loadavg_after"] = os.getloadavg()
                results.append(result)
                print(
                    f"round {round_no + 1}: place->confirmed p50 {result['p50_ms']:.1f} ms  "
                    f"p90 {result['p90_ms']:.1f}  p99 {result['p99_ms']:.1f}  "
                    f"(created->confirmed p50 {result['created_p50_ms']:.1f}; "
                    f"load {load_before[0]:.2f} -> {result['loadavg_after'][0]:.2f})",
                    flush=True,
                )
    finally:
        stack.stop()
        recreate(server, DB_NAME, create=False)
        recreate(server, PSP_DB_NAME, create=False)

    best = min(results, key=lambda r: r["p50_ms"])
    print(f"\nbreakdown (median per segment, ms), round with the lowest p50 ({best['orders']} orders):")
    for label, value in best["segments_p50_ms"].items():
        print(f"  {value:7.1f}  {label}")
    total = sum(best["segments_p50_ms"].values())
    print(f"  {total:7.1f}  sum of medians (p50 end to end {best['p50_ms']:.1f})")
    print(
        f"  of the charge call: provider round trip {best['provider_round_trip_p50_ms']:.1f}, "
        f"the sandbox's own time {best['sandbox_own_p50_ms'] or 0:.1f}"
    )
    print(
        f"  POST -> 201 {best['post_to_201_p50_ms']:.1f} (publish -> 201 {best['sent_to_201_p50_ms']:.1f}); "
        f"advance deliveries per run {best['deliveries_per_run']:.2f}"
    )
    p50 = statistics.median(r["p50_ms"] for r in results)
    floor = statistics.median(r["post_to_201_p50_ms"] + r["provider_round_trip_p50_ms"] for r in results)
    print(
        f"\nplace->confirmed p50 (median of rounds) {p50:.1f} ms; target <= 100 ms: "
        f"{'met' if p50 <= 100 else 'NOT met'}; ratio to the floor (POST->201 + provider round trip "
        f"{floor:.1f} ms): {p50 / floor:.2f}"
    )
    print(json.dumps({"bench": "checkout_latency", "orders": args.orders, "gap": args.gap, "p50_ms": p50,
                      "floor_ms": floor, "ratio_to_floor": p50 / floor, "rounds": results}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
