"""core.logs keeps the bound ids in one ContextVar holding a mapping that is replaced,
never changed in place (issue 16: structlog's per-key contextvars walked the whole
context on every bind, clear and line). These pin the semantics the call sites rely
on: scopes restore, a copied context or another thread never sees our ids, and every
line carries them."""

from __future__ import annotations

import contextvars
import json
import logging
import threading

import pytest

from core import logs


@pytest.fixture(autouse=True)
def _fresh():
    logs.clear()
    yield
    logs.clear()


def test_bind_skips_empty_values_and_clear_forgets_everything():
    logs.bind(request_id="r-1", client_id=None, idempotency_key="")
    assert logs.bound() == {"request_id": "r-1"}
    logs.clear()
    assert logs.bound() == {}


def test_scope_and_detached_restore_the_ids_exactly():
    logs.bind(request_id="r-1")
    with logs.scope(order_id=5):
        logs.bind(saga_run_id=9)
        assert logs.bound() == {"request_id": "r-1", "order_id": 5, "saga_run_id": 9}
    assert logs.bound() == {"request_id": "r-1"}
    with logs.detached():
        assert logs.bound() == {}
        logs.bind(order_id=6)
    assert logs.bound() == {"request_id": "r-1"}


def test_a_copied_context_and_another_thread_keep_their_own_ids():
    logs.bind(request_id="r-1")

    def inside():
        assert logs.bound() == {"request_id": "r-1"}
        logs.bind(order_id=5)

    contextvars.copy_context().run(inside)
    assert logs.bound() == {"request_id": "r-1"}

    seen: list[dict] = []
    thread = threading.Thread(target=lambda: (logs.bind(order_id=8), seen.append(logs.bound())))
    thread.start()
    thread.join()
    assert seen == [{"order_id": 8}]
    assert logs.bound() == {"request_id": "r-1"}


def test_every_line_carries_the_bound_ids_and_its_own_keys_win():
    spec = dict(logs.logging_config(fmt="json", level="INFO")["formatters"]["concord"])
    formatter = spec.pop("()")(**spec)
    logs.bind(request_id="r-1", order_id=5)
    record = logging.makeLogRecord(
        {"name": "orders.services", "levelno": logging.INFO, "levelname": "INFO", "msg": "order accepted"}
    )
    record.order_id = 6  # extra={"order_id": 6}
    line = json.loads(formatter.format(record))
    assert line["event"] == "order accepted"
    assert line["request_id"] == "r-1"
    assert line["order_id"] == 6
    assert logs.correlation() == {"request_id": "r-1", "order_id": 5}
    assert logs.origin() == {"request_id": "r-1"}
