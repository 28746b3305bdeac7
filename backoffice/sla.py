"""Service levels per waiting state, and the system's pulse (docs/backoffice.md, "Service
levels per state").

Five states where something waits for the outside world or for a person: a payment whose
outcome is unknown, a refund pending at the provider, an order cancelling, an incident
nobody acknowledged, an incident nobody resolved. Each has two limits
(settings.BACKOFFICE_SLA, backoffice/conf.py):

- past `attention_after` the item is on the overview's "Needs attention" list, the
  latest first (lateness = time in the state minus that limit);
- past `escalate_after` the beat task `backoffice.sla_escalate` e-mails it to its group
  (finance or on-call) through Django's e-mail framework — at most once per item: the
  `SlaEscalation` row, claimed before the send, is the guard and the record.

`systems_health()` says whether a worker takes tasks, whether beat sends them and
whether the provider answers, so support knows why nothing moves before an SLA trips.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core import heartbeats
from core.sql import column, fetchall_prepared
from orders import selectors as order_selectors
from orders.choices import OrderStatus
from payments import selectors as payment_selectors
from payments.choices import PaymentStatus, RefundStatus
from reconciliation import selectors as recon_selectors
from reconciliation.choices import LIVE_STATES, IncidentState

from . import links, probes
from .conf import FINANCE_GROUP, ONCALL_GROUP, StateSla, silent_after, sla_limits
from .models import EscalationStatus, SlaEscalation
from .roles import FINANCE, SUPPORT

log = logging.getLogger(__name__)

# (since_before=, exclude_ids=, limit=, counted=) -> (count or None when not counted, rows)
Source = Callable[..., tuple[int | None, list[dict]]]
# state key -> (the rows' noun, where a row is read, which page shows it)
SOURCES: dict[str, tuple[str, Source, str]] = {
    "payment_unknown": (
        "Payment",
        lambda **kw: payment_selectors.payments_waiting(status=PaymentStatus.UNKNOWN, **kw),
        "order",
    ),
    "refund_pending": (
        "Refund",
        lambda **kw: payment_selectors.refunds_waiting(status=RefundStatus.PENDING, **kw),
        "order",
    ),
    "order_cancelling": (
        "Order",
        lambda **kw: order_selectors.orders_waiting(status=OrderStatus.CANCELLING, **kw),
        "order",
    ),
    "incident_unacknowledged": (
        "Incident",
        lambda **kw: recon_selectors.incidents_waiting(states=[IncidentState.OPEN], **kw),
        "incident",
    ),
    "incident_unresolved": (
        "Incident",
        lambda **kw: recon_selectors.incidents_waiting(states=list(LIVE_STATES), **kw),
        "incident",
    ),
}
# The group's back-office role when settings.BACKOFFICE_SLA_RECIPIENTS names nobody.
GROUP_ROLES = {FINANCE_GROUP: FINANCE, ONCALL_GROUP: SUPPORT}
ESCALATION_BATCH = 200  # items per state per run (oldest first); the next run takes the rest


@dataclass(frozen=True)
class Waiting:
    """One item waiting in a state."""

    sla: StateSla
    subject_id: int
    order_id: int | None
    amount: Decimal | None
    currency: str
    since: datetime
    age: float  # seconds in the state
    detail: str = ""  # an incident's type and severity
    escalated: str = ""  # "" | the escalation's status (sent, failed, sending)

    @property
    def subject(self) -> str:
        return f"{SOURCES[self.sla.key][0]} #{self.subject_id}"

    @property
    def late(self) -> float:
        """Seconds past the attention limit (negative: still within it)."""
        return self.age - self.sla.attention_after

    @property
    def level(self) -> str:
        """ok | attention | escalate"""
        if self.age >= self.sla.escalate_after:
            return "escalate"
        return "attention" if self.age >= self.sla.attention_after else "ok"

    @property
    def late_text(self) -> str:
        return duration(self.late)

    @property
    def escalate_in(self) -> str:
        return duration(self.sla.escalate_after - self.age)

    @property
    def href(self) -> str:
        if SOURCES[self.sla.key][2] == "incident":
            return links.incident_href(self.subject_id)
        return links.order_href(self.order_id) if self.order_id else ""


@dataclass(frozen=True)
class StateList:
    sla: StateSla
    count: int  # every item in the state (or past the limit asked for)
    items: list[Waiting]  # the oldest first, at most the limit asked for

    @property
    def attention_text(self) -> str:
        return duration(self.sla.attention_after)

    @property
    def escalate_text(self) -> str:
        return duration(self.sla.escalate_after)


def _item(sla: StateSla, row: dict, now: datetime) -> Waiting:
    return Waiting(
        sla=sla,
        subject_id=row["id"],
        order_id=row["order_id"],
        amount=row["amount"],
        currency=row["currency"] or "",
        since=row["since"],
        age=(now - row["since"]).total_seconds(),
        detail=f"{row['type']} ({row['severity']})" if "type" in row else "",
    )


def _rows(
    sla: StateSla, *, now: datetime, past: float | None, limit: int, exclude_ids=None, counted: bool = True
) -> StateList:
    _, source, _ = SOURCES[sla.key]
    since_before = now - timedelta(seconds=past) if past is not None else None
    count, rows = source(since_before=since_before, exclude_ids=exclude_ids, limit=limit, counted=counted)
    items = [_item(sla, row, now) for row in rows]
    return StateList(sla, count if count is not None else len(items), items)


# The states one app's selector reads together, in one statement (the rows only, no
# count): the same rows as SOURCES' (pinned by tests/backoffice/test_sla.py), two round
# trips fewer for the overview's "Needs attention" and the waiting page. Each batch's
# statement is compiled once per process (core.fsm.waiting_in_states).
Batch = Callable[[dict[str, datetime | None], int], dict[str, list[dict]]]


def _payments_batch(before: dict[str, datetime | None], limit: int) -> dict[str, list[dict]]:
    payments, refunds = payment_selectors.payments_and_refunds_waiting(
        payment_status=PaymentStatus.UNKNOWN,
        refund_status=RefundStatus.PENDING,
        payment_since_before=before["payment_unknown"],
        refund_since_before=before["refund_pending"],
        limit=limit,
    )
    return {"payment_unknown": payments, "refund_pending": refunds}


def _incidents_batch(before: dict[str, datetime | None], limit: int) -> dict[str, list[dict]]:
    unacknowledged, unresolved = recon_selectors.incidents_waiting_in(
        specs=[
            ([IncidentState.OPEN], before["incident_unacknowledged"]),
            (list(LIVE_STATES), before["incident_unresolved"]),
        ],
        limit=limit,
    )
    return {"incident_unacknowledged": unacknowledged, "incident_unresolved": unresolved}


def _orders_batch(before: dict[str, datetime | None], limit: int) -> dict[str, list[dict]]:
    rows = order_selectors.orders_waiting_rows(
        status=OrderStatus.CANCELLING, since_before=before["order_cancelling"], limit=limit
    )
    return {"order_cancelling": rows}


BATCHES: list[tuple[tuple[str, ...], Batch]] = [
    (("payment_unknown", "refund_pending"), _payments_batch),
    (("order_cancelling",), _orders_batch),
    (("incident_unacknowledged", "incident_unresolved"), _incidents_batch),
]


def _rows_many(
    slas: list[StateSla], *, now: datetime, past: Callable[[StateSla], float | None], limit: int
) -> list[StateList]:
    """_rows(counted=False) for every state of `slas` (in that order), the states of a
    batch read in one statement; `past(sla)`: how long an item must have waited."""
    by_key = {s.key: s for s in slas}
    lists: dict[str, StateList] = {}
    for keys, read in BATCHES:
        if all(k in by_key for k in keys):
            before = {}
            for k in keys:
                waited = past(by_key[k])
                before[k] = now - timedelta(seconds=waited) if waited is not None else None
            for k, rows in read(before, limit).items():
                items = [_item(by_key[k], row, now) for row in rows]
                lists[k] = StateList(by_key[k], len(items), items)
    return [
        lists[s.key] if s.key in lists else _rows(s, now=now, past=past(s), limit=limit, counted=False)
        for s in slas
    ]


def _mark_escalated(items: list[Waiting]) -> list[Waiting]:
    """The items with their escalation's status (one query, built once: the items'
    (state, subject) pairs as two arrays joined to the unique index, instead of the
    ORM compiling `state IN (…) AND subject_id IN (…)` of up to 250 ids — the cross
    product of the two lists, and ~1 ms of CPU on the waiting page)."""
    if not items:
        return items
    states, subjects = zip(*{(i.sla.key, i.subject_id) for i in items}, strict=True)
    rows = fetchall_prepared(_escalations_sql(), [list(states), list(subjects)])
    found = {(state, subject): status for state, subject, status in rows}
    # (replace() only where there is an escalation: it costs ~6 µs an item, 250 a page)
    return [
        replace(i, escalated=status) if (status := found.get((i.sla.key, i.subject_id))) else i for i in items
    ]


@functools.cache
def _escalations_sql() -> str:
    table = connection.ops.quote_name(SlaEscalation._meta.db_table)
    state, subject, status = (column(SlaEscalation, f) for f in ("state", "subject_id", "status"))
    return (
        f"SELECT e.{state}, e.{subject}, e.{status} FROM {table} e"  # noqa: S608 - identifiers from the model
        f" JOIN unnest(%s::text[], %s::bigint[]) AS k(state, subject_id)"
        f" ON e.{state} = k.state AND e.{subject} = k.subject_id"
    )


def state_counts() -> dict[str, int]:
    """How many items are in each state (whatever their age): one count query per
    state. The "Waiting by state" page keeps these a few seconds (backoffice.views)."""
    now = timezone.now()
    return {key: _rows(sla, now=now, past=None, limit=0).count for key, sla in sla_limits().items()}


def states_waiting(
    *, limit: int = 50, now: datetime | None = None, counts: dict[str, int] | None = None
) -> list[StateList]:
    """Every state with its items, oldest first (the "Waiting by state" page). With
    `counts` (state_counts(), read earlier) each state's count is taken from there
    and only its items are read: one statement per owning app (BATCHES: 3 for the 5
    states) instead of two queries per state."""
    now = now or timezone.now()
    if counts is None:
        lists = [_rows(sla, now=now, past=None, limit=limit) for sla in sla_limits().values()]
    else:
        lists = [
            StateList(lst.sla, counts.get(lst.sla.key, 0), lst.items)
            for lst in _rows_many(list(sla_limits().values()), now=now, past=lambda sla: None, limit=limit)
        ]
    marked = iter(_mark_escalated([i for lst in lists for i in lst.items]))
    return [StateList(lst.sla, lst.count, [next(marked) for _ in lst.items]) for lst in lists]


def attention_counts(*, now: datetime | None = None) -> list[StateList]:
    """Per state, how many items are past its attention limit (no items): one count
    query per state. The overview keeps these a few seconds (backoffice.overview)."""
    now = now or timezone.now()
    return [_rows(sla, now=now, past=sla.attention_after, limit=0) for sla in sla_limits().values()]


def attention_items(*, limit: int = 20, now: datetime | None = None) -> list[Waiting]:
    """The `limit` latest items past their state's attention limit, of all states
    together, the latest first, with their escalation: one statement per owning app
    (BATCHES: 3 for the 5 states, no count) and one for the escalations. The
    overview's "Needs attention" rows."""
    now = now or timezone.now()
    lists = _rows_many(
        list(sla_limits().values()), now=now, past=lambda sla: sla.attention_after, limit=limit
    )
    items = sorted((i for lst in lists for i in lst.items), key=lambda i: i.late, reverse=True)
    return _mark_escalated(items[:limit])


