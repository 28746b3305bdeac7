"""reconciliation's writes. Other apps (the back office) call these, never the models."""

from reconciliation.detectors.base import Finding  # the vocabulary of incidents_report

from .balances import drift_as_json, provider_balances_verify
from .incidents import (
    IncidentView,
    ReportedIncident,
    ResolveOutcome,
    incident_acknowledge,
    incident_add_note,
    incident_assign,
    incident_customer_notified,
    incident_dismiss,
    incident_report,
    incident_resolve,
    incidents_auto_resolve,
    incidents_report,
)
from .provider_records import (
    SettlementLine,
    SyncResult,
    provider_records_refresh,
    provider_records_sync,
    provider_settlement_import,
)
from .remediation import (
    RemediationPreview,
    RemediationResult,
    remediation_actions,
    remediation_actions_by_type,
    remediation_apply,
    remediation_preview,
    remediations_auto_apply,
)
from .runs import ProgressEvent, RunResult, reconcile_run

__all__ = [
    "Finding",
    "IncidentView",
    "ProgressEvent",
    "RemediationPreview",
    "RemediationResult",
    "ReportedIncident",
    "ResolveOutcome",
    "RunResult",
    "SettlementLine",
    "SyncResult",
    "drift_as_json",
    "incident_acknowledge",
    "incident_add_note",
    "incident_assign",
    "incident_customer_notified",
    "incident_dismiss",
    "incident_report",
    "incident_resolve",
    "incidents_auto_resolve",
    "incidents_report",
    "provider_balances_verify",
    "provider_records_refresh",
    "provider_records_sync",
    "provider_settlement_import",
    "reconcile_run",
    "remediation_actions",
    "remediation_actions_by_type",
    "remediation_apply",
    "remediation_preview",
    "remediations_auto_apply",
]
