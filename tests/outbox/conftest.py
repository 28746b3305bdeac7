"""Fixtures of the outbox tests: a consumer that records what it is handed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import transaction

from outbox import registry
from outbox.dto import EventDTO
from outbox.services import event_record


class Recorder:
    """A consumer whose effect is appending to a list when the relay's transaction
    commits (a rolled-back batch leaves no trace, like a database effect); it
    raises on some events when told to. `calls` counts every handler call."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[EventDTO] = []
        self.fail_on: set[str] = set()
        self.calls = 0

    def handle(self, event: EventDTO) -> None:
        self.calls += 1
        if event.id in self.fail_on or event.payload.get("boom"):
            raise RuntimeError(f"boom on {event.id}")
        transaction.on_commit(lambda: self.seen.append(event))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder("test-recorder")
    registry.register(registry.Consumer(rec.name, rec.handle), replace=True)
    yield rec
    registry.unregister(rec.name)


@pytest.fixture
def only_consumers():
    """only_consumers(*names): the relay sees only these consumers in this test."""
    saved = dict(registry._consumers)

    def keep(*names: str) -> None:
        for name in list(registry._consumers):
            if name not in names:
                registry.unregister(name)

    yield keep
    registry._consumers.clear()
    registry._consumers.update(saved)


def record(type: str = "thing.happened", aggregate_id: int | str = 1, **payload) -> str:
    with transaction.atomic():
        return event_record(type=type, aggregate_type="thing", aggregate_id=aggregate_id, payload=payload)
