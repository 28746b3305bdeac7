"""Remediations: one safe, audited fix per incident type, with a dry run first.

    remediation_actions(*, incident_id) -> list[str]
    remediation_preview(*, incident_id, action=None) -> RemediationPreview      # no effect
    remediation_apply(*, incident_id, by, reason, action=None, client=None) -> RemediationResult

(`client` is only read from: the provider's records after a refund.)

Actions per incident type (the first is the default, the one the auto policy runs):

- duplicate_charge: `refund_extra_charges` - refund every capture but the kept one;
- charge_without_order: `refund_charge` - give the orphan capture back; `confirm_order` -
  a pending order whose capture exists is confirmed with orders' one recipe,
  order_confirm_paid (payment captured with that charge, stock reserved and committed)
  when stock allows;
- refund_missing: `refund_payment` - refund the recorded capture through payments;
- stock_drift: `release_stock` - release units held for a finished or missing order;
- stuck_saga: `retry_saga`, `compensate_saga` - through the saga engine's services.

Every action is one call of the owning app's service; nothing is re-assembled here.
Refunds go through payments: a recorded capture by payment_refund_through_provider,
a charge no payment holds by charge_refund — both record a ProviderAttempt.

Idempotent: a Remediation row is unique per (incident, action). A second apply of a
succeeded remediation returns it with `already_applied=True` and does nothing. Every
provider call carries an idempotency key derived from that row, so applying again after
an unknown outcome (timeout) makes the provider replay, never refund twice.

Audited: the row records who (None = the auto policy), why, what moved (refunds,
stock), and a note is added to the incident. The incident itself is closed by the next
pass's re-check (or a person's resolve), never by the remediation claiming success.

Permissions: `reconciliation.remediate_incident` for every action, and
`reconciliation.refund_incident` as well for those that move money; saga actions also
need the saga engine's own permission (its services check). Superusers may do all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.audit import check_reason, is_person
from core.errors import ConcordError, Conflict
from core.sql import in_open_transaction
from inventory.choices import ReservationState
from inventory.selectors import products_by_sku, reservations_for_order
from inventory.services import stock_release
from orders.choices import CHECKOUT, FailureReason
from orders.selectors import order_confirm_paid_refusal, order_get
from orders.services import order_confirm_paid
from payments.choices import PaymentStatus
from payments.selectors import payment_for_order, payment_get, payments_reconciliation_values
from payments.services import Outcome, charge_refund, payment_refund_through_provider, provider_client
from reconciliation.amounts import minor_to_major
from reconciliation.choices import LIVE_STATES, IncidentType
from reconciliation.conf import remediation_policy
from reconciliation.detectors.base import Scope
from reconciliation.detectors.sql import fetch, net_captures_cte
from reconciliation.errors import ActionNotPermitted, IncidentClosed, IncidentNotFound
from reconciliation.models import Incident, IncidentNote, ProviderCharge, Remediation
from sagas.choices import RunStatus
from sagas.selectors import saga_run_for_subject, saga_run_get
from sagas.services import saga_compensate, saga_retry_now

from .provider_records import ProviderClientLike, _upsert_charges, _upsert_refunds

logger = logging.getLogger(__name__)

REMEDIATE = "reconciliation.remediate_incident"
REFUND = "reconciliation.refund_incident"

ACTIONS: dict[str, tuple[str, ...]] = {
    IncidentType.DUPLICATE_CHARGE: ("refund_extra_charges",),
    IncidentType.CHARGE_WITHOUT_ORDER: ("refund_charge", "confirm_order"),
    IncidentType.REFUND_MISSING: ("refund_payment",),
    IncidentType.STOCK_DRIFT: ("release_stock",),
    IncidentType.STUCK_SAGA: ("retry_saga", "compensate_saga"),
}
# The saga engine's manual operations need a person (sagas.services), so no policy runs them.
PERSON_ONLY = frozenset({IncidentType.STUCK_SAGA})
MONEY_MOVING = frozenset({"refund_extra_charges", "refund_charge", "refund_payment"})
_REFUNDABLE = (PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED)
_FINISHED_RUNS = (RunStatus.COMPLETED, RunStatus.COMPENSATED, RunStatus.RESOLVED)
# A remediation left `running` this long ago by a process that died may be taken over.
_STALE_RUNNING = timedelta(minutes=5)
_LIVE = [str(s) for s in LIVE_STATES]


class RemediationNotAllowed(Conflict):
    code = "remediation_not_allowed"


class RemediationInProgress(Conflict):
    code = "remediation_in_progress"


@dataclass(frozen=True)
class RemediationPreview:
    """A dry run: what `remediation_apply` would do now, and whether it may."""

    incident_id: int
    action: str
    allowed: bool
    why_not: str
    description: str
    moves_money: bool
    money_moved: Decimal
    currency: str
    refunds: list[dict[str, Any]] = field(default_factory=list)  # {"charge_id", "amount", "via"}
    stock_changes: list[dict[str, Any]] = field(default_factory=list)  # {"sku", "held_delta", ...}
    required_permissions: tuple[str, ...] = ()
    already_applied: bool = False


@dataclass(frozen=True)
class RemediationResult:
    remediation_id: int
    incident_id: int
    action: str
    state: str  # succeeded | failed | unknown (apply again later: same keys)
    money_moved: Decimal
    currency: str
    effects: dict[str, Any]
    already_applied: bool
    error: str = ""


def remediation_actions_by_type() -> dict[str, tuple[str, ...]]:
    """Each incident type's remediations (first = default), without reading incidents:
    what a bulk action's preview over thousands of incidents decides eligibility on."""
    return dict(ACTIONS)


