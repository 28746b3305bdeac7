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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.utils import timezone

from idempotency.selectors import idempotency_records_created
from orders.selectors import orders_read_model_rows
from outbox.selectors import consumer_lag
from outbox.services import consumer_rebuild
from payments.selectors import ledger_money_moves, payments_read_model_rows
from reconciliation.selectors import incidents_read_model_rows
from reconciliation.services import Finding, incidents_auto_resolve, incidents_report

from . import store
from .consumer import FINANCE, SEARCH
from .facts import Fact, source_facts
from .models import FactKind, FinanceDay, FinanceFact, OrderSearch

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


def _model_fact_sums(cutoff: datetime | None) -> dict[tuple[str, str], dict[str, Any]]:
    facts = FinanceFact.objects.all() if cutoff is None else FinanceFact.objects.filter(at__lt=cutoff)
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


def _day_table() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r["day"].isoformat(), r["currency"]): {c: Decimal(r[c]) for c in _SUM_FIELDS}
        for r in FinanceDay.objects.values("day", "currency", *_SUM_FIELDS)
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


def finance_drift(*, now: datetime | None = None) -> Drift:
    """The finance model against a fresh recomputation from the owners' tables, for
    facts older than the consumer's lag; and its day sums against its own facts."""
    now = now or timezone.now()
    cutoff = _cutoff(FINANCE, now)
    expected = finance_sums([f for f in _finance_source(before=cutoff) if f.at < cutoff])
    differences = _diff("source", expected, _model_fact_sums(cutoff))
    differences += _diff("day sums", _model_fact_sums(None), _day_table())
    return Drift(FINANCE, cutoff, sum(int(r["orders"]) for r in expected.values()), differences)


def search_drift(*, now: datetime | None = None) -> Drift:
    """The search model's orders (status, e-mail) and payments (status, charge id)
    against the owners' rows last changed before the consumer's lag."""
    now = now or timezone.now()
    cutoff = _cutoff(SEARCH, now)
    model: dict[int, dict[str, Any]] = {
        r["order_id"]: dict(r)
        for r in OrderSearch.objects.values(
            "order_id", "status", "customer_email", "payment_id", "payment_status", "charge_id"
        ).iterator(chunk_size=2000)
    }
    differences: list[dict[str, Any]] = []
    compared = 0
    for row in orders_read_model_rows(updated_before=cutoff):
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
    for row in payments_read_model_rows(updated_before=cutoff):
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
    return Drift(SEARCH, cutoff, compared, differences)


def drift_memory_clear() -> None:
    """Forget what the previous checks saw (a test, or after a rebuild)."""
    cache.delete_many([f"readmodels:drift:{name}" for name in REBUILDERS])


def _confirmed(drift: Drift) -> bool:
    """A difference counts when the previous check saw the very same one: a fact whose
    change committed between the two reads of one check (an incident's money at risk
    refreshed, a late commit) is gone by the next check; real drift is not."""
    digest = hashlib.sha256(json.dumps(drift.differences, sort_keys=True, default=str).encode()).hexdigest()
    key = f"readmodels:drift:{drift.model}"
    previous = cache.get(key)
    # Only the previous check counts: a digest older than a few intervals has expired.
    cache.set(key, digest, timeout=3 * getattr(settings, "READ_MODELS_CHECK_INTERVAL", 600))
    return previous == digest


def read_models_check(*, now: datetime | None = None, confirm: bool = True) -> list[Drift]:
    """Compare both read models with a fresh recomputation; open (or keep) one
    incident per drifting model, resolve the incidents of models that agree again.
    With `confirm`, a drift opens an incident when two checks in a row saw it."""
    drifts = [finance_drift(now=now), search_drift(now=now)]
    drifting = [d for d in drifts if d.differences and (_confirmed(d) or not confirm)]
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
                "fix": "manage.py rebuild_read_models (then the next check resolves this)",
            },
        )
        for d in drifting
    ]
    if findings:
        log.warning("read model drift: %s", {d.model: len(d.differences) for d in drifting})
    incidents_report(findings=findings)
    # Resolve only what agrees now (an unconfirmed difference keeps its incident open).
    still = {f"{DRIFT_INCIDENT_TYPE}:{d.model}" for d in drifts if d.differences}
    incidents_auto_resolve(incident_type=DRIFT_INCIDENT_TYPE, still_found=still)
    return drifts
