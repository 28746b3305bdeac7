"""The proof that clearing_mismatch's running balance held (docs/reconciliation.md,
"Running balance").

ProviderNetByHour is kept by triggers in the same statement as the charges, so it can only
differ from them if the triggers were bypassed (disabled, session_replication_role =
replica, a row of the balance edited by hand). clearing_mismatch trusts it on every pass;
this check recomputes it from every charge every RECONCILE_VERIFY_BALANCES_INTERVAL
seconds (beat `reconciliation-verify-balances`, and `reconcile --verify-balances`) and
keeps one read_model_drift incident open while they differ.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from reconciliation.choices import IncidentType, Severity
from reconciliation.detectors import Finding
from reconciliation.selectors import provider_net_drift

from .incidents import incidents_auto_resolve, incidents_report

log = logging.getLogger(__name__)

MODEL = "provider_net_by_hour"
FINGERPRINT = f"{IncidentType.READ_MODEL_DRIFT}:{MODEL}"


def drift_as_json(row: dict[str, Any]) -> dict[str, str]:
    """One row of provider_net_drift as JSON-ready strings."""
    return {
        "currency": row["currency"],
        "hour": row["hour"].isoformat(),
        "kept": str(row["kept"]),
        "charges": str(row["charges"]),
    }


def provider_net_verify() -> list[dict[str, Any]]:
    """The hours where the running balance and the charges differ (empty when they agree);
    opens (or keeps) the drift incident while there are any, resolves it when there are none."""
    drift = provider_net_drift()
    findings = []
    if drift:
        log.error("provider running balance drift: %d hour(s)", len(drift))
        findings.append(
            Finding(
                type=IncidentType.READ_MODEL_DRIFT,
                fingerprint=FINGERPRINT,
                severity=Severity.HIGH,
                details={
                    "read_model": MODEL,
                    "differences": len(drift),
                    "first": [drift_as_json(row) for row in drift[:20]],
                    "fix": "find what bypassed the triggers; then rebuild the hours listed from the charges",
                },
            )
        )
    with transaction.atomic():
        incidents_report(findings=findings)
        incidents_auto_resolve(
            incident_type=IncidentType.READ_MODEL_DRIFT,
            still_found={FINGERPRINT} if drift else set(),
            evaluated={FINGERPRINT},
        )
    return drift
