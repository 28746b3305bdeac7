"""The rows of the back office's long tables (stuck sagas, incidents, search results,
waiting items), written in Python.

Django's template engine spends 150-300 µs on a table row of ten cells (a variable
lookup, a localisation and an escape per cell, a node per {% if %}): rendering 50
rows cost 8-12 ms, three times the whole floor page, while the page's SQL takes 1 ms.
Here each row is one f-string with every value escaped (django.utils.html.escape):
about 15 µs. The tables' head, empty state and everything around them stay in the
templates; the HTML is the same as the templates made.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from typing import Any

from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from .links import href_maker
from .sla import SOURCES, duration

DASH = "—"


def escape(value: Any) -> str:
    """django.utils.html.escape's text (html.escape(str(value)): & < > " ' encoded)
    without its lazy-string wrapper, which costs more than the escaping: a page of 200
    rows escapes some 3,000 values."""
    return html.escape(str(value))


_FORMATS = {"": "%Y-%m-%d %H:%M:%S", "minutes": "%Y-%m-%d %H:%M", "ms": "%Y-%m-%d %H:%M:%S.%f"}


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the SLA pages' words ("45 s", "12 min", "3.5 h", "2.0 days").
    The row functions pass `now`, read once per table."""
    if not moment:
        return DASH
    return duration(((now or timezone.now()) - moment).total_seconds())


def stamp(moment: datetime | None, precision: str = "", tz: tzinfo | None = None) -> str:
    """The moment in the current time zone: 2026-11-30 09:58:04 (or to the minute, or
    to the millisecond with precision "ms"). The row functions pass the zone, read once
    per table (timezone.localtime reads it from a thread-local at every call)."""
    if not moment:
        return ""
    text = moment.astimezone(tz or timezone.get_current_timezone()).strftime(_FORMATS[precision])
    return text[:-3] if precision == "ms" else text


def _text(value: Any, default: str = DASH) -> str:
    """A cell's text, escaped; `default` when empty (the templates' |default)."""
    return escape(value) if value not in (None, "") else default


def _truncate(text: str, length: int) -> str:
    """|truncatechars: at most `length` characters, the last an ellipsis when cut."""
    return text if len(text) <= length else text[: length - 1] + "…"


def saga_rows(runs: Iterable[Any], *, selectable: bool) -> SafeString:
    out = []
    now, tz, order_link = timezone.now(), timezone.get_current_timezone(), href_maker("backoffice:order")
    for run in runs:
        rid = int(run.id)
        subject = escape(run.subject_id)
        subject_cell = (
            f'<a href="{order_link(run.subject_id)}">Order {subject}</a>'
            if run.subject_id.isdigit()
            else subject
        )
        status = escape(run.status)
        undoing = ' <span class="muted">(undoing)</span>' if run.direction == "compensate" else ""
        check = (
            f'<td><input type="checkbox" name="run_ids" value="{rid}" id="run-{rid}" '
            f'aria-label="Select saga run {rid}"></td>'
            if selectable
            else ""
        )
        out.append(
            f"<tr>{check}<td>#{rid}</td><td>{escape(run.saga_type)}</td><td>{subject_cell}</td>"
            f'<td><span class="badge {status}">{status}</span>{undoing}</td>'
            f"<td>{_text(run.step)}</td>"
            f'<td class="num">{int(run.attempts)}</td>'
            f'<td class="err">{_text(_truncate(run.last_error or "", 140))}</td>'
            f"<td>{stamp(run.next_attempt_at, tz=tz) if run.next_attempt_at else DASH}</td>"
            f"<td>{age(run.created_at, now)}</td></tr>\n"
        )
    return mark_safe("".join(out))  # noqa: S308 - every interpolated value is escaped or an int


