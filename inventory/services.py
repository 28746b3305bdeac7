"""Writes to inventory. Each service is one transaction with its audit rows.

Lock order (to rule out deadlocks between concurrent services): first the
reservations of one order, sorted by sku; then stock rows, sorted by sku. Stock
rows are locked implicitly by the UPDATE that changes them, issued in sku order.

Every service is idempotent: repeating a call after it succeeded changes nothing,
so a saga step may be retried after a crash or a lost acknowledgement.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone
from django_fsm_log.models import StateLog

from core.audit import check_reason
from core.audit_batch import add_rows as add_audit_rows
from core.errors import ConcordError, Conflict, NotFound
from core.money import is_supported_currency, quantize
from core.sql import column, insert_rows, instance_from_row, select_columns
from core.transactions import joins_caller

from .choices import MovementKind, ReservationState
from .dto import ProductDTO, ReservationDTO, StockLevelDTO
from .errors import OutOfStock, UnknownSku
from .models import SKU_MAX_LENGTH, Product, Reservation, StockLevel, StockMovement

MAX_UNITS_PER_LINE = 1_000_000


def _validate_sku(sku: object) -> str:
    if (
        not isinstance(sku, str)
        or not 1 <= len(sku) <= SKU_MAX_LENGTH
        or not sku.isprintable()
        or any(ch.isspace() for ch in sku)
    ):
        raise ConcordError(
            f"A sku is 1-{SKU_MAX_LENGTH} printable characters without spaces", code="invalid_sku"
        )
    return sku


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _reservation_dto(r: Reservation) -> ReservationDTO:
    return ReservationDTO(
        id=r.id, order_id=r.order_id, sku=r.product_id, quantity=r.quantity, state=str(r.state)
    )


def _user_id(by) -> int | None:
    return getattr(by, "pk", None)


# --- Catalog -------------------------------------------------------------------


@transaction.atomic
def product_upsert(*, sku: str, name: str, price: Decimal, currency: str, active: bool = True) -> ProductDTO:
    """Create or update a product by sku; the first call also creates its stock row (0 units).

    Writes nothing when the product already has these values.
    """
    _validate_sku(sku)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ConcordError("A product name is 1-200 characters", code="invalid_name")
    if not isinstance(currency, str) or not is_supported_currency(currency):
        raise ConcordError(f"Unsupported currency {currency!r}", code="invalid_currency")
    # Floats are refused: money is Decimal end to end.
    if not isinstance(price, Decimal) or not price.is_finite() or price < 0:
        raise ConcordError("price must be a non-negative Decimal", code="invalid_price")
    try:
        exact = quantize(price, currency) == price
    except InvalidOperation:
        exact = False
    if not exact:
        raise ConcordError(f"price {price} has more precision than {currency} allows", code="invalid_price")
    name = name.strip()

    product, created = Product.objects.select_for_update().get_or_create(
        sku=sku, defaults={"name": name, "price": price, "currency": currency, "active": active}
    )
    if not created and (product.name, product.price, product.currency, product.active) != (
        name,
        price,
        currency,
        active,
    ):
        product.name, product.price, product.currency, product.active = name, price, currency, active
        product.save(update_fields=["name", "price", "currency", "active", "updated_at"])
    level, _ = StockLevel.objects.get_or_create(product_id=sku)
    return ProductDTO(
        sku=product.sku,
        name=product.name,
        price=product.price,
        currency=product.currency,
        active=product.active,
        available=level.on_hand - level.reserved,
    )


@transaction.atomic
def stock_set_on_hand(*, sku: str, on_hand: int, by=None, reason: str) -> StockLevelDTO:
    """Set the counted units on the shelf (a stock take); journals the difference.

    Refuses to go below what is reserved: held units are promised to orders.
    """
    reason = check_reason(reason, required=True)
    if not _is_count(on_hand) or not 0 <= on_hand <= MAX_UNITS_PER_LINE * 1000:
        raise ConcordError("on_hand must be a non-negative integer", code="invalid_quantity")
    level = StockLevel.objects.select_for_update().filter(product_id=sku).first()
    if level is None:
        raise UnknownSku(f"Unknown sku {sku!r}", details={"skus": [sku]})
    if on_hand < level.reserved:
        raise Conflict(
            f"{sku}: {level.reserved} units are reserved; on hand cannot go below that",
            code="below_reserved",
            details={"sku": sku, "reserved": level.reserved, "requested": on_hand},
        )
    delta = on_hand - level.on_hand
    if delta:
        StockLevel.objects.filter(pk=level.pk).update(on_hand=on_hand, updated_at=Now())
        StockMovement.objects.create(
            product_id=sku, delta=delta, kind=MovementKind.ADJUST, by=by, reason=reason
        )
    return StockLevelDTO(sku=sku, on_hand=on_hand, reserved=level.reserved)


# --- Reservations -----------------------------------------------------------------


def _merge_lines(lines: Iterable[tuple[str, int]]) -> dict[str, int]:
    wanted: dict[str, int] = {}
    for line in lines:
        if not isinstance(line, tuple | list) or len(line) != 2:
            raise ConcordError("Each line is a (sku, quantity) pair", code="invalid_lines")
        sku, quantity = line
        if not isinstance(sku, str):
            raise UnknownSku(f"Unknown sku {sku!r}", details={"skus": [str(sku)]})
        if not _is_count(quantity) or not 1 <= quantity <= MAX_UNITS_PER_LINE:
            raise ConcordError(
                f"{sku}: quantity must be a positive integer", code="invalid_quantity", details={"sku": sku}
            )
        wanted[sku] = wanted.get(sku, 0) + quantity
    if not wanted:
        raise ConcordError("Nothing to reserve", code="empty_lines")
    return wanted


def _existing_reservation_outcome(order_id: int, wanted: dict[str, int]) -> list[ReservationDTO] | None:
    """None when the order has no reservations yet; otherwise the no-op result of a repeat."""
    existing = _order_reservations(order_id)
    if not existing:
        return None
    if any(r.state in (ReservationState.RELEASED, ReservationState.RETURNED) for r in existing):
        raise Conflict(
            f"Stock of order {order_id} was already given back; it cannot be reserved again",
            code="illegal_transition",
            details={"order_id": order_id},
        )
    if {r.product_id: r.quantity for r in existing} != wanted:
        raise Conflict(
            f"Order {order_id} already holds different stock",
            code="reservation_mismatch",
            details={"order_id": order_id},
        )
    return [_reservation_dto(r) for r in existing]


@joins_caller
def stock_reserve(
    *, order_id: int, lines: list[tuple[str, int]], by=None, reason: str = ""
) -> list[ReservationDTO]:
    """Hold stock for every line of an order, or for none of them.

    Checks, then writes (core.transactions: no savepoint inside a caller's
    transaction). The stock levels of the order's skus are locked first, in sku
    order, so two concurrent reservations of the same units (or two deliveries of
    the same order) queue on those locks: the second re-reads the order's
    reservations and the levels after the first commits, and either finds its
    repeat (a no-op) or refuses with OutOfStock — before it writes anything. Each
    counter then moves by a conditional UPDATE (reserved += q only where
    on_hand - reserved >= q), which the CHECK constraints back.
    """
    if not _is_count(order_id):
        raise ConcordError("order_id must be an integer", code="invalid_order_id")
    reason = check_reason(reason, by=by)
    wanted = _merge_lines(lines)
    skus = sorted(wanted)
    with connection.cursor() as cursor:
        cursor.execute(_free_sql(), [skus])
        free = {str(sku): int(n) for sku, n in cursor.fetchall()}
    repeated = _existing_reservation_outcome(order_id, wanted)
    if repeated is not None:
        return repeated
    short = [sku for sku in skus if free.get(sku, 0) < wanted[sku]]
    if short:
        unknown = [sku for sku in short if sku not in free]
        if unknown:
            raise UnknownSku(f"Unknown sku(s): {', '.join(unknown)}", details={"skus": unknown})
        raise OutOfStock(
            f"Not enough stock for: {', '.join(short)}",
            details={
                "skus": short,
                "requested": {sku: wanted[sku] for sku in short},
                "available": {sku: free[sku] for sku in short},
            },
        )
    with transaction.atomic(savepoint=False):
        taken = _move_counters(_RESERVE, skus, [wanted[sku] for sku in skus])
        if taken != len(skus):  # cannot happen under the lock; never hold less than asked
            raise ConcordError(f"stock of {', '.join(skus)} changed under its lock", code="stock_changed")
        created = [Reservation(order_id=order_id, product_id=sku, quantity=wanted[sku]) for sku in skus]
        insert_rows(created)
        # Creation is not a transition, but it is a state change worth an audit row
        # (with the transaction's other audit rows when it collects them: core.audit_batch).
        content_type = ContentType.objects.get_for_model(Reservation)
        add_audit_rows(
            [
                StateLog(
                    content_type=content_type,
                    object_id=r.pk,
                    source_state=None,
                    state=ReservationState.HELD,
                    transition="reserve",
                    by_id=_user_id(by),
                    description=reason or None,
                )
                for r in created
            ]
        )
    return [_reservation_dto(r) for r in created]


# How _move_counters changes the counters of a sku by q units: reserving takes
# free units only (the condition), committing takes held units off the shelf.
_RESERVE = ("reserved = s.reserved + w.q", "s.on_hand >= s.reserved + w.q")
_COMMIT = ("on_hand = s.on_hand - w.q, reserved = s.reserved - w.q", "true")


def _move_counters(move: tuple[str, str], skus: list[str], quantities: list[int]) -> int:
    """One UPDATE for the counters of several skus (was one per sku, each compiled
    by the ORM: issue 16), their rows locked in sku order first, as every writer of
    stock levels locks them. Returns the number of rows changed; a row whose
    condition fails is left alone. The CHECK constraints still back every counter."""
    with connection.cursor() as cursor:
        cursor.execute(_counters_sql(move), [skus, quantities])
        return cursor.rowcount


@functools.cache
def _counters_sql(move: tuple[str, str]) -> str:
    setting, condition = move
    table = connection.ops.quote_name(StockLevel._meta.db_table)
    sku = column(StockLevel, "product")
    return (
        f"WITH w AS (SELECT s.{sku} AS sku, w.q FROM {table} s "  # noqa: S608 (identifiers from the model)
        f"JOIN unnest(%s::varchar[], %s::integer[]) AS w(sku, q) ON s.{sku} = w.sku "
        f"ORDER BY s.{sku} FOR UPDATE OF s) "
        f"UPDATE {table} s SET {setting}, updated_at = STATEMENT_TIMESTAMP() "
        f"FROM w WHERE s.{sku} = w.sku AND {condition}"
    )


def _lock_order_reservations(order_id: int) -> list[Reservation]:
    return _order_reservations(order_id, lock=True)


def _order_reservations(order_id: int, *, lock: bool = False) -> list[Reservation]:
    """The order's reservations in sku order (FOR UPDATE with `lock`)."""
    with connection.cursor() as cursor:
        cursor.execute(_reservations_sql(lock), [order_id])
        return [instance_from_row(Reservation, row) for row in cursor.fetchall()]


