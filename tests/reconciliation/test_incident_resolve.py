"""A manual resolution is checked: the detector re-runs on fresh provider data and the
incident reopens if the condition persists."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django_fsm_log.models import StateLog

from payments.provider import ProviderClient
from reconciliation.detectors import detector_get
from reconciliation.errors import RecheckUnavailable
from reconciliation.models import Incident
from reconciliation.services import incident_acknowledge, incident_resolve, reconcile_run

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _transitions(incident_id):
    ct = ContentType.objects.get_for_model(Incident)
    return list(
        StateLog.objects.filter(content_type=ct, object_id=incident_id)
        .order_by("id")
        .values_list("transition", "source_state", "state", "by__username")
    )


@pytest.fixture
def duplicate(psp, shop):
    client = psp.client()
    order_id, _ = shop.checkout(client)
    extra = shop.charge(client, order_id, "77:b")  # a second capture for a confirmed order
    reconcile_run(detectors=[detector_get("duplicate_charge")])
    return Incident.objects.get(), [None, extra], client


def test_resolving_while_the_condition_persists_reopens(duplicate, support_user):
    incident, _, _ = duplicate
    incident_acknowledge(incident_id=incident.pk, by=support_user, reason="on it")

    outcome = incident_resolve(incident_id=incident.pk, by=support_user, reason="I think it is refunded")

    assert outcome.reopened is True
    assert outcome.incident.state == "open"
    stored = Incident.objects.get(pk=incident.pk)
    assert (stored.state, stored.reopened_count, stored.resolved_at, stored.acknowledged_at) == (
        "open",
        1,
        None,
        None,
    )
    assert _transitions(incident.pk) == [
        ("detect", None, "open", None),
        ("acknowledge", "open", "acknowledged", "sam-support"),
        ("resolve", "acknowledged", "resolved", "sam-support"),
        ("reopen", "resolved", "open", None),
    ]


def test_resolving_after_the_fix_at_the_provider_sticks_without_waiting_for_a_sync(duplicate, support_user):
    incident, charges, client = duplicate
    # Refunded at the provider; no reconcile pass since, so the local copy is stale.
    client.create_refund(charge_id=charges[1].id, amount=2500, idempotency_key="77:refund")

    outcome = incident_resolve(incident_id=incident.pk, by=support_user, reason="refunded the second charge")
    again = incident_resolve(incident_id=incident.pk, by=support_user, reason="double click")

    assert (outcome.reopened, outcome.incident.state) == (False, "resolved")
    assert again.incident.state == "resolved"
    stored = Incident.objects.get(pk=incident.pk)
    assert (stored.resolution_kind, stored.resolved_by, stored.resolution_reason) == (
        "manual",
        support_user,
        "refunded the second charge",
    )
    assert [t[0] for t in _transitions(incident.pk)] == ["detect", "resolve"]
    # The next pass agrees and opens nothing.
    assert reconcile_run().opened == 0


def test_resolve_refuses_when_the_provider_cannot_confirm(duplicate, support_user):
    incident, _, _ = duplicate
    unreachable = ProviderClient(
        base_url="http://127.0.0.1:9", api_key="k", connect_timeout=0.2, read_timeout=0.2
    )

    with pytest.raises(RecheckUnavailable):
        incident_resolve(incident_id=incident.pk, by=support_user, reason="fixed", client=unreachable)

    assert Incident.objects.get(pk=incident.pk).state == "open"
    assert [t[0] for t in _transitions(incident.pk)] == ["detect"]
