"""What a staff action is: one declaration per action (STYLE: "staff actions as declarations").

An Operation says
- who may run it (`permission`, checked on the person who acts),
- when it is offered (`offers`: the owning app's state-machine guard or selector, read
  from the case the page shows; an action that is not offered cannot be submitted),
- what it would do (`preview`: effects in words, the money it moves, stock it changes),
- whether it needs a second person (`approval_kind`: money-moving actions above the one
  threshold rule, `needs_approval`),
- and the one domain service it calls (`run`).

The flow around them — preview, then confirm with a reason and a one-time key; record
who did what; or wait for approval and, once approved, run exactly the stored operation
and parameters — lives in backoffice.services and is the same for every action. Views
only turn HTTP into a call of that flow and its outcome into a message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils.safestring import SafeString

from backoffice.conf import approval_daily_limit, approval_threshold
from orders.dto import OrderDTO
from payments.dto import PaymentDTO, RefundDTO
from reconciliation.choices import LIVE_STATES
from reconciliation.selectors import IncidentRecord
from sagas.dto import SagaRunDTO
from webhooks.dto import DeliveryDTO

from .exposure import order_money_asked, person_money_today

Params = Mapping[str, Any]
# Added to the stored parameters when an operation runs from an approval: the money
# the second person approved, which the run must not exceed (issue 13, item 3).
APPROVED_AMOUNT = "approved_amount"


@dataclass(frozen=True)
class RunsCase:
    """Saga runs an action may be offered on (the stuck list's bulk actions)."""

    runs: tuple[SagaRunDTO, ...]


@dataclass(frozen=True)
class OrderCase(RunsCase):
    """An order as its case file shows it: what the order actions are decided on."""

    order: OrderDTO
    payment: PaymentDTO | None
    refunds: tuple[RefundDTO, ...]
    refundable: Decimal  # what payments would still refund (pending refunds held back)
    deliveries: tuple[DeliveryDTO, ...] = ()  # webhook deliveries to the shop about the order


@dataclass(frozen=True)
class IncidentCase:
    incident: IncidentRecord
    remediations: tuple[str, ...]  # reconciliation's remediations for its type (first = suggested)

    @property
    def live(self) -> bool:
        return self.incident.state in LIVE_STATES


Case = RunsCase | OrderCase | IncidentCase


@dataclass(frozen=True)
class Input:
    """A value the person types into the action's form (e.g. a refund's amount)."""

    name: str
    label: str
    default: str = ""


@dataclass(frozen=True)
class Offer:
    """One action offered now: `params` name its target (a run, a refund, a
    remediation) and carry the inputs' defaults."""

    operation: Operation
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    suggested: bool = False
    note: str = ""  # said next to the inputs (limits, the approval threshold)

    @property
    def op(self) -> str:
        return self.operation.op

    @property
    def target(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k in self.operation.target_params}

    @property
    def fields(self) -> list[tuple[Input, Any]]:
        """The inputs with their values to start from."""
        return [(item, self.params.get(item.name, item.default)) for item in self.operation.inputs]


@dataclass(frozen=True)
class Preview:
    """What the action would do now. `effects` are lines for people (plain text, or
    markup built with format_html); `money` is what it moves (what approval is decided
    on); `params` are the parameters it will run with (e.g. the amount as parsed)."""

    effects: list[str | SafeString]
    params: dict[str, Any]
    money: Decimal = Decimal("0")
    currency: str = ""
    allowed: bool = True
    why_not: str = ""


@dataclass(frozen=True)
class Outcome:
    """What running an action did. `message` is said to the person who ran it,
    `summary` when it ran after an approval ("Approved: <summary>."), `audit` is
    written to the staff action's outcome; `facts` are ids worth keeping (a refund)."""

    message: str
    level: str = "success"  # success | info | warning | error
    summary: str = ""
    audit: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


Run = Callable[[Any, Params, Any, str, str], Outcome]  # (case, params, by, reason, key) -> Outcome


@dataclass(frozen=True)
class Operation:
    name: str  # unique; what StaffAction.action and ApprovalRequest.operation record
    op: str  # the form's value on its page
    page: str  # "order" | "incident": which case it is decided on
    label: str
    offers: Callable[[Any, Any], list[Offer]]  # (case, user) -> offers now
    run: Run
    preview: Callable[[Any, Params], Preview] | None = None  # None: runs at once, no preview
    permission: str = ""  # a Django permission; "" = whoever may open the page's actions
    allowed: Callable[[Any], bool] | None = None  # (user) -> bool, when a permission is not enough
    target_params: tuple[str, ...] = ()  # params that name the target: must match an offer
    inputs: tuple[Input, ...] = ()
    approval_kind: str = ""  # "" = never waits for approval; else the kind finance sees
    # False: the preview's money is what is *at stake* (a dismissal closes an incident
    # with money at risk), not what moves: only the threshold applies, nothing adds up.
    moves_money: bool = True
    calls_provider: bool = False  # runs outside any transaction (the form key is claimed first)
    reason_default: str = ""  # for actions whose reason may be left empty (assign to me)
    unavailable: str = ""  # what a person is told when it is not offered now
    # (params) -> None, raising ConcordError for inputs no item could run with (an
    # unknown assignee): a bulk preview refuses them once instead of failing every item.
    check: Callable[[Params], None] | None = None

    def __post_init__(self) -> None:
        if not self.unavailable:
            object.__setattr__(self, "unavailable", f"That action is not possible for this {self.page} now.")

    def may(self, user: Any) -> bool:
        if self.allowed is not None and not self.allowed(user):
            return False
        return not self.permission or bool(user.has_perm(self.permission))

    def params_from(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The operation's parameters from a submitted form: ids as integers (None when
        malformed), inputs as text. Anything else in the form is ignored."""
        params: dict[str, Any] = {}
        for name in self.target_params:
            params[name] = _int(data.get(name)) if name.endswith("_id") else str(data.get(name, ""))
        for item in self.inputs:
            params[item.name] = str(data.get(item.name, "")).strip()
        return params

    def offer_for(self, case: Any, user: Any, params: Params) -> Offer | None:
        """The offer these parameters pick, if the action is offered to `user` now."""
        if not self.may(user):
            return None
        wanted = {k: params.get(k) for k in self.target_params}
        return next((o for o in self.offers(case, user) if o.target == wanted), None)


def case_order_id(case: Any) -> int | None:
    if isinstance(case, OrderCase):
        return case.order.id
    if isinstance(case, IncidentCase):
        return case.incident.order_id
    return None


def approval_reason(operation: Operation, case: Any, preview: Preview, by: Any) -> str:
    """Why this action waits for a second person from finance ("" = it does not).

    The one approval rule (issue 13, item 2), used by every caller — the case file,
    bulk actions, the admin: a money-moving action waits when what it moves, plus what
    was already refunded or asked for the same order (pending refunds, pending
    approvals), is above BACKOFFICE_APPROVAL_THRESHOLD; or when what the person moved
    today on their own word, plus this, is above BACKOFFICE_APPROVAL_DAILY_LIMIT."""
    if not operation.approval_kind or not preview.allowed or preview.money <= 0:
        return ""
    threshold, money, currency = approval_threshold(), preview.money, preview.currency
    if money > threshold:
        return f"{money} {currency} is above the approval threshold of {threshold} {currency}"
    if not operation.moves_money:
        return ""
    asked = order_money_asked(case_order_id(case), currency)
    if asked + money > threshold:
        return (
            f"with the {asked} {currency} already refunded or asked for this order, "
            f"{asked + money} {currency} is above the approval threshold of {threshold} {currency}"
        )
    today, limit = person_money_today(by, currency), approval_daily_limit()
    if today + money > limit:
        return (
            f"with the {today} {currency} you moved today without approval, {today + money} {currency} "
            f"is above the daily limit of {limit} {currency} per person"
        )
    return ""


def needs_approval(operation: Operation, case: Any, preview: Preview, by: Any) -> bool:
    """The one approval rule (see approval_reason)."""
    return bool(approval_reason(operation, case, preview, by))


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None
