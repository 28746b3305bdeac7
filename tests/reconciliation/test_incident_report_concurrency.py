"""Two connections report the same fingerprint at the same moment: one live incident."""

import threading

import pytest
from django.db import connection

from reconciliation.models import Incident
from reconciliation.services import incidents_report


@pytest.mark.django_db(transaction=True)
def test_concurrent_reports_of_one_fingerprint_open_one_incident(make_finding):
    rounds = 5
    barrier = threading.Barrier(2)
    results: list = []
    errors: list = []

    def report(key: str) -> None:
        try:
            for i in range(rounds):
                barrier.wait(timeout=10)
                results.append(
                    incidents_report(findings=[make_finding(f"{i}"), make_finding(f"shared-{key}")])
                )
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=report, args=(k,)) for k in ("same", "same")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert Incident.objects.count() == rounds + 1
    assert Incident.objects.filter(state="open").count() == rounds + 1
    created = [r for batch in results for r in batch if r.created]
    # Exactly one of the two racing reports created each incident.
    assert len(created) == rounds + 1
