"""What a detector is: a named, set-based query that yields Findings.

A detector never writes. The run (services/runs.py) turns its findings into incidents and
auto-resolves that detector's live incidents it no longer finds; a manual resolution asks
the same detector to re-check one incident's scope.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from django.utils import timezone


@dataclass(frozen=True)
class Finding:
    type: str
    # Stable across runs for the same condition, e.g. "duplicate_charge:order:42".
    fingerprint: str
    severity: str
    order_id: int | None = None
    payment_id: int | None = None
    charge_id: str | None = None
    sku: str | None = None
    saga_run_id: int | None = None
    amount_at_risk: Decimal = Decimal("0")
    currency: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scope:
    """Narrows a detector to some subjects (a re-check); None everywhere = everything."""

    references: frozenset[str] | None = None
    order_ids: frozenset[int] | None = None
    charge_ids: frozenset[str] | None = None

    @property
    def is_full(self) -> bool:
        return self.references is None and self.order_ids is None and self.charge_ids is None


@dataclass(frozen=True)
class ChangeSet:
    """The subjects an incremental pass re-evaluates: orders with any row changed since
    `since` (order, payment, refund, reservation, provider charge or refund), charges whose
    reference names no order, plus (added by the run) the subjects of live incidents."""

    since: datetime
    order_ids: frozenset[int] = frozenset()
    charge_ids: frozenset[str] = frozenset()

    def with_subjects(self, *, order_ids: set[int], charge_ids: set[str]) -> ChangeSet:
        return ChangeSet(
            since=self.since,
            order_ids=self.order_ids | frozenset(order_ids),
            charge_ids=self.charge_ids | frozenset(charge_ids),
        )


@dataclass(frozen=True)
class DetectionContext:
    now: datetime
    scope: Scope = field(default_factory=Scope)

    @classmethod
    def full(cls) -> DetectionContext:
        return cls(now=timezone.now())


@dataclass(frozen=True)
class IncidentSubject:
    """What a re-check needs to know about one incident (no model instance crosses over)."""

    incident_id: int
    type: str
    fingerprint: str
    order_id: int | None
    charge_id: str | None
    details: dict[str, Any]


class Detector:
    name: ClassVar[str]  # equals the IncidentType it reports
    severity: ClassVar[str]
    description: ClassVar[str] = ""
    # Findings come from the synced provider records: a run whose sync failed must not
    # auto-resolve this detector's incidents, and a re-check refreshes those records first.
    uses_provider_records: ClassVar[bool] = False
    # True when every finding is about one order and depends only on that order's rows
    # (its charges, payment, refunds, reservations, lines) and on time thresholds: a pass
    # may then re-evaluate only the orders that changed (find_changed).
    incremental: ClassVar[bool] = False

    def find(self, ctx: DetectionContext) -> Iterable[Finding]:
        raise NotImplementedError

    def find_changed(self, ctx: DetectionContext, changes: ChangeSet) -> Iterable[Finding]:
        """The findings about `changes`' subjects: exactly what find() over everything
        would report about them. Contract: a live incident whose order_id (or, without
        one, charge_id) is in `changes` is found again here if its condition holds."""
        return self.find(replace(ctx, scope=Scope(order_ids=changes.order_ids)))

    def findings_from(self, rows: Iterable[dict[str, Any]]) -> Iterable[Finding]:
        """A full evaluation from the shared join's rows for this detector (shared.py):
        the same findings as find() over everything. Only the detectors shared.SHARED
        names implement it."""
        raise NotImplementedError

    def scope_for(self, subject: IncidentSubject) -> Scope:
        """The smallest scope whose findings decide whether `subject` still holds."""
        if subject.order_id is not None:
            return Scope(order_ids=frozenset({subject.order_id}))
        if subject.charge_id:
            return Scope(charge_ids=frozenset({subject.charge_id}))
        return Scope()

    def provider_references_for(self, subject: IncidentSubject) -> list[str]:
        """Provider references to refresh before a re-check (when uses_provider_records)."""
        if subject.order_id is not None:
            return [str(subject.order_id)]
        reference = subject.details.get("reference")
        return [reference] if reference else []

    def recheck(self, subject: IncidentSubject) -> bool:
        """True when the condition behind `subject` still holds."""
        ctx = DetectionContext(now=timezone.now(), scope=self.scope_for(subject))
        return any(f.fingerprint == subject.fingerprint for f in self.find(ctx))

    def finding(self, *, fingerprint_parts: Iterable[object], **fields: Any) -> Finding:
        fingerprint = ":".join([self.name, *(str(p) for p in fingerprint_parts)])
        return Finding(type=self.name, fingerprint=fingerprint, severity=self.severity, **fields)
