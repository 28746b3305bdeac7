"""Two connections report the same fingerprint at the same moment: one live incident."""

import pytest

from reconciliation.models import Incident
from reconciliation.services import incidents_report
from tests.fixtures.concurrency import at_once, raised


@pytest.mark.django_db(transaction=True)
def test_concurrent_reports_of_one_fingerprint_open_one_incident(make_finding):
    rounds = 5
    results: list = []
    for i in range(rounds):
        # Two connections report the same two fingerprints at once.
        batch = at_once(
            2, lambda n, i=i: incidents_report(findings=[make_finding(f"{i}"), make_finding("shared-same")])
        )
        assert raised(batch) == []
        results.extend(batch)

    assert Incident.objects.count() == rounds + 1
    assert Incident.objects.filter(state="open").count() == rounds + 1
    created = [r for batch in results for r in batch if r.created]
    # Exactly one of the two racing reports created each incident.
    assert len(created) == rounds + 1
