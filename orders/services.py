"""Writes to orders. Each service is one transaction: row lock, transition, save,
audit row (django-fsm-log), deferred side effects.

Transition services are idempotent where a repeat is meaningful (confirming a
confirmed order changes nothing) so saga steps can be retried; a move the state
machine forbids raises Conflict("illegal_transition").

Two business changes have one recipe each, used by every caller (the sagas,
reconciliation, the back office, the admin): order_confirm_paid (capture recorded
-> stock committed -> order confirmed) and order_request_cancel (abort a running
checkout, or refund -> restock -> cancel a confirmed order). order_confirm and the
cancel transitions below are the single places where those states change; only the
recipes and the sagas call them.

Accepted orders and every committed state change are logged and counted for
/metrics after the commit (`_observe_*`, core/metrics.py).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace
from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone
from django_fsm import can_proceed
from django_fsm_log.models import StateLog

from core import logs, metrics
from core.audit import check_reason
from core.errors import ConcordError, Conflict, NotFound
from core.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, is_supported_currency, quantize
from core.sql import column, instance_from_row, select_columns, update_fields
from core.transactions import joins_caller
from inventory.selectors import products_by_sku
from inventory.services import stock_commit, stock_reserve
from payments.choices import PaymentStatus
from payments.selectors import payment_for_order
from payments.services import payment_capture, payment_create
from sagas.choices import ATTENTION_STATUSES
from sagas.selectors import saga_run_for_subject
from sagas.services import saga_mark_resolved, saga_request_abort, saga_start

from .choices import CANCELLATION_REASONS, CHECKOUT, ORDER_CANCELLATION, FailureReason, OrderStatus
from .dto import OrderDTO, OrderLineDTO
from .events import ORDER_PLACED, order_event_record
from .models import MAX_LINES_PER_ORDER, MAX_QUANTITY_PER_LINE, Order, OrderLine
from .selectors import order_confirm_paid_refusal, order_get, order_payment_dto, order_to_dto

MAX_TOTAL = Decimal(10) ** (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES)

log = logging.getLogger(__name__)


def _observe_accepted(order_id: int, currency: str, total: Decimal) -> None:
    """After the order's commit: its log line and the accepted counter."""
    with logs.scope(order_id=order_id):
        log.info("order accepted: %s %s", total, currency)
    metrics.order_accepted(currency=currency)


def _observe_state(order_id: int, status: str, failure_reason: str, placed_at) -> None:
    """After a transition's commit: its log line and the order counters."""
    with logs.scope(order_id=order_id):
        log.info("order %s%s", status, f" ({failure_reason})" if failure_reason else "")
    if status == OrderStatus.CONFIRMED:
        metrics.order_confirmed(seconds_since_accepted=(timezone.now() - placed_at).total_seconds())
    elif status == OrderStatus.CANCELLED:
        metrics.order_cancelled(reason=failure_reason)


def _validate_lines(lines: object) -> list[tuple[str, int]]:
    if not isinstance(lines, list | tuple) or not lines:
        raise ConcordError("An order needs at least one line", code="empty_lines")
    if len(lines) > MAX_LINES_PER_ORDER:
        raise ConcordError(
            f"An order has at most {MAX_LINES_PER_ORDER} lines",
            code="too_many_lines",
            details={"max": MAX_LINES_PER_ORDER, "given": len(lines)},
        )
    clean: list[tuple[str, int]] = []
    seen: set[str] = set()
    for line in lines:
        if not isinstance(line, list | tuple) or len(line) != 2:
            raise ConcordError("Each line is a sku and a quantity", code="invalid_lines")
        sku, quantity = line
        if not isinstance(sku, str) or not sku:
            raise ConcordError(f"Unknown sku {sku!r}", code="unknown_sku", details={"skus": [str(sku)]})
        if (
            isinstance(quantity, bool)
            or not isinstance(quantity, int)
            or not 1 <= quantity <= MAX_QUANTITY_PER_LINE
        ):
            raise ConcordError(
                f"{sku}: quantity must be an integer from 1 to {MAX_QUANTITY_PER_LINE}",
                code="invalid_quantity",
                details={"sku": sku, "min": 1, "max": MAX_QUANTITY_PER_LINE},
            )
        if sku in seen:
            raise ConcordError(
                f"{sku} appears on more than one line", code="duplicate_sku", details={"skus": [sku]}
            )
        seen.add(sku)
        clean.append((sku, quantity))
    return clean


