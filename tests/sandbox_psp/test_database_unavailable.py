"""The sandbox answers 503 with Retry-After, not an HTML 500, while its own database is
unreachable, and Concord's client reads that as TRANSIENT (retry with the same key).

A real sandbox process whose PSP_DATABASE_URL names a port nothing listens on: every
connection attempt is refused, as when its PostgreSQL is down."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from payments.provider import Outcome, ProviderClient
from tests.fixtures.psp import REPO_ROOT, PspServer, _free_port, _wait_until_up

API_KEY = "sk_test_db_down"


@pytest.fixture(scope="module")
def psp_without_database(tmp_path_factory):
    port = _free_port()
    log_path = tmp_path_factory.mktemp("psp-db-down") / "psp.log"
    env = {
        **os.environ,
        "PSP_DATABASE_URL": f"postgres://postgres@127.0.0.1:{_free_port()}/nothing_listens",
        "PSP_API_KEY": API_KEY,
        "PSP_WEBHOOK_URL": "",
        "PSP_LOG_LEVEL": "WARNING",
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "sandbox_psp.wsgi", "--bind", f"127.0.0.1:{port}",
             "--worker-class", "gthread", "--workers", "1", "--threads", "2", "--no-control-socket"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = PspServer(f"http://127.0.0.1:{port}", API_KEY, "", env["PSP_DATABASE_URL"], log_path, process)
    try:
        _wait_until_up(server)  # /healthz touches no database
        yield server
    finally:
        server.http.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "/v1/charges",
            {"amount": 2500, "currency": "EUR", "payment_method": "pm_card_ok", "reference": "o-1"},
        ),
        ("GET", "/v1/charges/ch_missing", None),
        ("GET", "/v1/charges?reference=o-1", None),
    ],
)
def test_every_api_call_answers_503_with_retry_after(psp_without_database, method, path, body):
    response = psp_without_database.request(method, path, json=body, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "service_unavailable"
    assert "nothing_listens" not in response.text  # no connection details leak


def test_concords_client_reads_it_as_transient(psp_without_database):
    with ProviderClient(
        base_url=psp_without_database.base_url, api_key=API_KEY, connect_timeout=2, read_timeout=5
    ) as client:
        answer = client.create_charge(
            amount=2500, currency="EUR", payment_method="pm_card_ok", reference="o-1", idempotency_key="k-2"
        )
    assert answer.outcome is Outcome.TRANSIENT
    assert answer.http_status == 503 and answer.charge is None


def test_health_still_answers(psp_without_database):
    assert httpx.get(psp_without_database.base_url + "/healthz", timeout=2).status_code == 200
