"""Saga definitions by name. Domain apps register theirs in AppConfig.ready(),
so web processes and workers alike know every saga type."""

from __future__ import annotations

from core import metrics
from core.errors import ConcordError

from .definition import SagaDefinition

_definitions: dict[str, SagaDefinition] = {}


def register(definition: SagaDefinition, *, replace: bool = False) -> SagaDefinition:
    existing = _definitions.get(definition.name)
    if existing is not None and existing is not definition and not replace:
        raise ConcordError(
            f"Saga type {definition.name!r} is already registered.", code="saga_type_duplicate"
        )
    _definitions[definition.name] = definition
    metrics.saga_type_known(saga=definition.name)
    return definition


def get(name: str) -> SagaDefinition:
    try:
        return _definitions[name]
    except KeyError:
        raise ConcordError(f"Unknown saga type {name!r}.", code="saga_type_unknown") from None


def names() -> list[str]:
    return sorted(_definitions)
