"""API throughput: POST /api/v1/orders/ against the guarantee floor and two floor endpoints, in one run.

    .venv/bin/python bench/api_throughput.py [--seconds 10] [--rounds 3] [--connections 8]

Starts gunicorn with the Procfile's web command (its options; `--gunicorn-args`
overrides them to compare worker classes) on a free port against a dedicated
database (concord_bench_api, dropped and recreated), then loads three endpoints
in alternating rounds (the order rotates each round so drift hits all four):

- orders: POST /api/v1/orders/ with unique Idempotency-Keys (a real order: token
  auth, throttle, catalog read, order, lines, audit row, order.placed event,
  payment, saga run, idempotency record, one commit, the worker poke);
- floor: bench/floor/ (bench/api_urls.py): a DRF view with the SAME token auth
  and Redis-backed throttle, the same JSON body, one committed INSERT;
- bare: bench/bare/: the same view with no auth, no permission, no throttle;
- guarantee: bench/guarantee/ (bench/guarantee_floor.py): the same auth and
  throttle as the floor, and by hand, in one transaction of two statements, what
  the guarantee demands (idempotency claim, order, lines, audit row, order.placed
  event, payment, saga run, stored response), then the real after-commit pokes.

Prints orders/s, p50/p99 per endpoint, the ratios (targets: orders/floor >= 0.7,
orders/bare >= 0.5; and orders/guarantee — Concord's code against the least the
guarantee costs — and guarantee/floor — what the guarantee itself costs), the
load average of every round, and a JSON line.

Load generator: `wrk` (C, epoll; Debian package `wrk`) with a Lua script that
makes every request's key and body unique; it costs a fraction of the CPU of
Python clients, which matters when clients and server share 2 cores. If wrk is
missing the bench installs it with apt-get when it runs as root, else falls back
to Python httpx threads (`--client httpx`, count-based: `--requests`).

The throttle runs as in production (DRF's sliding log in Redis) with a rate no
round reaches; its window is one second (`--throttle-rate`, default
100000000/s) so its stored history holds about one second of requests, the size
it has for a production client near its 600/min limit. (A /min window would make
every request of both authenticated endpoints pickle tens of thousands of
timestamps.)

Environment: POSTGRES_URL (server, default postgres://postgres@127.0.0.1:5432),
CELERY_BROKER_URL (default redis://127.0.0.1:6379/11; the pokes are deleted at
the end), BENCH_API_DB (database name, default concord_bench_api). No worker
runs: the orders stay pending, which is what the API costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
DB_NAME = os.environ.get("BENCH_API_DB", "concord_bench_api")
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


ENDPOINTS = {
    "orders": "/api/v1/orders/",
    "floor": "/bench/floor/",
    "bare": "/bench/bare/",
    "guarantee": "/bench/guarantee/",
}

# One request per call of request(): a key unique per run, thread and request,
# and a body unique per request (the orders' quantities vary like order_body's).
WRK_SCRIPT = r"""
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  prefix = args[1]
  token = args[2]
  n = 0