@dataclass(frozen=True)
class _PricedOrder:
    """A checked order, priced from the catalog, not yet written."""

    client_id: int
    customer_email: str
    currency: str
    payment_method: str
    lines: tuple[OrderLineDTO, ...]
    total: Decimal


def _order_price(
    *, client_id: int, customer_email: str, currency: str, payment_method: str, lines: list[tuple[str, int]]
) -> _PricedOrder:
    """Every check of an order, and its prices from the catalog (one query);
    writes nothing, so it runs before the transaction is touched."""
    if isinstance(client_id, bool) or not isinstance(client_id, int):
        raise ConcordError("client_id must be an integer", code="invalid_client")
    try:
        if not isinstance(customer_email, str) or len(customer_email) > 254:
            raise ValidationError("invalid")
        validate_email(customer_email)
    except ValidationError:
        raise ConcordError("customer_email is not a valid address", code="invalid_email") from None
    if not isinstance(currency, str) or not is_supported_currency(currency):
        raise ConcordError(f"Unsupported currency {currency!r}", code="invalid_currency")
    if (
        not isinstance(payment_method, str)
        or not 1 <= len(payment_method) <= 64
        or not payment_method.isprintable()
    ):
        raise ConcordError("payment_method must be 1-64 printable characters", code="invalid_payment_method")
    clean = _validate_lines(lines)

    catalog = products_by_sku(sku for sku, _ in clean)
    unknown = [sku for sku, _ in clean if sku not in catalog or not catalog[sku].active]
    if unknown:
        raise ConcordError(
            f"Unknown sku(s): {', '.join(unknown)}", code="unknown_sku", details={"skus": unknown}
        )
    mismatched = [sku for sku, _ in clean if catalog[sku].currency != currency]
    if mismatched:
        raise ConcordError(
            f"Not sold in {currency}: {', '.join(mismatched)}",
            code="currency_mismatch",
            details={"skus": mismatched, "currency": currency},
        )

    order_lines = tuple(
        OrderLineDTO(
            sku=sku,
            quantity=quantity,
            unit_price=catalog[sku].price,
            line_total=quantize(catalog[sku].price * quantity, currency),
        )
        for sku, quantity in clean
    )
    total = quantize(sum((ln.line_total for ln in order_lines), Decimal(0)), currency)
    if total >= MAX_TOTAL:
        raise ConcordError("The order total is too large", code="total_too_large")
    return _PricedOrder(
        client_id=client_id,
        customer_email=customer_email,
        currency=currency,
        payment_method=payment_method,
        lines=order_lines,
        total=total,
    )


def _order_insert_sql() -> str:
    """One statement: the order, its lines and its creation audit row (CTEs), the
    new order's id back. Built once per process from the models' tables."""
    q = connection.ops.quote_name
    order, line, audit = Order._meta.db_table, OrderLine._meta.db_table, StateLog._meta.db_table
    return (
        f"WITH new_order AS (INSERT INTO {q(order)} (client_id, customer_email, currency, total, "  # noqa: S608
        "payment_method, status, failure_reason, created_at, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, NULL, %s, %s) RETURNING id), "
        f"new_lines AS (INSERT INTO {q(line)} (order_id, sku, quantity, unit_price, line_total) "
        "SELECT new_order.id, l.sku, l.quantity, l.unit_price, l.line_total FROM new_order, "
        "unnest(%s::varchar[], %s::integer[], %s::numeric[], %s::numeric[]) WITH ORDINALITY "
        "AS l(sku, quantity, unit_price, line_total, n) ORDER BY l.n), "
        f"new_audit AS (INSERT INTO {q(audit)} (timestamp, by_id, source_state, state, transition, "
        "content_type_id, object_id, description) "
        "SELECT %s, NULL, NULL, %s, 'create', %s, new_order.id, %s FROM new_order) "
        "SELECT id FROM new_order"
    )


