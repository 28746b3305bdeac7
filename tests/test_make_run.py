"""`make run` from a clean tree on the embedded default (SQLite, filesystem broker).

Copies the working tree's tracked files to a temporary folder, so the test sees a
clean checkout: no .venv, no var/. Then starts `make run`, waits for /readyz and
the sandbox provider, places one order through the API with the demo client's
token and waits for the checkout to confirm it (worker, broker, provider and its
webhooks all on the embedded default), and stops it with Ctrl-C (SIGINT to the
process group). Any traceback in the processes' output fails the test.
"""

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_copy(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if not src.is_file():
            continue
        target = dest / name.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(src.read_bytes())
        target.chmod(src.stat().st_mode)


def _wait_for(url: str, deadline: float, proc: subprocess.Popen, headers=None) -> httpx.Response:
    last_error = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"make run exited early with {proc.returncode}")
        try:
            response = httpx.get(url, timeout=2, headers=headers)
            if response.status_code == 200:
                return response
            last_error = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last_error = repr(exc)
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered 200: {last_error}")


def test_make_run_serves_on_the_embedded_default_and_stops_on_ctrl_c(tmp_path):
    tree = tmp_path / "concord"
    _clean_copy(tree)
    web_port, psp_port = _free_port(), _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "CELERY_", "DJANGO_", "PSP_"))
    }
    env.update(WEB_PORT=str(web_port), PSP_PORT=str(psp_port))
    log = (tmp_path / "make-run.log").open("w+")
    proc = subprocess.Popen(
        ["make", "run"], cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 600  # a first run creates and fills .venv
        ready = _wait_for(f"http://127.0.0.1:{web_port}/readyz", deadline, proc)
        assert ready.json()["status"] == "ok"
        charges = _wait_for(
            f"http://127.0.0.1:{psp_port}/v1/charges",
            deadline,
            proc,
            headers={"Authorization": "Bearer sk_test_concord"},
        )
        assert charges.json()["data"] == []
        admin = httpx.get(f"http://127.0.0.1:{web_port}/admin/login/", timeout=5)
        assert admin.status_code == 200
        assert "Django" in admin.text or "Concord" in admin.text
        assert (tree / "var" / "concord.sqlite3").exists()

        log.flush()
        token = re.search(
            r"Authorization: Token ([0-9a-f]{40})", (tmp_path / "make-run.log").read_text()
        ).group(1)
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{web_port}/api/v1", headers={"Authorization": f"Token {token}"}
        )
        placed = api.post(
            "/orders/",
            headers={"Idempotency-Key": "smoke-1"},
            json={
                "customer_email": "smoke@example.com",
                "currency": "EUR",
                "payment_method": "pm_card_ok",
                "lines": [{"sku": "MUG-001", "quantity": 1}],
            },
        )
        assert placed.status_code == 201, placed.text
        order_url = f"/orders/{placed.json()['id']}/"
        confirm_deadline = time.monotonic() + 60
        while api.get(order_url).json()["status"] != "confirmed" and time.monotonic() < confirm_deadline:
            time.sleep(0.5)
        assert api.get(order_url).json()["status"] == "confirmed"
        time.sleep(2)  # the provider's webhook about the charge arrives after the answer
        # /metrics merges every process's samples (var/prometheus): the worker confirmed it
        metrics = httpx.get(f"http://127.0.0.1:{web_port}/metrics", timeout=10)
        assert metrics.status_code == 200
        confirmed = re.search(r"^concord_orders_confirmed_total (\S+)$", metrics.text, re.MULTILINE)
        assert confirmed and float(confirmed.group(1)) >= 1, metrics.text[:2000]
        assert re.search(
            r'^concord_saga_step_duration_seconds_count\{.*step="charge_payment"', metrics.text, re.M
        )
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        log.seek(0)
        output = log.read()
    assert "Demo logins" in output, output[-3000:]
    assert "Traceback" not in output, output[output.index("Traceback") - 500 :][:4000]
    assert "Internal Server Error" not in output
    assert f"http://127.0.0.1:{web_port}/backoffice/" in output
    # Every process of the group is gone: Ctrl-C stopped them all.
    time.sleep(1)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
