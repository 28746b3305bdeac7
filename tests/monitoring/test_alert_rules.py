"""The Prometheus rules and the Grafana dashboard in the repository are valid and
only name series that Concord exposes; every alert has a runbook in
docs/operations.md. (`promtool check rules` runs too where promtool is installed.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from monitoring.collectors import SLO_TARGETS, StateCollector

from .conftest import scrape

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "prometheus" / "concord-rules.yml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "concord-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"
DURATION = re.compile(r"^\d+[smhd]$")
# Series Prometheus makes itself.
BUILTIN = {"up"}


def _series_names(families) -> set[str]:
    names = set()
    for family in families:
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        else:
            names.add(family.name)
    return names


@pytest.fixture
def exposed(db) -> set[str]:
    """Every series name /metrics can show: the process families (defined in
    core/metrics.py; a labelled one shows once it has a sample) and the state
    families, which the view must show right now."""
    state = _series_names(StateCollector().collect())
    assert state <= scrape().names()
    return _series_names(REGISTRY.collect()) | state


def _names_in(expr: str) -> set[str]:
    without_matchers = re.sub(r"\{[^}]*\}", "", re.sub(r'"[^"]*"', "", expr))
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_matchers)
    tokens = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", without_ranges))
    return {t for t in tokens if t.startswith("concord") or t in BUILTIN}


def _balanced(expr: str) -> bool:
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for char in re.sub(r'"[^"]*"', "", expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


def _anchors(markdown: str) -> set[str]:
    anchors = set()
    for heading in re.findall(r"^#+\s+(.+)$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_rule_is_well_formed_and_names_only_exposed_series(exposed):
    rules = yaml.safe_load(RULES.read_text())
    recorded: set[str] = set()
    alerts = []
    for group in rules["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert ("record" in rule) != ("alert" in rule), rule
            expr = rule["expr"]
            assert isinstance(expr, str) and _balanced(expr), rule
            for name in _names_in(expr):
                if ":" in name:
                    assert name in recorded, f"{name} is used before a rule records it"
                elif name not in BUILTIN:
                    assert name in exposed, (
                        f"{rule.get('alert') or rule.get('record')}: {name} is not on /metrics"
                    )
            for slo in re.findall(r'slo="([^"]+)"', expr):
                assert slo in SLO_TARGETS, slo
            if "record" in rule:
                assert re.fullmatch(r"concord:[a-z0-9_]+:[a-z0-9_]+", rule["record"])
                recorded.add(rule["record"])
            else:
                alerts.append(rule)
    assert len(alerts) >= 12
    anchors = _anchors(OPERATIONS.read_text())
    for alert in alerts:
        assert DURATION.match(alert["for"]), alert
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"]
        page, _, anchor = alert["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{alert['alert']}: no runbook #{anchor}"


def test_every_consistency_slo_has_an_alert():
    text = RULES.read_text()
    for slo in SLO_TARGETS:
        if slo != "money_at_risk_max_age_seconds":  # its gauge is computed with the target already
            assert f'slo="{slo}"' in text, slo
    assert "concord_money_at_risk_overdue" in text


def test_the_dashboard_queries_only_exposed_or_recorded_series(exposed):
    dashboard = json.loads(DASHBOARD.read_text())
    recorded = {
        r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r
    }
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 30
    for expr in exprs:
        assert _balanced(expr), expr
        for name in _names_in(expr):
            assert name in exposed or name in recorded or name in BUILTIN, f"{name} in {expr!r}"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)
def test_promtool_accepts_the_rules():
    result = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
