"""Indexes for the back office's live incidents at scale (docs/benchmarks.md, "Back
office pages"): both partial on the live states, so they hold the incidents someone
still has to look at, not the history.

- recon_incident_live_bo: detected_at, with state, severity, currency and amount in
  the index: the overview's counts and sums (by severity, money at risk, "Needs
  attention") and the waiting page's counts are index-only scans (before: a heap
  fetch per live incident, 10,000 at 200,000 incidents);
- recon_incident_live_money_bo: the incident queue's default order (worst money
  first), read in order instead of sorting every live incident.

Built CONCURRENTLY: a plain CREATE INDEX would block the detectors' writes."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("reconciliation", "0006_refund_pending_incident_type"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="incident",
            index=models.Index(
                condition=models.Q(("state__in", ("open", "acknowledged"))),
                fields=["detected_at"],
                include=("state", "severity", "currency", "amount_at_risk"),
                name="recon_incident_live_bo",
            ),
        ),
        AddIndexConcurrently(
            model_name="incident",
            index=models.Index(
                condition=models.Q(("state__in", ("open", "acknowledged"))),
                fields=["-amount_at_risk", "detected_at", "id"],
                name="recon_incident_live_money_bo",
            ),
        ),
    ]
