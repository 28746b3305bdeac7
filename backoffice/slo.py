"""The finance page's consistency service levels (docs/operations.md, "Service levels").

Each line is computed from the source tables for the page's date range, next to its
target (settings.SLO) — the same definitions Prometheus alerts on through the
recording rules in monitoring/prometheus/concord-rules.yml:

- orders confirmed within the target time, p99 (checkout runs started in the range:
  acceptance and run start are one commit; completion is the confirmation);
- sagas stuck per 1,000 orders (runs started in the range that a person must act on
  now: failed, compensation failed, or past their SLA);
- money at risk in incidents older than the allowed age (now, whatever the range);
- incidents whose fix is a refund, per 1,000 orders placed in the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from orders import selectors as order_selectors
from orders.choices import CHECKOUT
from reconciliation import selectors as recon_selectors
from sagas import selectors as saga_selectors


@dataclass(frozen=True)
class ServiceLevel:
    key: str  # the slo label of concord_slo_target
    name: str
    value: str
    target: str
    met: bool | None  # None: nothing in the range to measure
    detail: str


def _per_1000(count: int, orders: int) -> Decimal | None:
    return (Decimal(count) * 1000 / Decimal(orders)).quantize(Decimal("0.01")) if orders else None


def service_levels(*, start: date, end: date) -> list[ServiceLevel]:
    slo = settings.SLO
    lo = datetime.combine(start, time.min, tzinfo=UTC)
    hi = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    orders = order_selectors.orders_count_between(start, end)

    confirm_target = float(slo["ORDER_CONFIRM_SECONDS"])
    checkout = saga_selectors.saga_completion_summary(
        saga_type=CHECKOUT, start=lo, end=hi, within_seconds=confirm_target
    )
    p99 = checkout["p99_seconds"]
    confirmation = ServiceLevel(
        "order_confirm_seconds",
        "Orders confirmed in time (p99)",
        "—" if p99 is None else f"{p99:.1f} s",
        f"≤ {confirm_target:g} s",
        None if p99 is None else p99 <= confirm_target,
        f"{checkout['within']} of {checkout['completed']} confirmed within {confirm_target:g} s",
    )

    stuck_target = Decimal(str(slo["SAGAS_STUCK_PER_1000"]))
    runs = saga_selectors.saga_completion_summary(saga_type=None, start=lo, end=hi, within_seconds=0)
    stuck = _per_1000(runs["stuck"], orders)
    sagas_stuck = ServiceLevel(
        "sagas_stuck_per_1000",
        "Sagas stuck per 1,000 orders",
        "—" if stuck is None else str(stuck),
        f"≤ {stuck_target}",
        None if stuck is None else stuck <= stuck_target,
        f"{runs['stuck']} of {runs['started']} runs started in the range need a person now",
    )

    max_age = int(slo["MONEY_AT_RISK_MAX_AGE_SECONDS"])
    overdue = recon_selectors.money_at_risk_overdue(
        overdue_before=timezone.now() - timedelta(seconds=max_age)
    )
    hours = f"{max_age / 3600:g} h"
    money = ServiceLevel(
        "money_at_risk_max_age_seconds",
        f"Money at risk older than {hours}",
        ", ".join(f"{row['amount']} {row['currency']}" for row in overdue) or "none",
        "none",
        not overdue,
        f"{sum(row['count'] for row in overdue)} live incident(s) detected more than {hours} ago (now)",
    )

    refund_target = Decimal(str(slo["REFUND_INCIDENTS_PER_1000"]))
    refunds = recon_selectors.incidents_needing_refund_count(start=start, end=end)
    per_1000 = _per_1000(refunds, orders)
    refund_incidents = ServiceLevel(
        "refund_incidents_per_1000",
        "Incidents needing a refund per 1,000 orders",
        "—" if per_1000 is None else str(per_1000),
        f"≤ {refund_target}",
        None if per_1000 is None else per_1000 <= refund_target,
        f"{refunds} incident(s) over {orders} order(s)",
    )
    return [confirmation, sagas_stuck, money, refund_incidents]