def remediation_actions(*, incident_id: int) -> list[str]:
    """The actions an incident's type offers (first = default)."""
    return list(ACTIONS.get(_incident(incident_id).type, ()))


def remediation_preview(*, incident_id: int, action: str | None = None) -> RemediationPreview:
    """Dry run. Reads only (synced provider records, other apps' selectors); no effect."""
    incident = _incident(incident_id)
    action = _action_for(incident, action)
    done = Remediation.objects.filter(
        key=_key(incident.pk, action), state=Remediation.State.SUCCEEDED
    ).first()
    plan = _plan(incident, action)
    if done is not None:
        return RemediationPreview(
            incident_id=incident.pk, action=action, allowed=False, why_not="already applied",
            description=plan.description, moves_money=action in MONEY_MOVING, money_moved=Decimal("0"),
            currency=plan.currency, required_permissions=_permissions(action), already_applied=True,
        )  # fmt: skip
    return plan


def remediation_apply(
    *,
    incident_id: int,
    by: Any,
    reason: str,
    action: str | None = None,
    client: ProviderClientLike | None = None,
    max_amount: Decimal | None = None,
) -> RemediationResult:
    """Apply one remediation for a person. See the module docstring for the guarantees.

    `max_amount`: the money a second person approved (issue 13, item 3). The plan is
    made again when the remediation runs; if a later pass refreshed the incident and the
    plan now moves more, it is refused (remediation_not_allowed, why_not "plan_grew")
    and nothing moves: the larger plan must be approved again.

    Raises: permission_denied (403), reason_required, incident_not_found,
    incident_closed, remediation_not_allowed (409, with the preview's why_not),
    remediation_in_progress (409). Not inside a transaction: refunds call the provider.
    """
    incident = _incident(incident_id)
    action = _action_for(incident, action)
    _require_permissions(by, action)
    reason = check_reason(reason, required=True)
    return _apply(
        incident, action, by=by, reason=reason, automatic=False, client=client, max_amount=max_amount
    )


def remediations_auto_apply(*, client: ProviderClientLike | None = None) -> list[RemediationResult]:
    """The settings-driven policy (RECONCILIATION["AUTO_REMEDIATION"]), run by each pass
    after detection: the default action of every live incident whose type is enabled
    and whose money at risk is within the type's max_amount. Off by default; a
    remediation that failed or is in doubt is not retried automatically (a person looks)."""
    results = []
    for incident_type, actions in ACTIONS.items():
        policy = remediation_policy(incident_type)
        if not policy.enabled or incident_type in PERSON_ONLY:
            continue
        action = actions[0]
        candidates = (
            Incident.objects.filter(type=incident_type, state__in=_LIVE)
            .exclude(remediations__action=action)
            .order_by("id")
        )
        for incident in candidates:
            if action in MONEY_MOVING and not policy.allows(incident.amount_at_risk):
                continue
            try:
                results.append(
                    _apply(
                        incident,
                        action,
                        by=None,
                        automatic=True,
                        client=client,
                        reason=f"Auto-remediation policy for {incident_type} (up to {policy.max_amount}).",
                    )
                )
            except ConcordError as exc:
                logger.info("auto-remediation of incident %s skipped: %s", incident.pk, exc)
    return results


