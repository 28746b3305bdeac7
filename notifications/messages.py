"""The words customers read. Plain, short, and an apology when we caused it."""

from __future__ import annotations

from dataclasses import dataclass

# The order's failure_reason, as a customer would say it.
CANCEL_REASONS = {
    "out_of_stock": "an item you ordered is out of stock",
    "payment_declined": "your card issuer declined the payment",
    "payment_failed": "we could not take the payment",
    "cancelled_by_client": "the shop cancelled it",
    "cancelled_by_staff": "our support team cancelled it",
}
APOLOGY = (
    "We are sorry. A problem in our systems affected this order (our reference: case {incident_id}); "
    "we found it and put it right."
)


@dataclass(frozen=True)
class Message:
    subject: str
    body: str


def _sign_off(body: str, incident_id: int | None) -> str:
    if incident_id is not None:
        body = APOLOGY.format(incident_id=incident_id) + "\n\n" + body
    return body + "\n\nThank you for your patience.\nConcord Shop"


def order_confirmed(*, order_id: int, total: str, currency: str) -> Message:
    return Message(
        f"Your order {order_id} is confirmed",
        _sign_off(
            f"Good news: we have your payment of {total} {currency} and your order {order_id} is on its way.",
            None,
        ),
    )


def order_cancelled(*, order_id: int, failure_reason: str | None, incident_id: int | None) -> Message:
    why = CANCEL_REASONS.get(failure_reason or "", "it could not be completed")
    subject = f"Your order {order_id} was cancelled"
    if incident_id is not None:
        subject = f"We are sorry: your order {order_id} was cancelled"
    body = f"Your order {order_id} was cancelled because {why}."
    if failure_reason not in ("out_of_stock", "payment_declined", "payment_failed"):
        body += " Any money you paid is refunded; you will get a separate message when it is on its way."
    return Message(subject, _sign_off(body, incident_id))


def refund_issued(
    *, order_id: int, amount: str, currency: str, full: bool, incident_id: int | None
) -> Message:
    subject = f"Refund of {amount} {currency} for order {order_id}"
    if incident_id is not None:
        subject = f"We are sorry: we refunded {amount} {currency} for order {order_id}"
    what = "the full amount" if full else "part of your payment"
    body = (
        f"We have refunded {amount} {currency} ({what}) for order {order_id} to the card you paid with. "
        "Depending on your bank it shows within 5 to 10 days."
    )
    return Message(subject, _sign_off(body, incident_id))
