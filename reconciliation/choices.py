"""State and category enums of reconciliation (DESIGN §2)."""

from django.db import models


class IncidentState(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    DISMISSED = "dismissed", "Dismissed"


# States in which an incident is "live": at most one live incident per fingerprint.
LIVE_STATES = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED)


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class ResolutionKind(models.TextChoices):
    AUTO = "auto", "Automatic (re-check found the condition gone)"
    MANUAL = "manual", "Manual (a person resolved it, re-check confirmed)"
    DISMISSED = "dismissed", "Dismissed (false positive)"


class IncidentType(models.TextChoices):
    """Every detector's type (issue 6). Types whose detector is not built yet are listed so
    the column's choices and the settings policy do not change when it arrives."""

    CHARGE_WITHOUT_ORDER = "charge_without_order", "Charge without order"
    DUPLICATE_CHARGE = "duplicate_charge", "Duplicate charge"
    AMOUNT_MISMATCH = "amount_mismatch", "Amount mismatch"
    ORDER_CONFIRMED_WITHOUT_CAPTURE = "order_confirmed_without_capture", "Order confirmed without capture"
    REFUND_MISSING = "refund_missing", "Refund missing"
    REFUND_UNRECORDED = "refund_unrecorded", "Refund unrecorded"
    REFUND_PENDING = "refund_pending", "Refund pending past its SLA"
    STOCK_DRIFT = "stock_drift", "Stock drift"
    LEDGER_IMBALANCE = "ledger_imbalance", "Ledger imbalance"
    CLEARING_MISMATCH = "clearing_mismatch", "Clearing mismatch"
    STUCK_SAGA = "stuck_saga", "Stuck saga"
    # Reported by readmodels' drift check (no detector module: a rebuild is the fix,
    # the next check resolves it).
    READ_MODEL_DRIFT = "read_model_drift", "Read model drift"


class ProviderObjectKind(models.TextChoices):
    CHARGE = "charge", "Charge"
    REFUND = "refund", "Refund"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    # Some step failed (provider down, one detector raised); the rest still ran.
    PARTIAL = "partial", "Partial"
    FAILED = "failed", "Failed"


class RemediationState(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Outcome unknown (safe to apply again)"
