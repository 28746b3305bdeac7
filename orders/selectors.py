"""Reads of orders: for the API (scoped by client), the back office and reconciliation."""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Exists, F, OuterRef, Prefetch
from django_fsm_log.models import StateLog

from core.errors import ConcordError, NotFound
from core.fsm import state_log_row, state_log_rows, state_summary, waiting_in_state, waiting_in_states
from core.sql import Part, column, parts_sql, read_parts
from payments.choices import PaymentStatus
from payments.dto import PaymentDTO
from payments.selectors import payments_for_orders, refunds_for_payments
from sagas.choices import ACTIVE_STATUSES, RunStatus
from sagas.dto import SagaRunDTO

from .choices import OrderStatus
from .dto import OrderDTO, OrderLineDTO, OrderPaymentDTO, OrderRefundDTO, Refusal
from .models import Order, OrderLine

ORDER_LIST_MAX_LIMIT = 100


def order_to_dto(order: Order, lines: list[OrderLine] | None = None) -> OrderDTO:
    """Build the DTO from an order and its lines (prefetched or given; never queried per line)."""
    if lines is None:
        lines = list(order.lines.all())
    return OrderDTO(
        id=order.pk,
        client_id=order.client_id,
        status=str(order.status),
        failure_reason=None if order.failure_reason is None else str(order.failure_reason),
        customer_email=order.customer_email,
        currency=order.currency,
        total=order.total,
        payment_method=order.payment_method,
        lines=tuple(
            OrderLineDTO(sku=ln.sku, quantity=ln.quantity, unit_price=ln.unit_price, line_total=ln.line_total)
            for ln in lines
        ),
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


def _orders_with_lines():
    # Two queries whatever the number of orders or lines.
    return Order.objects.prefetch_related(Prefetch("lines", queryset=OrderLine.objects.order_by("id")))


def order_get(*, order_id: int) -> OrderDTO:
    order = _orders_with_lines().filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"Order {order_id} not found", details={"order_id": order_id})
    return order_to_dto(order)


def order_get_for_client(*, client_id: int, order_id: int) -> OrderDTO:
    """Another client's order is reported exactly like a missing one (no existence leak)."""
    order = _orders_with_lines().filter(pk=order_id, client_id=client_id).first()
    if order is None:
        raise NotFound(f"Order {order_id} not found", details={"order_id": order_id})
    return order_to_dto(order)


def order_payment_dto(payment, refunds) -> OrderPaymentDTO:
    """From payments' DTOs to the order's view of its money."""
    return OrderPaymentDTO(
        status=payment.status,
        amount=Decimal(payment.amount),
        refunded_amount=Decimal(payment.refunded_amount),  # a new payment's is the int default
        refunds=tuple(
            OrderRefundDTO(id=r.id, amount=r.amount, status=r.status, created_at=r.created_at)
            for r in refunds
        ),
    )


def orders_with_payments(orders: list[OrderDTO]) -> list[OrderDTO]:
    """The orders with their payment state and refunds (the API's order JSON): two
    queries whatever the number of orders."""
    if not orders:
        return []
    by_order = payments_for_orders(order_ids=[o.id for o in orders])
    refunds = refunds_for_payments(payment_ids=[p.id for p in by_order.values()])
    return [
        replace(o, payment=order_payment_dto(by_order[o.id], refunds.get(by_order[o.id].id, [])))
        if o.id in by_order
        else o
        for o in orders
    ]


def order_client_id(*, order_id: int) -> int | None:
    """The API client an order belongs to (None: no such order). One indexed read."""
    return Order.objects.filter(pk=order_id).values_list("client_id", flat=True).first()