_ORDER_INSERT_SQL: str | None = None


def _order_insert(priced: _PricedOrder, *, idempotency_key: str | None = None) -> OrderDTO:
    """The order, its lines and its audit row in one statement, then the
    order.placed event, in the caller's transaction.

    Written out (measured, issue 16, bench/api_cpu.py): Order.objects.create,
    OrderLine.objects.bulk_create and StateLog.objects.create cost three round
    trips and about 1 ms of ORM compilation per accepted order; the statement
    below is one round trip. Nothing listens to these models' save signals
    (creation has no FSM transition; its audit row is written here, like the
    ORM version did). Lines keep their order: ids follow the ORDER BY."""
    global _ORDER_INSERT_SQL
    if _ORDER_INSERT_SQL is None:
        _ORDER_INSERT_SQL = _order_insert_sql()
    now = timezone.now()
    lines = priced.lines
    with connection.cursor() as cursor:
        cursor.execute(
            _ORDER_INSERT_SQL,
            [
                priced.client_id,
                priced.customer_email,
                priced.currency,
                priced.total,
                priced.payment_method,
                OrderStatus.PENDING.value,
                now,
                now,
                [ln.sku for ln in lines],
                [ln.quantity for ln in lines],
                [ln.unit_price for ln in lines],
                [ln.line_total for ln in lines],
                now,
                OrderStatus.PENDING.value,
                # get_for_model is cached per process: no query after the first.
                ContentType.objects.get_for_model(Order).pk,
                f"placed by API client {priced.client_id}",
            ],
        )
        (order_id,) = cursor.fetchone()
    placed = OrderDTO(
        id=order_id,
        client_id=priced.client_id,
        status=OrderStatus.PENDING.value,
        failure_reason=None,
        customer_email=priced.customer_email,
        currency=priced.currency,
        total=priced.total,
        payment_method=priced.payment_method,
        lines=lines,
        created_at=now,
        updated_at=now,
    )
    order_event_record(placed, event_type=ORDER_PLACED, meta={"idempotency_key": idempotency_key})
    return placed


# Why the writes below use atomic(savepoint=False): these services run inside
# the API request's transaction (the idempotency record's), where a savepoint
# per service costs two round trips (SAVEPOINT, RELEASE) and buys nothing —
# every expected error (bad input, unknown sku, ...) is raised by _order_price
# before the first write, outside any atomic block, so it never poisons the
# caller's transaction; an error after a write (a database error) leaves the
# caller's transaction marked for rollback, and the caller lets it propagate.
# Called on their own, the blocks are ordinary transactions.


def order_create(
    *,
    client_id: int,
    customer_email: str,
    currency: str,
    payment_method: str,
    lines: list[tuple[str, int]],
) -> OrderDTO:
    """Place a pending order priced from the catalog (never from the caller).

    Constant number of queries whatever the number of lines: one catalog read,
    one order insert, one bulk insert of lines, one audit row. Not durable: the
    API wraps it with the idempotency record and the saga run in one commit.
    """
    priced = _order_price(
        client_id=client_id,
        customer_email=customer_email,
        currency=currency,
        payment_method=payment_method,
        lines=lines,
    )
    with transaction.atomic(savepoint=False):
        return _order_insert(priced)


# --- Transitions -------------------------------------------------------------------


def _lock(order_id: int) -> Order:
    """SELECT … FOR UPDATE of the order, the statement built once per process (every
    transition starts here; the ORM compiled it on each call: issue 16)."""
    with connection.cursor() as cursor:
        cursor.execute(_row_sql(Order, "id", " FOR UPDATE"), [order_id])
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"Order {order_id} not found", details={"order_id": order_id})
    return instance_from_row(Order, row)


