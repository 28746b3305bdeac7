"""The pass itself: its run row, a provider outage, one pass at a time."""

import psycopg
import pytest
from django.db import connection, transaction

from payments.provider import ProviderClient
from reconciliation.detectors import detector_get, detectors_all
from reconciliation.errors import ReconcileBusy
from reconciliation.models import Incident, ReconciliationRun
from reconciliation.services import reconcile_run
from reconciliation.services.runs import _LOCK_KEY

pytestmark = pytest.mark.django_db


def _unreachable() -> ProviderClient:
    return ProviderClient(base_url="http://127.0.0.1:9", api_key="k", connect_timeout=0.2, read_timeout=0.2)


def test_a_provider_outage_makes_a_partial_run_that_resolves_nothing(provider_charge):
    provider_charge("90")  # no such order
    reconcile_run(sync=False, detectors=[detector_get("charge_without_order")])
    incident = Incident.objects.get()
    # Make the live incident one the detector no longer finds (as if the condition were
    # gone): with a working sync it would be auto-resolved; with the pull failing, the
    # provider-record detector's view may be stale, so nothing may be auto-resolved.
    Incident.objects.filter(pk=incident.pk).update(fingerprint="charge_without_order:gone-from-findings")

    result = reconcile_run(client=_unreachable(), detectors=[detector_get("charge_without_order")])

    assert result.status == "partial"
    assert result.auto_resolved == 0
    assert any(e.startswith("sync: provider unavailable") for e in result.errors)
    assert Incident.objects.get(pk=incident.pk).state == "open"
    run = ReconciliationRun.objects.get(pk=result.run_id)
    assert (run.status, run.finished_at is not None, run.errors) == ("partial", True, result.errors)


def test_run_row_counts_match_the_result(provider_charge):
    provider_charge("91")  # two orphan captures: two charge_without_order, one clearing_mismatch
    provider_charge("92")

    result = reconcile_run(sync=False)

    run = ReconciliationRun.objects.get(pk=result.run_id)
    assert (run.status, run.found, run.opened, run.auto_resolved) == ("succeeded", 3, 3, 0)
    assert run.detectors["charge_without_order"]["found"] == 2
    assert run.detectors["clearing_mismatch"]["found"] == 1
    # per detector, plus the full pass's shared join (one statement feeding several)
    assert set(run.detectors) == {d.name for d in detectors_all()} | {"shared_join"}
    assert run.started_at <= run.finished_at


def test_only_one_pass_at_a_time():
    settings_dict = connection.settings_dict
    with psycopg.connect(
        host=settings_dict["HOST"] or "127.0.0.1",
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"],
        dbname=settings_dict["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [_LOCK_KEY])
        with pytest.raises(ReconcileBusy):
            reconcile_run(sync=False)
        other.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])
    assert reconcile_run(sync=False).status == "succeeded"


def test_refuses_to_run_inside_a_callers_transaction(django_db_blocker):
    with transaction.atomic(durable=True), pytest.raises(RuntimeError):
        reconcile_run(sync=False)