# --- escalation by e-mail (the beat task backoffice.sla_escalate) ------------------------------


def group_recipients(group: str) -> list[str]:
    """settings.BACKOFFICE_SLA_RECIPIENTS[group], else the e-mail addresses of the
    active users with the group's back-office role (superusers aside)."""
    configured = [a for a in (settings.BACKOFFICE_SLA_RECIPIENTS.get(group) or []) if a]
    if configured:
        return sorted(set(configured))
    users = (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True, groups__name=GROUP_ROLES[group])
        .exclude(email="")
    )
    return sorted(set(users.values_list("email", flat=True)))


def _claim(item: Waiting) -> SlaEscalation | None:
    """The escalation row for `item`, claimed for sending by this run; None when it was
    sent (or is being sent) already. A failed one is claimed again."""
    try:
        with transaction.atomic():
            return SlaEscalation.objects.create(
                state=item.sla.key,
                subject_id=item.subject_id,
                order_id=item.order_id,
                group=item.sla.notify,
                age_seconds=int(item.age),
            )
    except IntegrityError:
        pass
    claimed = SlaEscalation.objects.filter(
        state=item.sla.key, subject_id=item.subject_id, status=EscalationStatus.FAILED
    ).update(status=EscalationStatus.SENDING, age_seconds=int(item.age), error="")
    return SlaEscalation.objects.get(state=item.sla.key, subject_id=item.subject_id) if claimed else None


