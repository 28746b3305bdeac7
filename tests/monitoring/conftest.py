"""Helpers of the observability tests: scrape /metrics and read samples."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from monitoring.collectors import reset_cache
from tests.checkout.conftest import wait_for  # noqa: F401 - shared with this area's tests

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def _fresh_state_gauges(settings):
    """Every scrape recomputes the database and broker gauges."""
    settings.METRICS_STATE_TTL = 0
    reset_cache()
    yield
    reset_cache()


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: Samples = {}
        for family in self.families.values():
            for sample in family.samples:
                self.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels (0 when absent: a counter not yet touched)."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum over every sample of `name` whose labels include these."""
        return sum(
            value
            for (sample, sample_labels), value in self.samples.items()
            if sample == name and all(dict(sample_labels).get(k) == v for k, v in labels.items())
        )

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def scrape(client: Client | None = None, **headers: str) -> Scrape:
    response = (client or Client()).get("/metrics", headers=headers)
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain")
    return Scrape(response.content.decode())
