"""Rebuilding the read models from the owners' tables, and checking them against a
fresh recomputation (drift opens an incident).

    read_models_rebuild()        manage.py rebuild_read_models
    read_models_check()          the beat task readmodels.check (READ_MODELS_CHECK_INTERVAL)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from idempotency.selectors import idempotency_records_created
from orders.selectors import orders_first_created_at, orders_id_bounds, orders_read_model_rows
from outbox.selectors import consumer_lag
from outbox.services import consumer_rebuild
from payments.selectors import ledger_money_moves, payments_read_model_rows
from reconciliation.selectors import incidents_first_detected_at, incidents_read_model_rows
from reconciliation.services import Finding, incidents_auto_resolve, incidents_report

from . import store
from .consumer import FINANCE, SEARCH
from .facts import Fact, source_facts
from .models import DriftCheckState, FactKind, FinanceDay, FinanceFact, OrderSearch

log = logging.getLogger(__name__)

DRIFT_INCIDENT_TYPE = "read_model_drift"
ORDERS_PATH = "/api/v1/orders/"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _finance_source(before: datetime | None = None):
    return source_facts(
        orders=orders_read_model_rows(created_before=before),
        money=ledger_money_moves(created_before=before),
        incidents=incidents_read_model_rows(changed_before=before),
    )


def _finance_rebuild() -> None:
    store.finance_clear()
    store.facts_apply(_finance_source())


def _search_rebuild() -> None:
    store.search_clear()
    orders = (
        OrderSearch(
            order_id=row["id"],
            client_id=row["client_id"],
            customer_email=row["customer_email"],
            currency=row["currency"],
            total=row["total"],
            status=row["status"],
            failure_reason=row["failure_reason"] or "",
            created_at=row["created_at"],
        )
        for row in orders_read_model_rows()
    )
    for batch in store.batches(orders):
        store.search_orders_upsert(batch, with_key=False)
    payments = (
        OrderSearch(
            order_id=row["order_id"],
            payment_id=row["id"],
            payment_status=row["status"],
            charge_id=row["provider_charge_id"],
        )
        for row in payments_read_model_rows()
    )
    for batch in store.batches(payments):
        store.search_payments_upsert(batch, with_charge=True)
    # Keys are kept IDEMPOTENCY_TTL (24 h) by their owner: a rebuild finds only those.
    store.search_keys_set(
        {
            r.response_object_id: r.key
            for r in idempotency_records_created(path_prefix=ORDERS_PATH, since=_EPOCH)
            if r.response_object_id
        }
    )


REBUILDERS = {FINANCE: _finance_rebuild, SEARCH: _search_rebuild}


def read_models_rebuild(*, names: list[str] | None = None) -> dict[str, int]:
    """Recompute each read model from the owners' tables and set its consumer's
    position to the head (outbox.services.consumer_rebuild). Returns the positions."""
    positions = {
        name: consumer_rebuild(name=name, rebuild=REBUILDERS[name]) for name in names or list(REBUILDERS)
    }
    drift_memory_clear()
    return positions


# --- Drift -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    model: str
    cutoff: datetime
    compared: int
    differences: list[dict[str, Any]] = field(default_factory=list)
    scope: dict[str, Any] = field(default_factory=dict)  # what was compared (Scope.describe)


def _cutoff(name: str, now: datetime) -> datetime:
    """Facts older than this have reached the model: before the consumer's oldest
    pending event, minus a grace for transactions that took their timestamps a
    while before they committed (READ_MODELS_DRIFT_GRACE seconds)."""
    grace = timedelta(seconds=getattr(settings, "READ_MODELS_DRIFT_GRACE", 60))
    lag = next((lag for lag in consumer_lag() if lag.name == name), None)
    oldest = lag.oldest_pending_at if lag is not None and lag.oldest_pending_at else now
    return min(now, oldest) - grace


_SUM_FIELDS = (
    "orders",
    "captures",
    "revenue",
    "refunds",
    "refunded",
    "incidents",
    "money_at_risk",
    "dismissed",
    "dismissed_at_risk",
    "resolved",
)


def finance_sums(facts: list[Fact]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (day, currency): the FinanceDay columns, from facts (a recomputation)."""
    sums: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: dict.fromkeys(_SUM_FIELDS, 0))
    for f in facts:
        row = sums[(f.day.isoformat(), f.currency)]
        if f.kind == FactKind.ORDER:
            row["orders"] += 1
        elif f.kind == FactKind.CAPTURE:
            row["captures"] += 1
            row["revenue"] += f.amount
        elif f.kind == FactKind.REFUND:
            row["refunds"] += 1
            row["refunded"] += f.amount
        elif f.kind == FactKind.INCIDENT:
            row["incidents"] += 1
            row["money_at_risk"] += f.amount
        elif f.kind == FactKind.DISMISSED:
            row["dismissed"] += 1
            row["dismissed_at_risk"] += f.amount
        elif f.kind == FactKind.RESOLVED:
            row["resolved"] += 1
    return {k: {c: Decimal(v) for c, v in row.items()} for k, row in sums.items()}


