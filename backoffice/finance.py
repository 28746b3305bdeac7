"""Finance's numbers, put together from the owners' selectors and the finance read
model (issue 14, "finance numbers that add up"). Every figure here is one of:

- from the finance read model (readmodels): orders, revenue, refunds, incidents per
  1,000 orders, money at risk, time to resolve — eventual, with its lag on screen;
- from the history (reconciliation's incidents and remediations, payments' ledger,
  the back office's own staff actions) — read when the page is drawn.

Resolution is attributed from the history, not from the incident's resolution_kind
alone: a person's fix that the next re-check noticed is resolved "auto" by the
system, yet a person fixed it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from payments.selectors import ledger_balances, ledger_money_moves
from readmodels.selectors import finance_incident_weeks, week_start
from reconciliation.selectors import (
    incidents_about_orders,
    incidents_finance_rows,
    provider_net_by_currency,
    remediations_rows,
)

from .models import StaffAction

PERSON, SYSTEM, DISMISSED, OPEN = "person", "system", "dismissed", "open"
ATTRIBUTION_LABELS = {
    PERSON: "Fixed by a person (remediation, staff refund, saga action)",
    SYSTEM: "Healed by the system (retry, sweeper, re-check)",
    DISMISSED: "Dismissed as a false positive",
    OPEN: "Still open",
}
# Remediations that refund charges Concord's payments do not hold (a duplicate charge,
# a charge without an order): the provider refund is made directly, no payments refund.
_DIRECT_REFUND_ACTIONS = frozenset({"refund_extra_charges", "refund_charge"})


def bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return datetime.combine(start, time.min, tzinfo=UTC), datetime.combine(
        end + timedelta(days=1), time.min, tzinfo=UTC
    )


@dataclass
class IncidentReport:
    row: dict[str, Any]
    attribution: str
    remediations: list[dict[str, Any]]
    staff_actions: int
    refunds: list[dict[str, Any]]  # refunds caused: {"source", "amount", "currency", "at"}

    @property
    def refunded(self) -> Decimal:
        return sum((r["amount"] for r in self.refunds), Decimal(0))


def _live_at(incident: dict[str, Any], at: datetime) -> bool:
    return incident["detected_at"] <= at and (
        incident["resolved_at"] is None or at <= incident["resolved_at"]
    )


def _staff_actions(order_ids: list[int]) -> dict[int, list[datetime]]:
    out: dict[int, list[datetime]] = defaultdict(list)
    for order_id, at in StaffAction.objects.filter(order_id__in=order_ids).values_list(
        "order_id", "created_at"
    ):
        out[order_id].append(at)
    return out


def _refunds_caused(
    remediations: list[dict[str, Any]], *, since: datetime, until: datetime
) -> dict[int, list[dict[str, Any]]]:
    """Every refund linked to an incident, whatever path sent it: a payments refund
    (case file, compensation, cancellation, a remediation through payments) of an
    order while an incident about it was live (not dismissed), and a remediation's
    direct refunds of charges payments does not hold."""
    caused: dict[int, list[dict[str, Any]]] = defaultdict(list)
    refunds = list(ledger_money_moves(created_from=since, created_before=until, kind="refund"))
    by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for incident in incidents_about_orders(
        order_ids=sorted({r["order_id"] for r in refunds if r["order_id"]})
    ):
        if incident["state"] != "dismissed":
            by_order[incident["order_id"]].append(incident)
    for refund in refunds:
        live = [i for i in by_order.get(refund["order_id"], []) if _live_at(i, refund["at"])]
        if live:  # the latest detected incident live then caused it (counted once)
            caused[live[-1]["id"]].append(
                {
                    "source": "payments refund",
                    "amount": refund["amount"],
                    "currency": refund["currency"],
                    "at": refund["at"],
                    "order_id": refund["order_id"],
                }
            )
    for remediation in remediations:
        if (
            remediation["action"] in _DIRECT_REFUND_ACTIONS
            and remediation["money_moved"]
            and remediation["finished_at"] is not None
            and since <= remediation["finished_at"] < until
        ):
            caused[remediation["incident_id"]].append(
                {
                    "source": f"remediation {remediation['action']}",
                    "amount": remediation["money_moved"],
                    "currency": remediation["currency"],
                    "at": remediation["finished_at"],
                    "order_id": remediation["incident__order_id"],
                }
            )
    return caused


def attribute(incident: dict[str, Any], remediations: list[dict[str, Any]], staff_at: list[datetime]) -> str:
    """Who closed it, from the history (see the module docstring)."""
    if incident["state"] == "dismissed":
        return DISMISSED
    if incident["state"] != "resolved":
        return OPEN
    closed = incident["resolved_at"]
    if incident["resolution_kind"] == "manual" or incident["resolved_by_id"]:
        return PERSON
    if any(r["by_id"] and not r["automatic"] and r["state"] == "succeeded" for r in remediations):
        return PERSON
    if any(incident["detected_at"] <= at <= closed for at in staff_at):
        return PERSON  # a staff refund, cancellation or saga action on its order while it was live
    return SYSTEM


def incident_reports(*, start: date, end: date) -> list[IncidentReport]:
    since, until = bounds(start, end)
    incidents = incidents_finance_rows(since=since, until=until)
    ids = [i["id"] for i in incidents]
    remediations = remediations_rows(incident_ids=ids)
    by_incident: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in remediations:
        by_incident[r["incident_id"]].append(r)
    staff = _staff_actions(sorted({i["order_id"] for i in incidents if i["order_id"]}))
    caused = _refunds_caused(remediations, since=since, until=until)
    reports = []
    for incident in incidents:
        staff_at = staff.get(incident["order_id"], []) if incident["order_id"] else []
        live_end = incident["resolved_at"] or until
        reports.append(
            IncidentReport(
                row=incident,
                attribution=attribute(incident, by_incident[incident["id"]], staff_at),
                remediations=by_incident[incident["id"]],
                staff_actions=sum(1 for at in staff_at if incident["detected_at"] <= at <= live_end)
                + sum(1 for r in by_incident[incident["id"]] if r["by_id"] and not r["automatic"]),
                refunds=caused.get(incident["id"], []),
            )
        )
    return reports


def finance_summary(*, start: date, end: date) -> dict[str, Any]:
    """The history-side figures of the finance page for [start, end]."""
    since, until = bounds(start, end)
    reports = incident_reports(start=start, end=end)
    closed = [
        r for r in reports if r.row["resolved_at"] is not None and since <= r.row["resolved_at"] < until
    ]
    attribution = dict.fromkeys((PERSON, SYSTEM, DISMISSED), 0)
    for r in closed:
        attribution[r.attribution] += 1
    refunds: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "amount": Decimal(0)})
    for r in reports:
        for refund in r.refunds:
            refunds[refund["currency"]]["count"] += 1
            refunds[refund["currency"]]["amount"] += refund["amount"]
    detected = [r for r in reports if since <= r.row["detected_at"] < until and r.row["state"] != "dismissed"]
    impacting = [r for r in detected if r.row["customer_facing"]]
    return {
        "attribution": attribution,
        "attribution_labels": ATTRIBUTION_LABELS,
        "refunds_caused": {
            "count": sum(v["count"] for v in refunds.values()),
            "by_currency": [{"currency": k, **v} for k, v in sorted(refunds.items())],
        },
        "customer_impacting": len(impacting),
        "apologies_sent": sum(1 for r in impacting if r.row["customer_notified_at"] is not None),
    }


# The refresh task (backoffice.tasks.finance_figures_refresh, on the `bulk` queue),
# queued by name: this module does not import the tasks.
FIGURES_REFRESH_TASK = "backoffice.finance_figures_refresh"
# Kept figures stay in the cache this long (served stale, with their time, while a
# refresh runs); a range nobody opened for a day is new again (history_figures).
FIGURES_KEPT_SECONDS = 24 * 3600
# A page waiting for a range's first figures reloads itself this often (a meta refresh).
FIGURES_PENDING_RELOAD_SECONDS = 3


def default_range(today: date | None = None) -> tuple[date, date]:
    """The finance page's range without ?start=&end=: the last 30 days, today included."""
    today = today or timezone.now().date()
    return today - timedelta(days=29), today


