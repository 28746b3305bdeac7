"""Services that join their caller's transaction instead of opening a savepoint.

A domain service decorated with `@transaction.atomic` costs two round trips
(SAVEPOINT, RELEASE) every time it is called inside another transaction — a
checkout's checkpoint called six of them, twelve round trips per order. Those
savepoints bought one thing: a caller could catch the service's error and go on
with its transaction. Services that check before they write do not need them:

    @joins_caller
    def stock_commit(...):
        rows = lock_and_read(...)        # checks: may raise; nothing written yet
        refuse_if_illegal(rows)
        with transaction.atomic(savepoint=False):
            write(...)                   # an error here marks the caller's
                                         # transaction for rollback

Alone (no transaction open) the service runs in a transaction of its own, as
before. Inside a caller's transaction it runs in it: an error raised by its
checks leaves the caller's transaction usable (nothing was written), an error
after a write marks the caller's transaction for rollback (Django does so for a
savepoint-less atomic block), so no half-done change can ever be committed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from django.db import connection, transaction

P = ParamSpec("P")
R = TypeVar("R")


def joins_caller(func: Callable[P, R]) -> Callable[P, R]:
    """Run `func` in the caller's transaction if one is open, else in its own."""

    @wraps(func)
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        if connection.in_atomic_block:
            return func(*args, **kwargs)
        with transaction.atomic():
            return func(*args, **kwargs)

    return inner
