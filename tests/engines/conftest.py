"""Fixtures for tests that run `make run` or servers of their own (tests/fixtures/make_run.py)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.engines import free_port
from tests.fixtures.make_run import clean_copy, make_tree

# The virtualenv this suite runs in: linked into the copies, so they need not build one
# (tests/engines/test_make_venv.py covers building it).
VENV = Path(sys.prefix)


@pytest.fixture(scope="module")
def tree() -> Iterator[Path]:
    """A clean copy of the checkout (no var/) with the suite's virtualenv linked in."""
    base = make_tree()
    try:
        yield clean_copy(base / "concord", venv=VENV)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def ports(*names: str) -> dict[str, str]:
    return {name: str(free_port()) for name in names}
