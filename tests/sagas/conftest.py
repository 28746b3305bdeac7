"""Fixtures of the saga engine's tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connections, transaction

from sagas.services import saga_start

from . import demo


@pytest.fixture(autouse=True)
def _clean_demo_redis() -> Iterator[None]:
    demo.clear()
    yield
    demo.clear()


@pytest.fixture(autouse=True)
def _fast_saga_settings(settings) -> None:
    settings.SAGA_LEASE_MARGIN = 1.0
    settings.SAGA_SWEEP_GRACE = 0.0
    settings.SAGA_SWEEP_REQUEUE_AFTER = 1.0


@pytest.fixture
def start_run():
    """start_run(saga_type, subject_id=None, context=None) -> run id, committed."""
    counter = iter(range(1, 10**6))

    def start(
        saga_type: str = "demo.local", subject_id: str | None = None, context: dict | None = None
    ) -> int:
        with transaction.atomic():
            return saga_start(
                saga_type=saga_type, subject_id=subject_id or f"subject-{next(counter)}", context=context
            )

    return start


class CommitCounter:
    """Counts transactions that commit on the default connection: explicit COMMITs
    of atomic blocks, plus write statements run in autocommit mode (each is a
    transaction of its own)."""

    def __init__(self) -> None:
        self.commits = 0
        self.autocommit_writes: list[str] = []
        self.thread = threading.get_ident()

    def wrap_execute(self, execute, sql, params, many, context):
        connection = context["connection"]
        if not connection.in_atomic_block and sql.lstrip().split(None, 1)[0].upper() in {
            "INSERT",
            "UPDATE",
            "DELETE",
        }:
            self.autocommit_writes.append(sql)
        return execute(sql, params, many, context)

    @property
    def total(self) -> int:
        return self.commits + len(self.autocommit_writes)


@pytest.fixture
def count_commits(monkeypatch):
    """with count_commits() as counter: ... ; counter.commits / counter.total"""
    from contextlib import contextmanager

    @contextmanager
    def counting():
        counter = CommitCounter()
        connection = connections["default"]
        original = connection.commit

        def commit():
            counter.commits += 1
            return original()

        monkeypatch.setattr(connection, "commit", commit)
        try:
            with connection.execute_wrapper(counter.wrap_execute):
                yield counter
        finally:
            monkeypatch.setattr(connection, "commit", original)

    return counting


@pytest.fixture
def staff_user(db) -> User:
    """A person with every saga operation permission."""
    user = User.objects.create_user("support-h4", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="sagas"))
    return User.objects.get(pk=user.pk)  # fresh instance: no stale permission cache


@pytest.fixture
def plain_user(db) -> User:
    return User.objects.create_user("nobody-h4", password="x", is_staff=True)
