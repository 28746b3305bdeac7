"""Service levels per waiting state (backoffice.sla): the five states reached through the
real services, aged by moving their timestamps back, then the overview's "Needs
attention", the "Waiting by state" page and the e-mail escalation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from backoffice import sla
from backoffice.conf import sla_limits
from backoffice.models import SlaEscalation
from orders.models import Order
from orders.services import order_request_cancel
from payments.models import Payment, Refund
from payments.selectors import payment_for_order
from payments.services import payment_mark_unknown
from payments.services.refunds import refund_create
from reconciliation.detectors import detector_get
from reconciliation.models import Incident
from reconciliation.services import reconcile_run

pytestmark = pytest.mark.django_db

MIN = 60


def _ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


@pytest.fixture
def limits(settings):
    """Small round limits (seconds) so the ages below read plainly. A refund's attention
    limit is the refund SLA (REFUND_PENDING_SLA_SECONDS), not a BACKOFFICE_SLA field."""
    settings.RECONCILIATION = {**settings.RECONCILIATION, "REFUND_PENDING_SLA_SECONDS": 15 * MIN}
    settings.BACKOFFICE_SLA = {
        "payment_unknown": {"attention_after": 5 * MIN, "escalate_after": 30 * MIN},
        "refund_pending": {"escalate_after": 60 * MIN},
        "order_cancelling": {"attention_after": 15 * MIN, "escalate_after": 60 * MIN},
        "incident_unacknowledged": {"attention_after": 15 * MIN, "escalate_after": 60 * MIN},
        "incident_unresolved": {"attention_after": 240 * MIN, "escalate_after": 1440 * MIN},
    }
    settings.BACKOFFICE_SLA_RECIPIENTS = {
        "finance": ["finance@shop.example"],
        "oncall": ["oncall@shop.example"],
    }
    return settings.BACKOFFICE_SLA


class Waiting:
    """One item in each state, through the services that put them there."""

    def __init__(self, shop, make_incident):
        self.shop = shop
        self.make_incident = make_incident

    def payment_unknown(self, age: float) -> int:
        order_id = self.shop.order()
        payment = payment_for_order(order_id=order_id)
        payment_mark_unknown(payment_id=payment.id, error="read timeout", reason="provider timed out")
        Payment.objects.filter(pk=payment.id).update(updated_at=_ago(age))
        return payment.id

    def refund_pending(self, age: float) -> int:
        order_id = self.shop.confirmed()
        payment = payment_for_order(order_id=order_id)
        refund = refund_create(payment_id=payment.id, amount=Decimal("10.00"), reason="goodwill")
        Refund.objects.filter(pk=refund.id).update(created_at=_ago(age))
        return refund.id

    def order_cancelling(self, age: float) -> int:
        order_id = self.shop.confirmed()
        order_request_cancel(order_id=order_id, reason="customer asked", failure_reason="cancelled_by_staff")
        Order.objects.filter(pk=order_id).update(updated_at=_ago(age))
        return order_id

    def incident(self, age: float, **kwargs) -> int:
        incident_id = self.make_incident(**kwargs)
        Incident.objects.filter(pk=incident_id).update(detected_at=_ago(age))
        return incident_id


@pytest.fixture
def waiting(shop, make_incident, limits) -> Waiting:
    return Waiting(shop, make_incident)


def _attention_section(page: str) -> str:
    return page.split('id="needs-attention"', 1)[1].split("</section>", 1)[0]


def test_limits_come_from_the_setting_and_bad_ones_are_refused(settings):
    settings.BACKOFFICE_SLA = {}
    assert sla_limits()["order_cancelling"].attention_after == 15 * MIN  # the default
    settings.BACKOFFICE_SLA = {"order_cancelling": {"attention_after": 60, "escalate_after": 120}}
    assert (sla_limits()["order_cancelling"].attention_after, sla_limits()["order_cancelling"].notify) == (
        60,
        "oncall",
    )
    for bad, says in (
        ({"refund_pendin": {}}, "unknown states"),
        ({"refund_pending": {"atention_after": 1}}, "unknown fields"),
        ({"refund_pending": {"attention_after": "soon"}}, "seconds"),
        (
            {"order_cancelling": {"attention_after": 600, "escalate_after": 60}},
            "attention_after <= escalate_after",
        ),
        ({"refund_pending": {"notify": "everyone"}}, "notify"),
        # The refund SLA is one setting: another attention limit for refunds is refused.
        ({"refund_pending": {"attention_after": 600}}, "differs from REFUND_PENDING_SLA_SECONDS"),
    ):
        settings.BACKOFFICE_SLA = bad
        with pytest.raises(ValueError, match=says):
            sla_limits()


def test_a_refunds_limits_follow_the_one_refund_sla(settings):
    settings.BACKOFFICE_SLA = {}
    assert settings.RECONCILIATION["REFUND_PENDING_SLA_SECONDS"] == 30 * MIN  # the default
    refund = sla_limits()["refund_pending"]
    assert (refund.attention_after, refund.escalate_after, refund.notify) == (30 * MIN, 60 * MIN, "finance")
    settings.RECONCILIATION = {**settings.RECONCILIATION, "REFUND_PENDING_SLA_SECONDS": 10 * MIN}
    refund = sla_limits()["refund_pending"]
    assert (refund.attention_after, refund.escalate_after) == (10 * MIN, 20 * MIN)  # escalation: twice it
    # Restating the same limit is accepted; the escalation stays BACKOFFICE_SLA's to set.
    settings.BACKOFFICE_SLA = {"refund_pending": {"attention_after": 600, "escalate_after": 7200}}
    refund = sla_limits()["refund_pending"]
    assert (refund.attention_after, refund.escalate_after) == (10 * MIN, 120 * MIN)
    settings.RECONCILIATION = {**settings.RECONCILIATION, "REFUND_PENDING_SLA_SECONDS": 3 * 3600}
    with pytest.raises(ValueError, match="differs from REFUND_PENDING_SLA_SECONDS"):
        sla_limits()
    settings.BACKOFFICE_SLA = {"refund_pending": {"escalate_after": 3600}}  # before the SLA itself
    with pytest.raises(ValueError, match="attention_after <= escalate_after"):
        sla_limits()


@pytest.mark.parametrize("sla_minutes", [10, 25])
def test_the_refund_pending_detector_and_the_overview_agree_on_the_one_setting(
    support, waiting, settings, sla_minutes
):
    """One setting moves both: with the SLA at 10 min both call the 12- and 20-min-old
    refunds late; at 25 min neither is. The 5-min-old one is late for neither."""
    settings.RECONCILIATION = {**settings.RECONCILIATION, "REFUND_PENDING_SLA_SECONDS": sla_minutes * MIN}
    settings.BACKOFFICE_SLA = {}
    refunds = {age: waiting.refund_pending(age=age * MIN) for age in (5, 12, 20)}

    reconcile_run(detectors=[detector_get("refund_pending")], sync=False)
    with_incident = {
        i.details["refund_id"] for i in Incident.objects.filter(type="refund_pending", state="open")
    }
    section = _attention_section(support.get(reverse("backoffice:overview")).content.decode())
    on_the_overview = {int(n) for n in re.findall(r">Refund #(\d+)<", section)}

    late = {refunds[age] for age in (5, 12, 20) if age > sla_minutes}
    assert late == ({refunds[12], refunds[20]} if sla_minutes == 10 else set())
    assert with_incident == on_the_overview == late
    assert f"Refund pending at the provider: <strong>{len(late)}</strong> past {sla_minutes} min" in section


def test_the_overview_lists_what_is_past_its_limit_latest_first(support, waiting):
    # How late each is past its own attention limit:
    payment = waiting.payment_unknown(age=25 * MIN)  # 20 min late
    refund = waiting.refund_pending(age=20 * MIN)  # 5 min late
    order = waiting.order_cancelling(age=75 * MIN)  # 60 min late (and past its escalation)
    fresh_refund = waiting.refund_pending(age=2 * MIN)  # within its limit
    incident = waiting.incident(age=50 * MIN)  # unacknowledged: 35 min late; unresolved: within

    page = support.get(reverse("backoffice:overview")).content.decode()
    section = _attention_section(page)

    subjects = re.findall(r">((?:Payment|Refund|Order|Incident) #\d+)<", section)
    assert subjects == [
        f"Order #{order}",
        f"Incident #{incident}",
        f"Payment #{payment}",
        f"Refund #{refund}",
    ]
    assert f"Refund #{fresh_refund}" not in section
    assert "Refund pending at the provider: <strong>1</strong> past 15 min" in section
    assert "Incident not resolved: <strong>0</strong>" in section
    assert "due to oncall" in section  # the order waited past its escalation limit, not e-mailed yet
    assert "e-mail to finance in 5 min" in section  # the unknown payment: 30 - 25
    assert "e-mail to finance in 40 min" in section  # the refund: 60 - 20


def test_the_waiting_page_lists_every_state_with_its_age(support, waiting):
    payment = waiting.payment_unknown(age=2 * MIN)
    incident = waiting.incident(age=3 * 3600)
    page = support.get(reverse("backoffice:waiting")).content.decode()

    unknown = page.split('id="payment_unknown"', 1)[1].split("</section>", 1)[0]
    assert f"Payment #{payment}" in unknown and "<td>2 min</td>" in unknown and "within limits" in unknown
    unresolved = page.split('id="incident_unresolved"', 1)[1].split("</section>", 1)[0]
    assert f"Incident #{incident}" in unresolved and "<td>3.0 h</td>" in unresolved
    unacknowledged = page.split('id="incident_unacknowledged"', 1)[1].split("</section>", 1)[0]
    assert "escalation due" in unacknowledged
    assert "None." in page.split('id="order_cancelling"', 1)[1].split("</section>", 1)[0]


def test_each_escalation_is_emailed_once_to_its_group_and_recorded(waiting):
    payment = waiting.payment_unknown(age=31 * MIN)  # finance
    order = waiting.order_cancelling(age=61 * MIN)  # on-call
    waiting.refund_pending(age=59 * MIN)  # not yet

    assert sla.sla_escalate() == {"sent": 2, "failed": 0}
    assert sorted(m.to[0] for m in mail.outbox) == ["finance@shop.example", "oncall@shop.example"]
    finance = next(m for m in mail.outbox if m.to == ["finance@shop.example"])
    assert f"Payment #{payment}" in finance.body and "payment outcome unknown for 31 min" in finance.body
    rows = {(r.state, r.subject_id): r for r in SlaEscalation.objects.all()}
    assert set(rows) == {("payment_unknown", payment), ("order_cancelling", order)}
    assert all(r.status == "sent" and r.sent_at for r in rows.values())

    # The next run sends nothing again; a newly late item goes out alone.
    assert sla.sla_escalate() == {"sent": 0, "failed": 0}
    incident = waiting.incident(age=2 * 3600)
    assert sla.sla_escalate() == {"sent": 1, "failed": 0}
    assert len(mail.outbox) == 3 and f"Incident #{incident}" in mail.outbox[-1].body
    assert f"Payment #{payment}" not in mail.outbox[-1].body


def test_a_failed_send_is_recorded_and_sent_by_the_next_run(waiting, settings):
    payment = waiting.payment_unknown(age=40 * MIN)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1  # nothing listens

    assert sla.sla_escalate() == {"sent": 0, "failed": 1}
    row = SlaEscalation.objects.get(subject_id=payment)
    assert row.status == "failed" and "Error" in row.error and not mail.outbox

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert sla.sla_escalate() == {"sent": 1, "failed": 0}
    row.refresh_from_db()
    assert row.status == "sent" and row.error == "" and len(mail.outbox) == 1


def test_without_configured_addresses_the_role_is_emailed(waiting, settings, finance_user):
    settings.BACKOFFICE_SLA_RECIPIENTS = {"finance": [], "oncall": []}
    finance_user.email = "fay@shop.example"
    finance_user.save()
    waiting.payment_unknown(age=31 * MIN)  # finance
    order = waiting.order_cancelling(age=61 * MIN)  # on-call: no support user has an address

    assert sla.sla_escalate() == {"sent": 1, "failed": 1}
    assert [m.to for m in mail.outbox] == [["fay@shop.example"]]
    assert "nobody to e-mail" in SlaEscalation.objects.get(subject_id=order, state="order_cancelling").error


def test_the_overview_says_an_item_was_escalated(support, waiting):
    payment = waiting.payment_unknown(age=31 * MIN)
    sla.sla_escalate()
    section = _attention_section(support.get(reverse("backoffice:overview")).content.decode())
    assert f"Payment #{payment}" in section and "e-mailed to finance: sent" in section


def test_the_escalation_runs_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["backoffice-sla-escalate"]
    assert entry["task"] == "backoffice.sla_escalate"
    from config.celery_app import app

    assert "backoffice.sla_escalate" in app.tasks


@pytest.mark.parametrize("url", [reverse("backoffice:overview"), reverse("backoffice:waiting")])
def test_the_sla_lists_run_constant_sql(support, waiting, settings, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.PSP_BASE_URL = "http://127.0.0.1:9"

    def grow(count):
        for _ in range(count):
            waiting.incident(age=2 * 3600)
            waiting.payment_unknown(age=10 * MIN)
        sla.sla_escalate()

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert support.get(url).status_code == 200
        return len(ctx.captured_queries)

    grow(2)
    support.get(url)  # warm caches
    small = queries()
    grow(4)
    assert queries() == small


def test_items_escalated_before_never_hide_the_newly_late(waiting, monkeypatch, settings):
    settings.BACKOFFICE_BASE_URL = "https://ops.shop.example/"
    monkeypatch.setattr(sla, "ESCALATION_BATCH", 2)
    old = [waiting.payment_unknown(age=(50 - n) * MIN) for n in range(3)]
    assert sla.sla_escalate() == {"sent": 2, "failed": 0}  # the two oldest
    assert sla.sla_escalate() == {"sent": 1, "failed": 0}  # then the third, not the first two again
    new = waiting.payment_unknown(age=31 * MIN)
    assert sla.sla_escalate() == {"sent": 1, "failed": 0}
    assert sorted(SlaEscalation.objects.values_list("subject_id", flat=True)) == sorted([*old, new])
    assert "https://ops.shop.example/backoffice/orders/" in mail.outbox[-1].body


def test_a_conflicting_pair_stops_a_process_at_startup():
    """Set in the environment, the pair that disagrees stops `manage.py check` (every
    process: web, workers, beat) with the error that says which setting to keep."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "REFUND_PENDING_SLA_SECONDS": "900",
        "BACKOFFICE_SLA": '{"refund_pending": {"attention_after": 600}}',
    }
    root = Path(__file__).resolve().parents[2]
    refused = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr
    assert "differs from REFUND_PENDING_SLA_SECONDS (900)" in refused.stderr
    env["BACKOFFICE_SLA"] = '{"refund_pending": {"attention_after": 900}}'  # the same limit, restated
    agreed = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert agreed.returncode == 0, agreed.stderr


