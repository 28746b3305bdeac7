"""The Django admin covers every Concord model, and every changelist renders."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

CONCORD_APPS = (
    "apitokens",
    "inventory",
    "payments",
    "orders",
    "sagas",
    "idempotency",
    "outbox",
    "reconciliation",
    "webhooks",
    "notifications",
    "readmodels",
    "backoffice",
)


def _concord_models():
    return [m for m in apps.get_models() if m._meta.app_label in CONCORD_APPS]


def test_every_concord_model_has_an_admin():
    missing = [m._meta.label for m in _concord_models() if m not in admin.site._registry]
    assert missing == []


@pytest.mark.django_db
@pytest.mark.parametrize("model", _concord_models(), ids=lambda m: m._meta.label)
def test_changelist_renders_for_a_superuser(admin_client, model):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    response = admin_client.get(url)
    assert response.status_code == 200
