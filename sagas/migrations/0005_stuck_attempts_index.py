"""sagas_run_stuck_attempts_bo: the stuck runs (attention and active statuses) by
attempts, most first, then id — as one ascending key ((attempts * -1), id), so the
stuck list filtered by error text and sorted by attempts reads them in chunks after a
keyset (sagas.selectors._stuck_error_scan) instead of sorting every stuck run whose
error matches (docs/benchmarks.md, "pages: back-office pages at 10M orders"). Partial:
only the runs a person may have to act on (~26,000 at 1M runs), so the engine's writes
to completed runs pay nothing.

Built CONCURRENTLY: a plain CREATE INDEX would block the saga engine's writes."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models
from django.db.models.expressions import CombinedExpression


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sagas", "0004_run_origin"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="sagarun",
            index=models.Index(
                CombinedExpression(models.F("attempts"), "*", models.Value(-1)),
                models.F("id"),
                condition=models.Q(status__in=["failed", "compensation_failed", "running", "compensating"]),
                name="sagas_run_stuck_attempts_bo",
            ),
        ),
    ]
