"""The long lists' rows are written in Python (backoffice/rows.py, for speed at 10M
orders), not by the template engine: every text that can come from outside — a
provider's error text in a run's last_error, a customer's e-mail, a detail — must
still be escaped, so a hostile value shows as text and never runs as markup."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

from django.utils import timezone

from backoffice import rows

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _assert_inert(html: str) -> None:
    assert "<script" not in html and "<img" not in html, html
    assert "&lt;script&gt;" in html


def test_every_list_escapes_what_comes_from_outside():
    now = timezone.now()
    _assert_inert(
        rows.saga_rows(
            [
                SimpleNamespace(
                    id=7, subject_id=EVIL, saga_type=EVIL, status=EVIL, direction="forward", step=EVIL,
                    attempts=3, last_error=EVIL, next_attempt_at=None, created_at=now - timedelta(minutes=5),
                )
            ],
            selectable=True,
        )
    )  # fmt: skip
    _assert_inert(
        rows.incident_rows(
            [
                SimpleNamespace(
                    id=3, order_id=12, type=EVIL, severity=EVIL, state=EVIL, charge_id=EVIL,
                    amount_at_risk=Decimal("1.00"), currency=EVIL, detected_at=now, assigned_to_username=EVIL,
                )
            ]
        )
    )  # fmt: skip
    _assert_inert(
        rows.search_rows(
            [
                SimpleNamespace(
                    order_id=12, status=EVIL, payment_status=EVIL, customer_email=EVIL, total=Decimal("9.50"),
                    currency=EVIL, charge_id=EVIL, created_at=now,
                )
            ]
        )
    )  # fmt: skip
    # linked to an order / an incident (whose link takes its id: an int)
    for key, subject_id in (("order_cancelling", EVIL), ("incident_unresolved", 34)):
        item = SimpleNamespace(
            subject_id=subject_id, detail=EVIL, order_id=12, amount=Decimal("5.00"),
            currency=EVIL, level="escalate", escalated=EVIL, since=now - timedelta(hours=2),
            sla=SimpleNamespace(key=key, notify=EVIL, label=EVIL), late_text=EVIL, escalate_in=EVIL,
        )  # fmt: skip
        _assert_inert(rows.waiting_rows([item]))
        _assert_inert(rows.attention_rows([item]))


def test_a_waiting_rows_subject_and_link_are_the_items_own():
    """waiting_rows / attention_rows read each state's noun and the links' prefixes once
    per table: the cell says what Waiting.subject and Waiting.href say, for every state."""
    from backoffice.conf import sla_limits
    from backoffice.sla import Waiting

    now = timezone.now()
    for sla in sla_limits().values():
        for order_id in (12, None):
            item = Waiting(sla, 34, order_id, None, "", now, 0.0)
            cell = f'<a href="{item.href}">{item.subject}</a>' if item.href else item.subject
            assert f"<td>{cell}</td>" in rows.waiting_rows([item])
            assert f"<td>{cell}</td>" in rows.attention_rows([item])


def test_the_rows_escape_exactly_as_django_does():
    from django.utils.html import escape as django_escape
    from django.utils.translation import gettext_lazy

    for value in (EVIL, "a'b\"c&d", Decimal("12.50"), 7, None, "", gettext_lazy("Order")):
        assert rows.escape(value) == django_escape(value)


def test_the_finance_days_rows_are_what_the_template_made():
    """backoffice/finance.html drew these rows with the template engine (a for loop over
    finance_days); the Python rows give the same HTML (a newline apart) and escape."""
    from datetime import date

    from django.template import Context, Template

    template = Template(
        '{% for d in days %}<tr><td>{{ d.day|date:"Y-m-d" }}</td><td>{{ d.currency|default:"—" }}</td>'
        '<td class="num">{{ d.orders }}</td><td class="num">{{ d.revenue }}</td><td class="num">{{ d.refunds }}</td>'
        '<td class="num">{{ d.refunded }}</td><td class="num">{{ d.incidents }}</td>'
        '<td class="num">{{ d.per_1000|default:"—" }}</td><td class="num">{{ d.money_at_risk }}</td>'
        '<td class="num">{{ d.resolved }}</td></tr>{% endfor %}'
    )
    days = [
        {
            "day": date(2026, 11, 1), "currency": "EUR", "orders": 12345, "revenue": Decimal("98765.40"),
            "refunds": 3, "refunded": Decimal("0.00"), "incidents": 7, "per_1000": "0.57",
            "money_at_risk": Decimal("-12.05"), "resolved": 2,
        },
        {
            "day": date(2026, 11, 2), "currency": "", "orders": 0, "revenue": Decimal("0"), "refunds": 0,
            "refunded": Decimal("0"), "incidents": 1, "per_1000": None, "money_at_risk": Decimal("0"),
            "resolved": 0,
        },
    ]  # fmt: skip
    made = template.render(Context({"days": days}))
    assert str(rows.finance_day_rows(days)).replace("</tr>\n", "</tr>") == made
    _assert_inert(rows.finance_day_rows([{**days[0], "currency": EVIL}]))


def _words(html: str) -> str:
    """The HTML with every run of white space as one space (what a browser shows)."""
    return " ".join(html.split())


def test_the_case_files_story_and_other_orders_are_what_the_template_made():
    """backoffice/order_case.html drew the story and the customer's other orders with the
    template engine; the Python lines give the same HTML (a newline apart) and escape
    every text: a provider's error in a detail, a person's name, an e-mail's order."""
    from django.template import Context, Template

    from backoffice.selectors import Event

    now = timezone.now()
    story = Template(
        "{% load backoffice_rows %}{% for e in events %}\n"
        '    <li class="{{ e.tone }}"><div class="when">{{ e.at|stamp:"ms" }} UTC</div>\n'
        '      <span class="kind">{{ e.kind }}</span><strong>{{ e.title }}</strong>{% if e.by %} <span class="muted">by {{ e.by }}</span>{% endif %}\n'
        '      {% if e.detail %}<div class="err">{{ e.detail }}</div>{% endif %}</li>{% endfor %}'
    )  # fmt: skip
    events = [
        Event(now, "provider", "Provider charge → failed (ch_1)", "key k; HTTP 500; boom", tone="bad"),
        Event(now + timedelta(seconds=1), "staff", "Note", "", by="ann"),
        Event(now + timedelta(seconds=2), "order", "Order ∅ → pending (place)"),
    ]
    assert _words(rows.timeline_rows(events)) == _words(story.render(Context({"events": events})))
    _assert_inert(rows.timeline_rows([Event(now, EVIL, EVIL, EVIL, by=EVIL, tone=EVIL)]))

    others = Template(
        '{% load backoffice_rows %}{% for o in other_orders %}<p><a href="{{ o.order_id|order_href }}">Order {{ o.order_id }}</a> <span class="badge {{ o.status }}">{{ o.status }}</span> {{ o.total }} {{ o.currency }} <span class="muted">{{ o.created_at|date:"Y-m-d H:i" }}</span></p>\n'
        "    {% endfor %}"
    )  # fmt: skip
    orders = [
        SimpleNamespace(
            order_id=12, status="confirmed", total=Decimal("19.90"), currency="EUR", created_at=now
        ),
        SimpleNamespace(order_id=9, status="cancelled", total=Decimal("5"), currency="USD", created_at=now),
    ]
    assert _words(rows.order_lines(orders)) == _words(others.render(Context({"other_orders": orders})))
    _assert_inert(
        rows.order_lines(
            [SimpleNamespace(order_id=3, status=EVIL, total=EVIL, currency=EVIL, created_at=now)]
        )
    )
