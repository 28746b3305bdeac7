"""core.budget.time_budget: a block of statements finishes within its budget or is
stopped (PostgreSQL cancels the statement running at the end; none starts after it),
and the timeout never outlives the block — neither in a caller's transaction nor in
autocommit. core.budget.run_within: the caller waits the budget at most, whatever the
compute spends its time on (Python included), and its thread's connection is closed."""

from __future__ import annotations

import time

import pytest
from django.db import DatabaseError, connection, connections, transaction

from core.budget import OverBudget, run_within, time_budget


def _timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


def _sleep(seconds: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [seconds])


@pytest.mark.django_db
def test_a_statement_running_past_the_budget_is_cancelled_and_the_caller_goes_on():
    with connection.cursor() as cursor:  # the caller's own timeout, in its transaction
        cursor.execute("SET LOCAL statement_timeout = '45s'")
    started = time.monotonic()
    with pytest.raises(OverBudget) as raised, time_budget(0.2):
        _sleep(5)
    assert time.monotonic() - started < 2  # not the 5 s of the statement
    assert getattr(raised.value.__cause__.__cause__, "sqlstate", None) == "57014"
    assert _timeout() == "45s"  # the caller's transaction is usable and keeps its own value


@pytest.mark.django_db
def test_the_budget_is_for_the_whole_block_not_each_statement():
    def ten_statements() -> None:
        for _ in range(10):
            _sleep(0.1)  # each alone within the budget

    started = time.monotonic()
    with pytest.raises(OverBudget), time_budget(0.3):
        ten_statements()
    assert time.monotonic() - started < 1.0


@pytest.mark.django_db
def test_no_statement_starts_once_the_budget_is_spent_in_python():
    sent = []

    def python_then_a_statement() -> None:
        time.sleep(0.1)
        with connection.execute_wrapper(lambda execute, sql, *rest: sent.append(sql)):
            _sleep(0)

    with pytest.raises(OverBudget), time_budget(0.05):
        python_then_a_statement()
    assert sent == []


@pytest.mark.django_db
def test_a_block_within_its_budget_returns_and_leaves_the_callers_timeout():
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '45s'")
    with time_budget(5):
        _sleep(0.01)
        assert _timeout() != "45s"  # the budget left, in ms
    assert _timeout() == "45s"  # put back: the savepoint's release would have kept ours


@pytest.mark.django_db(transaction=True)
def test_in_autocommit_the_timeout_ends_with_the_blocks_transaction():
    assert connection.get_autocommit()
    before = _timeout()
    with time_budget(5):
        _sleep(0.01)
    assert _timeout() == before
    with pytest.raises(OverBudget), time_budget(0.1):
        _sleep(2)
    assert connection.get_autocommit() and _timeout() == before
    _sleep(0.3)  # the next statements run without it


@pytest.mark.django_db
def test_other_errors_pass_through_and_roll_the_block_back():
    with pytest.raises(DatabaseError) as raised, time_budget(5):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")
    assert not isinstance(raised.value, OverBudget)
    assert not transaction.get_connection().needs_rollback
    assert _timeout() == "0"


@pytest.mark.django_db(transaction=True)
def test_run_within_waits_the_budget_at_most_even_in_python_and_cleans_up():
    seen = {}

    def slow_python() -> int:
        seen["connection"] = connections["default"]  # the thread's own
        _sleep(0)
        time.sleep(1.5)  # no statement to cancel: only the caller's wait is bounded
        return 1

    started = time.monotonic()
    with pytest.raises(OverBudget):
        run_within(0.2, slow_python)
    assert time.monotonic() - started < 1.0
    assert seen["connection"] is not connections["default"]  # the caller's was not used
    time.sleep(1.6)
    assert seen["connection"].connection is None  # closed when the thread ended
    assert run_within(5, lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        run_within(5, lambda: 1 / 0)


@pytest.mark.django_db(transaction=True)
def test_run_within_stops_a_late_statement_on_its_thread():
    started = time.monotonic()
    with pytest.raises(OverBudget):
        run_within(0.2, lambda: _sleep(5))
    assert time.monotonic() - started < 1.0
    time.sleep(0.5)  # by now the server has cancelled it: no backend still sleeping
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%'")
        assert cursor.fetchone()[0] == 0