def _line(item: Waiting, base_url: str) -> str:
    money = f", {item.amount} {item.currency}" if item.amount is not None and item.currency else ""
    detail = f" {item.detail}" if item.detail else ""
    return (
        f"- {item.subject}{detail}{money}: {item.sla.label.lower()} for {duration(item.age)} "
        f"(escalates after {duration(item.sla.escalate_after)}) {base_url}{item.href}"
    )


def sla_escalate(*, now: datetime | None = None) -> dict[str, int]:
    """E-mail every item past its escalate_after limit that was not e-mailed before,
    one message per group per run. Returns how many were sent / failed per outcome."""
    now = now or timezone.now()
    claimed: dict[str, list[tuple[SlaEscalation, Waiting]]] = {}
    for sla in sla_limits().values():
        # Those e-mailed (or being sent) already are left out in the query itself, so a
        # long outage's old items never fill the batch and hide the newly late ones.
        done = SlaEscalation.objects.filter(state=sla.key).exclude(status=EscalationStatus.FAILED)
        due = _rows(
            sla,
            now=now,
            past=sla.escalate_after,
            limit=ESCALATION_BATCH,
            exclude_ids=done.values("subject_id"),
        ).items
        for item in due:
            row = _claim(item)
            if row is not None:
                claimed.setdefault(sla.notify, []).append((row, item))
    result = {"sent": 0, "failed": 0}
    base_url = settings.BACKOFFICE_BASE_URL.rstrip("/")
    for group, pairs in claimed.items():
        recipients = group_recipients(group)
        ids = [row.pk for row, _ in pairs]
        if not recipients:
            log.warning("SLA escalation: nobody to e-mail in group %s (BACKOFFICE_SLA_RECIPIENTS)", group)
            SlaEscalation.objects.filter(pk__in=ids).update(
                status=EscalationStatus.FAILED, error=f"nobody to e-mail in group {group!r}"
            )
            result["failed"] += len(ids)
            continue
        subject = f"[Concord] {len(pairs)} item(s) past their service level ({group})"
        body = "\n".join(
            [
                f"These waited longer than their escalation limit (BACKOFFICE_SLA), as of {now:%Y-%m-%d %H:%M} UTC:",
                "",
                *(_line(item, base_url) for _, item in pairs),
                "",
                "Each item is e-mailed once; the back office's overview lists what still waits.",
            ]
        )
        try:
            send_mail(subject, body, None, recipients, fail_silently=False)
        except Exception as exc:  # noqa: BLE001 - any SMTP failure: record it, the next run retries
            log.warning("SLA escalation to %s failed: %s", group, exc)
            SlaEscalation.objects.filter(pk__in=ids).update(
                status=EscalationStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:1000]
            )
            result["failed"] += len(ids)
            continue
        SlaEscalation.objects.filter(pk__in=ids).update(
            status=EscalationStatus.SENT, sent_at=timezone.now(), recipients=", ".join(recipients)
        )
        result["sent"] += len(ids)
    return result


