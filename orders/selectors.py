"""Reads of orders: for the API (scoped by client), the back office and reconciliation."""

from __future__ import annotations

from django.db.models import Prefetch

from core.errors import ConcordError, NotFound

from .choices import OrderStatus
from .dto import OrderDTO, OrderLineDTO
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


def order_list_for_client(
    *, client_id: int, status: str | None = None, before_id: int | None = None, limit: int = 20
) -> list[OrderDTO]:
    """A client's orders, newest first; keyset pagination: pass the last id seen as before_id."""
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
    return [order_to_dto(o) for o in orders[:limit]]
