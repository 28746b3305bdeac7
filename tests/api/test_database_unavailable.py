"""An unreachable database is a 503 with Retry-After on every endpoint (the error
envelope under /api/), never a bare 500. The connection really fails: the default
database is pointed at a port where nothing listens. (Restarting a real server
under load: tests/engines/test_engine_restarts.py.)"""

from __future__ import annotations

import json
import sys

import pytest
from django.db import OperationalError, connection
from django.test import RequestFactory

from core.api import handler500
from core.outages import database_unavailable
from scripts.engines import free_port
from tests.api.conftest import assert_envelope
from tests.api_webhooks.conftest import SECRET, charge_event, deliver

ORDER = {
    "customer_email": "a@example.com",
    "currency": "EUR",
    "payment_method": "pm_card_ok",
    "lines": [{"sku": "MUG-001", "quantity": 1}],
}


@pytest.fixture
def database_down(django_db_blocker, settings):
    settings.UNAVAILABLE_RETRY_AFTER = 7
    with django_db_blocker.unblock():
        connection.close()
        saved = dict(connection.settings_dict)
        connection.settings_dict.update(HOST="127.0.0.1", PORT=free_port())
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict.clear()
            connection.settings_dict.update(saved)


def _assert_unavailable(response):
    error = assert_envelope(response, 503, "service_unavailable")
    assert response["Retry-After"] == "7"
    assert error["details"] == {"retry_after": 7}


def test_api_reads_and_writes_answer_503_with_retry_after(client, database_down):
    auth = {"HTTP_AUTHORIZATION": "Token " + "a" * 40}

    _assert_unavailable(client.get("/api/v1/products/", **auth))
    _assert_unavailable(
        client.post(
            "/api/v1/orders/", ORDER, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1", **auth
        )
    )


def test_a_signed_provider_webhook_answers_503_so_the_provider_retries(database_down, settings):
    settings.PSP_WEBHOOK_SECRET = SECRET
    _assert_unavailable(deliver(charge_event()))


def test_pages_answer_503_with_retry_after(client, database_down):
    for url in ("/backoffice/login/", "/admin/login/"):
        response = client.post(url, {"username": "support", "password": "x"})

        assert response.status_code == 503, url
        assert response["Retry-After"] == "7"
        assert b"Service unavailable" in response.content


def test_probes_tell_the_process_is_up_but_not_ready(client, database_down, settings):
    settings.READYZ_TOKEN = "readyz-token"
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json() == {"status": "unavailable"}
    ready = client.get("/readyz", headers={"Authorization": "Bearer readyz-token"})
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] != "ok"


def test_an_error_outside_any_view_is_a_503_too(database_down, settings):
    request = RequestFactory().get("/api/v1/products/")
    try:
        connection.ensure_connection()
    except OperationalError:
        assert database_unavailable(sys.exc_info()[1])
        response = handler500(request)  # Django calls it while handling the exception
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert json.loads(response.content)["error"]["code"] == "service_unavailable"


@pytest.mark.django_db
def test_a_statement_timeout_is_not_an_outage():
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 1")
        with pytest.raises(OperationalError) as raised:
            cursor.execute("SELECT pg_sleep(1)")

    assert not database_unavailable(raised.value)