# --- internals ----------------------------------------------------------------------


def _incident(incident_id: int) -> Incident:
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        raise IncidentNotFound(f"Incident {incident_id} does not exist.")
    return incident


def _action_for(incident: Incident, action: str | None) -> str:
    offered = ACTIONS.get(incident.type, ())
    if action is None:
        if not offered:
            raise RemediationNotAllowed(
                f"{incident.type} incidents have no remediation; fix by hand and resolve.",
                details={"type": incident.type},
            )
        return offered[0]
    if action not in offered:
        raise RemediationNotAllowed(
            f"{action!r} is not a remediation of {incident.type} incidents.",
            details={"type": incident.type, "actions": list(offered)},
        )
    return action


def _key(incident_id: int, action: str) -> str:
    return f"{incident_id}:{action}"


def _permissions(action: str) -> tuple[str, ...]:
    return (REMEDIATE, REFUND) if action in MONEY_MOVING else (REMEDIATE,)


def _require_permissions(user: Any, action: str) -> None:
    needed = _permissions(action)
    ok = (
        user is not None
        and getattr(user, "is_authenticated", False)
        and user.is_active
        and (user.is_superuser or (user.is_staff and all(user.has_perm(p) for p in needed)))
    )
    if not ok:
        raise ActionNotPermitted(
            f"You may not run the {action} remediation.", details={"required_permissions": list(needed)}
        )


def _preview(incident: Incident, action: str, **kw: Any) -> RemediationPreview:
    kw.setdefault("allowed", True)
    kw.setdefault("why_not", "")
    kw.setdefault("money_moved", Decimal("0"))
    kw.setdefault("currency", incident.currency)
    return RemediationPreview(
        incident_id=incident.pk, action=action, moves_money=action in MONEY_MOVING,
        required_permissions=_permissions(action), **kw,
    )  # fmt: skip


def _refundable(charge_ids: list[str]) -> list[dict[str, Any]]:
    """What each charge still holds per the synced records (refund totals included)."""
    if not charge_ids:
        return []
    sql, params = net_captures_cte(Scope(charge_ids=frozenset(charge_ids)))
    columns = "provider_id, reference, amount_minor, refunded_minor, currency"
    # Only the CTE built by detectors.sql and constant column names; values are parameters.
    rows = fetch(f"WITH {sql} SELECT {columns} FROM nc ORDER BY id", params)  # noqa: S608
    return [
        {
            "charge_id": r["provider_id"],
            "reference": r["reference"],
            "amount_minor": r["amount_minor"] - r["refunded_minor"],
            "amount": minor_to_major(r["amount_minor"] - r["refunded_minor"], r["currency"]),
            "currency": r["currency"],
        }
        for r in rows
    ]


def _payment_recording(charge_id: str) -> dict[str, Any] | None:
    return payments_reconciliation_values().filter(provider_charge_id=charge_id).first()


