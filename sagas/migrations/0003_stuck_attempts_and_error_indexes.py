"""Indexes for the stuck-sagas list's sort by attempts and its error filter (issue 16;
docs/benchmarks.md, "Back office pages"):

- sagas_run_stuck_attempts_bo: the runs a person may have to act on, most attempts
  first, with status and sla_at in the index. ?sort=attempts reads its page in order
  and stops there, where it sorted every matching stuck run (23,000 of 26,000 at 1M runs
  for ?error=HTTP 500: 35-70 ms, mostly fetching and upper-casing each run's error);
- sagas_run_stuck_error_bo: trigrams (pg_trgm) of UPPER(last_error) of those runs, for
  ?error= (Django's icontains is UPPER(last_error) LIKE UPPER('%…%')): a rare error
  text finds its few runs without reading every stuck run; a common one is better
  served reading in order, and the planner chooses (pg_trgm's statistics).

Both partial on the stuck statuses (as sagas_run_stuck_oldest_bo): a completed run has
no entry. Every update of a run already writes new index entries (updated_at is
indexed, so no update is HOT); these add one btree and one GIN entry per update of an
active run.

pg_trgm ships with PostgreSQL (Debian's postgresql package includes the contrib
modules) and is a trusted extension since PostgreSQL 13: CREATE EXTENSION IF NOT
EXISTS needs only CREATE on the database, not a superuser; it is a no-op where it
exists. Built CONCURRENTLY: a plain CREATE INDEX would block the saga engine's writes
for the whole build."""

from django.contrib.postgres.operations import AddIndexConcurrently, TrigramExtension
from django.db import migrations, models

STUCK = ["failed", "compensation_failed", "running", "compensating"]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sagas", "0002_backoffice_page_indexes"),
    ]

    operations = [
        TrigramExtension(),
        AddIndexConcurrently(
            model_name="sagarun",
            index=models.Index(
                fields=["-attempts", "id"],
                name="sagas_run_stuck_attempts_bo",
                include=["status", "sla_at"],
                condition=models.Q(status__in=STUCK),
            ),
        ),
        # In SQL: Django 5.2 writes GinIndex(OpClass(Upper(...))) as
        # ((UPPER("last_error") gin_trgm_ops)), which PostgreSQL refuses. The expression
        # is the one Django's icontains compiles to, so the planner can match it.
        migrations.RunSQL(
            sql=(
                'CREATE INDEX CONCURRENTLY IF NOT EXISTS "sagas_run_stuck_error_bo" ON "sagas_sagarun" '
                'USING gin ((UPPER("last_error")) gin_trgm_ops) '
                "WHERE \"status\" IN ('failed', 'compensation_failed', 'running', 'compensating')"
            ),
            reverse_sql='DROP INDEX CONCURRENTLY IF EXISTS "sagas_run_stuck_error_bo"',
        ),
    ]