def order_list_for_client(
    *,
    client_id: int,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 20,
    created_gte: datetime | None = None,
    created_lt: datetime | None = None,
) -> list[OrderDTO]:
    """A client's orders, newest first; keyset pagination: pass the last id seen as before_id.
    `created_gte`/`created_lt` bound created_at (a half-open range, aware datetimes)."""
    if status is not None and status not in OrderStatus.values:
        raise ConcordError(
            f"Unknown status {status!r}", code="invalid_status", details={"allowed": list(OrderStatus.values)}
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= ORDER_LIST_MAX_LIMIT:
        raise ConcordError(f"limit must be between 1 and {ORDER_LIST_MAX_LIMIT}", code="invalid_limit")
    orders = _orders_with_lines().filter(client_id=client_id).order_by("-id")
    if status is not None:
        orders = orders.filter(status=status)
    if before_id is not None:
        orders = orders.filter(pk__lt=before_id)
    if created_gte is not None:
        orders = orders.filter(created_at__gte=created_gte)
    if created_lt is not None:
        orders = orders.filter(created_at__lt=created_lt)
    return [order_to_dto(o) for o in orders[:limit]]


def order_confirm_paid_refusal(
    *,
    order: OrderDTO,
    payment: PaymentDTO | None,
    checkout_run: SagaRunDTO | None,
    provider_charge_id: str | None = None,
    during_checkout: bool = False,
) -> Refusal | None:
    """Why order_confirm_paid would refuse to confirm this order now; None when it
    would confirm it. The one rule: order_confirm_paid enforces it, pages offer the
    action only when it is None.

    - only a pending order (a confirmed one is confirmed already);
    - not while its checkout is being undone, nor while it still runs (it will confirm
      the order itself; the person may retry it instead) — unless the caller is that
      checkout's own confirm step (`during_checkout`);
    - the payment is captured, or is about to be with `provider_charge_id`, and is the
      order's amount and currency (DESIGN §6.3).
    Whether the stock is there is inventory's answer, given when it is reserved."""
    if order.status != OrderStatus.PENDING:
        return Refusal("illegal_transition", f"Order {order.id} is {order.status}, not pending.")
    run = checkout_run
    if run is not None:
        if run.status in (RunStatus.COMPENSATING, RunStatus.COMPENSATED) or (
            run.status in ACTIVE_STATUSES and run.abort_requested
        ):
            return Refusal("checkout_compensating", f"Order {order.id}: its checkout is being undone.")
        if run.status in ACTIVE_STATUSES and not during_checkout:
            return Refusal(
                "checkout_in_progress",
                f"Order {order.id}: its checkout is still running and confirms the order itself.",
            )
    if payment is None:
        return Refusal("payment_not_captured", f"Order {order.id} has no payment.")
    capturable = provider_charge_id and (
        payment.status in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN)
        or payment.provider_charge_id == provider_charge_id
    )
    if payment.status != PaymentStatus.CAPTURED and not capturable:
        return Refusal(
            "payment_not_captured", f"Order {order.id} is not paid: its payment is {payment.status}."
        )
    if (payment.amount, payment.currency) != (order.total, order.currency):
        return Refusal(
            "payment_mismatch",
            f"Payment {payment.id} is {payment.amount} {payment.currency}, not the order's "
            f"{order.total} {order.currency}.",
        )
    return None


# --- Back-office reads ----------------------------------------------------------------


def _orders_filtered(
    *, order_ids: list[int] | None = None, customer_email: str | None = None, status: str | None = None
):
    if status is not None and status not in OrderStatus.values:
        raise ConcordError(f"Unknown status {status!r}", code="invalid_status")
    orders = Order.objects.all()
    if order_ids is not None:
        orders = orders.filter(pk__in=list(order_ids))
    if customer_email:
        orders = orders.filter(customer_email__iexact=customer_email.strip())
    if status is not None:
        orders = orders.filter(status=status)
    return orders


def orders_search(*, limit: int = 50, offset: int = 0, **filters: Any) -> list[OrderDTO]:
    """Staff search and filtered lists: newest first, two queries whatever the page size.
    An email matches case-insensitively and exactly (an index-friendly lookup).
    Filters: order_ids, customer_email, status (see orders_search_count)."""
    orders = _orders_filtered(**filters).prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("id"))
    )
    offset = max(0, offset)
    return [order_to_dto(o) for o in orders.order_by("-id")[offset : offset + max(1, min(limit, 500))]]


def orders_search_count(**filters: Any) -> int:
    """How many orders orders_search's filters match (its page total)."""
    return _orders_filtered(**filters).count()