def incident_rows(rows: Iterable[Any]) -> SafeString:
    out = []
    now, order_link, incident_link = (
        timezone.now(),
        href_maker("backoffice:order"),
        href_maker("backoffice:incident"),
    )
    for i in rows:
        iid = int(i.id)
        order = f'<a href="{order_link(i.order_id)}">{int(i.order_id)}</a>' if i.order_id else DASH
        severity, state = escape(i.severity), escape(i.state)
        out.append(
            f'<tr><td><a href="{incident_link(iid)}">#{iid}</a></td><td>{escape(i.type)}</td>'
            f'<td><span class="badge {severity}">{severity}</span></td>'
            f'<td><span class="badge {state}">{state}</span></td>'
            f"<td>{order}</td><td>{_text(i.charge_id)}</td>"
            f'<td class="num">{escape(i.amount_at_risk)} {escape(i.currency)}</td>'
            f"<td>{age(i.detected_at, now)} ago</td><td>{_text(i.assigned_to_username)}</td></tr>\n"
        )
    return mark_safe("".join(out))  # noqa: S308 - every interpolated value is escaped or an int


def search_rows(rows: Iterable[Any]) -> SafeString:
    out = []
    tz, order_link = timezone.get_current_timezone(), href_maker("backoffice:order")
    for o in rows:
        oid = int(o.order_id)
        status = escape(o.status)
        payment = (
            f'<span class="badge {escape(o.payment_status)}">{escape(o.payment_status)}</span>'
            if o.payment_status
            else DASH
        )
        out.append(
            f'<tr><td><a href="{order_link(oid)}">{oid}</a></td>'
            f'<td><span class="badge {status}">{status}</span></td><td>{escape(o.customer_email)}</td>'
            f'<td class="num">{escape(o.total)} {escape(o.currency)}</td>'
            f"<td>{payment}</td><td>{_text(o.charge_id)}</td><td>{stamp(o.created_at, 'minutes', tz)}</td></tr>\n"
        )
    return mark_safe("".join(out))  # noqa: S308 - every interpolated value is escaped or an int


def _subject_maker() -> Callable[[Any], str]:
    """A waiting item's subject (linked when it has a page) and its muted detail: what
    Waiting.subject and Waiting.href say, with the links' prefixes and each state's noun
    read once per table (Waiting.href reads the script prefix, a thread-local, per row)."""
    order_link, incident_link = href_maker("backoffice:order"), href_maker("backoffice:incident")
    kinds = {key: (noun, page == "incident") for key, (noun, _, page) in SOURCES.items()}

    def cell(i: Any) -> str:
        noun, incident = kinds[i.sla.key]
        subject = escape(f"{noun} #{i.subject_id}")
        if incident:
            href = incident_link(i.subject_id)
        else:
            href = order_link(i.order_id) if i.order_id else ""
        cell = f'<a href="{href}">{subject}</a>' if href else subject
        return cell + (f' <span class="muted">{escape(i.detail)}</span>' if i.detail else "")

    return cell


def _item_money(i: Any) -> str:
    return f"{escape(i.amount)} {escape(i.currency)}" if i.amount is not None else DASH


def waiting_rows(items: Iterable[Any]) -> SafeString:
    out = []
    now, tz, order_link = timezone.now(), timezone.get_current_timezone(), href_maker("backoffice:order")
    subject_of = _subject_maker()
    for i in items:
        subject_cell, money = subject_of(i), _item_money(i)
        order = f'<a href="{order_link(i.order_id)}">{int(i.order_id)}</a>' if i.order_id else DASH
        level = i.level
        if level == "ok":
            status = '<span class="badge completed">within limits</span>'
        elif level == "attention":
            status = '<span class="badge pending">needs attention</span>'
        else:
            status = f'<span class="badge failed">escalation {escape(i.escalated) if i.escalated else "due"}</span>'
        out.append(
            f"<tr><td>{subject_cell}</td><td>{order}</td>"
            f'<td class="num">{money}</td><td>{stamp(i.since, tz=tz)}</td><td>{age(i.since, now)}</td>'
            f"<td>{status}</td></tr>\n"
        )
    return mark_safe("".join(out))  # noqa: S308 - every interpolated value is escaped or an int