def duration(seconds: float) -> str:
    """A wait in words: "45 s", "12 min", "3.5 h", "2.0 days"."""
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# --- the system's pulse (the overview's "Systems") ---------------------------------------------


@dataclass(frozen=True)
class Pulse:
    name: str  # worker | beat | provider
    ok: bool | None  # None: unknown (the cache could not be read)
    text: str


# What each heartbeat's pulse calls its process when it is silent / alive.
_WORKERS = {
    heartbeats.WORKER: ("no worker has taken a task", "a worker took a task"),
    heartbeats.EVENTS: ("no events worker has taken a task", "an events worker took a task"),
}


def _heartbeat_pulse(kind: str, limit: float) -> Pulse:
    try:
        age = heartbeats.heartbeat_age(kind)
    except Exception as exc:  # noqa: BLE001 - the cache (Redis) is down: say so, do not fail the page
        return Pulse(kind, None, f"unknown: the heartbeat store does not answer ({type(exc).__name__})")
    if kind in _WORKERS:
        silent, alive = _WORKERS[kind]
        if age is None:
            return Pulse(kind, False, f"{silent} yet")
        if age > limit:
            return Pulse(kind, False, f"{silent} for {duration(age)}")
        return Pulse(kind, True, f"{alive} {duration(age)} ago")
    if age is None:
        return Pulse(kind, False, "beat has not sent a scheduled task yet")
    if age > limit:
        return Pulse(kind, False, f"beat last ran {duration(age)} ago")
    return Pulse(kind, True, f"beat last ran {duration(age)} ago")


def silent_processes() -> dict[str, str] | None:
    """/readyz's detail (core.health.register_detail): the worker, events worker or beat
    that has gone silent, in the overview's words; None while both are alive. A silent worker does not
    make web unready (web still accepts orders, the sweeper catches up), but a probe or an
    operator reading /readyz should learn it without opening the overview."""
    limits = silent_after()
    silent = {
        pulse.name: pulse.text
        for pulse in (
            _heartbeat_pulse(kind, limits[kind])
            for kind in (heartbeats.WORKER, heartbeats.EVENTS, heartbeats.BEAT)
        )
        if pulse.ok is not True
    }
    return silent or None


def systems_health(*, provider: tuple[bool, str]) -> list[Pulse]:
    """Worker, events worker, beat and provider, each with what a person needs to read."""
    limits = silent_after()
    reachable, detail = provider
    return [
        # Kept a few seconds (backoffice.probes): a heartbeat is a Redis round trip each.
        probes.kept("pulse:worker", lambda: _heartbeat_pulse(heartbeats.WORKER, limits["worker"])),
        probes.kept("pulse:events", lambda: _heartbeat_pulse(heartbeats.EVENTS, limits["events"])),
        probes.kept("pulse:beat", lambda: _heartbeat_pulse(heartbeats.BEAT, limits["beat"])),
        Pulse(
            "provider",
            reachable,
            "the payment provider answers"
            if reachable
            else f"the payment provider is not answering ({detail})",
        ),
    ]
