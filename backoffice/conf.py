"""Back-office settings, read from Django settings with safe defaults."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings

from reconciliation.selectors import refund_sla_seconds


def _amount(name: str, default: str) -> Decimal:
    raw = getattr(settings, name, default)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"{name} is not a number: {raw!r}") from None
    if value < 0 or not value.is_finite():
        raise ValueError(f"{name} must be zero or more")
    return value


def approval_threshold() -> Decimal:
    """A money-moving action whose amount, plus what was already refunded or asked for
    the same order, is strictly above this (in the payment's currency) needs a second
    person from finance (settings.BACKOFFICE_APPROVAL_THRESHOLD, from the environment)."""
    return _amount("BACKOFFICE_APPROVAL_THRESHOLD", "100.00")


def approval_daily_limit() -> Decimal:
    """What one person may move without a second person per UTC day, per currency
    (settings.BACKOFFICE_APPROVAL_DAILY_LIMIT): past it every money-moving action of
    theirs waits for finance, however small (issue 13, item 2)."""
    return _amount("BACKOFFICE_APPROVAL_DAILY_LIMIT", "1000.00")


def counts_seconds() -> float:
    """How long the overview keeps its count panels and the waiting page its per-state
    counts, per process (settings.BACKOFFICE_COUNTS_SECONDS, default 5; 0: read at
    every request). Both pages say "as of" beside them; their lists are read live."""
    return float(getattr(settings, "BACKOFFICE_COUNTS_SECONDS", 5.0))


def provider_probe_timeout() -> float:
    """Seconds the overview waits for the provider's health check."""
    return float(getattr(settings, "BACKOFFICE_PROVIDER_PROBE_TIMEOUT", 0.5))


# --- Service levels per waiting state (settings.BACKOFFICE_SLA, docs/backoffice.md) -----------

FINANCE_GROUP = "finance"
ONCALL_GROUP = "oncall"
# state key -> (what it is, attention_after seconds, escalate_after seconds, who is e-mailed).
# refund_pending has no limits of its own: its attention limit IS the refund SLA
# (REFUND_PENDING_SLA_SECONDS, reconciliation.selectors.refund_sla_seconds — the
# refund_pending detector's limit too), and it escalates at twice that unless
# BACKOFFICE_SLA sets its escalate_after. See refund_sla_defaults() and sla_limits().
SLA_DEFAULTS: dict[str, dict[str, object]] = {
    "payment_unknown": {
        "label": "Payment outcome unknown",
        "attention_after": 5 * 60,
        "escalate_after": 30 * 60,
        "notify": FINANCE_GROUP,
    },
    "refund_pending": {
        "label": "Refund pending at the provider",
        "notify": FINANCE_GROUP,
    },
    "order_cancelling": {
        "label": "Order cancelling",
        "attention_after": 15 * 60,
        "escalate_after": 60 * 60,
        "notify": ONCALL_GROUP,
    },
    "incident_unacknowledged": {
        "label": "Incident not acknowledged",
        "attention_after": 15 * 60,
        "escalate_after": 60 * 60,
        "notify": ONCALL_GROUP,
    },
    "incident_unresolved": {
        "label": "Incident not resolved",
        "attention_after": 4 * 3600,
        "escalate_after": 24 * 3600,
        "notify": FINANCE_GROUP,
    },
}


@dataclass(frozen=True)
class StateSla:
    key: str
    label: str
    attention_after: float  # seconds in the state before it climbs the overview
    escalate_after: float  # seconds in the state before it is e-mailed (once)
    notify: str  # FINANCE_GROUP | ONCALL_GROUP


def refund_sla_defaults() -> dict[str, object]:
    """refund_pending's limits: attention at the refund SLA (the one setting the
    refund_pending detector reads), escalation at twice it."""
    seconds = refund_sla_seconds()
    return {"attention_after": seconds, "escalate_after": 2 * seconds}


def sla_limits() -> dict[str, StateSla]:
    """Every state's limits: SLA_DEFAULTS overridden by settings.BACKOFFICE_SLA. A
    misspelt state or field, a negative limit, an escalation before the attention
    limit or an unknown group is a configuration error (ValueError), not a guess.

    refund_pending's attention limit is the refund SLA (REFUND_PENDING_SLA_SECONDS): a
    BACKOFFICE_SLA that gives it another attention_after is refused, so the overview and
    the refund_pending incident cannot disagree about when a refund is late. Checked at
    startup too (BackofficeConfig.ready)."""
    overrides = settings.BACKOFFICE_SLA or {}
    unknown = set(overrides) - set(SLA_DEFAULTS)
    if unknown:
        raise ValueError(f"BACKOFFICE_SLA has unknown states: {sorted(unknown)}")
    limits = {}
    for key, defaults in SLA_DEFAULTS.items():
        given = overrides.get(key) or {}
        bad = set(given) - {"attention_after", "escalate_after", "notify"}
        if bad:
            raise ValueError(f"BACKOFFICE_SLA[{key!r}] has unknown fields: {sorted(bad)}")
        if key == "refund_pending":
            defaults = {**defaults, **refund_sla_defaults()}
            asked = _seconds(given.get("attention_after"))
            if asked is not None and asked != defaults["attention_after"]:
                raise ValueError(
                    f"BACKOFFICE_SLA['refund_pending']['attention_after'] ({given['attention_after']!r}) "
                    f"differs from REFUND_PENDING_SLA_SECONDS ({defaults['attention_after']}): the refund "
                    "SLA is one setting, read by the back office and the refund_pending detector alike. "
                    "Set REFUND_PENDING_SLA_SECONDS and drop attention_after from BACKOFFICE_SLA."
                )
        merged = {**defaults, **given}
        try:
            attention, escalate = float(merged["attention_after"]), float(merged["escalate_after"])  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"BACKOFFICE_SLA[{key!r}]: limits are seconds") from None
        if attention < 0 or escalate < attention:
            raise ValueError(f"BACKOFFICE_SLA[{key!r}]: need 0 <= attention_after <= escalate_after")
        if merged["notify"] not in (FINANCE_GROUP, ONCALL_GROUP):
            raise ValueError(f"BACKOFFICE_SLA[{key!r}]: notify is {FINANCE_GROUP!r} or {ONCALL_GROUP!r}")
        limits[key] = StateSla(key, str(merged["label"]), attention, escalate, str(merged["notify"]))
    return limits


def _seconds(raw: object) -> float | None:
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def silent_after() -> dict[str, float]:
    """Seconds without a worker taking a task / beat sending one before the overview says so.
    The events worker (the events and bulk queues) has the saga worker's limit."""
    return {
        "worker": float(settings.BACKOFFICE_WORKER_SILENT_AFTER),
        "events": float(settings.BACKOFFICE_WORKER_SILENT_AFTER),
        "beat": float(settings.BACKOFFICE_BEAT_SILENT_AFTER),
    }


def bulk_max_items() -> int:
    """At most this many saga runs or incidents in one bulk action."""
    return int(getattr(settings, "BACKOFFICE_BULK_MAX_ITEMS", 20_000))


def bulk_chunk_seconds() -> float:
    """How long one task works on a bulk job before it queues the rest."""
    return float(getattr(settings, "BACKOFFICE_BULK_CHUNK_SECONDS", 10.0))


def bulk_lease_seconds() -> float:
    """How long a job is a worker's after its last progress: then the sweeper resumes it."""
    return float(getattr(settings, "BACKOFFICE_BULK_LEASE_SECONDS", 60.0))