end
function request()
  n = n + 1
  local i = tid * 10000000 + n
  local body = string.format('{"customer_email":"bench%d@example.com","currency":"EUR",'
    .. '"payment_method":"pm_card_ok","lines":[{"sku":"BENCH-MUG","quantity":%d},'
    .. '{"sku":"BENCH-TEE","quantity":1}]}', i, 1 + i % 3)
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Token " .. token,
    ["Idempotency-Key"] = prefix .. "-" .. tid .. "-" .. n}
  return wrk.format("POST", nil, headers, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"status_errors":%d,'
    .. '"socket_errors":%d,"p50_us":%d,"p99_us":%d}\n', summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("wrk not found: installing the Debian package", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    return shutil.which("wrk")


def run_wrk(wrk: str, script: str, base: str, path: str, token: str, *, seconds: float, connections: int,
            threads: int, prefix: str) -> dict:  # fmt: skip
    out = subprocess.run(
        [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "30s",
         "-s", script, f"{base}{path}", "--", prefix, token],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
    r = json.loads(line.removeprefix("WRKJSON "))
    ok = r["requests"] - r["status_errors"]
    return {
        "requests": r["requests"],
        "seconds": r["duration_us"] / 1e6,
        "per_second": ok / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "failures": [f"{r['status_errors']} non-2xx, {r['socket_errors']} socket errors"]
        if r["status_errors"] or r["socket_errors"]
        else [],
    }


def procfile_web_args() -> list[str]:
    """The Procfile's web command's gunicorn options, without its --bind."""
    line = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith("web:"))
    words = shlex.split(line.split(":", 1)[1])
    words = words[words.index("config.wsgi") + 1 :]
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
        elif w == "--bind":
            skip = True
        else:
            out.append(w)
    return out


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=["wrk", "httpx"], default="wrk")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10, help="per endpoint and round (wrk)")
    parser.add_argument("--requests", type=int, default=300, help="per client and round (httpx)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gunicorn-args", default=None, help="instead of the Procfile's web options")
    parser.add_argument("--throttle-rate", default="100000000/s")
    parser.add_argument("--settings", default="bench.api_settings")
    args = parser.parse_args()

    wrk = ensure_wrk() if args.client == "wrk" else None
    if args.client == "wrk" and wrk is None:
        print("wrk unavailable: falling back to Python httpx clients", file=sys.stderr)
        args.client = "httpx"
    gunicorn_args = shlex.split(args.gunicorn_args) if args.gunicorn_args else procfile_web_args()

    server_url = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": args.settings,
        "DATABASE_URL": f"{server_url}/{DB_NAME}",
        "CELERY_BROKER_URL": broker,
        "API_THROTTLE_RATE": args.throttle_rate,  # the bench measures work, not the throttle's refusals
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
        [GUNICORN, "config.wsgi", *gunicorn_args, "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(WRK_SCRIPT)
    script.close()
    run_id = uuid.uuid4().hex[:12]

    def load(name: str, tag: str, *, short: bool = False) -> dict:
        if args.client == "wrk":
            assert wrk is not None
            return run_wrk(wrk, script.name, base, ENDPOINTS[name], token, connections=args.connections,
                           threads=args.wrk_threads, seconds=5 if short else args.seconds,
                           prefix=f"{run_id}-{tag}")  # fmt: skip
        return hammer(base, ENDPOINTS[name], token, args.connections, 20 if short else args.requests)

    runs: dict[str, list[dict]] = {name: [] for name in ENDPOINTS}
    rounds: list[dict] = []
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
        # Warm up every endpoint (imports, connections, caches, the planner's view of the new tables) before measuring.
        for name in ENDPOINTS:
            load(name, f"warm-{name}", short=True)
        names = list(ENDPOINTS)
        for n in range(args.rounds):
            order = names[n % len(names) :] + names[: n % len(names)]
            this_round: dict = {"order": order}
            for name in order:
                before = loadavg()
                r = load(name, f"r{n}-{name}")
                r["load"] = [before, loadavg()]
                runs[name].append(r)
                this_round[name] = round(r["per_second"], 1)
                this_round[f"{name}_load"] = r["load"]
            this_round["ratio_floor"] = round(this_round["orders"] / this_round["floor"], 3)
            this_round["ratio_bare"] = round(this_round["orders"] / this_round["bare"], 3)
            this_round["ratio_guarantee"] = round(this_round["orders"] / this_round["guarantee"], 3)
            this_round["guarantee_floor"] = round(this_round["guarantee"] / this_round["floor"], 3)
            rounds.append(this_round)
            print(json.dumps({"round": n + 1, **this_round}), flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: graceful shutdown took too long
            server.kill()
            server.wait()
        os.unlink(script.name)

    with psycopg.connect(f"{server_url}/{DB_NAME}") as conn:
        orders_made = conn.execute("SELECT count(*) FROM orders_order").fetchone()[0]
        inserts_made = conn.execute("SELECT count(*) FROM bench_floor_insert").fetchone()[0]
    merged = {name: merge(r) for name, r in runs.items()}
    ratio_floor = merged["orders"]["per_second"] / merged["floor"]["per_second"]
    ratio_bare = merged["orders"]["per_second"] / merged["bare"]["per_second"]
    ratio_guarantee = merged["orders"]["per_second"] / merged["guarantee"]["per_second"]
    guarantee_floor = merged["guarantee"]["per_second"] / merged["floor"]["per_second"]
    print(
        f"client={args.client} connections={args.connections} gunicorn: {' '.join(gunicorn_args)}"
        f"  rounds={args.rounds}  orders in the database (orders + guarantee)={orders_made}, "
        f"floor rows={inserts_made}"
    )
    labels = {
        "bare": "bare (1 INSERT)",
        "floor": "floor (auth+throttle)",
        "guarantee": "guarantee floor",
        "orders": "POST orders/",
    }
    for name in ("bare", "floor", "guarantee", "orders"):
        r = merged[name]
        print(
            f"{labels[name]:22} {r['per_second']:8.1f}/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms"
            f"  failures {r['failures']}"
        )
    print(f"ratio orders/floor = {ratio_floor:.3f} (target >= 0.7)")
    print(f"ratio orders/bare  = {ratio_bare:.3f} (target >= 0.5)")
    print(
        f"ratio orders/guarantee floor = {ratio_guarantee:.3f} (Concord's code against the guarantee's minimum)"
    )
    print(f"ratio guarantee floor/floor  = {guarantee_floor:.3f} (what the guarantee itself costs)")
    print(
        json.dumps(
            {
                "bench": "api_throughput",
                "ratio_floor": round(ratio_floor, 3),
                "ratio_bare": round(ratio_bare, 3),
                "ratio_guarantee": round(ratio_guarantee, 3),
                "guarantee_floor": round(guarantee_floor, 3),
                **merged,
                "rounds": rounds,
                "orders_in_database": orders_made,
                "gunicorn": gunicorn_args,
                "args": vars(args),
            }
        )
    )

    try:
        import redis

        redis.Redis.from_url(broker).delete("celery")  # the pokes nobody consumed
    except Exception as exc:  # noqa: BLE001 - cleanup only
        print(f"(could not purge the broker queue: {exc})", file=sys.stderr)
    drop_database(server_url)
    failed = any(merged[name]["failures"] for name in merged)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