def _plan(incident: Incident, action: str) -> RemediationPreview:
    if incident.state not in _LIVE:
        return _preview(incident, action, allowed=False, why_not=f"incident is {incident.state}",
                        description="Nothing to do: the incident is closed.")  # fmt: skip
    details = incident.details or {}

    if action in ("refund_extra_charges", "refund_charge"):
        ids = (
            details.get("extra_charge_ids", []) if action == "refund_extra_charges" else [incident.charge_id]
        )
        refunds = []
        for item in _refundable([i for i in ids if i]):
            recorded = _payment_recording(item["charge_id"])
            via = "payments" if recorded and recorded["status"] in _REFUNDABLE else "provider"
            refunds.append({**item, "via": via, "payment_id": recorded["id"] if recorded else None})
        total = sum((r["amount"] for r in refunds), Decimal("0"))
        if not refunds:
            return _preview(incident, action, allowed=False, why_not="the provider holds nothing to refund",
                            description="The charges are already refunded (per the synced records).")  # fmt: skip
        return _preview(
            incident, action, money_moved=total, currency=refunds[0]["currency"], refunds=_jsonable(refunds),
            description=f"Refund {len(refunds)} charge(s) at the provider, {total} {refunds[0]['currency']} "
            "back to the customer.",
        )  # fmt: skip

    if action == "refund_payment":
        payment = payment_get(payment_id=incident.payment_id)
        amount = payment.amount - payment.refunded_amount
        if payment.status not in _REFUNDABLE or amount <= 0:
            return _preview(incident, action, allowed=False, why_not=f"payment is {payment.status}",
                            description="payments holds nothing refundable for this order.")  # fmt: skip
        return _preview(
            incident, action, money_moved=amount, currency=payment.currency,
            refunds=[{"charge_id": payment.provider_charge_id, "amount": str(amount), "via": "payments",
                      "payment_id": payment.id}],
            description=f"Refund payment {payment.id} ({amount} {payment.currency}) through payments; "
            "the ledger is posted.",
        )  # fmt: skip

    if action == "confirm_order":
        return _plan_confirm(incident, action)

    if action == "release_stock":
        if details.get("kind") != "held_for_finished_order" or incident.order_id is None:
            return _preview(incident, action, allowed=False,
                            why_not="only stock held for a finished or missing order can be released",
                            description="Nothing to release.")  # fmt: skip
        held = [r for r in reservations_for_order(incident.order_id) if r.state == ReservationState.HELD]
        return _preview(
            incident, action, allowed=bool(held), why_not="" if held else "nothing is held any more",
            stock_changes=[{"sku": r.sku, "held_delta": -r.quantity, "available_delta": r.quantity} for r in held],
            description=f"Release {sum(r.quantity for r in held)} held unit(s) of order {incident.order_id}.",
        )  # fmt: skip

    if action in ("retry_saga", "compensate_saga"):
        assert incident.saga_run_id is not None
        run = saga_run_get(run_id=incident.saga_run_id)
        if run.status in _FINISHED_RUNS:
            return _preview(incident, action, allowed=False, why_not=f"saga run is {run.status}",
                            description="The run has finished.")  # fmt: skip
        verb = "Retry the current step of" if action == "retry_saga" else "Compensate (abort)"
        return _preview(
            incident, action, description=f"{verb} saga run {run.id} ({run.saga_type}, step {run.step})."
        )
    raise RemediationNotAllowed(f"Unknown remediation {action!r}.")


def _plan_confirm(incident: Incident, action: str) -> RemediationPreview:
    details = incident.details or {}
    if details.get("reason") != "order_pending_past_sla" or incident.order_id is None:
        return _preview(incident, action, allowed=False, why_not="only a pending order can be confirmed",
                        description="The order is missing or cancelled: refund the charge instead.")  # fmt: skip
    order = order_get(order_id=incident.order_id)
    charge = ProviderCharge.objects.filter(provider_id=incident.charge_id).first()
    problems = []
    refusal = order_confirm_paid_refusal(
        order=order,
        payment=payment_for_order(order_id=order.id),
        checkout_run=saga_run_for_subject(saga_type=CHECKOUT, subject_id=str(order.id)),
        provider_charge_id=incident.charge_id,
    )
    if refusal is not None:
        problems.append(refusal.message)
    if charge is None or charge.amount != order.total or charge.currency != order.currency:
        problems.append("the charge does not match the order's total and currency")
    held = {r.sku: r.quantity for r in reservations_for_order(order.id) if r.state == ReservationState.HELD}
    products = products_by_sku(line.sku for line in order.lines)
    stock = []
    for line in order.lines:
        if held.get(line.sku) == line.quantity:
            stock.append({"sku": line.sku, "on_hand_delta": -line.quantity, "from": "held"})
            continue
        available = products[line.sku].available if line.sku in products else 0
        if available < line.quantity:
            problems.append(f"{line.sku}: {available} available, {line.quantity} needed")
        stock.append({"sku": line.sku, "on_hand_delta": -line.quantity, "from": "available"})
    return _preview(
        incident, action, allowed=not problems, why_not="; ".join(problems), stock_changes=stock,
        description=f"Capture charge {incident.charge_id} on the order's payment, commit its stock and "
        f"confirm order {order.id}. No money moves.",
    )  # fmt: skip


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()} for row in rows]