def figures_key(start: date, end: date) -> str:
    return f"backoffice:finance-figures:{start.isoformat()}:{end.isoformat()}"


def _figures_interval() -> float:
    from django.conf import settings

    return float(getattr(settings, "BACKOFFICE_FINANCE_FIGURES_SECONDS", 60.0))


def figures_compute(*, start: date, end: date) -> dict[str, Any]:
    from . import slo

    return {
        "history": finance_summary(start=start, end=end),
        "service_levels": slo.service_levels(start=start, end=end),
        "figures_at": timezone.now(),
    }


def figures_refresh(*, start: date, end: date) -> dict[str, Any]:
    """Recompute the range's figures and keep them (FIGURES_KEPT_SECONDS): what the
    refresh task and beat's default-range entry run."""
    figures = figures_compute(start=start, end=end)
    _keep(start, end, figures)
    return figures


def _keep(start: date, end: date, figures: dict[str, Any]) -> None:
    from django.core.cache import cache

    cache.set(figures_key(start, end), figures, timeout=max(FIGURES_KEPT_SECONDS, 2 * _figures_interval()))


def _refresh_later(start: date, end: date, interval: float) -> datetime | None:
    """Queue one refresh of the range: a burst of viewers sends one task (a cache.add
    lock per range, held one interval, whose value is when it was queued). The time it
    was queued, or None if not queued (already queued, or Redis refused: the page is
    drawn all the same)."""
    from celery import current_app
    from django.core.cache import cache

    queued_at = timezone.now()
    try:
        if not cache.add(figures_key(start, end) + ":refresh", queued_at, timeout=max(interval, 1.0)):
            return None
        current_app.send_task(
            FIGURES_REFRESH_TASK,
            kwargs={"start": start.isoformat(), "end": end.isoformat()},
            expires=max(interval, 60.0),  # a refresh nobody ran for that long: the next view queues one
        )
    except Exception:  # noqa: BLE001 - Redis down or full: serve the stale figures, never fail the page
        return None
    return queued_at


