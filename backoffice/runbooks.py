"""Incident pages explain themselves: per incident type, what the detector saw in plain
words, what to check, and what each fix does (docs/operations.md links here by type).

Every detector of reconciliation/detectors has a runbook (tests/backoffice/
test_runbooks.py fails when one is added without). `saw` reads only the incident's own
fields and the `details` its detector wrote; a missing key reads as "?", never a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.money import format_amount, from_minor_units

from .operations.incidents import remediation_label


@dataclass(frozen=True)
class Runbook:
    check: tuple[str, ...]  # what a person looks at first
    fixes: tuple[tuple[str, str], ...]  # (remediation action or "resolve"/"dismiss", what it does)
    saw: Callable[[Any, Mapping[str, Any]], str]  # (incident, details) -> plain words

    def fixes_labelled(self) -> list[tuple[str, str]]:
        return [(_fix_label(action), text) for action, text in self.fixes]


def _fix_label(action: str) -> str:
    return {"resolve": "Resolve", "dismiss": "Dismiss as false positive"}.get(
        action, remediation_label(action)
    )


def _minor(details: Mapping[str, Any], key: str, currency: str) -> str:
    value = details.get(key)
    if value is None or not currency:
        return "?"
    try:
        return f"{format_amount(from_minor_units(int(value), currency), currency)} {currency}"
    except (TypeError, ValueError, KeyError):
        return "?"


def _g(details: Mapping[str, Any], key: str) -> Any:
    value = details.get(key)
    return "?" if value in (None, "") else value


def _money(incident: Any) -> str:
    return f"{incident.amount_at_risk} {incident.currency}".strip() if incident.currency else "no money"


RESOLVE = ("resolve", "The detector re-checks the condition now; if it still holds the incident reopens.")
DISMISS = ("dismiss", "Closes it as a false positive: nothing else changes, and finance does not count it.")

RUNBOOKS: dict[str, Runbook] = {
    "charge_without_order": Runbook(
        check=(
            "Open the order the charge's reference names (if any): is it cancelled, failed or missing?",
            "Did the customer pay twice (a second checkout)? Search the customer's e-mail.",
            "Is the charge already partly refunded at the provider (the details' refunded amount)?",
        ),
        fixes=(
            ("refund_charge", "Refunds the whole charge at the provider (the customer gets the money back)."),
            (
                "confirm_order",
                "Attaches the charge to its order and confirms the order (stock leaves the shelf).",
            ),
            RESOLVE,
            DISMISS,
        ),
        saw=lambda i, d: (
            f"The provider captured charge {i.charge_id or '?'} ({_minor(d, 'amount_minor', i.currency)}, "
            f"reference {_g(d, 'reference')}) but no confirmed order owns it: {_g(d, 'reason')}. "
            f"The referenced order is {_g(d, 'order_status')}, its payment {_g(d, 'payment_status')}."
        ),
    ),
    "duplicate_charge": Runbook(
        check=(
            "Compare the captures listed in the details: same amount, minutes apart, same reference?",
            "Which one does Concord's payment record (that one is kept)?",
            "Has the customer already complained or been refunded by hand at the provider?",
        ),
        fixes=(
            ("refund_extra_charges", "Refunds every capture except the kept one, each once at the provider."),
            RESOLVE,
            DISMISS,
        ),
        saw=lambda i, d: (
            f"Order {i.order_id or _g(d, 'reference')} was captured {len(d.get('captures') or []) or '?'} times "
            f"at the provider. Concord keeps {_g(d, 'kept_charge_id')} "
            f"({'the one payments recorded' if d.get('kept_because') == 'recorded_by_payments' else 'the earliest'}); "
            f"extra: {', '.join(d.get('extra_charge_ids') or []) or '?'} — {_money(i)} taken twice."
        ),
    ),
    "amount_mismatch": Runbook(
        check=(
            "Compare the order's total and currency with what the provider captured (details).",
            "Was the order edited after the charge, or the price changed mid-checkout?",
        ),
        fixes=(RESOLVE, DISMISS),
        saw=lambda i, d: (
            f"The provider captured {_g(d, 'charged')} {_g(d, 'charged_currency')} for order "
            f"{i.order_id or _g(d, 'reference')}, whose total is {_g(d, 'order_total')} {_g(d, 'order_currency')}."
        ),
    ),
    "order_confirmed_without_capture": Runbook(
        check=(
            "Open the case file: the payment's state and every provider attempt of the order.",
            "Look the charge up at the provider: was it captured under another id, or never?",
        ),
        fixes=(RESOLVE, DISMISS),
        saw=lambda i, d: (
            f"Order {i.order_id or _g(d, 'reference')} is confirmed (goods may ship) but the provider has no "
            f"capture for it. The payment is {_g(d, 'payment_status')}, charge id on record "
            f"{_g(d, 'recorded_charge_id')}."
        ),
    ),
    "refund_missing": Runbook(
        check=(
            "Open the case file: why was the order cancelled, and did a refund start (pending, failed)?",
            "Is a refund still pending at the provider (give it a few minutes before refunding again)?",
        ),
        fixes=(
            ("refund_payment", "Refunds what is still captured at the provider, once, with a fixed key."),
            RESOLVE,
            DISMISS,
        ),
        saw=lambda i, d: (
            f"Order {i.order_id or _g(d, 'reference')} is {_g(d, 'order_status')} "
            f"({_g(d, 'order_failure_reason')}) but its charge was not refunded at the provider: "
            f"{_money(i)} still with us (payment {_g(d, 'payment_status')})."
        ),
    ),
    "refund_pending": Runbook(
        check=(
            "Open the case file: the refund's provider attempts — did the provider answer at all (timeouts, 5xx)?",
            "Is the provider answering now (the overview's Systems box)? Is a worker taking tasks?",
            "Look the refund up at the provider's dashboard by its key before sending anything again.",
        ),
        fixes=(
            RESOLVE,
            DISMISS,
        ),
        saw=lambda i, d: (
            f"Refund #{_g(d, 'refund_id')} of order {i.order_id or '?'} ({_money(i)}) was asked for at "
            f"{_g(d, 'asked_at')} and is still pending after {_g(d, 'pending_seconds')} s: the customer waits "
            "for the money. The case file offers to send it to the provider again (same key: at most once)."
        ),
    ),
    "refund_unrecorded": Runbook(
        check=(
            "Who refunded at the provider directly (its dashboard)? The refund is real money already back.",
            "Open the case file: does a pending or failed refund of the same amount exist?",
        ),
        fixes=(RESOLVE, DISMISS),
        saw=lambda i, d: (
            f"The provider shows refund {_g(d, 'provider_refund_id')} on order {i.order_id or _g(d, 'reference')} "
            f"that Concord's payments never recorded ({_money(i)})."
        ),
    ),
    "clearing_mismatch": Runbook(
        check=(
            "Compare the ledger's provider_clearing with the provider's net (details) at the cutoff.",
            "Look for the other incidents of the day (unrecorded refunds, charges without order): they explain most gaps.",
        ),
        fixes=(RESOLVE, DISMISS),
        saw=lambda i, d: (
            f"At {_g(d, 'cutoff')} the ledger's provider clearing account held {_g(d, 'ledger_provider_clearing')} "
            f"{i.currency} but the provider's net was {_g(d, 'provider_net')}: a difference of {_g(d, 'difference')}."
        ),
    ),
    "ledger_imbalance": Runbook(
        check=(
            "Open the ledger transaction named in the details: which entry is missing or wrong?",
            "Nothing should post unbalanced: this is a bug to report to engineering, with the transaction id.",
        ),
        fixes=(RESOLVE, DISMISS),
        saw=lambda i, d: (
            f"Ledger transaction {d['ledger_transaction_id']} does not sum to zero."
            if "ledger_transaction_id" in d
            else f"The ledger's entries in {i.currency or '?'} sum to {_g(d, 'sum_of_entries')}, not zero."
        ),
    ),
    "stock_drift": Runbook(
        check=(
            "Open the SKU's stock in the admin: on hand, held, and the reservations behind them.",
            "Is the order behind a held reservation cancelled or long gone?",
        ),
        fixes=(
            ("release_stock", "Releases the reservations no live order needs; the stock is available again."),
            RESOLVE,
            DISMISS,
        ),
        saw=lambda i, d: (
            f"Stock of {i.sku or '?'} disagrees: {_g(d, 'kind')}"
            + (f", expected {d['expected']} but found {d['actual']}" if "expected" in d else "")
            + (f", {d['quantity']} held for an order that is {d['order_status']}" if "quantity" in d else "")
            + "."
        ),
    ),
    "stuck_saga": Runbook(
        check=(
            "Open the case file: which step failed, how often, with what error?",
            "Is the cause gone (provider answering again, stock back)? The overview's Systems box says.",
        ),
        fixes=(
            ("retry_saga", "Runs the failed step again (same idempotency key: no double charge)."),
            ("compensate_saga", "Undoes the steps done so far (refund, stock back) and cancels the order."),
            RESOLVE,
            DISMISS,
        ),
        saw=lambda i, d: (
            f"The {_g(d, 'saga_type')} saga #{i.saga_run_id or '?'} is {_g(d, 'status')} at step "
            f"{_g(d, 'step')} ({_g(d, 'direction')}) after {_g(d, 'attempts')} attempt(s); its SLA was "
            f"{_g(d, 'sla_at')}. Last error: {_g(d, 'last_error')}"
        ),
    ),
}


@dataclass(frozen=True)
class Explained:
    description: str  # the detector's own one line
    saw: str  # what it saw, in plain words
    check: tuple[str, ...]
    fixes: list[tuple[str, str]]


def incident_explained(incident: Any, *, description: str) -> Explained | None:
    """The incident page's explanation; None for a type without a runbook."""
    book = RUNBOOKS.get(incident.type)
    if book is None:
        return None
    details = incident.details or {}
    try:
        saw = book.saw(incident, details)
    except Exception:  # noqa: BLE001 - details written by an older detector: say so, never fail the page
        saw = "The detector's details do not have the expected shape; see Details below."
    return Explained(description=description, saw=saw, check=book.check, fixes=book.fixes_labelled())
