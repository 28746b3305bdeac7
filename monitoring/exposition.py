"""What a scrape of /metrics sees: the process families of core/metrics.py (merged
across this host's processes in multiprocess mode) and the state families computed
from the database and the broker (monitoring/collectors.py)."""

from __future__ import annotations

from prometheus_client import generate_latest

from core.metrics import process_registry

from .collectors import StateCollector


def render() -> bytes:
    registry = process_registry()
    registry.register(StateCollector())
    return generate_latest(registry)
