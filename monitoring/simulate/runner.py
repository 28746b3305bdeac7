"""One simulation: set up, drive traffic with faults, settle, reconcile, check §6.

    report = Simulation(options, say=print).run()   # a JSON-ready dict; report["ok"]

With `orders=0` there is no traffic: the checks run over the orders placed since
`since` (a re-check of a running system, or of an earlier simulation).
"""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from inventory.services import product_upsert, stock_set_on_hand
from orders.selectors import order_facts
from payments.services import provider_client
from reconciliation.errors import ReconcileBusy
from reconciliation.selectors import incidents_summary_since
from reconciliation.services import reconcile_run
from sagas.selectors import saga_runs_for_subjects, saga_step_log_summary

from ..invariants import OK, SKIPPED, Scope, invariants_check
from .stack import Stack
from .traffic import Traffic

# Fault names as `--faults` takes them -> the sandbox's /_sandbox/faults fields.
FAULT_FIELDS = {
    "error": "error_rate",
    "error_after_commit": "error_after_commit_rate",
    "timeout_after_commit": "timeout_after_commit_rate",
    "decline": "decline_rate",
    "duplicate_webhook": "duplicate_webhook_rate",
    "latency_ms": "latency_ms",
    "timeout_seconds": "timeout_seconds",
    "seed": "seed",
}
CATALOG = (("A", Decimal("12.50")), ("B", Decimal("20.00")), ("C", Decimal("7.90")), ("D", Decimal("4.50")))
CURRENCY = "EUR"
AT_REST = ("completed", "compensated", "failed", "compensation_failed", "resolved")


@dataclass
class Options:
    orders: int = 200
    clients: int = 8
    faults: dict = field(default_factory=dict)
    kill_worker_every: float | None = None
    restart_broker: bool = False
    spawn: bool = False
    webs: int = 1
    workers: int = 2
    worker_pool: str = "threads"
    worker_concurrency: int = 4
    url: str = ""
    seed: int | None = None
    settle_timeout: float = 300.0
    since: datetime | None = None  # orders=0 only


class SimulationError(Exception):
    """The simulation could not run (bad options, the stack or provider unreachable)."""


