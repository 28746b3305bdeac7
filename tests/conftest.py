"""Suite-wide fixtures. Tests run on real PostgreSQL and Redis (config.settings.test).

Fixtures that several areas share live in tests/fixtures/ and are registered
here; fixtures of one area live in that area's own conftest.py.
"""

import os
import shutil
import time

import pytest

pytest_plugins = [
    "tests.fixtures.psp",
    "tests.fixtures.worker",
]


def pytest_sessionfinish(session, exitstatus):
    # The metrics directory config.settings.test made for this session (not one it was given).
    if os.environ.get("CONCORD_TEST_METRICS_DIR_OWNER") == str(os.getpid()):
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


@pytest.fixture(autouse=True)
def _api_token_cache_cleared():
    """Each test's rows go with it: a token an earlier test's requests cached
    (apitokens.authentication) must not answer for the next test."""
    from apitokens.services import token_cache_clear

    token_cache_clear()
    yield
    token_cache_clear()


@pytest.fixture(autouse=True)
def _saga_start_poke_cleared(monkeypatch):
    """saga_start's coalesced poke flag (sagas.tasks.FRESH_POKE_KEY, in the suite's
    Redis) set by an earlier test would swallow this test's first poke for a second,
    and so would the pause after a poke an earlier test made fail (core.pokes)."""
    from core import pokes
    from sagas.tasks import FRESH_POKE_KEY

    monkeypatch.setattr(pokes, "_skip_until", 0.0)
    pokes.poke_clear(FRESH_POKE_KEY)


@pytest.fixture
def processes_alive():
    """A worker took a task and beat sent one just now (heartbeats live in the suite's Redis),
    so /readyz has no silent process to name."""
    from django.core.cache import cache

    from core.heartbeats import KEYS

    now = time.time()
    cache.set_many(dict.fromkeys(KEYS.values(), now), timeout=None)
