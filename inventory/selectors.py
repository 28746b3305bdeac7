"""Reads of inventory for other apps: ids and sku strings in, frozen dataclasses out."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models import F, IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from core.errors import ConcordError
from core.sql import column, int_slot, prepared

from .choices import ReservationState
from .dto import ConservationProblem, ProductDTO, ReservationDTO, StockLevelDTO
from .errors import UnknownSku
from .models import Product, Reservation, StockLevel, StockMovement

PRODUCT_LIST_MAX_LIMIT = 200


def _products_with_available():
    # One query: the stock row is joined, available computed in SQL.
    return Product.objects.annotate(
        available=Coalesce(F("stock__on_hand") - F("stock__reserved"), Value(0), output_field=IntegerField())
    )


def _product_dto(product: Any) -> ProductDTO:
    """From a Product carrying its `available` annotation (or the raw query's column)."""
    return ProductDTO(
        sku=product.sku,
        name=product.name,
        price=product.price,
        currency=product.currency,
        active=product.active,
        available=product.available,
    )


def product_list(
    *, after_sku: str | None = None, limit: int = 50, include_inactive: bool = False
) -> list[ProductDTO]:
    """Catalog page ordered by sku (keyset pagination: pass the last sku seen)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= PRODUCT_LIST_MAX_LIMIT:
        raise ConcordError(
            f"limit must be an integer between 1 and {PRODUCT_LIST_MAX_LIMIT}", code="invalid_limit"
        )
    products = _products_with_available().order_by("sku")
    if not include_inactive:
        products = products.filter(active=True)
    if after_sku:
        products = products.filter(sku__gt=after_sku)
    return [_product_dto(p) for p in products[:limit]]


@functools.lru_cache(maxsize=64)
def _products_by_sku_sql(count: int) -> str:
    quote = connection.ops.quote_name
    product, stock = Product._meta, StockLevel._meta
    columns = ", ".join(f"p.{column(Product, name)}" for name in _PRODUCT_COLUMNS)
    stock_product = column(StockLevel, "product")
    target = column(Product, "sku")  # the stock row's foreign key targets the product's sku
    on_hand, reserved = (column(StockLevel, name) for name in ("on_hand", "reserved"))
    sku = column(Product, "sku")
    placeholders = ", ".join(["%s"] * count)
    # Identifiers come from the models' metadata, quoted; the skus are parameters.
    return (
        f"SELECT {columns}, COALESCE(s.{on_hand} - s.{reserved}, 0) AS available "  # noqa: S608
        f"FROM {quote(product.db_table)} p LEFT JOIN {quote(stock.db_table)} s "
        f"ON s.{stock_product} = p.{target} WHERE p.{sku} IN ({placeholders})"
    )


# ProductDTO's fields in order (then `available`): each row is one DTO as it comes.
_PRODUCT_COLUMNS = ("sku", "name", "price", "currency", "active")


def products_by_sku(skus: Iterable[str]) -> dict[str, ProductDTO]:
    """The products among `skus` that exist (active or not), in one query.

    On the hot path of every order (POST orders/ prices from it), so the SQL is
    written out (the same join as _products_with_available): building it with
    the ORM cost ~0.8 ms of CPU per call, several times the query itself. Built
    once per number of skus, and read with a plain cursor straight into the DTOs:
    Product.objects.raw's model instances cost more CPU than the query (issue 16).
    The columns need no conversion (psycopg gives str, Decimal, bool and int, which
    is what the ORM gives for these fields on PostgreSQL).
    """
    wanted = sorted({sku for sku in skus if isinstance(sku, str)})
    if not wanted:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_products_by_sku_sql(len(wanted)), wanted)
        return {row[0]: ProductDTO(*row) for row in cursor.fetchall()}


def stock_level_get(sku: str) -> StockLevelDTO:
    row = StockLevel.objects.filter(product_id=sku).values("on_hand", "reserved").first()
    if row is None:
        raise UnknownSku(f"Unknown sku {sku!r}", details={"skus": [sku]})
    return StockLevelDTO(sku=sku, on_hand=row["on_hand"], reserved=row["reserved"])


def reservations_for_order(order_id: int) -> list[ReservationDTO]:
    return [
        ReservationDTO(
            id=r.id, order_id=r.order_id, sku=r.product_id, quantity=r.quantity, state=str(r.state)
        )
        # The case file reads this on every view: a statement built once (core.sql.prepared).
        for r in prepared(
            "reservations_for_order",
            lambda: Reservation.objects.filter(order_id=int_slot(0)).order_by("product_id"),
            slots=1,
        ).instances(Reservation, order_id)
    ]


def stock_check_conservation(*, skus: Iterable[str] | None = None) -> list[ConservationProblem]:
    """Every sku whose counters disagree with the journal or the reservations.

    One set-based query (correlated aggregates over indexed columns), so
    reconciliation can run it over the whole catalog or just the skus it touched.
    Invariant (DESIGN §6.4): on_hand == sum(movements); reserved == sum(held);
    0 <= reserved <= on_hand.
    """
    moved = (
        StockMovement.objects.filter(product_id=OuterRef("product_id"))
        .order_by()
        .values("product_id")
        .annotate(total=Sum("delta"))
        .values("total")
    )
    held = (
        Reservation.objects.filter(product_id=OuterRef("product_id"), state=ReservationState.HELD)
        .order_by()
        .values("product_id")
        .annotate(total=Sum("quantity"))
        .values("total")
    )
    rows = StockLevel.objects.annotate(
        moved=Coalesce(Subquery(moved, output_field=IntegerField()), Value(0)),
        held=Coalesce(Subquery(held, output_field=IntegerField()), Value(0)),
    ).filter(
        ~Q(on_hand=F("moved")) | ~Q(reserved=F("held")) | Q(reserved__lt=0) | Q(reserved__gt=F("on_hand"))
    )
    if skus is not None:
        rows = rows.filter(product_id__in=list(skus))

    problems: list[ConservationProblem] = []
    for row in rows.order_by("product_id").values("product_id", "on_hand", "reserved", "moved", "held"):
        sku = row["product_id"]
        if row["on_hand"] != row["moved"]:
            problems.append(ConservationProblem(sku, "on_hand_vs_movements", row["moved"], row["on_hand"]))
        if row["reserved"] != row["held"]:
            problems.append(ConservationProblem(sku, "reserved_vs_held", row["held"], row["reserved"]))
        if not 0 <= row["reserved"] <= row["on_hand"]:
            problems.append(ConservationProblem(sku, "counter_out_of_range", row["on_hand"], row["reserved"]))
    return problems


def reservations_reconciliation_values():
    """Read-only, for set-based reconciliation: every reservation as (id, order_id, sku,
    quantity, state, updated_at), a `.values()` queryset meant to be embedded in
    reconciliation's SQL (never evaluated whole, never written through). Column order is
    part of the contract."""
    # product_id is the sku (the foreign key targets Product.sku); reconciliation's CTE
    # names the column.
    return Reservation.objects.order_by().values(
        "id", "order_id", "product_id", "quantity", "state", "updated_at"
    )


def reservations_held_for_orders(*, order_ids: list[int]) -> list[ReservationDTO]:
    """Reservations still held by any of these orders, in one query (an order at rest
    — confirmed or cancelled — should hold none)."""
    return [
        ReservationDTO(
            id=r.id, order_id=r.order_id, sku=r.product_id, quantity=r.quantity, state=str(r.state)
        )
        for r in Reservation.objects.filter(
            order_id__in=list(order_ids), state=ReservationState.HELD
        ).order_by("order_id", "product_id")
    ]
