"""`python manage.py reconcile [--json]` (DESIGN §5): one reconciliation pass."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reconciliation.choices import RunStatus
from reconciliation.errors import ReconcileBusy
from reconciliation.selectors import incidents_open
from reconciliation.services import ProgressEvent, drift_as_json, provider_balances_verify, reconcile_run


class Command(BaseCommand):
    help = "Run one reconciliation pass: sync provider records, run every detector, report incidents."

    def add_arguments(self, parser):
        parser.add_argument(
            "--json",
            action="store_true",
            help='Print exactly one JSON object: {"opened", "resolved", "open": [...]}.',
        )
        parser.add_argument(
            "--no-sync",
            action="store_true",
            help="Skip the provider pull; run the detectors on the records already synced.",
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help="Evaluate every detector over everything, not only what changed since the last pass.",
        )
        parser.add_argument(
            "--verify-balances",
            action="store_true",
            help="Only check that the running balances the detectors read (kept by triggers: the "
            "provider's net per hour, the open charges per order, the ledger's balance per hour) "
            "equal a recomputation from their rows (a read_model_drift incident while not); exit "
            "non-zero when not. Reads every charge and ledger entry.",
        )

    def handle(self, *args, **options):
        if options["verify_balances"]:
            self._verify_balances(as_json=options["json"])
            return
        as_json = options["json"]
        interactive = not as_json and self.stdout.isatty()
        try:
            if interactive:
                result = self._run_with_progress(sync=not options["no_sync"], full=options["full"])
            else:
                result = reconcile_run(sync=not options["no_sync"], full=options["full"])
        except ReconcileBusy as exc:
            raise CommandError(exc.message) from exc

        # Warnings go to stderr so --json's stdout stays one parseable object.
        for error in result.errors:
            self.stderr.write(f"warning: {error}")
        if result.status == RunStatus.FAILED:
            raise CommandError(f"reconciliation run {result.run_id} failed: {'; '.join(result.errors)}")

        open_incidents = incidents_open()
        if as_json:
            payload = {
                "opened": result.opened,
                "resolved": result.auto_resolved,
                "open": [incident.as_json() for incident in open_incidents],
            }
            self.stdout.write(json.dumps(payload))
            return
        self.stdout.write(
            f"Run {result.run_id} ({result.status}): {result.rows_scanned} provider rows synced, "
            f"{result.found} findings, {result.opened} opened, {result.auto_resolved} auto-resolved."
        )
        self.stdout.write(f"{len(open_incidents)} open incident(s).")
        for incident in open_incidents:
            data = incident.as_json()
            self.stdout.write(
                f"  #{incident.id} {incident.type:<32} order={data['order_id']} charge={data['charge_id']} "
                f"{data['amount_at_risk']} {data['currency']} ({incident.severity}, {incident.state})"
            )

    def _verify_balances(self, *, as_json: bool) -> None:
        drifts = provider_balances_verify()
        if as_json:
            self.stdout.write(
                json.dumps({model: [drift_as_json(row) for row in drift] for model, drift in drifts.items()})
            )
        else:
            for model, drift in drifts.items():
                for row in drift:
                    self.stdout.write(
                        f"  {model}: " + ", ".join(f"{k} {v}" for k, v in drift_as_json(row).items())
                    )
        differing = {model: len(drift) for model, drift in drifts.items() if drift}
        if differing:
            raise CommandError(f"the running balances differ from their rows: {differing} row(s)")
        if not as_json:
            self.stdout.write("The running balances match their rows.")

    def _run_with_progress(self, *, sync: bool, full: bool):
        console = Console(file=self.stdout._out)
        with Progress(
            TextColumn("{task.description:<36}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("starting", total=None)
            synced_rows = 0

            def on_progress(event: ProgressEvent) -> None:
                nonlocal synced_rows
                synced_rows += event.rows
                label = f"syncing provider records ({synced_rows})" if event.stage == "sync" else event.stage
                bar.update(task, description=label, completed=event.step, total=event.steps)

            return reconcile_run(progress=on_progress, sync=sync, full=full)
