"""Reads under a time budget: a block of SQL that either finishes within `seconds`
or is stopped, so a page can offer something else (a queued computation, a "being
computed" state) instead of making a person wait. `time_budget` bounds the block's
statements; `run_within` bounds the caller's wait too, Python included.

    try:
        with time_budget(0.05):
            figures = compute()          # any number of statements
    except OverBudget:
        queue_it_instead()

The whole block gets `seconds`, not each statement: before every statement the
budget left is set as PostgreSQL's statement_timeout (`set_config(..., true)`, local
to the transaction; one small round trip each), so a statement that would run past
the end is cancelled by the server (57014 query_canceled), and a statement that
would start after the end is not sent at all. Python time between statements counts
too; only the Python after the last statement is not bounded.

The block runs in a transaction of its own (a savepoint inside the caller's): a
cancelled statement rolls it back and leaves the caller's connection usable, and
the timeout never outlives the block — it ends with the block's transaction, or,
inside a caller's transaction, the value the caller had is put back (the savepoint's
release would otherwise keep it for the rest of the caller's transaction). For reads:
whatever the block wrote is rolled back when it runs out of time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction

T = TypeVar("T")

QUERY_CANCELED = "57014"  # PostgreSQL's statement_timeout fired


class OverBudget(Exception):
    """The block did not finish within its time budget (it was rolled back)."""


def _statement_timeout(raw: Any, value: str | None = None) -> str:
    """Set (transaction-local) or read the statement_timeout on the driver's connection:
    not through Django's cursors, whose execute wrappers (this module's too) would see it."""
    with raw.cursor() as cursor:
        if value is None:
            cursor.execute("SELECT current_setting('statement_timeout')")
        else:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [value])
        return cursor.fetchone()[0]


@contextmanager
def time_budget(seconds: float, *, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Run the block's statements within `seconds` in all, or raise OverBudget."""
    conn = connections[using]
    deadline = time.monotonic() + seconds
    inside_caller = conn.in_atomic_block or not conn.get_autocommit()

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict) -> Any:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms < 1:
            raise OverBudget(f"{seconds * 1000:.0f} ms spent before the next statement")
        _statement_timeout(conn.connection, str(left_ms))
        return execute(sql, params, many, context)

    try:
        with transaction.atomic(using=using):
            # Inside a caller's transaction, its statement_timeout is put back after the
            # block (the savepoint's release would keep ours); alone, the commit ends it.
            callers = _statement_timeout(conn.connection) if inside_caller else None
            with conn.execute_wrapper(wrapper):
                yield
            if callers is not None:
                _statement_timeout(conn.connection, callers)
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED:
            raise OverBudget(f"a statement ran past the {seconds * 1000:.0f} ms budget") from exc
        raise


def run_within(seconds: float, compute: Callable[[], T], *, name: str = "time-budget") -> T:
    """compute()'s result if it is done within `seconds`, else OverBudget — after at most
    `seconds` of the caller's time, whatever compute() spends its time on.

    time_budget alone bounds statements, not the Python between them (turning 3,000
    rows into dicts, building a statement with 3,000 parameters: 100-200 ms at 10M
    orders), so compute() runs on a thread of its own, with its own database
    connection, under time_budget(seconds), and the caller waits for it `seconds` at
    most. A compute that runs late stops at its next statement (or ends its last Python
    step) on its own, closing its connection; its result or error is dropped. The
    caller's connection and transaction are never touched: compute() sees committed
    data only."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            with time_budget(seconds):
                outcome["value"] = compute()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, if it still waits
            outcome["error"] = exc
        finally:
            connections.close_all()  # this thread's connections only

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise OverBudget(f"not done within {seconds * 1000:.0f} ms")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
