"""The service layer directly: for callers that are not DRF views."""

import pytest
from django.db import connection, transaction

from idempotency.errors import IdempotencyKeyReused
from idempotency.models import IdempotencyRecord
from idempotency.services import (
    idempotency_begin,
    idempotency_complete,
    request_fingerprint,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _begin(fingerprint="f" * 64, key="k"):
    return idempotency_begin(client_id=7, key=key, fingerprint=fingerprint, method="POST", path="/api/v1/x/")


def test_begin_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError):
        _begin()


def test_lock_timeout_is_restored_for_the_callers_own_locks():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '7s'")
        _begin()
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "7s"


def test_begin_complete_then_replay_and_reuse():
    with transaction.atomic():
        claim = _begin()
        assert claim.record_id is not None and claim.replay is None
        idempotency_complete(
            record_id=claim.record_id,
            status=201,
            body=b'{"id":1}',
            headers={"Content-Type": "application/json"},
        )

    with transaction.atomic():
        replay = _begin().replay
    assert (replay.status, replay.body, dict(replay.headers)) == (
        201,
        b'{"id":1}',
        {"Content-Type": "application/json"},
    )
    with pytest.raises(IdempotencyKeyReused), transaction.atomic():
        _begin(fingerprint="0" * 64)


def test_rolled_back_claim_leaves_the_key_free():
    with transaction.atomic():
        _begin(key="free")
        transaction.set_rollback(True)

    assert not IdempotencyRecord.objects.filter(key="free").exists()


def test_fingerprint_is_canonical():
    a = request_fingerprint(method="post", path="/p/", body={"b": 1, "a": [1, {"y": 2, "x": 1}]})
    b = request_fingerprint(method="POST", path="/p/", body={"a": [1, {"x": 1, "y": 2}], "b": 1})
    assert a == b
    assert a != request_fingerprint(method="POST", path="/q/", body={"a": [1, {"x": 1, "y": 2}], "b": 1})
    assert a != request_fingerprint(method="PUT", path="/p/", body={"a": [1, {"x": 1, "y": 2}], "b": 1})
    assert a != request_fingerprint(method="POST", path="/p/", body={"a": [{"x": 1, "y": 2}, 1], "b": 1})
