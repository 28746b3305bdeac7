"""`make run` on a fresh machine: a clean copy of the tree and no DATABASE_URL or
CELERY_BROKER_URL, so it starts its own PostgreSQL and Redis with their data under
var/ (CONCORD_ENGINES=own on free ports: the machine's shared servers on 5432/6379
stay out of it). Then 200 orders from 8 concurrent clients through the API: every
one terminal within 60 s, each confirmed order charged exactly once, stock conserved,
every event (order.confirmed among them) applied by every outbox consumer — the
Procfile's `events` worker serves that queue, `worker` the sagas —, no traceback in any
process's output. Ctrl-C leaves no process behind, servers
included. A second `make run` on the same var/ still has the orders.
"""

from __future__ import annotations

import json
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.make_run import (
    MakeRun,
    all_orders,
    available_stock,
    charges_by_reference,
    place_orders,
    run_env,
    sold,
    wait_gone,
    wait_terminal,
)

from .conftest import ports

pytestmark = pytest.mark.slow

ORDERS, CLIENTS, DRAIN_DEADLINE = 200, 8, 60.0
CONSERVATION = (
    "import json; from inventory.selectors import stock_check_conservation as c; "
    "print(json.dumps([str(p) for p in c()]))"
)
EVENTS_PENDING = (
    "import json; from outbox.selectors import consumer_lag as c; "
    "print(json.dumps({lag.name: lag.pending for lag in c()}))"
)
EVENTS_DEADLINE = 60.0  # seconds after the drain for every consumer to catch up


@dataclass
class FirstRun:
    output: str
    exit_code: int
    left_behind: set[int]
    orders: list[dict]
    accepted: int
    errors: list[str]
    drained_in: float
    stock_before: dict[str, int]
    stock_after: dict[str, int]
    charges: dict[str, list[dict]]
    conservation_problems: list[str]
    events_pending: dict[str, int]
    metrics: str
    programs: dict[str, str]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return run_env(
        CONCORD_ENGINES="own", **ports("WEB_PORT", "PSP_PORT", "CONCORD_PG_PORT", "CONCORD_REDIS_PORT")
    )


def _stop(run: MakeRun) -> tuple[int, set[int]]:
    started = run.processes()
    assert len(started) >= 9, f"expected make, honcho, 5 processes and 2 servers: {started}"
    exit_code = run.stop()
    return exit_code, wait_gone(started)


@pytest.fixture(scope="module")
def first_run(tree: Path, env: dict[str, str], tmp_path_factory) -> FirstRun:
    run = MakeRun.start(tree, env, tmp_path_factory.mktemp("make-run") / "first.log")
    try:
        run.wait_ready()
        api = run.api()
        stock_before = available_stock(api)
        started = time.monotonic()
        burst = place_orders(f"{run.web_url}/api/v1", run.token, count=ORDERS, clients=CLIENTS)
        ids = {order["id"] for order in burst.orders}
        _, orders = wait_terminal(api, ids, timeout=DRAIN_DEADLINE - (time.monotonic() - started))
        drained_in = time.monotonic() - started
        time.sleep(2)  # the provider's webhooks about the last charges arrive after the answers
        problems = json.loads(run.manage("shell", "-c", CONSERVATION).strip().splitlines()[-1])
        events_pending = _events_caught_up(run)
        record = FirstRun(
            output="",
            exit_code=-1,
            left_behind=set(),
            orders=orders,
            accepted=len(ids),
            errors=burst.errors,
            drained_in=drained_in,
            stock_before=stock_before,
            stock_after=available_stock(api),
            charges=charges_by_reference(run.psp_url),
            conservation_problems=problems,
            events_pending=events_pending,
            metrics=httpx.get(f"{run.web_url}/metrics", timeout=10).text,
            programs=_programs(run.output()),
        )
    except BaseException:
        run.kill()
        raise
    record.exit_code, record.left_behind = _stop(run)
    record.output = run.output()
    return record


def _programs(output: str) -> dict[str, str]:
    """Each Procfile line's name -> the command line of the pid honcho reported for it."""
    programs = {}
    for name, pid in re.findall(r"(\w+)\.1 started \(pid=(\d+)\)", output):
        try:
            programs[name] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            programs[name] = "(gone)"
    return programs


def _events_caught_up(run: MakeRun) -> dict[str, int]:
    """Each outbox consumer's pending events, once none has any or EVENTS_DEADLINE passed."""
    deadline = time.monotonic() + EVENTS_DEADLINE
    while True:
        pending = json.loads(run.manage("shell", "-c", EVENTS_PENDING).strip().splitlines()[-1])
        if not any(pending.values()) or time.monotonic() > deadline:
            return pending
        time.sleep(1)