def _model_fact_sums(cutoff: datetime | None, days: Q | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    facts = FinanceFact.objects.all() if cutoff is None else FinanceFact.objects.filter(at__lt=cutoff)
    if days is not None:
        facts = facts.filter(days)
    rows = facts.values("day", "currency").annotate(
        orders=Count("key", filter=Q(kind=FactKind.ORDER)),
        captures=Count("key", filter=Q(kind=FactKind.CAPTURE)),
        revenue=Sum("amount", filter=Q(kind=FactKind.CAPTURE), default=0),
        refunds=Count("key", filter=Q(kind=FactKind.REFUND)),
        refunded=Sum("amount", filter=Q(kind=FactKind.REFUND), default=0),
        incidents=Count("key", filter=Q(kind=FactKind.INCIDENT)),
        money_at_risk=Sum("amount", filter=Q(kind=FactKind.INCIDENT), default=0),
        dismissed=Count("key", filter=Q(kind=FactKind.DISMISSED)),
        dismissed_at_risk=Sum("amount", filter=Q(kind=FactKind.DISMISSED), default=0),
        resolved=Count("key", filter=Q(kind=FactKind.RESOLVED)),
    )
    return {(r["day"].isoformat(), r["currency"]): {c: Decimal(r[c]) for c in _SUM_FIELDS} for r in rows}


def _day_table(days: Q | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    rows = FinanceDay.objects.all() if days is None else FinanceDay.objects.filter(days)
    return {
        (r["day"].isoformat(), r["currency"]): {c: Decimal(r[c]) for c in _SUM_FIELDS}
        for r in rows.values("day", "currency", *_SUM_FIELDS)
    }


def _diff(label: str, expected: dict, actual: dict) -> list[dict[str, Any]]:
    zero = dict.fromkeys(_SUM_FIELDS, Decimal(0))
    out = []
    for key in sorted(set(expected) | set(actual)):
        want, got = expected.get(key, zero), actual.get(key, zero)
        for column in _SUM_FIELDS:
            if want[column] != got[column]:
                out.append(
                    {
                        "check": label,
                        "day": key[0],
                        "currency": key[1],
                        "field": column,
                        "expected": str(want[column]),
                        "read_model": str(got[column]),
                    }
                )
    return out


# --- What one check compares: a recent window, a slice of older history, the suspects ---


@dataclass(frozen=True)
class Scope:
    """What a drift check compares. Finance: days [start, end) (UTC). Search: orders
    (and their payments) last changed since `changed_from`, orders with ids in
    [id_from, id_before), and the listed ids. `full`: everything (manage.py
    rebuild_read_models --check)."""

    full: bool = False
    days: tuple[tuple[date, date], ...] = ()
    changed_from: datetime | None = None
    id_ranges: tuple[tuple[int, int], ...] = ()
    ids: tuple[int, ...] = ()

    def describe(self) -> dict[str, Any]:
        if self.full:
            return {"full": True}
        return {
            "days": [[a.isoformat(), b.isoformat()] for a, b in self.days],
            "changed_from": self.changed_from.isoformat() if self.changed_from else None,
            "id_ranges": [list(r) for r in self.id_ranges],
            "ids": len(self.ids),
        }


FULL = Scope(full=True)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _finance_expected(cutoff: datetime, scope: Scope) -> dict[tuple[str, str], dict[str, Any]]:
    if scope.full:
        return finance_sums([f for f in _finance_source(before=cutoff) if f.at < cutoff])
    facts: list[Fact] = []
    for start, end in scope.days:
        t0, t1 = _day_start(start), min(_day_start(end), cutoff)
        if t0 >= cutoff:
            continue
        source = source_facts(
            orders=orders_read_model_rows(created_from=t0, created_before=t1),
            money=ledger_money_moves(created_from=t0, created_before=t1),
            incidents=incidents_read_model_rows(changed_before=cutoff, touching_from=t0, touching_before=t1),
        )
        facts += [f for f in source if start <= f.day < end and f.at < cutoff]
    return finance_sums(facts)


def _days_q(scope: Scope) -> Q:
    q = Q()
    for start, end in scope.days:
        q |= Q(day__gte=start, day__lt=end)
    return q


def finance_drift(*, now: datetime | None = None, scope: Scope = FULL) -> Drift:
    """The finance model against a fresh recomputation from the owners' tables, for
    facts older than the consumer's lag; and its day sums against its own facts. Over
    the days of `scope` (every day when full)."""
    now = now or timezone.now()
    cutoff = _cutoff(FINANCE, now)
    if not scope.full and not scope.days:
        return Drift(FINANCE, cutoff, 0, scope=scope.describe())
    days = None if scope.full else _days_q(scope)
    expected = _finance_expected(cutoff, scope)
    differences = _diff("source", expected, _model_fact_sums(cutoff, days))
    differences += _diff("day sums", _model_fact_sums(None, days), _day_table(days))
    compared = sum(int(r["orders"]) for r in expected.values())
    return Drift(FINANCE, cutoff, compared, differences, scope.describe())


_PAYMENT_PART = {"id_from": "order_id_from", "id_before": "order_id_before", "ids": "order_ids"}


def _search_sources(cutoff: datetime, scope: Scope) -> tuple[Iterable[dict], Iterable[dict]]:
    """(orders, payments) rows of the scope last changed before `cutoff`; an order (or
    payment) in more than one part of the scope is compared once."""
    if scope.full:
        return orders_read_model_rows(updated_before=cutoff), payments_read_model_rows(updated_before=cutoff)
    orders: dict[int, dict] = {}
    payments: dict[int, dict] = {}
    parts: list[dict[str, Any]] = [{"id_from": a, "id_before": b} for a, b in scope.id_ranges]
    if scope.ids:
        parts.append({"ids": list(scope.ids)})
    for part in parts:
        orders.update((r["id"], r) for r in orders_read_model_rows(updated_before=cutoff, **part))
        paid = {_PAYMENT_PART[k]: v for k, v in part.items()}
        payments.update((r["id"], r) for r in payments_read_model_rows(updated_before=cutoff, **paid))
    if scope.changed_from is not None and scope.changed_from < cutoff:
        since = scope.changed_from
        orders.update((r["id"], r) for r in orders_read_model_rows(updated_from=since, updated_before=cutoff))
        payments.update(
            (r["id"], r) for r in payments_read_model_rows(updated_from=since, updated_before=cutoff)
        )
    return list(orders.values()), list(payments.values())


def _search_model(scope: Scope, order_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The search rows of the scope: by id range for its ranges (the primary key's
    order), by id lists for the rest (recent changes, suspects)."""
    rows = OrderSearch.objects.values(
        "order_id", "status", "customer_email", "payment_id", "payment_status", "charge_id"
    )
    if scope.full:
        return {r["order_id"]: dict(r) for r in rows.iterator(chunk_size=2000)}
    model: dict[int, dict[str, Any]] = {}
    for start, end in scope.id_ranges:
        ranged = rows.filter(order_id__gte=start, order_id__lt=end)
        model.update({r["order_id"]: dict(r) for r in ranged.iterator(chunk_size=2000)})
    rest = sorted(i for i in set(order_ids) if not any(a <= i < b for a, b in scope.id_ranges))
    for chunk in store.batches(rest, 2000):
        model.update({r["order_id"]: dict(r) for r in rows.filter(order_id__in=chunk)})
    return model


def search_drift(*, now: datetime | None = None, scope: Scope = FULL) -> Drift:
    """The search model's orders (status, e-mail) and payments (status, charge id)
    against the owners' rows last changed before the consumer's lag (those of `scope`)."""
    now = now or timezone.now()
    cutoff = _cutoff(SEARCH, now)
    orders, payments = _search_sources(cutoff, scope)
    if scope.full:
        model = _search_model(scope, ())
    else:
        assert isinstance(orders, list) and isinstance(payments, list)
        model = _search_model(scope, [r["id"] for r in orders] + [r["order_id"] for r in payments])
    differences: list[dict[str, Any]] = []
    compared = 0
    for row in orders:
        compared += 1
        got = model.get(row["id"])
        for column, want in (("status", row["status"]), ("customer_email", row["customer_email"])):
            if got is None or got[column] != want:
                differences.append(
                    {
                        "check": "orders",
                        "order_id": row["id"],
                        "field": column,
                        "expected": want,
                        "read_model": None if got is None else got[column],
                    }
                )
    for row in payments:
        got = model.get(row["order_id"])
        for column, want in (("payment_status", row["status"]), ("charge_id", row["provider_charge_id"])):
            if got is None or got[column] != want:
                differences.append(
                    {
                        "check": "payments",
                        "order_id": row["order_id"],
                        "field": column,
                        "expected": want,
                        "read_model": None if got is None else got[column],
                    }
                )
    return Drift(SEARCH, cutoff, compared, differences, scope.describe())


# --- The scheduled check: bounded per run, every bucket within a known number of runs ------

SUSPECTS_MAX = 1000  # buckets (days, order ids) kept to compare again at the next check


def _recent_days() -> int:
    return max(1, int(getattr(settings, "READ_MODELS_CHECK_RECENT_DAYS", 2)))


def _old_days_per_check() -> int:
    return max(1, int(getattr(settings, "READ_MODELS_CHECK_OLD_DAYS", 7)))


def _old_orders_per_check() -> int:
    return max(1, int(getattr(settings, "READ_MODELS_CHECK_OLD_ORDERS", 50_000)))


def _finance_first_day(recent_start: date) -> date:
    """Where the finance history starts: the first order, incident or day row."""
    starts = [at for at in (orders_first_created_at(), incidents_first_detected_at()) if at is not None]
    candidates = [at.astimezone(UTC).date() for at in starts]
    first_row = FinanceDay.objects.order_by("day").values_list("day", flat=True).first()
    if first_row is not None:
        candidates.append(first_row)
    return min([*candidates, recent_start])


def _merge(ranges: list[tuple[Any, Any]]) -> tuple[tuple[Any, Any], ...]:
    merged: list[tuple[Any, Any]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _finance_scope(state: DriftCheckState, cutoff: datetime) -> tuple[Scope, str]:
    """The last READ_MODELS_CHECK_RECENT_DAYS days (through the cut-off's), the next
    READ_MODELS_CHECK_OLD_DAYS older days from the state's cursor (the first day again
    once past them), and the days that differed at the last check. Returns the scope
    and the next cursor."""
    last = cutoff.astimezone(UTC).date()
    recent_start = last - timedelta(days=_recent_days() - 1)
    ranges = [(recent_start, last + timedelta(days=1))]
    first = _finance_first_day(recent_start)
    cursor = date.fromisoformat(state.cursor) if state.cursor else first
    if not first <= cursor < recent_start:
        cursor = first
    following = cursor
    if cursor < recent_start:
        end = min(cursor + timedelta(days=_old_days_per_check()), recent_start)
        ranges.append((cursor, end))
        following = end if end < recent_start else first
    for day in state.suspects:
        start = date.fromisoformat(day)
        ranges.append((start, start + timedelta(days=1)))
    return Scope(days=_merge(ranges)), following.isoformat()


def _search_scope(state: DriftCheckState, cutoff: datetime) -> tuple[Scope, str]:
    """Orders (and their payments) last changed in the last READ_MODELS_CHECK_RECENT_DAYS
    days, the next READ_MODELS_CHECK_OLD_ORDERS order ids from the state's cursor (the
    first id again once past the last), and the orders that differed at the last check."""
    changed_from = cutoff - timedelta(days=_recent_days())
    suspects = tuple(sorted({int(i) for i in state.suspects}))
    bounds = orders_id_bounds()
    if bounds is None:
        return Scope(changed_from=changed_from, ids=suspects), ""
    first, last = bounds
    cursor = int(state.cursor) if state.cursor else first
    if not first <= cursor <= last:
        cursor = first
    end = cursor + _old_orders_per_check()
    following = end if end <= last else first
    return Scope(changed_from=changed_from, id_ranges=((cursor, end),), ids=suspects), str(following)


def _bucket(model: str, difference: dict[str, Any]) -> str:
    return str(difference["day"] if model == FINANCE else difference["order_id"])


def _digest(difference: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(difference, sort_keys=True, default=str).encode()).hexdigest()[:32]


def drift_memory_clear() -> None:
    """Forget what the previous checks saw and where they stood (a test, or after a rebuild)."""
    DriftCheckState.objects.all().delete()


def read_models_check(
    *, now: datetime | None = None, confirm: bool = True, full: bool = False
) -> list[Drift]:
    """Compare both read models with a fresh recomputation; open (or keep) one incident
    per drifting model, resolve the incidents of models that agree again.

    Bounded (docs/consistency.md, "Checked"): unless `full`, each model is compared over
    a recent window, the next slice of its older history (a cursor kept in
    DriftCheckState goes round it) and the buckets that differed at the previous check.
    With `confirm`, a difference counts when the previous check saw the very same one —
    a fact whose change committed between the two reads of one check is gone by the
    next; real drift is not, and its bucket is compared again at every check."""
    now = now or timezone.now()
    drifts: list[Drift] = []
    counted: list[Drift] = []
    checks: tuple[tuple[str, Callable[..., Drift], Callable[..., tuple[Scope, str]]], ...] = (
        (FINANCE, finance_drift, _finance_scope),
        (SEARCH, search_drift, _search_scope),
    )
    for model, drift_of, scope_of in checks:
        with transaction.atomic():
            state, _ = DriftCheckState.objects.select_for_update().get_or_create(model=model)
            fresh = state.checked_at is not None and not _stale(state.checked_at, now)
            previous = set(state.seen) if fresh else set()
            if full:
                drift, cursor = drift_of(now=now, scope=FULL), state.cursor
            else:
                scope, cursor = scope_of(state, _cutoff(model, now))
                drift = drift_of(now=now, scope=scope)
            digests = [_digest(d) for d in drift.differences]
            confirmed = [h for h in digests if h in previous]
            state.cursor = cursor
            state.suspects = sorted({_bucket(model, d) for d in drift.differences})[:SUSPECTS_MAX]
            state.seen = digests[: 20 * SUSPECTS_MAX]
            state.checked_at = now
            state.save()
        drifts.append(drift)
        if drift.differences and (confirmed or not confirm):
            counted.append(drift)
    findings = [
        Finding(
            type=DRIFT_INCIDENT_TYPE,
            fingerprint=f"{DRIFT_INCIDENT_TYPE}:{d.model}",
            severity="medium",
            details={
                "read_model": d.model,
                "cutoff": d.cutoff.isoformat(),
                "differences": len(d.differences),
                "first": d.differences[:20],
                "checked": d.scope,
                "fix": "manage.py rebuild_read_models (then the next check resolves this)",
            },
        )
        for d in counted
    ]
    if findings:
        log.warning("read model drift: %s", {d.model: len(d.differences) for d in counted})
    incidents_report(findings=findings)
    # Resolve only what agrees now (an unconfirmed difference keeps its incident open;
    # the buckets of a confirmed one are compared at every check until they agree).
    still = {f"{DRIFT_INCIDENT_TYPE}:{d.model}" for d in drifts if d.differences}
    # Only the read models' own incidents: reconciliation's running-balance check reports
    # drift under the same type (read_model_drift:provider_net_by_hour, ...) and resolves
    # its own.
    incidents_auto_resolve(
        incident_type=DRIFT_INCIDENT_TYPE,
        still_found=still,
        evaluated={f"{DRIFT_INCIDENT_TYPE}:{model}" for model in REBUILDERS},
    )
    return drifts


def _stale(checked_at: datetime, now: datetime) -> bool:
    """Only the previous check counts: one older than a few intervals is forgotten."""
    interval = float(getattr(settings, "READ_MODELS_CHECK_INTERVAL", 600))
    return (now - checked_at).total_seconds() > 3 * interval
