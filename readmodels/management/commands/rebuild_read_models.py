"""`python manage.py rebuild_read_models [--model finance|search] [--check]`:
recompute the read models from the owners' tables (docs/consistency.md)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from readmodels.services import REBUILDERS, read_models_check, read_models_rebuild


class Command(BaseCommand):
    help = "Rebuild the finance and search read models from the source tables; their consumers go on from the head."

    def add_arguments(self, parser):
        parser.add_argument(
            "--model", action="append", choices=sorted(REBUILDERS), help="Only this model (repeatable)."
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Do not rebuild: compare all of each model with a fresh recomputation and report "
            "drift (opens an incident).",
        )

    def handle(self, *args, **options):
        if options["check"]:
            for drift in read_models_check(confirm=False, full=True):
                state = f"{len(drift.differences)} differences" if drift.differences else "agrees"
                self.stdout.write(
                    f"{drift.model}: {state} (facts before {drift.cutoff:%Y-%m-%d %H:%M:%S} UTC)"
                )
                for difference in drift.differences[:20]:
                    self.stdout.write(f"  {difference}")
            return
        for name, position in read_models_rebuild(names=options["model"]).items():
            self.stdout.write(f"{name}: rebuilt; events after #{position} follow")