# The checkout's reads of stock levels and reservations, built once per process
# (the ORM compiled each on every call: issue 16).
@functools.cache
def _reservations_sql(lock: bool) -> str:
    table = connection.ops.quote_name(Reservation._meta.db_table)
    return (
        f"SELECT {select_columns(Reservation)} FROM {table} "  # noqa: S608 (identifiers from the model)
        f"WHERE {table}.{column(Reservation, 'order_id')} = %s ORDER BY {table}.{column(Reservation, 'product')}"
        + (" FOR UPDATE" if lock else "")
    )


@functools.cache
def _reservations_state_sql() -> str:
    """Set the state (and updated_at) of some reservations, by id."""
    table = connection.ops.quote_name(Reservation._meta.db_table)
    state, updated_at, pk = (column(Reservation, name) for name in ("state", "updated_at", "id"))
    return f"UPDATE {table} SET {state} = %s, {updated_at} = %s WHERE {pk} = ANY(%s)"  # noqa: S608 (identifiers from the model)


@functools.cache
def _free_sql() -> str:
    """Lock the stock levels of some skus, in sku order; their free units."""
    table = connection.ops.quote_name(StockLevel._meta.db_table)
    sku, on_hand, reserved = (column(StockLevel, name) for name in ("product", "on_hand", "reserved"))
    return (
        f"SELECT {sku}, {on_hand} - {reserved} FROM {table} "  # noqa: S608 (identifiers from the model)
        f"WHERE {sku} = ANY(%s) ORDER BY {sku} FOR UPDATE"
    )