def orders_count_between(start: date, end: date) -> int:
    """Orders placed on the UTC days start..end (inclusive): the finance page's denominator."""
    lo = datetime.combine(start, time.min, tzinfo=UTC)
    hi = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    return Order.objects.filter(created_at__gte=lo, created_at__lt=hi).count()


def order_audit_log(*, order_id: int) -> list[dict]:
    """Every state change of an order (django-fsm-log), oldest first, with who and why."""
    logs = (
        StateLog.objects.filter(content_type=ContentType.objects.get_for_model(Order), object_id=order_id)
        .select_related("by")
        .order_by("timestamp", "id")
    )
    return state_log_rows(logs)


def order_with_audit_log(*, order_id: int) -> tuple[OrderDTO, list[dict]]:
    """order_get and order_audit_log in one statement built once per process (an order's
    case file read them in three; compiling them cost more CPU than running them).
    Raises NotFound."""
    orders, lines, logs = read_parts(
        _order_story_sql(),
        [order_id, order_id, ContentType.objects.get_for_model(Order).pk, order_id],
        _order_story_parts(),
    )
    if not orders:
        raise NotFound(f"Order {order_id} not found", details={"order_id": order_id})
    return (
        order_to_dto(orders[0][0], [line for line, _ in lines]),
        [state_log_row(log, by) for log, (by,) in logs],
    )


@functools.cache
def _order_story_parts() -> tuple[Part, ...]:
    quote = connection.ops.quote_name
    orders, lines, logs = (quote(m._meta.db_table) for m in (Order, OrderLine, StateLog))
    user_model = get_user_model()
    users = quote(user_model._meta.db_table)
    return (
        Part(Order, f"FROM {orders} WHERE {orders}.id = %s", f"{orders}.id"),
        Part(OrderLine, f"FROM {lines} WHERE {lines}.{column(OrderLine, 'order')} = %s", f"{lines}.id"),
        Part(
            StateLog,
            f"FROM {logs} LEFT JOIN {users} ON {users}.id = {logs}.{column(StateLog, 'by')}"
            f" WHERE {logs}.{column(StateLog, 'content_type')} = %s AND {logs}.{column(StateLog, 'object_id')} = %s",
            f"{logs}.{column(StateLog, 'timestamp')}, {logs}.id",
            extra=(f"{users}.{column(user_model, user_model.USERNAME_FIELD)}",),
        ),
    )


@functools.cache
def _order_story_sql() -> str:
    return parts_sql(_order_story_parts())


def order_state_summary() -> dict:
    """Per status: count and the oldest updated_at, plus the FSM's transitions."""
    return state_summary(Order, "status", OrderStatus.choices)


# --- Read-only, for set-based reconciliation ------------------------------------------
# These return `.values()` querysets meant to be embedded in reconciliation's SQL (as a
# subquery or via `.query.sql_with_params()`), so a detector joins them in the database in
# one statement instead of looping over rows in Python. Never evaluate them whole; never
# write through them. The column order is part of the contract.


def orders_reconciliation_values():
    """Read-only, for set-based reconciliation: every order as
    (id, status, failure_reason, total, currency, created_at, updated_at)."""
    return Order.objects.order_by().values(
        "id", "status", "failure_reason", "total", "currency", "created_at", "updated_at"
    )


def order_lines_reconciliation_values():
    """Read-only, for set-based reconciliation: every order line as (order_id, sku, quantity)."""
    return OrderLine.objects.order_by().values("order_id", "sku", "quantity")


# --- For the invariant checks (monitoring) ----------------------------------------------

ORDER_FACT_FIELDS = ("id", "client_id", "status", "failure_reason", "total", "currency", "created_at")


def order_facts(
    *,
    order_ids: list[int] | None = None,
    client_ids: list[int] | None = None,
    created_since: datetime | None = None,
) -> list[dict]:
    """Orders as plain rows (ORDER_FACT_FIELDS), chosen by ids, clients and/or
    creation time (all given filters apply), in one query."""
    orders = Order.objects.order_by("id")
    if order_ids is not None:
        orders = orders.filter(pk__in=list(order_ids))
    if client_ids is not None:
        orders = orders.filter(client_id__in=list(client_ids))
    if created_since is not None:
        orders = orders.filter(created_at__gte=created_since)
    return list(orders.values(*ORDER_FACT_FIELDS))