def _claim(
    incident: Incident, action: str, *, by: Any, reason: str, automatic: bool
) -> tuple[Remediation, bool]:
    """Lock the incident, find or create this action's row. (row, already_applied)."""
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        remediation = Remediation.objects.select_for_update().filter(key=_key(incident.pk, action)).first()
        if remediation is not None and remediation.state == Remediation.State.SUCCEEDED:
            return remediation, True
        if locked.state not in _LIVE:
            raise IncidentClosed(f"Incident {incident.pk} is {locked.state}.")
        now = timezone.now()
        if remediation is None:
            remediation = Remediation(incident=locked, action=action, key=_key(incident.pk, action))
        elif remediation.state == Remediation.State.RUNNING and remediation.created_at > now - _STALE_RUNNING:
            raise RemediationInProgress(f"The {action} remediation of incident {incident.pk} is running.")
        remediation.state = Remediation.State.RUNNING
        remediation.by = by if is_person(by) else None
        remediation.automatic = automatic
        remediation.reason = reason
        remediation.attempts += 1
        remediation.created_at = now
        remediation.error = ""
        remediation.save()
        return remediation, False


def _result(remediation: Remediation, *, already_applied: bool) -> RemediationResult:
    return RemediationResult(
        remediation_id=remediation.pk, incident_id=remediation.incident_id, action=remediation.action,
        state=remediation.state, money_moved=remediation.money_moved, currency=remediation.currency,
        effects=remediation.effects, already_applied=already_applied, error=remediation.error,
    )  # fmt: skip


def _apply(
    incident: Incident,
    action: str,
    *,
    by: Any,
    reason: str,
    automatic: bool,
    client: ProviderClientLike | None,
    max_amount: Decimal | None = None,
) -> RemediationResult:
    if in_open_transaction():
        # Refunds call the provider: their effect would survive a caller's rollback.
        raise ConcordError(
            "Remediations call other services and the provider; run them outside a transaction.",
            code="remediation_in_transaction",
            http_status=500,
        )
    remediation, already = _claim(incident, action, by=by, reason=reason, automatic=automatic)
    if already:
        return _result(remediation, already_applied=True)
    plan = _plan(incident, action)
    state, effects, error = Remediation.State.FAILED, {}, ""
    money = Decimal("0")
    try:
        if not plan.allowed:
            raise RemediationNotAllowed(
                f"Cannot {action}: {plan.why_not}.", details={"why_not": plan.why_not}
            )
        if max_amount is not None and plan.moves_money and plan.money_moved > max_amount:
            raise RemediationNotAllowed(
                f"Cannot {action}: it would now move {plan.money_moved} {plan.currency}, more than the "
                f"{max_amount} {plan.currency} approved; ask for approval again.",
                details={"why_not": "plan_grew", "approved": str(max_amount), "plan": str(plan.money_moved)},
            )
        state, effects, money, error = _execute(incident, action, plan, remediation=remediation, by=by,
                                                reason=reason, client=client)  # fmt: skip
    except ConcordError as exc:
        state, error = Remediation.State.FAILED, f"{exc.code}: {exc}"
        _finish(
            remediation, state=state, effects=effects, money=money, currency=plan.currency, error=error, by=by
        )
        raise
    _finish(
        remediation, state=state, effects=effects, money=money, currency=plan.currency, error=error, by=by
    )
    return _result(remediation, already_applied=False)


def _finish(remediation: Remediation, *, state, effects, money, currency, error, by) -> None:
    with transaction.atomic():
        remediation.state = state
        remediation.effects = effects
        remediation.money_moved = money
        remediation.currency = currency or ""
        remediation.error = error
        remediation.finished_at = timezone.now()
        remediation.save()
        who = (
            "the auto-remediation policy"
            if remediation.automatic
            else (by.get_username() if by else "system")
        )
        text = f"Remediation {remediation.action} by {who}: {state}"
        if money:
            text += f", {money} {currency} moved"
        if error:
            text += f" ({error})"
        IncidentNote.objects.create(
            incident_id=remediation.incident_id,
            author=by if is_person(by) else None,
            text=f"{text}. Reason: {remediation.reason}",
        )