def history_figures(*, start: date, end: date) -> dict[str, Any]:
    """The finance page's history figures — how incidents closed, refunds caused,
    customer impact (finance_summary) and the service levels (backoffice.slo) — with when
    they were computed (`figures_at`, on the page) and whether a refresh is on its way
    (`figures_refreshing`), kept in the cache shared by every web process, per range.

    They read the whole range's history (every incident live in it, the orders and
    saga runs started in it: seconds on a month of a busy shop), so the page never
    recomputes kept figures inline (stale-while-revalidate): figures older than
    BACKOFFICE_FINANCE_FIGURES_SECONDS (default 60) are served as they are and one
    refresh is queued (the `bulk` queue; backoffice.tasks.finance_figures_refresh),
    which recomputes and keeps them FIGURES_KEPT_SECONDS (a day). Beat refreshes the
    default range (the last 30 days) every interval, so nobody waits for it.

    A range with nothing kept (never opened, or not for a day) is never computed while
    someone waits (at 10M orders a month takes seconds): the same refresh is queued
    (same lock) and the page says the figures are being computed (`figures_pending`,
    with `figures_queued_at`) and reloads itself until they are kept. Its reloads while
    the refresh is queued (the lock held) queue nothing more.

    Computed inline, while the viewer waits: the cache (Redis) down — never fail the
    page, nothing could be kept or queued; and BACKOFFICE_FINANCE_FIGURES_SECONDS <= 0
    (the test settings) — always. The CSV exports always compute afresh.

    One cache round trip per view: the figures and the refresh lock in one get_many."""
    from django.core.cache import cache

    interval = _figures_interval()
    if interval <= 0:
        return {**figures_compute(start=start, end=end), "figures_refreshing": False}
    key = figures_key(start, end)
    try:
        found = cache.get_many([key, key + ":refresh"])
    except Exception:  # noqa: BLE001 - the cache (Redis) is down: compute, do not fail the page
        return {**figures_compute(start=start, end=end), "figures_refreshing": False}
    kept, queued_at = found.get(key), found.get(key + ":refresh")
    if kept is None:  # never computed (or not for a day): computed by the refresh task
        if queued_at is None:
            queued_at = _refresh_later(start, end, interval)
        return {
            "history": None,
            "service_levels": [],
            "figures_at": None,
            "figures_refreshing": False,
            "figures_pending": True,
            "figures_queued_at": queued_at if isinstance(queued_at, datetime) else None,
        }
    stale = (timezone.now() - kept["figures_at"]).total_seconds() >= interval
    if stale and queued_at is None:  # the lock held: a refresh is queued already
        _refresh_later(start, end, interval)
    return {**kept, "figures_refreshing": stale}


