"""Reconciliation's error codes (all ConcordError, so the API and the staff pages map them once)."""

from core.audit import ReasonRequired
from core.errors import ConcordError, Conflict, NotFound

__all__ = [
    "ActionNotPermitted",
    "IncidentClosed",
    "IncidentNotFound",
    "ReasonRequired",
    "RecheckUnavailable",
    "ReconcileBusy",
    "SettlementFormatError",
]


class IncidentNotFound(NotFound):
    code = "incident_not_found"


class IncidentClosed(Conflict):
    """The incident is resolved or dismissed; nothing more can be done to it."""

    code = "incident_closed"


class ActionNotPermitted(ConcordError):
    code = "permission_denied"
    http_status = 403


class RecheckUnavailable(ConcordError):
    """The re-check that must precede a manual resolution could not run (e.g. provider down)."""

    code = "recheck_unavailable"
    http_status = 503


class ReconcileBusy(Conflict):
    code = "reconcile_in_progress"


class SettlementFormatError(ConcordError):
    code = "settlement_format_invalid"
    http_status = 502
