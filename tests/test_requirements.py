"""Runtime and development requirements are separate, and `make test` audits the pinned
runtime set with pip-audit: a known vulnerability fails, an unreachable advisory
service is reported and skipped."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.audit_requirements import verdict

ROOT = Path(__file__).resolve().parent.parent
DEV_ONLY = {
    "pytest", "pytest-django", "pytest-timeout", "factory-boy", "hypothesis", "schemathesis",
    "playwright", "ruff", "import-linter", "pip-audit", "honcho", "mypy", "django-stubs",
}  # fmt: skip


def _names(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name = re.split(r"[=<>\[ ]", line, maxsplit=1)[0]
            pins[name.lower().replace("_", "-")] = line
    return pins


def test_the_runtime_pins_hold_no_development_tool_and_dev_builds_on_them():
    runtime = _names(ROOT / "requirements.txt")
    dev = _names(ROOT / "requirements-dev.txt")
    assert DEV_ONLY.isdisjoint(runtime), DEV_ONLY & set(runtime)
    assert DEV_ONLY <= set(dev)
    assert set(runtime).isdisjoint(dev)  # each pin lives in one file
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()
    for source, pinned in (("requirements.in", runtime), ("requirements-dev.in", {**runtime, **dev})):
        missing = set(_names(ROOT / source)) - set(pinned)
        assert not missing, f"{source} names {missing} without a pin"
        assert all("==" in pin for pin in pinned.values())


def _third_party_imports(folder: Path, own: set[str]) -> dict[str, Path]:
    """Top-level modules imported anywhere under `folder` (function-level imports too)
    that are neither the standard library nor Concord's own packages."""
    found: dict[str, Path] = {}
    for path in folder.rglob("*.py"):
        if ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in own and top != "__future__":
                    found.setdefault(top, path)
    return found


def test_every_imported_package_is_pinned():
    # A package installed by hand in one virtualenv and imported by the code, but pinned
    # nowhere, passes every test there and breaks the next fresh machine (.ci/run).
    own = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() or p.name == "manage.py"}
    runtime = set(_names(ROOT / "requirements.txt"))
    everything = runtime | set(_names(ROOT / "requirements-dev.txt"))
    bench_only = set(_names(ROOT / "bench" / "requirements.txt"))
    distributions = importlib.metadata.packages_distributions()
    app_folders = [p for p in ROOT.iterdir() if p.name in own and p.name not in {"tests", "bench", "scripts"}]

    def unpinned(folders: list[Path], pinned: set[str]) -> dict[str, str]:
        missing = {}
        for folder in folders:
            for module, path in _third_party_imports(folder, own).items():
                owners = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
                if not owners & pinned:
                    missing[module] = str(path.relative_to(ROOT))
        return missing

    assert not unpinned(app_folders, runtime), "imported by the app, not in requirements.txt"
    assert not unpinned([ROOT / "tests", ROOT / "scripts"], everything), "not in requirements*.txt"
    assert not unpinned([ROOT / "bench"], everything | bench_only), "not pinned for bench/"


def test_the_app_starts_without_any_development_package():
    # Production settings, URLs, WSGI and Celery apps and every task module, with the
    # development packages made unimportable: the runtime set is enough to run.
    blocked = ["pytest", "factory", "hypothesis", "schemathesis", "playwright", "honcho", "pip_audit"]
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError('development package imported at run time: ' + name)
sys.meta_path.insert(0, Block())
for name in [m for m in list(sys.modules) if m.split('.')[0] in {blocked!r}]:
    del sys.modules[name]
import django
django.setup()
import config.urls, config.wsgi, config.celery_app
from django.urls import get_resolver
get_resolver().url_patterns
from config.celery_app import app
app.loader.import_default_modules()
print('started')
"""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "q8Zr-5mT2v_Lw9xK3pNa7YcE1sUfH6dJ0gB4oRiVtMz$WnQe%yP",
        "ALLOWED_HOSTS": "concord.example.com",
        "PSP_BASE_URL": "https://psp.example.com",
        "PSP_API_KEY": "sk_live_51HxQ2mT9vLw3xK7pNa1YcE5sUfH8dJ4gB6oRiVtMzWnQeyP",
        "PSP_WEBHOOK_SECRET": "whsec_Kd83mQ0vZx7LpR2tNw9YcE4sUfH1aJ6gB5oXiVyMz",
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "started" in done.stdout


def _audit(requirements: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/audit_requirements.py", str(requirements)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=400,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_an_unreachable_advisory_service_is_reported_and_skipped(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("Django==3.2\n")
    proxy = f"http://127.0.0.1:{_closed_port()}"

    done = _audit(
        requirements,
        HTTPS_PROXY=proxy,
        HTTP_PROXY=proxy,
        https_proxy=proxy,
        http_proxy=proxy,
        NO_PROXY="",
        no_proxy="",
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "SKIPPED" in done.stdout and "cannot be reached" in done.stdout


@pytest.mark.slow
def test_a_known_vulnerable_pin_fails_the_audit_when_the_service_answers(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("Django==3.2\n")

    done = _audit(requirements, XDG_CACHE_HOME=str(tmp_path / "cache"))

    if "SKIPPED" in done.stdout:
        pytest.skip(f"the advisory service is not reachable from here: {done.stdout.strip()}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "django==3.2" in done.stdout.lower()


def test_the_verdict_fails_on_a_vulnerability_and_skips_only_when_nothing_was_audited():
    vulnerable = {
        "dependencies": [
            {
                "name": "django",
                "version": "3.2",
                "vulns": [{"id": "PYSEC-2021-98", "fix_versions": ["3.2.1"]}],
            },
            {"name": "six", "version": "1.17.0", "vulns": []},
        ]
    }
    code, lines = verdict(vulnerable)
    assert code == 1 and any("django==3.2: PYSEC-2021-98 (fixed in: 3.2.1)" in line for line in lines)

    nothing = {"dependencies": [{"name": "six", "skip_reason": "Dependency not found on PyPI"}]}
    code, lines = verdict(nothing)
    assert code == 0 and "SKIPPED" in lines[0]

    partial = {"dependencies": [*nothing["dependencies"], {"name": "idna", "version": "3.2", "vulns": []}]}
    code, lines = verdict(partial)
    assert code == 0 and "no known vulnerabilities in 1 pins" in lines[0] and "not audited" in lines[1]
