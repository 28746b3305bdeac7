"""The import contracts cover every module: each module of an app that other apps use is
either part of its public surface (services and selectors, and the vocabulary they
speak) or protected in .importlinter. A new module is therefore a decision, not a
silent widening of the surface."""

from __future__ import annotations

import configparser
import pkgutil
from importlib import import_module
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The surface other apps may import, per app (DESIGN §1).
PUBLIC = {
    "inventory": {"services", "selectors", "choices", "dto", "errors"},
    "payments": {"services", "selectors", "choices", "dto"},
    "orders": {"services", "selectors", "choices", "dto"},
    "sagas": {"services", "selectors", "choices", "dto", "definition", "registry"},
    "idempotency": {"services", "selectors", "choices", "errors", "api"},
    "reconciliation": {"services", "selectors", "choices", "errors"},
    "outbox": {"services", "selectors", "dto", "registry"},
    "webhooks": {"services", "selectors", "dto", "choices"},
    "notifications": {"selectors"},
    "readmodels": {"selectors", "services"},
}


def _protected(app: str) -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    section = config[f"importlinter:contract:{app}-surface"]
    assert section["type"] == "protected"
    assert section["allowed_importers"].split() == [app]
    return {name.removeprefix(f"{app}.") for name in section["protected_modules"].split()}


@pytest.mark.parametrize("app", sorted(PUBLIC))
def test_every_module_is_public_or_protected(app):
    package = import_module(app)
    modules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    protected = _protected(app)

    assert modules - PUBLIC[app] - protected == set(), "decide: public surface or protected?"
    assert protected <= modules, "a protected module that no longer exists"
    assert not protected & PUBLIC[app]
