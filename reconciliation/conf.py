"""Reading the RECONCILIATION settings block with its defaults in one place."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Re-pull this many seconds before the cursor: a charge the provider committed late
    # (slow request, clock skew) still carries its earlier `created`.
    "SYNC_OVERLAP_SECONDS": 300,
    "SYNC_BATCH_SIZE": 500,
    # An order still pending this long after creation counts as stuck (phase 2 detectors).
    "PENDING_ORDER_SLA_SECONDS": 900,
    # Grace for work in flight: a charge the provider committed a moment ago whose saga
    # has not recorded it yet, an order confirmed while the pass ran. Detectors comparing
    # Concord with provider records ignore rows younger than this.
    "SETTLE_SECONDS": 60,
    # refund_pending: a refund pending longer than this after it was asked for.
    "REFUND_PENDING_SLA_SECONDS": 1800,
    # stuck_saga reads at most this many stuck runs per pass.
    "STUCK_SAGA_LIMIT": 10_000,
    # Detector names to skip (e.g. while one is being investigated).
    "DISABLED_DETECTORS": [],
    # Incremental passes: a detector that can re-evaluate just the changed orders does so
    # when its last complete full evaluation is younger than FULL_PASS_SECONDS; otherwise
    # (and on the first pass) it runs over everything. The full pass is the safety net for
    # changes no timestamp shows (a bulk UPDATE that skipped updated_at, a new detector).
    "INCREMENTAL": True,
    "FULL_PASS_SECONDS": 3600,
    # A change is looked for back to the last complete evaluation minus the longest time
    # threshold (SETTLE_SECONDS, PENDING_ORDER_SLA_SECONDS: rows that crossed one since)
    # minus this margin (transactions that committed late, clock skew between hosts).
    "CHANGE_OVERLAP_SECONDS": 300,
    # The full pass's shared join (detectors/shared.py) hashes a million-row table per
    # join: with PostgreSQL's default work_mem (4MB) each hash spills to 16 batches on
    # disk. One pass runs at a time (advisory lock), so this much is asked for once.
    "SHARED_JOIN_WORK_MEM": "256MB",
    # Its candidate statements walk the tables' indexes side by side (merge joins: no hash
    # table, no sort) instead of the hash joins the planner prefers: 1.5-4x faster at 1M
    # rows here. False leaves the plan to the planner.
    "SHARED_JOIN_MERGE_PLANS": True,
    # Its two candidate statements (orders x charges; lines x reservations) run side by
    # side on two connections (the second one for the seconds the statement takes).
    "SHARED_JOIN_CONCURRENT": True,
    # clearing_mismatch reads the provider's net from ProviderNetByHour and the full pass's
    # shared join the duplicate candidates from ProviderOrderCaptures, both kept by
    # triggers with the charges (docs/reconciliation.md, "Running balance"). False: both
    # count every charge on every pass, as before (the reference the tests compare with,
    # and the bench's A/B).
    "KEPT_BALANCES": True,
    # Per incident type: may a remediation run without a person, and up to what amount?
    # Money-moving automation is off unless a type says otherwise.
    "AUTO_REMEDIATION": {},
}


def setting(name: str) -> Any:
    block = getattr(settings, "RECONCILIATION", {}) or {}
    return block.get(name, DEFAULTS[name])


def refund_pending_sla_seconds() -> int:
    """How long a customer may wait for a refund Concord asked for: the one refund SLA
    (settings.RECONCILIATION["REFUND_PENDING_SLA_SECONDS"], env REFUND_PENDING_SLA_SECONDS).
    Past it the refund_pending detector opens an incident and the back office puts the
    refund on its "Needs attention" list (backoffice.conf.sla_limits reads this too), so
    the two never disagree about when a refund is late."""
    raw = setting("REFUND_PENDING_SLA_SECONDS")
    try:
        seconds = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"REFUND_PENDING_SLA_SECONDS is not a whole number of seconds: {raw!r}") from None
    if seconds < 0:
        raise ValueError("REFUND_PENDING_SLA_SECONDS must be zero or more")
    return seconds


@dataclass(frozen=True)
class RemediationPolicy:
    enabled: bool
    max_amount: Decimal

    def allows(self, amount: Decimal) -> bool:
        return self.enabled and amount <= self.max_amount


def remediation_policy(incident_type: str) -> RemediationPolicy:
    raw = setting("AUTO_REMEDIATION").get(incident_type, {})
    return RemediationPolicy(
        enabled=bool(raw.get("enabled", False)),
        max_amount=Decimal(str(raw.get("max_amount", "0"))),
    )
