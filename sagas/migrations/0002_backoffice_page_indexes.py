"""Indexes for the back office's pages at millions of runs (docs/benchmarks.md, "Back
office pages"):

- sagas_run_stuck_oldest_bo: the runs a person may have to act on (attention and
  active statuses) in created_at order, with status and sla_at in the index. The stuck
  list, oldest first, reads its 50 rows in order instead of fetching and sorting every
  stuck run (26,000 at 1M runs: 60-250 ms), and its capped count is an index-only scan;
- sagas_run_created_bo: every run in created_at order, for the list with "include
  healthy runs" (?all=1, optionally one status): without it each page sorts all
  1M runs (650+ ms); one more btree entry per run created (created_at never changes,
  so the engine's updates stay HOT);
- sagas_run_subject_bo: every run about one order, for the case file
  (saga_runs_for_subject); the unique (saga_type, subject_id) cannot serve a lookup by
  subject alone (a scan of every run, 80+ ms at 1M runs).

Built CONCURRENTLY: on a live table of millions of runs a plain CREATE INDEX would
block the saga engine's writes for the whole build."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sagas", "0001_initial"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="sagarun",
            index=models.Index(
                fields=["created_at", "id"],
                name="sagas_run_stuck_oldest_bo",
                include=["status", "sla_at"],
                condition=models.Q(status__in=["failed", "compensation_failed", "running", "compensating"]),
            ),
        ),
        AddIndexConcurrently(
            model_name="sagarun",
            index=models.Index(fields=["created_at", "id"], name="sagas_run_created_bo"),
        ),
        AddIndexConcurrently(
            model_name="sagarun",
            index=models.Index(fields=["subject_id"], name="sagas_run_subject_bo"),
        ),
    ]
