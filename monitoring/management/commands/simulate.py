"""`python manage.py simulate` (DESIGN §5): traffic through the public API with faults,
then one report of every invariant of §6. Exit status 1 on any violation.

    simulate --orders 300 --clients 8 --faults timeout_after_commit=0.1,error_after_commit=0.05
    simulate --spawn --workers 2 --kill-worker-every 10s --restart-broker --json
    simulate --orders 0 --since 2h          # no traffic: check what the last two hours left

Against the running stack (`make run`, or any other through settings / --url) by
default; with --spawn it starts its own web servers, workers, beat and Redis on the
configured database and provider, and only then may it kill them
(--kill-worker-every, --restart-broker). docs/operations.md explains the report.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from monitoring.simulate.runner import FAULT_FIELDS, Options, Simulation, SimulationError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}
RATE_FAULTS = {"error", "error_after_commit", "timeout_after_commit", "decline", "duplicate_webhook"}


def _seconds(text: str, *, what: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise CommandError(f"{what}: {text!r} is not a duration like 10s, 500ms, 2m")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_faults(text: str) -> dict:
    """`timeout_after_commit=0.1,error_after_commit=0.05` -> {name: number}."""
    faults: dict = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip().removesuffix("_rate")
        if not sep or name not in FAULT_FIELDS:
            raise CommandError(
                f"--faults: {part!r}; use name=value with names {', '.join(sorted(FAULT_FIELDS))}"
            )
        try:
            number = int(value) if name in ("latency_ms", "seed") else float(value)
        except ValueError:
            raise CommandError(f"--faults: {name} needs a number, not {value!r}") from None
        if name in RATE_FAULTS and not 0 <= number <= 1:
            raise CommandError(f"--faults: {name} is a rate from 0 to 1")
        if number < 0 and name != "seed":
            raise CommandError(f"--faults: {name} cannot be negative")
        faults[name] = number
    return faults


class Command(BaseCommand):
    help = "Drive orders through the API with provider and process faults, then check every invariant (DESIGN §6)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--orders", type=int, default=200, help="Orders to place (0: only check; see --since)."
        )
        parser.add_argument("--clients", type=int, default=8, help="Concurrent API clients (default 8).")
        parser.add_argument(
            "--faults",
            default="",
            help="Provider faults while the traffic runs, e.g. timeout_after_commit=0.1,error_after_commit=0.05 "
            "(also error, decline, duplicate_webhook, latency_ms, timeout_seconds, seed). Cleared afterwards.",
        )
        parser.add_argument(
            "--kill-worker-every", default="", help="SIGKILL one worker this often, e.g. 10s (needs --spawn)."
        )
        parser.add_argument(
            "--restart-broker", action="store_true", help="Restart the broker mid-traffic (needs --spawn)."
        )
        parser.add_argument(
            "--spawn", action="store_true", help="Start own web servers, workers, beat and Redis for the run."
        )
        parser.add_argument("--webs", type=int, default=1, help="Web servers with --spawn (default 1).")
        parser.add_argument("--workers", type=int, default=2, help="Workers with --spawn (default 2).")
        parser.add_argument(
            "--worker-pool",
            choices=("threads", "prefork", "solo"),
            default="threads",
            help="Celery pool of the spawned workers (default threads).",
        )
        parser.add_argument(
            "--worker-concurrency", type=int, default=4, help="Tasks at once per spawned worker (default 4)."
        )
        parser.add_argument(
            "--url", default="", help="Base URL of a running stack (default the local WEB_PORT)."
        )
        parser.add_argument("--seed", type=int, help="Seed of the traffic mix (default random).")
        parser.add_argument(
            "--settle-timeout", default="300s", help="How long to wait for every saga to come to rest (300s)."
        )
        parser.add_argument(
            "--since",
            default="",
            help="With --orders 0: check orders placed since this ISO time or this long ago (e.g. 2h; default 1h).",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON object (progress goes to stderr)."
        )

    def handle(self, *args, **o) -> None:
        options = self._options(o)
        as_json = o["json"]

        def say(line: str) -> None:
            (self.stderr if as_json else self.stdout).write(line)
            (sys.stderr if as_json else sys.stdout).flush()

        try:
            report = Simulation(options, say=say).run()
        except SimulationError as exc:
            raise CommandError(str(exc)) from exc
        if as_json:
            self.stdout.write(json.dumps(report, default=str))
        else:
            self._print(report)
        if not report["ok"]:
            sys.exit(1)

    def _options(self, o: dict) -> Options:
        if o["orders"] < 0 or o["orders"] > 1_000_000:
            raise CommandError("--orders must be between 0 and 1000000")
        if not 1 <= o["clients"] <= 256:
            raise CommandError("--clients must be between 1 and 256")
        if not 1 <= o["webs"] <= 8 or not 1 <= o["workers"] <= 16 or not 1 <= o["worker_concurrency"] <= 32:
            raise CommandError("--webs must be 1-8, --workers 1-16 and --worker-concurrency 1-32")
        kill_every = (
            _seconds(o["kill_worker_every"], what="--kill-worker-every") if o["kill_worker_every"] else None
        )
        if kill_every is not None and kill_every < 1:
            raise CommandError("--kill-worker-every must be at least 1s")
        if (kill_every or o["restart_broker"]) and not o["spawn"]:
            raise CommandError(
                "--kill-worker-every and --restart-broker break processes: only those simulate started itself "
                "(add --spawn)."
            )
        since = None
        if o["since"]:
            if o["orders"]:
                raise CommandError("--since is for --orders 0 (a check without traffic)")
            since = parse_datetime(o["since"])
            if since is None:
                since = timezone.now() - timedelta(seconds=_seconds(o["since"], what="--since"))
            elif timezone.is_naive(since):
                since = timezone.make_aware(since)
        return Options(
            orders=o["orders"],
            clients=o["clients"],
            faults=parse_faults(o["faults"]),
            kill_worker_every=kill_every,
            restart_broker=o["restart_broker"],
            spawn=o["spawn"],
            webs=o["webs"],
            workers=o["workers"],
            worker_pool=o["worker_pool"],
            worker_concurrency=1 if o["worker_pool"] == "solo" else o["worker_concurrency"],
            url=o["url"],
            seed=o["seed"],
            settle_timeout=_seconds(o["settle_timeout"], what="--settle-timeout"),
            since=since,
        )

    def _print(self, r: dict) -> None:
        w = self.stdout.write
        w("")
        w(f"Simulation {r['run']} ({r['mode']})")
        traffic = r.get("traffic")
        if traffic:
            req = traffic["requests"]
            w(
                f"Traffic: {traffic['orders_accepted']}/{traffic['orders_requested']} orders accepted from "
                f"{traffic['clients']} clients in {traffic['seconds']:.1f}s; "
                + ", ".join(f"{k} {v}" for k, v in req.items())
            )
            pf = traffic["process_faults"]
            if pf["worker_kills"] or pf["broker_restarts"]:
                w(
                    f"Process faults: {pf['worker_kills']} worker kill(s), {pf['broker_restarts']} broker restart(s)"
                )
            for line in traffic["unexpected_answers"]:
                w(f"  unexpected answer: {line}")
        orders = r["orders"]
        states = []
        for state, e in orders["by_state"].items():
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(e["reasons"].items()))
            states.append(f"{state} {e['count']}" + (f" ({reasons})" if reasons else ""))
        w(f"Orders ({orders['total']}): " + (" · ".join(states) or "none"))
        if "settle" in r:
            s = r["settle"]
            verdict = "settled" if s["settled"] else f"NOT settled ({s['still_active']} runs active)"
            w(f"Time to settle: {s['seconds']:.1f}s, {verdict}; runs: {s['runs']}")
        e = r["engine"]
        w(
            f"Saga steps: {e['attempts']} attempts {e['by_outcome']}; done twice: {len(e['steps_done_twice'])}; "
            f"leases expired: {e['lease_expired']}; workers: {', '.join(e['workers']) or '-'}"
        )
        rec = r["reconciliation"]
        if "run_id" in rec:
            w(
                f"Reconciliation pass {rec['run_id']} ({rec['status']}): {rec['opened']} opened, {rec['auto_resolved']} auto-resolved"
            )
        if r["incidents"]:
            w("Incidents since the start (opened / resolved themselves / by people / dismissed / live):")
            for kind, c in r["incidents"].items():
                w(
                    f"  {kind:<32} {c['opened']:>4} / {c['auto_resolved']} / {c['resolved_by_people']} / "
                    f"{c['dismissed']} / {c['live']}"
                )
        else:
            w("Incidents since the start: none")
        w("Invariants (DESIGN §6):")
        for c in r["invariants"]:
            mark = {"ok": "ok  ", "violated": "FAIL", "skipped": "skip"}[c["status"]]
            detail = f"{c['checked']} checked" if c["status"] != "skipped" else c["note"]
            if c["count"]:
                detail += f", {c['count']} violation(s)"
            elif c["note"] and c["status"] != "skipped":
                detail += f"; {c['note']}"
            w(f"  [{mark}] §{c['invariant']} {c['name']}: {detail}")
            for v in c["violations"]:
                w(f"         - {v}")
        w(
            f"Result: {'all invariants hold' if r['ok'] else str(r['violations']) + ' violation(s)'} "
            f"({r['passed']} of {r['checked']} checks passed)"
        )
