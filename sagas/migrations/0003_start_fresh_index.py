"""sagas_run_fresh: the runs tasks.start_fresh claims (saga_start's rows not yet
enqueued nor leased), ordered by next_attempt_at. A run leaves the index when it is
claimed, so it holds only the runs waiting for their first pass and the claim costs
the same however many runs wait in the queue behind it (the active-due index would
walk past every claimed run still queued). One more btree entry per run created.

Built CONCURRENTLY: a plain CREATE INDEX would block the saga engine's writes."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sagas", "0002_backoffice_page_indexes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="sagarun",
            index=models.Index(
                condition=models.Q(
                    ("attempts", 0),
                    ("direction", "forward"),
                    ("lease_owner", ""),
                    ("status", "running"),
                    ("step_index", 0),
                    ("swept_at__isnull", True),
                ),
                fields=["next_attempt_at"],
                name="sagas_run_fresh",
            ),
        ),
    ]