def test_make_run_starts_its_own_postgresql_and_redis(first_run, tree):
    out = first_run.output
    assert "Database  PostgreSQL" in out and "data in var/postgres/ (new)" in out, out[:2000]
    assert "Broker    Redis" in out and "data in var/redis/" in out, out[:2000]
    assert "Concord is ready (start-up" in out
    assert "Demo logins" in out and "Authorization: Token" in out
    assert (tree / "var" / "postgres" / "PG_VERSION").exists()
    assert not list(tree.rglob("*.sqlite3"))


def test_a_burst_of_200_orders_drains_within_a_minute(first_run):
    assert first_run.errors == []
    assert first_run.accepted == ORDERS
    assert all(o["status"] in {"confirmed", "cancelled"} for o in first_run.orders)
    assert first_run.drained_in <= DRAIN_DEADLINE
    declined = [o for o in first_run.orders if o["status"] == "cancelled"]
    assert {o["failure_reason"] for o in declined} == {"payment_declined"}
    assert len(declined) == ORDERS // 10


def test_every_confirmed_order_is_charged_once_and_stock_is_conserved(first_run):
    for order in first_run.orders:
        succeeded = [c for c in first_run.charges.get(str(order["id"]), []) if c["status"] == "succeeded"]
        assert len(succeeded) == (1 if order["status"] == "confirmed" else 0), (order, succeeded)
    units = sold(first_run.orders)
    assert first_run.stock_after == {sku: n - units[sku] for sku, n in first_run.stock_before.items()}
    assert first_run.conservation_problems == []


def test_both_workers_consume_their_queues(first_run):
    """The sagas ran (every order terminal, above) and the events went out: every consumer
    of the outbox has applied every event, and each worker's heartbeat says it took tasks
    from its own queues (core/heartbeats.py: keyed by the task's queue)."""
    assert first_run.events_pending and not any(first_run.events_pending.values()), first_run.events_pending
    for process in ("worker", "events", "beat"):
        assert f'concord_heartbeat_age_seconds{{process="{process}"}}' in first_run.metrics, process


def test_honcho_runs_each_procfile_program_as_its_direct_child(first_run):
    """The Procfile's `exec`: the pid honcho started, signals and waits for is the program
    (gunicorn, celery), not the `sh -c` around it that would die first on Ctrl-C."""
    programs = first_run.programs
    assert set(programs) == {"web", "worker", "events", "beat", "psp"}, programs
    expected = {
        "web": "gunicorn",
        "worker": "celery",
        "events": "celery",
        "beat": "celery",
        "psp": "gunicorn",
    }
    for name, program in expected.items():
        argv = programs[name].split()
        assert argv and "sh" not in Path(argv[0]).name and program in programs[name], (name, programs[name])


def test_ctrl_c_stops_every_process_it_started_and_logs_no_traceback(first_run, tree):
    # make itself dies of the SIGINT once run.py has stopped everything.
    assert first_run.exit_code in (0, -signal.SIGINT)
    assert first_run.left_behind == set()
    assert not (tree / "var" / "postgres" / "postmaster.pid").exists()  # a clean shutdown
    out = first_run.output
    assert "Traceback" not in out, out[out.index("Traceback") - 500 :][:4000]
    assert "Internal Server Error" not in out
    assert "Stopping PostgreSQL and Redis" in out


def test_a_second_make_run_keeps_the_data(first_run, tree, env, tmp_path_factory):
    run = MakeRun.start(tree, env, tmp_path_factory.mktemp("make-run") / "second.log")
    try:
        run.wait_ready(timeout=180)
        with run.api() as api:
            kept = {o["id"]: o["status"] for o in all_orders(api)}
    except BaseException:
        run.kill()
        raise
    exit_code, left_behind = _stop(run)
    assert kept == {o["id"]: o["status"] for o in first_run.orders}
    out = run.output()
    assert "data in var/postgres/," in out  # reused, not "(new)"
    assert exit_code in (0, -signal.SIGINT) and left_behind == set()
    assert "Traceback" not in out


def test_metrics_merge_every_process_of_make_run(first_run):
    """var/prometheus: /metrics on the web shows what the worker processes counted."""
    confirmed = sum(1 for o in first_run.orders if o["status"] == "confirmed")
    match = re.search(r"^concord_orders_confirmed_total (\S+)$", first_run.metrics, re.MULTILINE)
    assert match and float(match.group(1)) == confirmed, first_run.metrics[:2000]
    assert re.search(
        r'^concord_saga_step_duration_seconds_count\{.*step="charge_payment"', first_run.metrics, re.M
    )
