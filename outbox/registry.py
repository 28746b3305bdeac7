"""Consumers by name. An app registers its consumers in AppConfig.ready(), so the
relay in every worker knows them all. A consumer is a function of one event that
writes its effect in the transaction the relay opens (never an external call: a
consumer with an outside effect records a row there and sends it afterwards, as
webhooks and notifications do). A read model is just another consumer.

    outbox.registry.register(Consumer("search", handle, event_types={"order.placed"}))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core.errors import ConcordError

from .dto import EventDTO

START_BEGINNING = "beginning"  # every event still kept (see OUTBOX_RETENTION_DAYS)
START_NOW = "now"  # only events sequenced after the consumer first runs


@dataclass(frozen=True)
class Consumer:
    name: str
    handle: Callable[[EventDTO], None]
    # None: every type. Events of other types are passed over (the position moves).
    event_types: frozenset[str] | None = None
    batch_size: int = 200
    start: str = START_BEGINNING
    description: str = field(default="", compare=False)

    def wants(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types


_consumers: dict[str, Consumer] = {}


def register(consumer: Consumer, *, replace: bool = False) -> Consumer:
    if not consumer.name or len(consumer.name) > 64:
        raise ConcordError("A consumer name is 1-64 characters.", code="outbox_consumer_invalid")
    if consumer.start not in (START_BEGINNING, START_NOW):
        raise ConcordError(f"Unknown start {consumer.start!r}.", code="outbox_consumer_invalid")
    existing = _consumers.get(consumer.name)
    if existing is not None and existing != consumer and not replace:
        raise ConcordError(
            f"Consumer {consumer.name!r} is already registered.", code="outbox_consumer_duplicate"
        )
    if consumer.event_types is not None and not isinstance(consumer.event_types, frozenset):
        consumer = Consumer(
            consumer.name,
            consumer.handle,
            frozenset(consumer.event_types),
            consumer.batch_size,
            consumer.start,
            consumer.description,
        )
    _consumers[consumer.name] = consumer
    return consumer


def unregister(name: str) -> None:
    _consumers.pop(name, None)


def get(name: str) -> Consumer:
    try:
        return _consumers[name]
    except KeyError:
        raise ConcordError(f"Unknown consumer {name!r}.", code="outbox_consumer_unknown") from None


def names() -> list[str]:
    return sorted(_consumers)


def consumers() -> Iterable[Consumer]:
    return [_consumers[n] for n in names()]
