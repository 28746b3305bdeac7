"""Reads of the read models, and how far behind each is (for the pages that show
them: "figures are 3 s behind")."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import Lower
from django.utils import timezone

from core.errors import ConcordError
from core.sql import prepared, str_slot
from orders.choices import OrderStatus
from outbox.selectors import consumer_lag

from .consumer import FINANCE, SEARCH
from .models import FinanceDay, FinanceFact, OrderSearch

# --- Lag ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelLag:
    name: str
    pending: int
    behind_seconds: float  # age of the oldest event not applied yet; 0 when up to date
    last_delivered_at: datetime | None
    failing: bool
    last_error: str

    @property
    def text(self) -> str:
        if self.failing:
            return f"{self.pending} events waiting: the consumer fails and retries ({self.last_error[:120]})"
        if not self.pending:
            return "up to date"
        return f"{_seconds_text(self.behind_seconds)} behind ({self.pending} event{'s' if self.pending != 1 else ''} pending)"


def _seconds_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def read_model_lag(*, names: tuple[str, ...] = (FINANCE, SEARCH)) -> list[ModelLag]:
    """Per read model: events pending, age of the oldest, last delivered, failing."""
    return [
        ModelLag(
            name=lag.name,
            pending=lag.pending,
            behind_seconds=lag.oldest_pending_age,
            last_delivered_at=lag.last_delivered_at,
            failing=bool(lag.last_error),
            last_error=lag.last_error.splitlines()[0] if lag.last_error else "",
        )
        for lag in consumer_lag()
        if lag.name in names
    ]


def consumers_lag() -> list[dict[str, Any]]:
    """Every registered consumer's lag (webhooks, notifications, read models), for the overview."""
    return [
        {
            "name": lag.name,
            "pending": lag.pending,
            "behind": _seconds_text(lag.oldest_pending_age) if lag.pending else "—",
            "behind_seconds": lag.oldest_pending_age,
            "last_delivered_at": lag.last_delivered_at,
            "last_error": lag.last_error.splitlines()[0][:200] if lag.last_error else "",
        }
        for lag in consumer_lag()
    ]


# --- Finance --------------------------------------------------------------------------


def _per_1000(incidents: int, orders: int) -> str | None:
    if not orders:
        return None
    return str((Decimal(incidents) * 1000 / Decimal(orders)).quantize(Decimal("0.01")))


def finance_days(*, start: date, end: date) -> list[dict[str, Any]]:
    """Per day and currency, from the finance read model: orders, revenue, refunds,
    incidents (dismissed false positives apart), incidents per 1,000 orders (without
    the dismissed), money at risk, mean time to resolve. Incidents without a currency
    (stock drift) are a row with currency ""."""
    rows = []
    for r in FinanceDay.objects.filter(day__gte=start, day__lte=end).order_by("day", "currency").values():
        real = r["incidents"] - r["dismissed"]
        rows.append(
            {
                "day": r["day"],
                "currency": r["currency"],
                "orders": r["orders"],
                "captures": r["captures"],
                "revenue": r["revenue"],
                "refunds": r["refunds"],
                "refunded": r["refunded"],
                "incidents": real,
                "dismissed": r["dismissed"],
                "per_1000": _per_1000(real, r["orders"]),
                "money_at_risk": r["money_at_risk"] - r["dismissed_at_risk"],
                "resolved": r["resolved"],
                "mttr_seconds": (float(r["resolve_seconds"]) / r["resolved"]) if r["resolved"] else None,
            }
        )
    return rows


