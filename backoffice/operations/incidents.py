"""The actions of an incident's page: reconciliation's services, one each."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils.html import format_html

from core.errors import ConcordError
from reconciliation.choices import IncidentState, RemediationState
from reconciliation.services import (
    RemediationPreview,
    incident_acknowledge,
    incident_add_note,
    incident_assign,
    incident_dismiss,
    incident_resolve,
    remediation_apply,
    remediation_preview,
)

from ..models import ApprovalKind
from ..roles import support_person_get
from .base import APPROVED_AMOUNT, IncidentCase, Input, Offer, Operation, Outcome, Params, Preview

# The Django permissions reconciliation checks (granted to support in backoffice/roles.py).
CHANGE_INCIDENT = "reconciliation.change_incident"
REMEDIATE = "reconciliation.remediate_incident"
REMEDIATION_LABELS = {
    "refund_extra_charges": "Refund the extra charges",
    "refund_charge": "Refund the charge",
    "confirm_order": "Confirm the order with this charge",
    "refund_payment": "Refund the payment",
    "release_stock": "Release the held stock",
    "retry_saga": "Retry the saga",
    "compensate_saga": "Compensate the saga",
}


def remediation_label(action: str) -> str:
    return REMEDIATION_LABELS.get(action, action)


_LIVE = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED)


def _simple(op: str, label: str, service, *, states: tuple[str, ...], effects: list[str] | None = None,
            reason_default: str = "", **declared: Any) -> Operation:  # fmt: skip
    """An incident action that calls one reconciliation service with (incident, person, reason)."""

    def offers(case: IncidentCase, user: Any) -> list[Offer]:
        return [Offer(operation, label)] if case.incident.state in states else []

    def run(case: IncidentCase, params: Params, by: Any, reason: str, key: str) -> Outcome:
        result = service(case.incident.id, by, reason)
        if getattr(result, "reopened", False):
            return Outcome(
                "Resolved, but the re-check found the condition still there: it is open again.",
                level="warning",
                audit="reopened by the re-check",
            )
        return Outcome(f"{label}: done.")

    preview = declared.pop("preview", None)
    if effects is not None:

        def preview(case: IncidentCase, params: Params) -> Preview:
            return Preview(effects=list(effects), params={})

    operation: Operation = Operation(
        name=f"incident_{op}",
        op=op,
        page="incident",
        label=label,
        permission=CHANGE_INCIDENT,
        offers=offers,
        preview=preview,
        run=run,
        reason_default=reason_default,
        # The re-check of a resolution refreshes the provider's records over HTTP first.
        calls_provider=op == "resolve",
        **declared,
    )
    return operation


ASSIGN = _simple(
    "assign_me",
    "Assign to me",
    lambda incident_id, by, reason: incident_assign(incident_id=incident_id, assignee_id=by.pk, by=by),
    states=_LIVE,
    reason_default="Taking this one.",
)


def _assignee(params: Params) -> Any:
    """The person chosen in the form: a support person (backoffice.roles), else a
    clear refusal — a forged id, a finance-only or inactive account, or an API client
    cannot be given an incident."""
    raw = str(params.get("assignee_id", "")).strip()
    try:
        assignee_id = int(raw)
    except ValueError:
        raise ConcordError("Choose the support person to assign.", code="assignee_invalid") from None
    person = support_person_get(assignee_id)
    if person is None:
        raise ConcordError(
            f"User #{assignee_id} is not an active support person; incidents can only be assigned to support.",
            code="assignee_not_support",
            details={"assignee_id": assignee_id},
        )
    return person


def _assign_offers(case: IncidentCase, user: Any) -> list[Offer]:
    return [Offer(ASSIGN_TO, "Assign to")] if case.incident.state in _LIVE else []


def _assign_run(case: IncidentCase, params: Params, by: Any, reason: str, key: str) -> Outcome:
    person = _assignee(params)
    incident_assign(incident_id=case.incident.id, assignee_id=person.pk, by=by)
    who = person.get_username()
    return Outcome(f"Assigned to {who}.", audit=f"assigned to {who} (#{person.pk})")


# Assignment to any support person (the one above is the shortcut for oneself).
ASSIGN_TO = Operation(
    name="incident_assign",
    op="assign",
    page="incident",
    label="Assign to",
    permission=CHANGE_INCIDENT,
    offers=_assign_offers,
    run=_assign_run,
    inputs=(Input("assignee_id", "Support person"),),
    reason_default="Assigned.",
    check=_assignee,
)
ACKNOWLEDGE = _simple(
    "acknowledge",
    "Acknowledge",
    lambda incident_id, by, reason: incident_acknowledge(incident_id=incident_id, by=by, reason=reason),
    states=(IncidentState.OPEN,),
)
RESOLVE = _simple(
    "resolve",
    "Resolve",
    lambda incident_id, by, reason: incident_resolve(incident_id=incident_id, by=by, reason=reason),
    states=_LIVE,
    effects=["The detector re-checks the condition; if it persists the incident reopens at once."],
)
NOTE = _simple(
    "note",
    "Add note",
    lambda incident_id, by, reason: incident_add_note(incident_id=incident_id, by=by, text=reason),
    states=tuple(IncidentState.values),
)


def _dismiss_preview(case: IncidentCase, params: Params) -> Preview:
    """Issue 13, item 6: closing an incident with money at risk above the threshold is
    as consequential as a refund of it (nobody will look at that money again), so the
    same rule asks a second person from finance."""
    incident = case.incident
    effects: list[Any] = ["The incident closes as a false positive; nothing else changes."]
    if incident.amount_at_risk:
        effects.append(
            format_html(
                "Money at risk: <strong>{} {}</strong>; nobody will be asked to look at it again.",
                incident.amount_at_risk,
                incident.currency,
            )
        )
    money = incident.amount_at_risk or Decimal("0")
    return Preview(effects=effects, params={}, money=money, currency=incident.currency)


DISMISS = _simple(
    "dismiss",
    "Dismiss as false positive",
    lambda incident_id, by, reason: incident_dismiss(incident_id=incident_id, by=by, reason=reason),
    states=_LIVE,
    preview=_dismiss_preview,
    approval_kind=ApprovalKind.DISMISSAL,
    moves_money=False,
)


# --- remediations: reconciliation's fixes, previewed by its own dry run --------------------------


def _remediate_offers(case: IncidentCase, user: Any) -> list[Offer]:
    # Reconciliation says which remediations an incident's type has (first = suggested);
    # its dry run and its apply decide whether one is possible now (a closed incident
    # is refused there, with the attempt on record).
    return [
        Offer(REMEDIATE_OPERATION, remediation_label(action), {"action": action}, suggested=i == 0)
        for i, action in enumerate(case.remediations)
    ]


def _stock_text(preview: RemediationPreview) -> str:
    parts = []
    for change in preview.stock_changes:
        if change.get("on_hand_delta"):
            parts.append(f"{change['sku']} on hand {change['on_hand_delta']} (from {change['from']})")
        else:
            parts.append(
                f"{change['sku']} held {change['held_delta']}, available +{change['available_delta']}"
            )
    return "; ".join(parts) or "unchanged"


def _remediate_preview(case: IncidentCase, params: Params) -> Preview:
    dry_run = remediation_preview(incident_id=case.incident.id, action=params["action"])
    currency = dry_run.currency
    effects: list[Any] = [dry_run.description]
    if dry_run.moves_money:
        effects.append(
            format_html("Money: <strong>{} {}</strong> back to the customer.", dry_run.money_moved, currency)
        )
    else:
        effects.append("Money: none moves.")
    effects += [
        f"Refund of charge {r['charge_id']}: {r['amount']} {currency} (through {r['via']})"
        for r in dry_run.refunds
    ]
    effects.append(f"Stock: {_stock_text(dry_run)}.")
    effects.append(
        "The incident stays open until the next reconciliation pass re-checks it (or you resolve it)."
    )
    return Preview(
        effects=effects,
        params={"action": params["action"]},
        money=dry_run.money_moved if dry_run.moves_money else Decimal("0"),
        currency=currency,
        allowed=dry_run.allowed,
        why_not=dry_run.why_not,
    )


def _remediate_run(case: IncidentCase, params: Params, by: Any, reason: str, key: str) -> Outcome:
    """reconciliation.remediation_apply: once-only per (incident, action) there, so a
    repeat (a second approval, a resent form with a new key) returns the first result."""
    action = params["action"]
    label = remediation_label(action)
    # Run from an approval: the money approved binds (a refreshed, larger plan is refused).
    approved = params.get(APPROVED_AMOUNT)
    result = remediation_apply(
        incident_id=case.incident.id,
        by=by,
        reason=reason,
        action=action,
        max_amount=Decimal(approved) if approved is not None else None,
    )
    moved = f", {result.money_moved} {result.currency} moved" if result.money_moved else ""
    audit = f"{result.state}{moved}"
    if result.state == RemediationState.SUCCEEDED:
        summary = f"remediation {action} succeeded{moved}"
        if result.already_applied:
            return Outcome(f"{label}: it was applied before; nothing was done twice.", "info", summary, audit)
        return Outcome(
            f"{label}: succeeded{moved}. The next reconciliation pass re-checks the incident.",
            "success",
            summary,
            audit,
        )
    summary = f"remediation {action} is {result.state} ({result.error}); apply it again later"
    if result.state == RemediationState.UNKNOWN:
        return Outcome(
            f"{label}: the provider's answer is unknown ({result.error}); run it again later.",
            "warning",
            summary,
            audit,
        )
    return Outcome(f"{label}: {result.state} ({result.error}).", "error", summary, audit)


REMEDIATE_OPERATION = Operation(
    name="remediate",
    op="remediate",
    page="incident",
    label="Run remediation",
    permission=REMEDIATE,
    offers=_remediate_offers,
    preview=_remediate_preview,
    run=_remediate_run,
    target_params=("action",),
    approval_kind=ApprovalKind.REMEDIATION,
    calls_provider=True,
    unavailable="That remediation does not apply to this incident.",
)

INCIDENT_OPERATIONS: tuple[Operation, ...] = (
    ASSIGN,
    ASSIGN_TO,
    ACKNOWLEDGE,
    RESOLVE,
    DISMISS,
    NOTE,
    REMEDIATE_OPERATION,
)
