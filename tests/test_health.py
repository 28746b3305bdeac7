import time

import pytest
from django.test import override_settings


def test_healthz_answers_without_touching_the_database(client):
    # No django_db mark: any query here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


READYZ_TOKEN = "readyz-token-for-tests"


@pytest.fixture
def broker_down():
    from config.celery_app import app

    old = app.conf.broker_write_url
    app.conf.broker_write_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    yield
    app.conf.broker_write_url = old


@pytest.mark.django_db
def test_readyz_reports_database_and_broker_to_a_token_holder(client, settings, processes_alive):
    settings.READYZ_TOKEN = READYZ_TOKEN
    response = client.get("/readyz", headers={"Authorization": f"Bearer {READYZ_TOKEN}"})
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.django_db
def test_readyz_is_unavailable_when_the_broker_is_unreachable(client, settings, broker_down):
    settings.READYZ_TOKEN = READYZ_TOKEN
    response = client.get("/readyz", headers={"Authorization": f"Bearer {READYZ_TOKEN}"})
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"] != "ok"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", "Token readyz-token-for-tests", "Bearer "]
)
def test_readyz_tells_anonymous_callers_the_status_only(client, settings, broker_down, authorization):
    # The failing check's text names hosts and ports: reconnaissance for an attacker.
    settings.READYZ_TOKEN = READYZ_TOKEN
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/readyz", headers=headers)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert b"6379" not in response.content and b"127.0.0.1" not in response.content


@pytest.mark.django_db
def test_readyz_without_a_configured_token_gives_no_details_to_an_empty_bearer(
    client, settings, processes_alive
):
    settings.READYZ_TOKEN = ""
    response = client.get("/readyz", headers={"Authorization": "Bearer "})
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_shows_details_to_staff_but_not_to_an_api_client_session(
    client, django_user_model, broker_down
):
    client.force_login(django_user_model.objects.create_user("shop", is_staff=False))
    assert client.get("/readyz").json() == {"status": "unavailable"}

    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    body = client.get("/readyz").json()
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"] != "ok"


def test_unknown_api_url_gets_the_error_envelope(client):
    with override_settings(DEBUG=False):
        response = client.get("/api/v1/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_readyz_names_a_silent_worker_but_stays_ready(client, settings):
    from django.core.cache import cache

    from core.heartbeats import BEAT, EVENTS, KEYS, WORKER

    settings.READYZ_TOKEN = READYZ_TOKEN
    settings.BACKOFFICE_WORKER_SILENT_AFTER = 60
    now = time.time()
    cache.set_many({KEYS[WORKER]: now - 600, KEYS[EVENTS]: now, KEYS[BEAT]: now}, timeout=None)

    assert client.get("/readyz").json() == {"status": "degraded"}  # which process: details only
    response = client.get("/readyz", headers={"Authorization": f"Bearer {READYZ_TOKEN}"})
    assert response.status_code == 200  # web still accepts orders; the sweeper catches up
    body = response.json()
    assert body["status"] == "degraded"
    assert body["details"]["processes"] == {"worker": "no worker has taken a task for 10 min"}

    cache.delete(KEYS[BEAT])  # beat never sent anything: named too
    details = client.get("/readyz", headers={"Authorization": f"Bearer {READYZ_TOKEN}"}).json()["details"]
    assert set(details["processes"]) == {"worker", "beat"}

    cache.set(KEYS[WORKER], time.time(), timeout=None)
    cache.set(KEYS[BEAT], time.time(), timeout=None)
    # The saga worker alive, the events worker (events and bulk queues) silent: named alone.
    cache.set(KEYS[EVENTS], now - 600, timeout=None)
    response = client.get("/readyz", headers={"Authorization": f"Bearer {READYZ_TOKEN}"})
    assert response.status_code == 200
    assert response.json()["details"]["processes"] == {
        "events": "no events worker has taken a task for 10 min"
    }

    cache.set(KEYS[EVENTS], time.time(), timeout=None)
    assert "details" not in client.get("/readyz", headers={"Authorization": f"Bearer {READYZ_TOKEN}"}).json()