def _lines(order_id: int) -> list[OrderLine]:
    """The order's lines in id order (their order on the order)."""
    with connection.cursor() as cursor:
        cursor.execute(_row_sql(OrderLine, "order_id", " ORDER BY id"), [order_id])
        return [instance_from_row(OrderLine, row) for row in cursor.fetchall()]


@functools.cache
def _row_sql(model: type[Order] | type[OrderLine], key: str, tail: str) -> str:
    table = connection.ops.quote_name(model._meta.db_table)
    return f"SELECT {select_columns(model)} FROM {table} WHERE {table}.{column(model, key)} = %s{tail}"  # noqa: S608


def _illegal(order: Order, action: str) -> Conflict:
    return Conflict(
        f"Cannot {action} order {order.pk}: it is {order.status}",
        code="illegal_transition",
        details={"order_id": order.pk, "status": order.status, "action": action},
    )


def _check_failure_reason(failure_reason: str, allowed) -> str:
    if failure_reason not in allowed:
        raise ConcordError(
            f"Invalid failure_reason {failure_reason!r}",
            code="invalid_failure_reason",
            details={"allowed": sorted(str(r) for r in allowed)},
        )
    return str(failure_reason)


def _saved(order: Order, lines: list[OrderLine] | None = None) -> OrderDTO:
    """Save a transition and record its event (confirmed, cancelled) in the same
    transaction: every order transition service ends here."""
    update_fields(order, ["status", "failure_reason", "updated_at"])
    metrics.on_commit(_observe_state, order.pk, str(order.status), order.failure_reason, order.created_at)
    moved = order_to_dto(order, lines)
    order_event_record(moved)
    return moved


def _move(
    order_id: int, transition: str, *, done_in: tuple, action: str, by, reason: str, **kwargs
) -> OrderDTO:
    """Lock the order and run one transition. An order already in `done_in` is a
    repeat and comes back unchanged; any other illegal move is a Conflict."""
    return _move_locked(
        _lock(order_id), transition, done_in=done_in, action=action, by=by, reason=reason, **kwargs
    )


def _move_locked(
    order: Order,
    transition: str,
    *,
    done_in: tuple,
    action: str,
    by,
    reason: str,
    lines: list[OrderLine] | None = None,
    **kwargs,
) -> OrderDTO:
    """_move for an order the caller locked (and whose lines it may have read)."""
    if order.status in done_in:
        return order_to_dto(order, lines)
    move = getattr(order, transition)
    if not can_proceed(move):
        raise _illegal(order, action)
    # Checked above, before any write: joined to a caller's transaction without a
    # savepoint (core.transactions), an error from here on marks it for rollback.
    with transaction.atomic(savepoint=False):
        move(by=by, description=reason, **kwargs)
        return _saved(order, lines)


@joins_caller
def order_confirm(*, order_id: int, by=None, reason: str) -> OrderDTO:
    """pending -> confirmed: the transition alone, the last step of order_confirm_paid
    (which makes sure the payment is captured and the stock committed first)."""
    reason = check_reason(reason, by=by)
    return _move(
        order_id, "confirm", done_in=(OrderStatus.CONFIRMED,), action="confirm", by=by, reason=reason
    )