def finance_totals(*, start: date, end: date, days: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The range's totals: per currency (money) and overall (counts; incidents per
    1,000 orders over every currency, dismissed false positives excluded). `days`: the
    range's finance_days when the caller has read them already (the page shows both:
    one statement, not two)."""
    if days is None:
        days = finance_days(start=start, end=end)
    per_currency: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "orders": 0,
            "revenue": Decimal(0),
            "refunds": 0,
            "refunded": Decimal(0),
            "money_at_risk": Decimal(0),
        }
    )
    orders = incidents = dismissed = resolved = 0
    resolve_seconds = 0.0
    for d in days:
        if d["currency"]:
            c = per_currency[d["currency"]]
            for key in ("orders", "revenue", "refunds", "refunded", "money_at_risk"):
                c[key] += d[key]
        orders += d["orders"]
        incidents += d["incidents"]
        dismissed += d["dismissed"]
        resolved += d["resolved"]
        resolve_seconds += (d["mttr_seconds"] or 0) * d["resolved"]
    return {
        "orders": orders,
        "incidents": incidents,
        "dismissed": dismissed,
        "per_1000": _per_1000(incidents, orders),
        "resolved": resolved,
        "mttr_seconds": resolve_seconds / resolved if resolved else None,
        "by_currency": [{"currency": k, **v} for k, v in sorted(per_currency.items())],
    }


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def finance_incident_weeks(*, weeks: int = 12, today: date | None = None) -> list[dict[str, Any]]:
    """Per ISO week (Monday) of the last `weeks`, per incident type: incidents
    detected (dismissed false positives apart) and their money at risk per currency,
    from the finance model's facts."""
    today = today or timezone.now().date()
    first = week_start(today) - timedelta(weeks=weeks - 1)
    facts = FinanceFact.objects.filter(kind__in=["incident", "dismissed"], day__gte=first).exclude(
        incident_type=""
    )
    rows = (
        facts.values("day", "incident_type", "currency", "kind")
        .annotate(n=Count("key"), amount=Sum("amount"))
        .order_by()
    )
    out: dict[tuple[date, str, str], dict[str, Any]] = {}
    for r in rows:
        key = (week_start(r["day"]), r["incident_type"], r["currency"])
        entry = out.setdefault(
            key,
            {"week": key[0], "type": key[1], "currency": key[2], "incidents": 0, "money_at_risk": Decimal(0)},
        )
        sign = -1 if r["kind"] == "dismissed" else 1
        entry["incidents"] += sign * r["n"]
        entry["money_at_risk"] += sign * (r["amount"] or 0)
    return sorted(out.values(), key=lambda e: (e["week"], e["type"], e["currency"]))


MAX_ORDER_ID = 2**63  # a bigint: a longer number names no order

# --- Search -----------------------------------------------------------------------------


def _order_search_rows(q: str, status: str | None) -> tuple[str, Any]:
    q = (q or "").strip()
    if status and status not in OrderStatus.values:
        raise ConcordError(f"Unknown status {status!r}", code="invalid_status")
    rows = OrderSearch.objects.all()
    kind = ""
    if q.isdigit():
        kind, rows = "order id", rows.filter(order_id=int(q)) if int(q) < MAX_ORDER_ID else rows.none()
    elif "@" in q:
        # lower(customer_email) = lower(q): what the index readmodels_search_email holds
        # (`__iexact` compiles to UPPER(...) on PostgreSQL, which no index serves).
        kind, rows = "email", rows.alias(email_lower=Lower("customer_email")).filter(email_lower=q.lower())
    elif q:
        kind, rows = "charge id or idempotency key", rows.filter(Q(charge_id=q) | Q(idempotency_key=q))
    if status:
        kind = f"{kind}, status {status}" if kind else f"status {status}"
        rows = rows.filter(status=status)
    return kind, rows


def order_search(
    *, q: str = "", status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[str, list[OrderSearch]]:
    """One box: an order id, a customer e-mail (exact, any case), a provider charge id
    or an Idempotency-Key; optionally one status. Returns (what q was taken for, rows),
    newest first, `offset` rows skipped (a page)."""
    kind, rows = _order_search_rows(q, status)
    if not kind:
        return "", []
    offset = max(0, offset)
    return kind, list(rows.order_by("-order_id")[offset : offset + limit])


def orders_for_email(*, email: str, limit: int = 50) -> list[OrderSearch]:
    """order_search(q=email)'s rows (an e-mail, any case, newest first, the first
    `limit`) as a statement built once per process, on the same index: an order's case
    file lists the customer's other orders on every view, and compiling the ORM's
    statement cost more CPU than running it."""
    return prepared(
        ("orders_for_email", limit),
        lambda: (
            OrderSearch.objects.alias(email_lower=Lower("customer_email"))
            .filter(email_lower=str_slot(0))
            .order_by("-order_id")[:limit]
        ),
        slots=1,
    ).instances(OrderSearch, email.strip().lower())


def order_search_count(*, q: str = "", status: str | None = None, cap: int | None = None) -> int:
    """How many rows order_search finds in all (its page total); with `cap`, at most
    cap + 1 (counting stops there: "more than cap", e.g. every confirmed order)."""
    kind, rows = _order_search_rows(q, status)
    if not kind:
        return 0
    return rows[: cap + 1].count() if cap is not None else rows.count()
