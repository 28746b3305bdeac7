"""Only support staff (reconciliation.change_incident) or a superuser act on incidents."""

import pytest
from django.contrib.auth.models import AnonymousUser

from reconciliation.errors import ActionNotPermitted
from reconciliation.models import Incident, IncidentNote
from reconciliation.services import (
    incident_acknowledge,
    incident_add_note,
    incident_assign,
    incident_dismiss,
    incident_report,
    incident_resolve,
)

pytestmark = pytest.mark.django_db

ACTIONS = {
    "acknowledge": lambda i, u: incident_acknowledge(incident_id=i, by=u, reason="r"),
    "assign": lambda i, u: incident_assign(incident_id=i, assignee_id=None, by=u),
    "note": lambda i, u: incident_add_note(incident_id=i, by=u, text="t"),
    "dismiss": lambda i, u: incident_dismiss(incident_id=i, by=u, reason="r"),
    "resolve": lambda i, u: incident_resolve(incident_id=i, by=u, reason="r"),
}


@pytest.fixture
def outsiders(finance_user, django_user_model):
    staff_without_rights = django_user_model.objects.create_user(
        username="intern", password="pw-1", is_staff=True
    )
    customer = django_user_model.objects.create_user(username="shop", password="pw-2")
    inactive = django_user_model.objects.create_superuser(username="gone", password="pw-3", email="")
    inactive.is_active = False
    inactive.save()
    return {
        "finance": finance_user,
        "staff_without_rights": staff_without_rights,
        "customer": customer,
        "inactive_superuser": inactive,
        "anonymous": AnonymousUser(),
        "nobody": None,
    }


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_outsiders_are_refused_and_nothing_changes(action, outsiders, make_finding):
    incident_id, _ = incident_report(make_finding())
    for who, user in outsiders.items():
        with pytest.raises(ActionNotPermitted):
            ACTIONS[action](incident_id, user)
        assert Incident.objects.get(pk=incident_id).state == "open", who
    assert not IncidentNote.objects.exists()


@pytest.mark.parametrize("actor", ["support_user", "superuser"])
def test_support_and_superusers_may_act(actor, request, make_finding):
    user = request.getfixturevalue(actor)
    incident_id, _ = incident_report(make_finding())
    assert incident_acknowledge(incident_id=incident_id, by=user, reason="mine").state == "acknowledged"
    assert incident_dismiss(incident_id=incident_id, by=user, reason="false positive").state == "dismissed"