@joins_caller
def order_confirm_paid(
    *,
    order_id: int,
    provider_charge_id: str | None = None,
    by=None,
    reason: str,
    during_checkout: bool = False,
) -> OrderDTO:
    """Confirm a paid order: the capture is recorded, the stock committed, the order
    confirmed — in one transaction, so the three agree or nothing happens. The one
    recipe for this change: the checkout saga's confirm_order step
    (`during_checkout`), reconciliation's confirm_order remediation and the back
    office's manual confirm use it.

    - Capture: with `provider_charge_id` (a charge the provider made that the payment
      never recorded, e.g. its answer was lost) the payment is captured with it;
      without, the payment must be captured already.
    - Stock: the order's held reservation is committed; an order whose checkout never
      reserved is reserved first (refused when the stock is not there, or was given
      back already).
    - The checkout run: one that gave up (failed, compensation_failed) is marked
      resolved by the person confirming, its lock taken before the order's (the
      order order_request_cancel locks them in).

    Idempotent: a confirmed order comes back unchanged. Otherwise refused (Conflict)
    exactly when selectors.order_confirm_paid_refusal says why — before any write,
    so it joins a caller's transaction without a savepoint (core.transactions);
    except when it marks a run resolved first: then the rest runs in a savepoint,
    so a refusal undoes the mark."""
    reason = check_reason(reason, by=by)
    run = saga_run_for_subject(saga_type=CHECKOUT, subject_id=str(order_id))
    if run is not None and run.status in ATTENTION_STATUSES:
        with transaction.atomic():
            saga_mark_resolved(run_id=run.id, by=by, reason=f"the order was confirmed by hand: {reason}")
            run = saga_run_for_subject(saga_type=CHECKOUT, subject_id=str(order_id))
            return _confirm_paid(order_id, run, provider_charge_id, by, reason, during_checkout)
    return _confirm_paid(order_id, run, provider_charge_id, by, reason, during_checkout)


def _confirm_paid(
    order_id: int, run, provider_charge_id: str | None, by, reason: str, during_checkout: bool
) -> OrderDTO:
    order = _lock(order_id)
    lines = _lines(order_id)
    if order.status == OrderStatus.CONFIRMED:
        return order_to_dto(order, lines)
    payment = payment_for_order(order_id=order_id)
    refusal = order_confirm_paid_refusal(
        order=order_to_dto(order, lines),
        payment=payment,
        checkout_run=run,
        provider_charge_id=provider_charge_id,
        during_checkout=during_checkout,
    )
    if refusal is not None:
        raise Conflict(
            refusal.message,
            code=refusal.code,
            # The order as found under its lock: the checkout's confirm step decides
            # by its status (cancelled or cancelling: never confirmed) without a read.
            details={"order_id": order_id, "status": order.status, "failure_reason": order.failure_reason},
        )
    assert payment is not None
    lines_wanted = [(ln.sku, ln.quantity) for ln in lines]
    if provider_charge_id and payment.status != PaymentStatus.CAPTURED:
        # Rare (reconciliation found the charge): a savepoint, so a refusal of the
        # stock below undoes the capture and leaves a caller's transaction usable.
        with transaction.atomic():
            payment_capture(
                payment_id=payment.id, provider_charge_id=provider_charge_id, by=by, reason=reason
            )
            stock_reserve(order_id=order_id, lines=lines_wanted, by=by, reason=reason)
            stock_commit(order_id=order_id, by=by, reason=reason)
            return order_confirm(order_id=order_id, by=by, reason=reason)
    # The services check before they write (core.transactions): a refusal before
    # any write leaves a caller's transaction usable; after one, any error marks it
    # for rollback, so stock, payment and order still agree or nothing happens.
    try:
        # The checkout's held reservation leaves the shelf (a repeat changes nothing).
        committed = stock_commit(order_id=order_id, by=by, reason=reason)
    except NotFound:
        # Never reserved (a checkout that failed before its reservation): reserve
        # first — refused before any write when the stock is not there.
        stock_reserve(order_id=order_id, lines=lines_wanted, by=by, reason=reason)
        committed = stock_commit(order_id=order_id, by=by, reason=reason)
    with transaction.atomic(savepoint=False):
        wanted: dict[str, int] = {}
        for sku, quantity in lines_wanted:
            wanted[sku] = wanted.get(sku, 0) + quantity
        if {r.sku: r.quantity for r in committed} != wanted:
            raise Conflict(
                f"Order {order_id} holds different stock than its lines",
                code="reservation_mismatch",
                details={"order_id": order_id},
            )
        return _move_locked(
            order,
            "confirm",
            done_in=(OrderStatus.CONFIRMED,),
            action="confirm",
            by=by,
            reason=reason,
            lines=lines,
        )