_Executed = tuple[str, dict[str, Any], Decimal, str]  # (state, effects, money moved, error)


def _execute(
    incident: Incident,
    action: str,
    plan: RemediationPreview,
    *,
    remediation: Remediation,
    by: Any,
    reason: str,
    client: ProviderClientLike | None,
) -> _Executed:
    """One call of the owning app's service per action."""
    if action in MONEY_MOVING:
        return _refund(plan, remediation=remediation, by=by, reason=reason, client=client)
    if action == "confirm_order":
        assert incident.order_id is not None
        order_confirm_paid(
            order_id=incident.order_id, provider_charge_id=incident.charge_id, by=by, reason=reason
        )
        effects = {"order": incident.order_id, "charge": incident.charge_id, "stock": plan.stock_changes}
        return Remediation.State.SUCCEEDED, effects, Decimal("0"), ""
    if action == "release_stock":
        assert incident.order_id is not None
        rows = stock_release(order_id=incident.order_id, by=by, reason=reason)
        return Remediation.State.SUCCEEDED, {"stock": plan.stock_changes, "reservations": [r.id for r in rows]}, \
            Decimal("0"), ""  # fmt: skip
    if action in ("retry_saga", "compensate_saga"):
        assert incident.saga_run_id is not None
        if action == "retry_saga":
            run = saga_retry_now(run_id=incident.saga_run_id, by=by, reason=reason)
        else:
            # The same failure code as a compensation from the back office: staff undid it.
            run = saga_compensate(
                run_id=incident.saga_run_id,
                by=by,
                reason=reason,
                failure_code=FailureReason.CANCELLED_BY_STAFF,
            )
        return (
            Remediation.State.SUCCEEDED,
            {"saga_run": {"id": run.id, "status": run.status}},
            Decimal("0"),
            "",
        )
    raise RemediationNotAllowed(f"Unknown remediation {action!r}.")


def _refund(
    plan: RemediationPreview,
    *,
    remediation: Remediation,
    by: Any,
    reason: str,
    client: ProviderClientLike | None,
) -> _Executed:
    done, doubtful, failed = [], [], []
    money = Decimal("0")
    for item in plan.refunds:
        amount = Decimal(str(item["amount"]))
        key = f"recon:{remediation.incident_id}:{remediation.action}:{item['charge_id']}"[:255]
        if item["via"] == "payments":
            outcome = payment_refund_through_provider(
                payment_id=item["payment_id"], amount=amount, reason=reason, by=by, idempotency_key=key
            )
            status, detail = outcome.outcome, outcome.error
            refund_id = outcome.refund.provider_refund_id if outcome.refund else None
        else:
            # A charge no payment holds (orphan or extra): payments refunds it at the
            # provider with a key fixed per remediation and records the attempt.
            refunded = charge_refund(
                charge_id=item["charge_id"],
                amount_minor=int(item["amount_minor"]),
                reference=str(item.get("reference") or ""),
                idempotency_key=key,
            )
            status, detail = refunded.outcome, refunded.error
            refund_id = refunded.refund.id if refunded.refund else None
            if refunded.refund is not None:
                _upsert_refunds([refunded.refund])  # visible to the next pass even without a sync
                charge = (client or provider_client()).get_charge(item["charge_id"])
                if charge is not None:
                    _upsert_charges([charge])
        entry = {
            "charge_id": item["charge_id"],
            "amount": str(amount),
            "refund_id": refund_id,
            "via": item["via"],
        }
        if status == Outcome.SUCCEEDED:
            done.append(entry)
            money += amount
        elif status == Outcome.DECLINED:
            failed.append({**entry, "error": detail})
        else:
            doubtful.append({**entry, "error": detail})
    effects = {"refunds": done, "declined": failed, "in_doubt": doubtful}
    if doubtful:
        return Remediation.State.UNKNOWN, effects, money, "provider outcome unknown: apply again"
    if failed:
        return Remediation.State.FAILED, effects, money, "the provider declined a refund"
    return Remediation.State.SUCCEEDED, effects, money, ""
