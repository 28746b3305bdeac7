"""Finance's pages: the figures (finance read model, with its lag on screen), the
12-week trends per incident type, the exports (per day, per incident, per
remediation) and the ledger. HTTP only: the numbers come from backoffice.finance
and readmodels.selectors."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from readmodels import selectors as rm_selectors
from reconciliation import selectors as recon_selectors

from . import charts, finance, probes, rows, slo
from .conf import counts_seconds
from .permissions import finance_required


def _date_range(request: HttpRequest) -> tuple[date, date]:
    today = timezone.now().date()
    try:
        end = date.fromisoformat(request.GET["end"]) if request.GET.get("end") else today
        start = (
            date.fromisoformat(request.GET["start"])
            if request.GET.get("start")
            else finance.default_range(end)[0]
        )
    except ValueError:
        messages.error(request, "Dates are YYYY-MM-DD; showing the last 30 days.")
        start, end = finance.default_range(today)
    if start > end:
        start, end = end, start
    if (end - start).days > 366:
        messages.warning(request, "At most one year at a time; the range was shortened.")
        start = end - timedelta(days=366)
    return start, end


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _lag_line() -> str:
    lag = probes.read_model_lag("finance")
    if lag is None:
        return "The finance read model is not running."
    if lag.failing or lag.pending:
        return f"Figures are {lag.text}."
    return "Figures are up to date."


@finance_required
def finance_page(request: HttpRequest) -> HttpResponse:
    """The read model's figures are read at every view (one statement); the history
    figures and service levels are kept per range (backoffice.finance.history_figures);
    "open now" is kept a few seconds per process, as the overview's count panels
    (BACKOFFICE_COUNTS_SECONDS), and says "as of"."""
    start, end = _date_range(request)
    days = rm_selectors.finance_days(start=start, end=end)
    totals = rm_selectors.finance_totals(start=start, end=end, days=days)
    labels = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    per_day = dict.fromkeys(labels, 0)
    for d in days:
        per_day[d["day"].isoformat()] += d["incidents"]
    chart = charts.bar_chart(
        labels=labels,
        series=[("opened", "incidents (false positives apart)", list(per_day.values()))],
        title=f"Incidents per day, {start} to {end}",
    )
    open_now, open_now_at = probes.kept_as_of(
        "finance:open-now", recon_selectors.incidents_open_at_risk, seconds=counts_seconds()
    )
    return render(
        request,
        "backoffice/finance.html",
        {
            "start": start,
            "end": end,
            "lag_line": _lag_line(),
            "days": days,
            "day_rows": rows.finance_day_rows(days),
            "totals": totals,
            "mttr": _duration(totals["mttr_seconds"]),
            **finance.history_figures(start=start, end=end),
            "pending_reload_seconds": finance.FIGURES_PENDING_RELOAD_SECONDS,
            "open_now": open_now,
            "open_now_at": open_now_at,
            "chart": chart,
        },
    )


@finance_required
def finance_trends(request: HttpRequest) -> HttpResponse:
    trends = finance.incident_trends(weeks=12)
    return render(request, "backoffice/finance_trends.html", {"lag_line": _lag_line(), **trends})


def _csv(filename: str) -> tuple[HttpResponse, Any]:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response, csv.writer(response)


@finance_required
def finance_csv(request: HttpRequest) -> HttpResponse:
    """Per day and currency: the finance read model's figures (as on the page)."""
    start, end = _date_range(request)
    response, writer = _csv(f"finance-{start}-{end}.csv")
    columns = [
        "day",
        "currency",
        "orders",
        "revenue",
        "refunds",
        "refunded",
        "incidents",
        "dismissed",
        "per_1000",
        "money_at_risk",
        "resolved",
        "mttr_seconds",
    ]
    writer.writerow(columns)
    days = rm_selectors.finance_days(start=start, end=end)
    for d in days:
        writer.writerow(["" if d[c] is None else d[c] for c in columns])
    writer.writerow([])
    totals = rm_selectors.finance_totals(start=start, end=end, days=days)
    writer.writerow(["metric", "value"])
    for key in ("orders", "incidents", "dismissed", "per_1000", "resolved", "mttr_seconds"):
        writer.writerow([key, "" if totals[key] is None else totals[key]])
    summary = finance.finance_summary(start=start, end=end)
    for key, count in summary["attribution"].items():
        writer.writerow([f"closed_{key}", count])
    writer.writerow(["refunds_caused_count", summary["refunds_caused"]["count"]])
    for c in summary["refunds_caused"]["by_currency"]:
        writer.writerow([f"refunds_caused_amount_{c['currency']}", c["amount"]])
    writer.writerow(["customer_impacting", summary["customer_impacting"]])
    writer.writerow(["apologies_sent", summary["apologies_sent"]])
    for level in slo.service_levels(start=start, end=end):
        met = "" if level.met is None else ("met" if level.met else "missed")
        writer.writerow([f"slo_{level.key}", level.value, level.target, met])
    return response


@finance_required
def finance_incidents_csv(request: HttpRequest) -> HttpResponse:
    """One row per incident live in the range (detected before its end, not closed before its start)."""
    start, end = _date_range(request)
    response, writer = _csv(f"incidents-{start}-{end}.csv")
    writer.writerow(
        [
            "incident",
            "type",
            "severity",
            "state",
            "attribution",
            "order_id",
            "charge_id",
            "amount_at_risk",
            "currency",
            "detected_at",
            "resolved_at",
            "customer_facing",
            "customer_notified_at",
            "remediations",
            "staff_actions",
            "refunds_caused",
            "refunded",
        ]
    )
    for r in finance.incident_reports(start=start, end=end):
        i = r.row
        writer.writerow(
            [
                i["id"],
                i["type"],
                i["severity"],
                i["state"],
                r.attribution,
                i["order_id"] or "",
                i["charge_id"] or "",
                i["amount_at_risk"],
                i["currency"],
                i["detected_at"].isoformat(),
                i["resolved_at"].isoformat() if i["resolved_at"] else "",
                i["customer_facing"],
                i["customer_notified_at"].isoformat() if i["customer_notified_at"] else "",
                len(r.remediations),
                r.staff_actions,
                len(r.refunds),
                r.refunded,
            ]
        )
    return response


@finance_required
def finance_remediations_csv(request: HttpRequest) -> HttpResponse:
    """One row per remediation created in the range."""
    start, end = _date_range(request)
    since, until = finance.bounds(start, end)
    response, writer = _csv(f"remediations-{start}-{end}.csv")
    writer.writerow(
        [
            "remediation",
            "incident",
            "incident_type",
            "order_id",
            "action",
            "state",
            "automatic",
            "by",
            "money_moved",
            "currency",
            "created_at",
            "finished_at",
            "reason",
        ]
    )
    for r in recon_selectors.remediations_rows(since=since, until=until):
        writer.writerow(
            [
                r["id"],
                r["incident_id"],
                r["incident__type"],
                r["incident__order_id"] or "",
                r["action"],
                r["state"],
                r["automatic"],
                r["by__username"] or "system",
                r["money_moved"],
                r["currency"],
                r["created_at"].isoformat(),
                r["finished_at"].isoformat() if r["finished_at"] else "",
                r["reason"],
            ]
        )
    return response


@finance_required
def finance_ledger(request: HttpRequest) -> HttpResponse:
    return render(request, "backoffice/finance_ledger.html", finance.ledger_view())
