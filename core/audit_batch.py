"""Audit rows of one transaction written in one multi-row INSERT.

django-fsm-log writes a StateLog row per transition, at the transition (one round
trip each): a checkout's last checkpoint made four (two reservations committed,
the order confirmed, the run completed). `BatchingBackend` (settings
DJANGO_FSM_LOG_STORAGE_METHOD) keeps that behaviour everywhere except inside
`audit_batch()`: there the rows are collected and inserted together when the block
ends — inside the caller's transaction, before its commit, so the audit trail
commits with the change it describes or not at all. A block left by an exception
writes nothing (its transaction rolls back anyway). A caller that writes the
block's last statement itself may take the rows collected so far (`take_rows`) and
insert them in that statement (the saga executor's checkpoint: one round trip).

Rows are built exactly as django-fsm-log builds them (its own pre-transition
callback, given a collecting manager), so the audit trail is the same.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django_fsm_log.backends import BaseBackend, _pre_transition_callback

from .sql import insert_rows

_local = threading.local()


class _Collector:
    """Stands in for StateLog.objects: create() keeps the row for later."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def create(self, **values: Any) -> Any:
        from django_fsm_log.models import StateLog

        row = StateLog(**values)
        self.rows.append(row)
        return row


class BatchingBackend(BaseBackend):
    @staticmethod
    def setup_model(model: Any) -> None:
        pass

    @staticmethod
    def pre_transition_callback(sender: Any, **kwargs: Any) -> None:
        pass

    @staticmethod
    def post_transition_callback(
        sender: Any, instance: Any, name: str, source: Any, target: Any, **kwargs: Any
    ) -> Any:
        from django_fsm_log.models import StateLog

        rows = getattr(_local, "rows", None)
        manager: Any = StateLog.objects if rows is None else _Collector(rows)
        return _pre_transition_callback(sender, instance, name, source, target, manager, **kwargs)


@contextmanager
def audit_batch() -> Iterator[None]:
    """Collect the transitions' audit rows of this block and insert them in one
    statement when it ends without an error. Nested blocks join the outer one."""
    if getattr(_local, "rows", None) is not None:
        yield
        return
    rows: list[Any] = []
    _local.rows = rows
    try:
        yield
    except BaseException:
        _local.rows = None
        raise
    _local.rows = None
    if rows:
        insert_rows(rows)


def add_rows(rows: list[Any]) -> None:
    """Audit rows a service builds itself (a creation is no transition): collected by
    the enclosing audit_batch() block like the transitions' rows, inserted at once
    (one statement) outside a block."""
    collected = getattr(_local, "rows", None)
    if collected is None:
        insert_rows(rows)
    else:
        collected.extend(rows)


def take_rows() -> list[Any]:
    """The audit rows collected so far by the enclosing audit_batch() block, removed
    from it: the caller inserts them in its own statement, in the same transaction
    (core.sql.insert_values). Rows collected later are still inserted at the block's
    end. Empty outside a block."""
    rows = getattr(_local, "rows", None)
    if not rows:
        return []
    taken = list(rows)
    rows.clear()
    return taken