@pytest.mark.parametrize("limit", [1, 2, 50])
def test_the_batched_reads_return_what_each_states_source_returns(waiting, limit):
    """sla.BATCHES read each app's states in one statement (compiled once per process):
    the same items, in the same order, as each state's own source (SOURCES), past any
    limit and with none."""
    for age in (20 * MIN, 3 * MIN, 300 * MIN, 16 * MIN):
        waiting.payment_unknown(age=age)
        waiting.refund_pending(age=age)
        waiting.incident(age=age)
        waiting.order_cancelling(age=age)
    acked = waiting.incident(age=30 * MIN)
    Incident.objects.filter(pk=acked).update(state="acknowledged")
    now = timezone.now()
    slas = list(sla_limits().values())
    for past in (lambda s: None, lambda s: s.attention_after, lambda s: 17 * MIN):
        batched = sla._rows_many(slas, now=now, past=past, limit=limit)
        one_by_one = [sla._rows(s, now=now, past=past(s), limit=limit, counted=False) for s in slas]
        assert batched == one_by_one
        assert {k for keys, _ in sla.BATCHES for k in keys} == {s.key for s in slas}
    # Every item is there when nothing limits them, the acknowledged one only as unresolved.
    everything = {
        lst.sla.key: lst.items for lst in sla._rows_many(slas, now=now, past=lambda s: None, limit=50)
    }
    assert [
        len(everything[k])
        for k in ("payment_unknown", "refund_pending", "incident_unacknowledged", "order_cancelling")
    ] == [4, 4, 4, 4]
    assert len(everything["incident_unresolved"]) == 5


def test_an_items_escalation_is_matched_by_its_state_and_subject_together(db):
    """_mark_escalated reads the escalations of the items' (state, subject) pairs: an
    escalation of payment #7 does not mark refund #7, and each item gets its own
    escalation's status."""
    limits = sla_limits()
    now = timezone.now()

    def item(key: str, subject: int) -> sla.Waiting:
        return sla.Waiting(limits[key], subject, None, None, "", now, 0.0)

    for key, subject, status in (("payment_unknown", 7, "sent"), ("refund_pending", 8, "failed")):
        SlaEscalation.objects.create(
            state=key, subject_id=subject, group="finance", age_seconds=60, status=status
        )
    items = [
        item("payment_unknown", 7),
        item("refund_pending", 7),
        item("payment_unknown", 8),
        item("refund_pending", 8),
    ]
    marked = sla._mark_escalated(items)
    assert [(i.sla.key, i.subject_id, i.escalated) for i in marked] == [
        ("payment_unknown", 7, "sent"),
        ("refund_pending", 7, ""),
        ("payment_unknown", 8, ""),
        ("refund_pending", 8, "failed"),
    ]
    assert sla._mark_escalated([]) == []