def _refuse(order_id: int, action: str, reservations: list[Reservation], bad: set[str]) -> None:
    states = sorted({r.state for r in reservations if r.state in bad})
    if states:
        raise Conflict(
            f"Cannot {action} stock of order {order_id}: reservations are {', '.join(states)}",
            code="illegal_transition",
            details={"order_id": order_id, "states": states},
        )


@joins_caller
def stock_commit(*, order_id: int, by=None, reason: str) -> list[ReservationDTO]:
    """The order is confirmed: held units leave the shelf (on_hand and reserved drop).
    Checks before it writes (core.transactions: no savepoint in a caller's transaction)."""
    reason = check_reason(reason, by=by)
    reservations = _lock_order_reservations(order_id)
    if not reservations:
        raise NotFound(f"Order {order_id} holds no stock", code="reservations_not_found")
    _refuse(order_id, "commit", reservations, {ReservationState.RELEASED})
    # Already committed (or later returned): a repeat changes nothing.
    held = [r for r in reservations if r.state == ReservationState.HELD]
    if not held:
        return [_reservation_dto(r) for r in reservations]
    movements = []
    with transaction.atomic(savepoint=False):
        now = timezone.now()
        # The counters of every sku in one statement, locked in sku order (the
        # order stock_reserve locks them in; held is in sku order).
        _move_counters(_COMMIT, [r.product_id for r in held], [r.quantity for r in held])
        for r in held:
            r.commit(by=by, description=reason)  # the audit row
            r.updated_at = now
            movements.append(
                StockMovement(
                    product_id=r.product_id,
                    delta=-r.quantity,
                    kind=MovementKind.SALE,
                    order_id=order_id,
                    by=by,
                    reason=reason,
                )
            )
        # The transitions above changed the objects only: one UPDATE for all rows,
        # a statement built once per process (the ORM compiled it on every call).
        with connection.cursor() as cursor:
            cursor.execute(
                _reservations_state_sql(), [str(ReservationState.COMMITTED), now, [r.pk for r in held]]
            )
        insert_rows(movements)
    return [_reservation_dto(r) for r in reservations]