def incident_trends(*, weeks: int = 12, today: date | None = None) -> dict[str, Any]:
    """Per week (Monday) of the last `weeks` and incident type: incidents and money at
    risk (finance read model), cost — refunds caused, staff actions — from the history.
    Provider fees: the sandbox provider reports none, so they are not known ("—")."""

    today = today or timezone.now().date()
    first = week_start(today) - timedelta(weeks=weeks - 1)
    week_list = [first + timedelta(weeks=i) for i in range(weeks)]
    table: dict[tuple[date, str, str], dict[str, Any]] = {}

    def entry(week: date, kind: str, currency: str) -> dict[str, Any]:
        return table.setdefault(
            (week, kind, currency),
            {
                "week": week,
                "type": kind,
                "currency": currency,
                "incidents": 0,
                "money_at_risk": Decimal(0),
                "refunds": 0,
                "refunded": Decimal(0),
                "staff_actions": 0,
                "provider_fees": None,
            },
        )

    for row in finance_incident_weeks(weeks=weeks, today=today):
        e = entry(row["week"], row["type"], row["currency"])
        e["incidents"] += row["incidents"]
        e["money_at_risk"] += row["money_at_risk"]
    for report in incident_reports(start=first, end=today):
        kind = report.row["type"]
        for refund in report.refunds:
            e = entry(week_start(refund["at"].astimezone(UTC).date()), kind, refund["currency"])
            e["refunds"] += 1
            e["refunded"] += refund["amount"]
        if report.staff_actions:
            e = entry(
                week_start(report.row["detected_at"].astimezone(UTC).date()), kind, report.row["currency"]
            )
            e["staff_actions"] += report.staff_actions
    rows = sorted(table.values(), key=lambda e: (e["week"], e["type"], e["currency"]))
    return {"weeks": week_list, "rows": rows, "types": sorted({r["type"] for r in rows})}


def ledger_view() -> dict[str, Any]:
    """Balances per account and currency; the provider clearing account next to the
    provider's own net (from the synced provider records)."""
    balances = ledger_balances()
    provider = provider_net_by_currency()
    clearing = {b["currency"]: b["balance"] for b in balances if b["account"] == "provider_clearing"}
    comparison = [
        {
            "currency": currency,
            "clearing": clearing.get(currency, Decimal(0)),
            "provider_net": provider.get(currency, Decimal(0)),
            "difference": provider.get(currency, Decimal(0)) - clearing.get(currency, Decimal(0)),
        }
        for currency in sorted(set(clearing) | set(provider))
    ]
    return {"balances": balances, "clearing": comparison}