@transaction.atomic
def order_cancel(*, order_id: int, failure_reason: str, by=None, reason: str) -> OrderDTO:
    """Cancel a pending order (checkout failed, or a person cancelled it).

    Cancelling a cancelled order is a no-op (the first reason stays); a confirmed
    order goes through order_begin_cancellation instead (refund first).
    """
    reason = check_reason(reason, by=by)
    failure_reason = _check_failure_reason(failure_reason, FailureReason.values)
    return _move(
        order_id,
        "cancel",
        done_in=(OrderStatus.CANCELLED,),
        action="cancel",
        by=by,
        reason=reason,
        failure_reason=failure_reason,
    )


@transaction.atomic
def order_request_cancellation(*, order_id: int, failure_reason: str, by=None, reason: str) -> OrderDTO:
    """A pending order is to be cancelled while its checkout runs: it waits in
    `cancelling` until the checkout has compensated (order_cancel_after_checkout).
    Idempotent; a confirmed order goes through order_begin_cancellation."""
    reason = check_reason(reason, by=by)
    failure_reason = _check_failure_reason(failure_reason, FailureReason.values)
    return _move(
        order_id,
        "request_cancellation",
        done_in=(OrderStatus.CANCELLING, OrderStatus.CANCELLED),
        action="request the cancellation of",
        by=by,
        reason=reason,
        failure_reason=failure_reason,
    )


@transaction.atomic
def order_cancel_after_checkout(*, order_id: int, failure_reason: str, reason: str) -> OrderDTO:
    """The checkout compensated (its on_compensated hook): a pending order is
    cancelled with the run's failure reason; one a person asked to cancel
    (`cancelling`) finishes cancelling with the reason it was given. Idempotent.
    A confirmed order is refused: a compensated checkout never confirmed it."""
    reason = check_reason(reason)
    failure_reason = _check_failure_reason(failure_reason, FailureReason.values)
    order = _lock(order_id)
    if order.status == OrderStatus.CANCELLED:
        return order_to_dto(order)
    if order.status == OrderStatus.CANCELLING:
        order.finish_cancellation(description=reason)
        return _saved(order)
    if not can_proceed(order.cancel):
        raise _illegal(order, "cancel")
    order.cancel(failure_reason=failure_reason, description=reason)
    return _saved(order)


@transaction.atomic
def order_begin_cancellation(*, order_id: int, failure_reason: str, by=None, reason: str) -> OrderDTO:
    """A confirmed order is to be undone: it waits in `cancelling` for refund and restock."""
    reason = check_reason(reason, by=by)
    failure_reason = _check_failure_reason(failure_reason, CANCELLATION_REASONS)
    return _move(
        order_id,
        "begin_cancellation",
        done_in=(OrderStatus.CANCELLING, OrderStatus.CANCELLED),
        action="begin the cancellation of",
        by=by,
        reason=reason,
        failure_reason=failure_reason,
    )


@transaction.atomic
def order_finish_cancellation(*, order_id: int, by=None, reason: str) -> OrderDTO:
    reason = check_reason(reason, by=by)
    return _move(
        order_id,
        "finish_cancellation",
        done_in=(OrderStatus.CANCELLED,),
        action="finish the cancellation of",
        by=by,
        reason=reason,
    )


# --- Placement and cancellation (the order sagas, orders/sagas.py) --------------------