@transaction.atomic
def stock_release(*, order_id: int, by=None, reason: str) -> list[ReservationDTO]:
    """The order will not be fulfilled: held units become available again.

    An order that holds nothing is fine (the compensation of a reserve step that
    never happened, e.g. out of stock) and returns [].
    """
    reason = check_reason(reason, by=by)
    reservations = _lock_order_reservations(order_id)
    _refuse(order_id, "release", reservations, {ReservationState.COMMITTED, ReservationState.RETURNED})
    for r in reservations:
        if r.state != ReservationState.HELD:
            continue
        StockLevel.objects.filter(product_id=r.product_id).update(
            reserved=F("reserved") - r.quantity, updated_at=Now()
        )
        r.release(by=by, description=reason)
        r.save(update_fields=["state", "updated_at"])
    return [_reservation_dto(r) for r in reservations]


@transaction.atomic
def stock_restock(*, order_id: int, by=None, reason: str) -> list[ReservationDTO]:
    """A confirmed order was cancelled: its sold units go back on the shelf."""
    reason = check_reason(reason, by=by)
    reservations = _lock_order_reservations(order_id)
    if not reservations:
        raise NotFound(f"Order {order_id} holds no stock", code="reservations_not_found")
    _refuse(order_id, "restock", reservations, {ReservationState.HELD, ReservationState.RELEASED})
    movements = []
    for r in reservations:
        if r.state != ReservationState.COMMITTED:
            continue
        StockLevel.objects.filter(product_id=r.product_id).update(
            on_hand=F("on_hand") + r.quantity, updated_at=Now()
        )
        r.restock(by=by, description=reason)
        r.save(update_fields=["state", "updated_at"])
        movements.append(
            StockMovement(
                product_id=r.product_id,
                delta=r.quantity,
                kind=MovementKind.RETURN,
                order_id=order_id,
                by=by,
                reason=reason,
            )
        )
    StockMovement.objects.bulk_create(movements)
    return [_reservation_dto(r) for r in reservations]
