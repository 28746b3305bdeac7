"""core.pokes' on-commit batch: the coalesced pokes one transaction asks for go
after its commit, their Redis flags in one round trip (core.cache.add_many), each
sent only if its flag was free; a cache or broker that is down is one warning line
and a pause, never an error for the committed caller. Real commits and the suite's
Redis."""

from __future__ import annotations

import pytest
import redis
from django.core.cache import cache
from django.db import transaction

from core import pokes

pytestmark = pytest.mark.django_db(transaction=True)

A, B = "tests:poke-a", "tests:poke-b"


@pytest.fixture
def sent():
    cache.delete_many([A, B])
    calls: list[str] = []
    yield calls
    cache.delete_many([A, B])


@pytest.fixture
def round_trips(monkeypatch):
    """Redis round trips the cache makes: ("pipeline", [commands]) or (command, args)."""
    trips: list[tuple[str, object]] = []
    execute, command = redis.client.Pipeline.execute, redis.Redis.execute_command

    def pipeline_execute(self, *args, **kwargs):
        trips.append(("pipeline", [c[0][0] for c in self.command_stack]))
        return execute(self, *args, **kwargs)

    def execute_command(self, *args, **kwargs):
        trips.append((args[0], args[1:]))
        return command(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", pipeline_execute)
    monkeypatch.setattr(redis.Redis, "execute_command", execute_command)
    return trips


def test_the_pokes_of_one_transaction_are_sent_after_its_commit_in_one_round_trip(sent, round_trips):
    with transaction.atomic():
        pokes.poke_coalesced_on_commit(A, lambda: sent.append("a"), seconds=60)
        pokes.poke_coalesced_on_commit(B, lambda: sent.append("b"), seconds=60)
        pokes.poke_coalesced_on_commit(A, lambda: sent.append("a again"), seconds=60)
        assert sent == [] and round_trips == []  # nothing before the commit

    assert sent == ["a", "b"]  # once per key and transaction
    assert round_trips == [("pipeline", ["SET", "SET"])]
    assert cache.get(A) == 1 and cache.get(B) == 1


def test_a_flag_still_set_swallows_its_poke_and_not_the_others(sent):
    cache.add(A, 1, timeout=60)  # a task for A is queued and has not started yet
    with transaction.atomic():
        pokes.poke_coalesced_on_commit(A, lambda: sent.append("a"), seconds=60)
        pokes.poke_coalesced_on_commit(B, lambda: sent.append("b"), seconds=60)
    assert sent == ["b"]


def test_outside_a_transaction_the_poke_goes_at_once(sent):
    pokes.poke_coalesced_on_commit(A, lambda: sent.append("a"), seconds=60)
    assert sent == ["a"]


def _poke_a_in_a_block_that_fails(sent: list[str]) -> None:
    with transaction.atomic():
        pokes.poke_coalesced_on_commit(A, lambda: sent.append("a"), seconds=60)
        raise RuntimeError("rolled back")


def test_a_savepoint_that_rolls_back_takes_its_poke_and_keeps_the_later_ones(sent):
    with transaction.atomic():
        with pytest.raises(RuntimeError):
            _poke_a_in_a_block_that_fails(sent)  # a savepoint: the batch goes with it
        pokes.poke_coalesced_on_commit(B, lambda: sent.append("b"), seconds=60)
    assert sent == ["b"]


def test_a_rolled_back_transaction_pokes_nothing(sent):
    with pytest.raises(RuntimeError):
        _poke_a_in_a_block_that_fails(sent)
    assert sent == [] and cache.get(A) is None


def test_a_cache_that_is_down_is_a_warning_and_pauses_pokes(sent, monkeypatch, caplog):
    tries: list[object] = []

    def cache_down(entries):
        tries.append(entries)
        raise redis.ConnectionError("redis is restarting")

    monkeypatch.setattr(cache, "add_many", cache_down)
    with transaction.atomic():  # no exception reaches the committed caller
        pokes.poke_coalesced_on_commit(A, lambda: sent.append("a"), seconds=60)
        pokes.poke_coalesced_on_commit(B, lambda: sent.append("b"), seconds=60)
    assert f"poke not sent: {A}, {B}" in caplog.text and "pokes paused" in caplog.text
    assert "Traceback" not in caplog.text and sent == []

    pokes.poke_coalesced_on_commit(A, lambda: sent.append("a"), seconds=60)
    assert len(tries) == 1  # paused: not even tried; the polls carry the work meanwhile


def test_add_many_is_add_per_entry():
    cache.delete_many([A, B])
    try:
        assert cache.add_many([(A, 1, 60), (A, 2, 60), (B, 3, 0)]) == [True, False, True]
        assert cache.get(A) == 1  # the first add won, as two adds in a row
        assert cache.get(B) is None  # timeout 0: added and gone at once, as Django's add
        assert 0 < cache._cache.get_client().ttl(cache.make_and_validate_key(A)) <= 60
        cache.add(B, 4, timeout=60)
        assert cache.add_many([(B, 5, 0), (B, 6, 60)]) == [False, False]
        assert cache.get(B) == 4
    finally:
        cache.delete_many([A, B])