def order_place(
    *,
    client_id: int,
    customer_email: str,
    currency: str,
    payment_method: str,
    lines: list[tuple[str, int]],
    idempotency_key: str | None = None,
) -> OrderDTO:
    """Accept an order: the order and its lines (catalog prices), its pending
    payment and its checkout saga run, all in the caller's transaction — one
    commit per accepted order. Not durable on purpose: the API wraps it with the
    idempotency record so a replayed request can never make a second order.
    The worker is poked when the transaction commits (saga_start); if the poke is
    lost, the sweeper finds the run.

    Every check runs before the first write (no savepoints; see above): a
    rejected order leaves the caller's transaction as it was."""
    priced = _order_price(
        client_id=client_id,
        customer_email=customer_email,
        currency=currency,
        payment_method=payment_method,
        lines=lines,
    )
    with transaction.atomic(savepoint=False):
        order = _order_insert(priced, idempotency_key=idempotency_key)
        payment = payment_create(
            order_id=order.id,
            amount=order.total,
            currency=order.currency,
            payment_method=order.payment_method,
        )
        saga_start(saga_type=CHECKOUT, subject_id=str(order.id), context={"payment_id": payment.id})
        metrics.on_commit(_observe_accepted, order.id, order.currency, order.total)
    # The new payment is known: the order JSON gets its money side without a read.
    return replace(order, payment=order_payment_dto(payment, []))


@transaction.atomic
def order_request_cancel(
    *, order_id: int, by=None, reason: str, failure_reason: str = FailureReason.CANCELLED_BY_CLIENT
) -> OrderDTO:
    """A client or staff member wants the order cancelled. Returns the order as it
    is now (the cancellation itself completes in the background).

    - pending: the order moves to `cancelling` (with `failure_reason`, or the
      run's own failure reason when it was compensating already) and its
      checkout run is asked to abort, in one transaction; the run compensates at
      its next step (release stock, refund a charge that already happened) and
      its on_compensated hook finishes cancelling -> cancelled. confirm_order
      refuses a cancelling order, so a client told "cancelling" never ends with
      a confirmed order. If the run completed meanwhile, the order is confirmed
      and the next case applies.
    - confirmed: the order moves to `cancelling` and an order_cancellation run
      refunds, restocks and cancels it.
    - cancelling / cancelled: nothing to do (idempotent).

    Locks: the checkout run before the order, the order the executor locks in its
    confirm_order checkpoint — the same order, so the two cannot deadlock.
    """
    reason = check_reason(reason, by=by)
    failure_reason = _check_failure_reason(failure_reason, CANCELLATION_REASONS)
    if not reason:
        reason = str(FailureReason(failure_reason).label)
    order = order_get(order_id=order_id)
    if order.status in (OrderStatus.CANCELLING, OrderStatus.CANCELLED):
        return order
    if order.status == OrderStatus.PENDING:
        run = saga_run_for_subject(saga_type=CHECKOUT, subject_id=str(order_id))
        if run is None:
            # Never placed through order_place (no payment, no stock held).
            order_cancel(order_id=order_id, failure_reason=failure_reason, by=by, reason=reason)
            return order_get(order_id=order_id)
        try:
            # Its own savepoint: a refusal below leaves our transaction usable.
            saga_request_abort(run_id=run.id, failure_code=failure_reason, by=by, reason=reason)
        except Conflict as exc:
            if exc.code == "saga_resolved":
                raise Conflict(
                    f"Order {order_id} is being handled by staff; it cannot be cancelled now.",
                    code="order_not_cancellable",
                    details={"order_id": order_id, "status": order.status},
                ) from None
            if exc.code != "saga_completed":
                raise
            # The checkout completed between our read and the abort: it is
            # confirmed; the cancellation saga below undoes it.
        else:
            # The run is locked by us now: its failure code is current. A run that
            # was compensating already (e.g. the card was declined) keeps its reason.
            run = saga_run_for_subject(saga_type=CHECKOUT, subject_id=str(order_id))
            if run is not None and run.failure_code in FailureReason.values:
                failure_reason = run.failure_code
            return order_request_cancellation(
                order_id=order_id, failure_reason=failure_reason, by=by, reason=reason
            )
    order = order_begin_cancellation(order_id=order_id, failure_reason=failure_reason, by=by, reason=reason)
    if order.status == OrderStatus.CANCELLING:
        saga_start(
            saga_type=ORDER_CANCELLATION, subject_id=str(order_id), context={"failure_reason": failure_reason}
        )
    return order
