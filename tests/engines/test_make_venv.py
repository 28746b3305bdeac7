"""`make venv` on a clean copy builds the virtualenv from requirements.txt (the path
`make run` and `make test` take on a fresh machine; the other tests here link the
suite's virtualenv instead), and a second `make venv` does nothing."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.fixtures.make_run import clean_copy, make_tree, run_env

pytestmark = pytest.mark.slow


def test_make_venv_builds_the_virtualenv_once():
    base = make_tree()
    try:
        tree = clean_copy(base / "concord")
        env = run_env()
        built = subprocess.run(
            ["make", "venv"], cwd=tree, env=env, capture_output=True, text=True, timeout=900
        )
        assert built.returncode == 0, built.stdout + built.stderr
        stamps = list((tree / ".venv").glob(".installed-*"))
        assert len(stamps) == 1

        imported = subprocess.run(
            [".venv/bin/python", "-c", "import django, celery, psycopg, rest_framework, honcho, gunicorn"],
            cwd=tree,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert imported.returncode == 0, imported.stderr
        frozen = subprocess.run(
            [".venv/bin/python", "-m", "pip", "freeze"], cwd=tree, capture_output=True, text=True, timeout=120
        ).stdout.lower()
        for line in (tree / "requirements.txt").read_text().splitlines():
            pin = line.split("#")[0].strip().lower()
            if "==" in pin:
                name, version = pin.split("==")
                normalized = name.split("[")[0].replace("_", "-")
                assert f"{normalized}=={version}" in frozen.replace("_", "-"), pin

        again = subprocess.run(
            ["make", "venv"], cwd=tree, env=env, capture_output=True, text=True, timeout=60
        )
        assert again.returncode == 0
        assert "pip install" not in again.stdout, again.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)