def attention_rows(items: Iterable[Any]) -> SafeString:
    """The overview's "Needs attention" rows (backoffice.sla.attention_list)."""
    out = []
    now = timezone.now()
    subject_of = _subject_maker()
    for i in items:
        subject_cell, money = subject_of(i), _item_money(i)
        level = i.level
        notify = escape(i.sla.notify)
        if i.escalated:
            tone = "failed" if i.escalated == "sent" else "pending"
            escalation = f'<span class="badge {tone}">e-mailed to {notify}: {escape(i.escalated)}</span>'
        elif level == "escalate":
            escalation = f'<span class="badge pending">due to {notify}</span>'
        else:
            escalation = f'<span class="muted">e-mail to {notify} in {escape(i.escalate_in)}</span>'
        out.append(
            f'<tr class="{level}"><td>{subject_cell}</td>'
            f'<td>{escape(i.sla.label)}</td><td class="num">{money}</td>'
            f"<td>{age(i.since, now)}</td><td>{escape(i.late_text)}</td>"
            f"<td>{escalation}</td></tr>\n"
        )
    return mark_safe("".join(out))  # noqa: S308 - every interpolated value is escaped


def finance_day_rows(days: Iterable[dict[str, Any]]) -> SafeString:
    """The finance page's "By day and currency" rows (readmodels.selectors.finance_days:
    a row per day and currency, up to 367 days; ten cells each)."""
    out = []
    for d in days:
        out.append(
            f"<tr><td>{d['day'].isoformat()}</td><td>{_text(d['currency'])}</td>"
            f'<td class="num">{int(d["orders"])}</td><td class="num">{escape(d["revenue"])}</td>'
            f'<td class="num">{int(d["refunds"])}</td><td class="num">{escape(d["refunded"])}</td>'
            f'<td class="num">{int(d["incidents"])}</td><td class="num">{_text(d["per_1000"])}</td>'
            f'<td class="num">{escape(d["money_at_risk"])}</td><td class="num">{int(d["resolved"])}</td></tr>\n'
        )
    return mark_safe("".join(out))  # noqa: S308 - every interpolated value is escaped or an int


def timeline_rows(events: Iterable[Any]) -> SafeString:
    """An order's case file, "The whole story": a list item per event
    (backoffice.selectors.Event; an order with many refunds, retries and webhooks has
    dozens, each a provider's or a person's text)."""
    out = []
    tz = timezone.get_current_timezone()
    for e in events:
        by = f' <span class="muted">by {escape(e.by)}</span>' if e.by else ""
        detail = f'<div class="err">{escape(e.detail)}</div>' if e.detail else ""
        out.append(
            f'<li class="{escape(e.tone)}"><div class="when">{stamp(e.at, "ms", tz)} UTC</div>\n'
            f'      <span class="kind">{escape(e.kind)}</span><strong>{escape(e.title)}</strong>{by}\n'
            f"      {detail}</li>\n"
        )
    return mark_safe("".join(out))  # noqa: S308 - every interpolated value is escaped


def order_lines(orders: Iterable[Any]) -> SafeString:
    """An order's case file, "The customer's other orders": a line per order
    (readmodels' search rows)."""
    out = []
    tz, order_link = timezone.get_current_timezone(), href_maker("backoffice:order")
    for o in orders:
        oid = int(o.order_id)
        status = escape(o.status)
        out.append(
            f'<p><a href="{order_link(oid)}">Order {oid}</a> <span class="badge {status}">{status}</span> '
            f'{escape(o.total)} {escape(o.currency)} <span class="muted">{stamp(o.created_at, "minutes", tz)}</span></p>\n'
        )
    return mark_safe("".join(out))  # noqa: S308 - every interpolated value is escaped or an int
