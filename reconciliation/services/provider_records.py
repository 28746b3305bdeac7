"""Provider records: an incremental, idempotent copy of the provider's charges and refunds,
and its settlement export.

Why a copy: detectors compare two sets of facts with SQL; the provider's facts must be in
our database to join against, and they must never overwrite Concord's own rows. The pull
is incremental (by `created`, from a per-kind cursor, minus an overlap window) and every
write is an upsert on the provider id, so a repeated or overlapping pull changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date as date_type
from decimal import Decimal
from typing import Any, Protocol

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from payments.services import provider_client
from reconciliation.amounts import minor_to_major, order_id_from_reference, provider_time
from reconciliation.choices import ProviderObjectKind
from reconciliation.conf import setting
from reconciliation.errors import SettlementFormatError
from reconciliation.models import ProviderCharge, ProviderRefund, ProviderSettlement, SyncCursor

logger = logging.getLogger(__name__)


class ProviderClientLike(Protocol):
    """What reconciliation reads from the provider: payments' one client
    (payments.services.provider_client) fits; tests pass stand-ins. Reconciliation
    never writes through it: its refunds go through payments.services.charge_refund,
    which records the call like every other."""

    def iter_charges(
        self, *, created_gte: int | None = None, reference: str | None = None
    ) -> Iterator[Any]: ...

    def iter_refunds(self, *, created_gte: int | None = None, charge: str | None = None) -> Iterator[Any]: ...

    def settlement(self, *, date: date_type) -> dict: ...


@dataclass(frozen=True)
class KindSyncResult:
    fetched: int
    created: int
    cursor_created: int | None
    cursor_id: str


@dataclass(frozen=True)
class SyncResult:
    charges: KindSyncResult
    refunds: KindSyncResult

    @property
    def rows(self) -> int:
        return self.charges.fetched + self.refunds.fetched

    @property
    def created(self) -> int:
        return self.charges.created + self.refunds.created


Progress = Callable[[int], None]


def provider_records_sync(
    *, client: ProviderClientLike | None = None, progress: Progress | None = None
) -> SyncResult:
    """Pull charges and refunds created since each cursor (minus the overlap) and upsert them.

    Not one transaction on purpose: the pull is HTTP and may be long. Each batch commits
    on its own; the cursor moves only after a kind's whole pull succeeded, so a pull that
    dies half-way is simply repeated (idempotently) next time.
    """
    client = client or provider_client()
    charges = _sync_kind(
        ProviderObjectKind.CHARGE,
        lambda created_gte: client.iter_charges(created_gte=created_gte),
        _upsert_charges,
        progress,
    )
    refunds = _sync_kind(
        ProviderObjectKind.REFUND,
        lambda created_gte: client.iter_refunds(created_gte=created_gte),
        _upsert_refunds,
        progress,
    )
    return SyncResult(charges=charges, refunds=refunds)


def provider_records_refresh(*, references: Iterable[str], client: ProviderClientLike | None = None) -> int:
    """Re-pull every charge (and its refunds) of some references, whatever their age.

    Used before a manual re-check: the incremental pull never revisits an old charge, and
    a person resolving an incident must be judged against the provider's present state.
    Leaves the cursors alone. Returns the number of rows upserted.
    """
    client = client or provider_client()
    rows = 0
    for reference in references:
        charges = list(client.iter_charges(reference=reference))
        rows += _upsert_charges(charges)
        for charge in charges:
            rows += _upsert_refunds(list(client.iter_refunds(charge=charge.id)))
    return rows


def _sync_kind(
    kind: str,
    fetch: Callable[[int | None], Iterable[Any]],
    upsert: Callable[[list[Any]], int],
    progress: Progress | None,
) -> KindSyncResult:
    cursor, _ = SyncCursor.objects.get_or_create(kind=kind)
    created_gte = None
    if cursor.last_created is not None:
        created_gte = max(0, cursor.last_created - int(setting("SYNC_OVERLAP_SECONDS")))
    batch_size = int(setting("SYNC_BATCH_SIZE"))

    fetched = created = 0
    newest: tuple[int, str] | None = None
    batch: list[Any] = []
    for item in fetch(created_gte):
        batch.append(item)
        key = (int(item.created), str(item.id))
        if newest is None or key > newest:
            newest = key
        if len(batch) >= batch_size:
            created += upsert(batch)
            fetched += len(batch)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        created += upsert(batch)
        fetched += len(batch)
        if progress:
            progress(len(batch))

    if newest is not None:
        # Only forward: an overlap pull must never move the cursor back.
        SyncCursor.objects.filter(
            Q(last_created__isnull=True) | Q(last_created__lt=newest[0]), pk=cursor.pk
        ).update(last_created=newest[0], last_id=newest[1])
        cursor.refresh_from_db()
    return KindSyncResult(
        fetched=fetched, created=created, cursor_created=cursor.last_created, cursor_id=cursor.last_id
    )


def _dedupe(items: Iterable[Any]) -> list[Any]:
    # A page boundary may repeat an object; ON CONFLICT cannot touch one row twice per statement.
    return list({str(item.id): item for item in items}.values())


@transaction.atomic
def _upsert_charges(items: list[Any]) -> int:
    items = _dedupe(items)
    if not items:
        return 0
    now = timezone.now()
    ids = [str(c.id) for c in items]
    existing = set(ProviderCharge.objects.filter(provider_id__in=ids).values_list("provider_id", flat=True))
    rows = []
    for c in items:
        currency = str(c.currency).upper()
        refunded = int(getattr(c, "amount_refunded", 0) or 0)
        rows.append(
            ProviderCharge(
                provider_id=str(c.id),
                reference=str(c.reference or ""),
                order_id=order_id_from_reference(str(c.reference or "")),
                amount_minor=int(c.amount),
                amount=minor_to_major(int(c.amount), currency),
                currency=currency,
                status=str(c.status),
                failure_code=c.failure_code or None,
                amount_refunded_minor=refunded,
                amount_refunded=minor_to_major(refunded, currency),
                created=provider_time(int(c.created)),
                first_seen_at=now,
                last_synced_at=now,
            )
        )
    ProviderCharge.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["provider_id"],
        update_fields=[
            "reference",
            "order_id",
            "amount_minor",
            "amount",
            "currency",
            "status",
            "failure_code",
            "amount_refunded_minor",
            "amount_refunded",
            "created",
            "last_synced_at",
        ],
    )
    return len(set(ids) - existing)


@transaction.atomic
def _upsert_refunds(items: list[Any]) -> int:
    items = _dedupe(items)
    if not items:
        return 0
    now = timezone.now()
    ids = [str(r.id) for r in items]
    existing = set(ProviderRefund.objects.filter(provider_id__in=ids).values_list("provider_id", flat=True))
    rows = []
    for r in items:
        currency = str(r.currency).upper()
        rows.append(
            ProviderRefund(
                provider_id=str(r.id),
                charge_provider_id=str(r.charge),
                amount_minor=int(r.amount),
                amount=minor_to_major(int(r.amount), currency),
                currency=currency,
                status=str(r.status),
                created=provider_time(int(r.created)),
                first_seen_at=now,
                last_synced_at=now,
            )
        )
    ProviderRefund.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["provider_id"],
        update_fields=[
            "charge_provider_id",
            "amount_minor",
            "amount",
            "currency",
            "status",
            "created",
            "last_synced_at",
        ],
    )
    return len(set(ids) - existing)


# --- Settlement ---------------------------------------------------------------------


@dataclass(frozen=True)
class SettlementLine:
    date: date_type
    currency: str
    charges_count: int
    charges: Decimal
    refunds_count: int
    refunds: Decimal
    net: Decimal
    raw: dict


def provider_settlement_import(
    *, date: date_type, client: ProviderClientLike | None = None
) -> list[SettlementLine]:
    """Fetch the provider's settlement for one UTC day and store it per currency (upsert:
    importing a day again replaces its lines, so a late correction by the provider wins)."""
    client = client or provider_client()
    lines = _parse_settlement(client.settlement(date=date), date)
    _store_settlement(lines)
    return lines


@transaction.atomic
def _store_settlement(lines: list[SettlementLine]) -> None:
    now = timezone.now()
    ProviderSettlement.objects.bulk_create(
        [
            ProviderSettlement(
                date=line.date,
                currency=line.currency,
                charges_count=line.charges_count,
                charges=line.charges,
                refunds_count=line.refunds_count,
                refunds=line.refunds,
                net=line.net,
                raw=line.raw,
                imported_at=now,
            )
            for line in lines
        ],
        update_conflicts=True,
        unique_fields=["date", "currency"],
        update_fields=["charges_count", "charges", "refunds_count", "refunds", "net", "raw", "imported_at"],
    )


def _parse_settlement(raw: Any, day: date_type) -> list[SettlementLine]:
    """The provider's JSON report: `by_currency` rows {currency, charges_count,
    charges_amount, refunds_count, refunds_amount, net} in minor units (refunds positive).
    Anything else is refused loudly: a silently wrong settlement would make the
    clearing check lie."""
    rows = raw.get("by_currency") if isinstance(raw, dict) else None
    if not isinstance(rows, list):
        raise SettlementFormatError("The provider's settlement has no by_currency list.")
    if raw.get("date") not in (None, day.isoformat()):
        raise SettlementFormatError(
            "The provider sent the settlement of another day.",
            details={"asked": day.isoformat(), "got": raw.get("date")},
        )
    lines = []
    for row in rows:
        try:
            currency = str(row["currency"]).upper()
            charges = int(row["charges_amount"])
            refunds = int(row["refunds_amount"])
            net = int(row["net"])
            line = SettlementLine(
                date=day,
                currency=currency,
                charges_count=int(row["charges_count"]),
                charges=minor_to_major(charges, currency),
                refunds_count=int(row["refunds_count"]),
                refunds=minor_to_major(refunds, currency),
                net=minor_to_major(net, currency),
                raw=dict(row),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SettlementFormatError(f"A settlement line is malformed: {row!r}") from exc
        if charges - refunds != net:
            raise SettlementFormatError(
                "A settlement line does not add up (charges - refunds != net).", details=row
            )
        lines.append(line)
    return lines