def orders_without_audit(*, order_ids: list[int]) -> list[int]:
    """Orders among these whose creation or current status has no audit row
    (DESIGN §6.8): one query with two NOT EXISTS."""
    logs = StateLog.objects.filter(
        content_type=ContentType.objects.get_for_model(Order), object_id=OuterRef("pk")
    )
    return list(
        Order.objects.filter(pk__in=list(order_ids))
        .filter(~Exists(logs.filter(transition="create")) | ~Exists(logs.filter(state=OuterRef("status"))))
        .order_by("id")
        .values_list("id", flat=True)
    )


def orders_waiting(
    *, status: str, since_before=None, exclude_ids=None, limit: int = 50, counted: bool = True
) -> tuple[int | None, list[dict]]:
    """Orders in `status` since their last change (updated_at), oldest first: the count
    and the first `limit` as (id, order_id, amount, currency, since). Two queries."""
    return waiting_in_state(
        Order.objects.filter(status=status).annotate(order_id=F("id"), amount=F("total")),
        since="updated_at",
        since_before=since_before,
        exclude_ids=exclude_ids,
        limit=limit,
        counted=counted,
        fields=("id", "order_id", "amount", "currency"),
    )


def orders_waiting_rows(*, status: str, since_before=None, limit: int = 50) -> list[dict]:
    """orders_waiting's rows alone (counted=False), in a statement compiled once per
    process (core.fsm.waiting_in_states): what the back office's SLA lists draw at
    every request."""
    (rows,) = waiting_in_states(
        [
            (
                lambda: Order.objects.filter(status=status).annotate(order_id=F("id"), amount=F("total")),
                "updated_at",
                since_before,
            )
        ],
        key=("orders_waiting_rows", str(status)),
        limit=limit,
        fields=("id", "order_id", "amount", "currency"),
    )
    return rows


def order_totals(*, order_ids: list[int]) -> dict[int, tuple[Decimal, str]]:
    """Each order's total and currency, one query: what a bulk action's preview adds up."""
    rows = Order.objects.filter(pk__in=list(order_ids)).values_list("pk", "total", "currency")
    return {pk: (total, currency) for pk, total, currency in rows}


# --- Read model sources (readmodels/ rebuilds and checks its copies from these) ---------


def orders_read_model_rows(
    *,
    updated_before: datetime | None = None,
    created_before: datetime | None = None,
    created_from: datetime | None = None,
    updated_from: datetime | None = None,
    id_from: int | None = None,
    id_before: int | None = None,
    ids: list[int] | None = None,
):
    """Every order's searchable fields, as dicts, streamed (a rebuild reads them all);
    optionally only those last changed, or created, in a range, or by id (the read
    models' drift check reads a recent window and a slice of the older ones)."""
    rows = Order.objects.order_by("id")
    if updated_before is not None:
        rows = rows.filter(updated_at__lt=updated_before)
    if updated_from is not None:
        # status IN (every status): the (status, updated_at) index serves the range.
        rows = rows.filter(status__in=list(OrderStatus.values), updated_at__gte=updated_from)
    if created_before is not None:
        rows = rows.filter(created_at__lt=created_before)
    if created_from is not None:
        rows = rows.filter(created_at__gte=created_from)  # order_created_brin
    if id_from is not None:
        rows = rows.filter(id__gte=id_from)
    if id_before is not None:
        rows = rows.filter(id__lt=id_before)
    if ids is not None:
        rows = rows.filter(id__in=ids)
    return rows.values(
        "id", "client_id", "customer_email", "currency", "total", "status", "failure_reason", "created_at"
    ).iterator(chunk_size=2000)


def orders_id_bounds() -> tuple[int, int] | None:
    """The first and last order ids (two index look-ups), None without orders."""
    first = Order.objects.order_by("id").values_list("id", flat=True).first()
    last = Order.objects.order_by("-id").values_list("id", flat=True).first()
    return None if first is None or last is None else (first, last)


def orders_first_created_at() -> datetime | None:
    """When the first order (lowest id) was created: where history starts."""
    return Order.objects.order_by("id").values_list("created_at", flat=True).first()