class Simulation:
    def __init__(self, options: Options, *, say: Callable[[str], None]) -> None:
        self.o = options
        self.say = say
        self.run_id = f"sim-{timezone.now():%m%d%H%M%S}-{secrets.token_hex(2)}"
        self.started_at = timezone.now()
        self.stack: Stack | None = None
        self.client_ids: list[int] = []
        self._kill_log: list[str] = []
        self._fault_threads: list[threading.Thread] = []
        self._stop_faults = threading.Event()

    # --- the whole run ---------------------------------------------------------------------

    def run(self) -> dict:
        report: dict = {"run": self.run_id, "started_at": self.started_at.isoformat()}
        if self.o.orders == 0:
            since = self.o.since or (self.started_at - timedelta(hours=1))
            scope_orders = [row["id"] for row in order_facts(created_since=since)]
            self.say(
                f"Checking {len(scope_orders)} order(s) placed since {since:%Y-%m-%d %H:%M:%S} (no traffic)."
            )
            report.update(mode="check", since=since.isoformat())
            return self._finish(report, Scope(order_ids=scope_orders, since=since), traffic=None, settle=None)

        tokens, skus = self._setup()
        previous_faults = self._faults_set()
        try:
            urls = self._start_stack()
            traffic = Traffic(
                urls=urls,
                tokens=tokens,
                skus=skus,
                currency=CURRENCY,
                orders=self.o.orders,
                seed=self.o.seed if self.o.seed is not None else secrets.randbits(32),
                prefix=self.run_id,
            )
            self._start_process_faults(traffic)
            self.say(
                f"{self.run_id}: {self.o.orders} orders from {self.o.clients} clients against "
                f"{', '.join(urls)}{self._fault_summary()}"
            )
            result = traffic.run(on_tick=lambda: self._progress(traffic))
            self._stop_process_faults()
            self._faults_restore(previous_faults)
            if self.stack is not None:
                self.stack.ensure_running()
            settle = self._settle(result.seconds)
            report.update(mode="run", traffic=self._traffic_report(result, traffic))
            scope = Scope(
                order_ids=[row["id"] for row in order_facts(client_ids=self.client_ids)],
                since=self.started_at,
                responses=result.responses,
                client_ids=self.client_ids,
            )
            return self._finish(report, scope, traffic=result, settle=settle)
        finally:
            self._stop_process_faults()
            if self.stack is not None:
                self.stack.stop()

    # --- set-up --------------------------------------------------------------------------------

    def _setup(self) -> tuple[list[str], list[str]]:
        """Products of this run only (so its stock arithmetic is its own) and K API
        clients, created through the documented command."""
        skus = []
        per_sku = max(5, int(self.o.orders * 0.6))  # demand is ~0.75 per order per sku: some run out
        for suffix, price in CATALOG:
            sku = f"{self.run_id}-{suffix}".upper()[:64]
            product_upsert(sku=sku, name=f"Simulated {suffix}", price=price, currency=CURRENCY)
            stock_set_on_hand(sku=sku, on_hand=per_sku, reason=f"simulate {self.run_id}")
            skus.append(sku)
        tokens = []
        for k in range(self.o.clients):
            name = f"{self.run_id}-c{k}"
            out = StringIO()
            call_command("create_api_client", name, stdout=out)
            tokens.append(out.getvalue().strip().splitlines()[-1])
        self.client_ids = list(
            get_user_model()
            .objects.filter(username__startswith=f"{self.run_id}-c")
            .values_list("pk", flat=True)
        )
        return tokens, skus

    def _start_stack(self) -> list[str]:
        if self.o.spawn:
            workdir = Path(tempfile.mkdtemp(prefix=f"concord-{self.run_id}-"))
            self.say(
                f"Starting {self.o.webs} web, {self.o.workers} worker(s), beat and a Redis in {workdir} ..."
            )
            self.stack = Stack(
                workdir=workdir,
                webs=self.o.webs,
                workers=self.o.workers,
                pool=self.o.worker_pool,
                concurrency=self.o.worker_concurrency,
            )
            try:
                self.stack.start()
            except (RuntimeError, TimeoutError) as exc:
                self.stack.stop()
                raise SimulationError(f"the stack did not start: {exc}") from exc
            return self.stack.web_urls
        url = (self.o.url or f"http://127.0.0.1:{settings.WEB_PORT}").rstrip("/")
        try:
            httpx.get(url + "/healthz", timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            raise SimulationError(
                f"{url} does not answer /healthz ({exc}); start it (make run) or use --spawn"
            ) from exc
        return [url]

    # --- provider faults ------------------------------------------------------------------------

    def _sandbox(self, method: str, body: dict | None = None) -> dict:
        url = settings.PSP_BASE_URL.rstrip("/") + "/_sandbox/faults"
        try:
            response = httpx.request(
                method,
                url,
                json=body,
                headers={"Authorization": f"Bearer {settings.PSP_API_KEY}"},
                timeout=10,
            )
        except httpx.HTTPError as exc:
            raise SimulationError(f"the sandbox provider at {url} is unreachable: {exc}") from exc
        if response.status_code != 200:
            raise SimulationError(f"{method} {url}: {response.status_code} {response.text[:300]}")
        return response.json()

    def _faults_set(self) -> dict | None:
        if not self.o.faults:
            return None
        previous = self._sandbox("GET")
        self._sandbox("POST", {FAULT_FIELDS[name]: value for name, value in self.o.faults.items()})
        return previous

    def _faults_restore(self, previous: dict | None) -> None:
        """The outage ends with the traffic: the system must now heal by itself."""
        if previous is None:
            return
        keep = {k: v for k, v in previous.items() if k != "draws" and v not in (0, None)}
        if keep:
            self._sandbox("POST", keep)
        else:
            self._sandbox("DELETE")

    def _fault_summary(self) -> str:
        parts = [f"{k}={v}" for k, v in self.o.faults.items()]
        if self.o.kill_worker_every:
            parts.append(f"a worker killed every {self.o.kill_worker_every:g}s")
        if self.o.restart_broker:
            parts.append("the broker restarted once")
        return f" with faults: {', '.join(parts)}" if parts else ""

    # --- process faults (only on processes this run started) --------------------------------------

    def _start_process_faults(self, traffic: Traffic) -> None:
        stack = self.stack
        if stack is None:
            return
        if self.o.kill_worker_every:

            def killer() -> None:
                index = 0
                while not self._stop_faults.wait(self.o.kill_worker_every):
                    name = stack.kill_worker(index)
                    self._kill_log.append(name)
                    self.say(f"  killed {name} (SIGKILL) and started it again")
                    index += 1

            self._fault_threads.append(threading.Thread(target=killer, daemon=True))
        if self.o.restart_broker:

            def restarter() -> None:
                while not self._stop_faults.wait(0.5):
                    if traffic.placed >= self.o.orders * 0.4:
                        self.say("  restarting the broker (its queued messages are lost) ...")
                        stack.restart_broker()
                        self.say("  broker back")
                        return

            self._fault_threads.append(threading.Thread(target=restarter, daemon=True))
        for thread in self._fault_threads:
            thread.start()

    def _stop_process_faults(self) -> None:
        self._stop_faults.set()
        for thread in self._fault_threads:
            thread.join(60)
        self._fault_threads = []

    # --- progress, settling ----------------------------------------------------------------------

    def _states(self) -> Counter:
        return Counter(row["status"] for row in order_facts(client_ids=self.client_ids))

    def _progress(self, traffic: Traffic) -> None:
        now = time.monotonic()
        if now - getattr(self, "_last_tick", 0.0) < 2.0:
            return
        self._last_tick = now
        states = self._states()
        counts = traffic.result.counts
        self.say(
            f"  placed {traffic.placed}/{self.o.orders} · 201 {counts['http_201']} · retries {counts['retries']}"
            f" · confirmed {states['confirmed']} · cancelled {states['cancelled']}"
            f" · pending {states['pending'] + states['cancelling']}"
            + (f" · workers killed {len(self._kill_log)}" if self._kill_log else "")
        )

    def _settle(self, traffic_seconds: float) -> dict:
        """Wait until every run of the simulation's orders is at rest (or the timeout)."""
        self.say("Traffic done; waiting for the system to settle ...")
        started = time.monotonic()
        last_said = 0.0
        while True:
            ids = [str(row["id"]) for row in order_facts(client_ids=self.client_ids)]
            runs = saga_runs_for_subjects(subject_ids=ids)
            active = [r for r in runs if r.status not in AT_REST]
            elapsed = time.monotonic() - started
            if not active:
                break
            if elapsed > self.o.settle_timeout:
                self.say(f"  not settled after {elapsed:.0f}s: {len(active)} run(s) still active")
                break
            if elapsed - last_said >= 5:
                last_said = elapsed
                self.say(f"  {len(active)} run(s) still active after {elapsed:.0f}s")
            time.sleep(0.5)
        return {
            "settled": not active,
            "seconds": round(time.monotonic() - started, 2),
            "still_active": len(active),
            "runs": dict(Counter(str(r.status) for r in runs)),
        }

    def _reconcile(self) -> dict:
        deadline = time.monotonic() + 60
        while True:
            try:
                result = reconcile_run()
                break
            except ReconcileBusy:
                if time.monotonic() > deadline:
                    return {"error": "another reconciliation pass kept the lock for a minute"}
                time.sleep(1)
        return {
            "run_id": result.run_id,
            "status": result.status,
            "opened": result.opened,
            "auto_resolved": result.auto_resolved,
            "errors": result.errors,
        }

    # --- report ---------------------------------------------------------------------------------

    def _traffic_report(self, result, traffic: Traffic) -> dict:
        return {
            "orders_requested": self.o.orders,
            "orders_accepted": len(result.order_ids),
            "clients": self.o.clients,
            "seconds": round(result.seconds, 2),
            "requests": {k: v for k, v in sorted(result.counts.items()) if not k.startswith("answered_by ")},
            # Order POSTs answered per web server (several with --webs).
            "by_web": {
                k.removeprefix("answered_by ").rstrip("/"): v
                for k, v in sorted(result.counts.items())
                if k.startswith("answered_by ")
            },
            "unexpected_answers": result.unexpected[:20],
            "provider_faults": self.o.faults,
            "process_faults": {
                "worker_kills": self.stack.worker_kills if self.stack else 0,
                "broker_restarts": self.stack.broker_restarts if self.stack else 0,
            },
        }

    def _finish(self, report: dict, scope: Scope, *, traffic, settle: dict | None) -> dict:
        self.say("Reconciling and checking the invariants against the database and the provider ...")
        report["reconciliation"] = self._reconcile()
        orders = order_facts(order_ids=scope.order_ids)
        by_state: dict[str, dict] = {}
        for row in orders:
            entry = by_state.setdefault(row["status"], {"count": 0, "reasons": Counter()})
            entry["count"] += 1
            if row["failure_reason"]:
                entry["reasons"][row["failure_reason"]] += 1
        report["orders"] = {
            "total": len(orders),
            "by_state": {
                state: {"count": e["count"], "reasons": dict(e["reasons"])}
                for state, e in sorted(by_state.items())
            },
        }
        if settle is not None:
            report["settle"] = settle
        runs = saga_runs_for_subjects(subject_ids=[str(i) for i in scope.order_ids])
        report["engine"] = saga_step_log_summary(run_ids=[r.id for r in runs])
        report["incidents"] = incidents_summary_since(since=scope.since)
        with provider_client() as provider:
            checks = invariants_check(scope, provider=provider)
        report["invariants"] = [c.as_json() for c in checks]
        report["violations"] = sum(c.count for c in checks)
        report["ok"] = report["violations"] == 0
        report["checked"] = sum(1 for c in checks if c.status != SKIPPED)
        report["passed"] = sum(1 for c in checks if c.status == OK)
        return report
