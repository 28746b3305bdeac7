"""Orders' REST endpoints (DESIGN §5): thin views that validate, call one
service or selector, and render the order JSON.

Every read and write is scoped to the calling API client (its user id):
another client's order answers exactly like a missing one (404), and is absent
from lists. POSTs are @idempotent: the order, its payment, its saga run and the
idempotency record commit together (one commit per accepted order).
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from core import logs
from core.api_cursor import decode_int_cursor, encode_cursor
from core.api_schema import declares_errors, declares_parameters
from core.errors import ConcordError, Conflict
from idempotency.api import idempotent

from . import services
from .selectors import order_get_for_client, order_list_for_client, orders_with_payments
from .serializers import (
    OrderInput,
    OrderListQuery,
    OrderOutput,
    OrderPageOutput,
    order_input_valid,
    order_json,
)

_CURSOR_PREFIX = "before:"

ORDER_ID_PARAMETER = OpenApiParameter(
    name="order_id",
    type={"type": "integer", "minimum": 1, "maximum": 10**18 - 1},
    location=OpenApiParameter.PATH,
    description="The order's id.",
)

LOCATION_PARAMETER = OpenApiParameter(
    name="Location",
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    response=[201],
    description="Path of the new order (`/api/v1/orders/{id}/`).",
)

PLACE_ERROR_DESCRIPTIONS = {
    400: "Invalid order: malformed JSON (`malformed_request`); a field fails validation or is not "
    "one a client may set, such as a price, total or status (`validation_error`; `details` names "
    "the field); an sku that does not exist or is not sold (`unknown_sku`; `details.lines` names "
    "the line); a product not sold in the order's currency (`currency_mismatch`); the total is "
    "too large (`total_too_large`); a missing or malformed Idempotency-Key "
    "(`idempotency_key_required`, `idempotency_key_invalid`). Not stored: fix and reuse the key.",
}

CANCEL_ERROR_DESCRIPTIONS = {
    409: "The order cannot be cancelled in its state (`order_not_cancellable`; `details.status`), "
    "or a request with this Idempotency-Key is still in progress (`idempotency_key_in_use`). "
    "Not stored: retry later.",
}


def order_location(order_id: int) -> str:
    """The order's path, as reverse("api-order-detail") gives it. reverse() itself
    cost ≈ 1 % of an accepted order's CPU (issue 16): the path around the id is
    reversed once per script prefix and URLconf, then the id goes in between (the
    converter writes it as str(id))."""
    head, tail = _order_path_around_id(get_script_prefix(), get_urlconf(), settings.ROOT_URLCONF)
    return f"{head}{int(order_id)}{tail}"


_MARKER_ID = 918273645


@functools.lru_cache(maxsize=16)
def _order_path_around_id(script_prefix: str, urlconf: str | None, root_urlconf: str) -> tuple[str, str]:
    path = reverse("api-order-detail", kwargs={"order_id": _MARKER_ID})
    head, marker, tail = path.partition(str(_MARKER_ID))
    if not marker or str(_MARKER_ID) in tail:
        raise LookupError(f"cannot template the order path {path!r}")
    return head, tail


def _with_line_fields(exc: ConcordError, lines: list[dict[str, Any]]) -> ConcordError:
    """The service names bad skus; the client wants the line (field) that holds them."""
    skus = set(exc.details.get("skus") or [])
    if not skus:
        return exc
    message = "Unknown sku." if exc.code == "unknown_sku" else exc.message
    by_line = {str(i): {"sku": [message]} for i, line in enumerate(lines) if line["sku"] in skus}
    return ConcordError(
        exc.message, code=exc.code, http_status=exc.http_status, details={**exc.details, "lines": by_line}
    )


class OrderListCreateApi(APIView):
    @extend_schema(
        operation_id="orders_list",
        summary="List your orders",
        description="Your orders, newest first, optionally filtered by status and a creation-time range "
        "(`created_gte` <= created_at < `created_lt`, ISO 8601). Cursor-paginated: follow `next`.",
        parameters=[OrderListQuery],
        responses={200: OrderPageOutput},
    )
    def get(self, request: Request) -> Response:
        query = OrderListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        limit = params["limit"]
        before_id = decode_int_cursor(_CURSOR_PREFIX, params["cursor"]) if params.get("cursor") else None
        orders = order_list_for_client(
            client_id=request.user.pk,
            status=params.get("status"),
            created_gte=params.get("created_gte"),
            created_lt=params.get("created_lt"),
            before_id=before_id,
            limit=limit + 1,
        )
        page, more = orders_with_payments(orders[:limit]), len(orders) > limit
        next_url = None
        if more:
            next_url = replace_query_param(
                request.build_absolute_uri(), "cursor", encode_cursor(_CURSOR_PREFIX, page[-1].id)
            )
        return Response({"results": OrderOutput(page, many=True).data, "next": next_url})

    @extend_schema(
        operation_id="orders_create",
        summary="Place an order",
        description="Prices and the total come from the catalog; the order starts `pending` and the "
        "checkout (reserve stock, charge, confirm) runs in the background: poll the order. "
        "Fields other than those below (e.g. `price`, `total`, `status`) are rejected.",
        request=OrderInput,
        responses={201: OrderOutput},
        examples=[
            OpenApiExample(
                "Two mugs",
                request_only=True,
                value={
                    "customer_email": "ann@example.com",
                    "currency": "EUR",
                    "payment_method": "pm_card_ok",
                    "lines": [{"sku": "MUG-1", "quantity": 2}],
                },
            )
        ],
    )
    @declares_parameters(LOCATION_PARAMETER)
    @declares_errors(400, descriptions=PLACE_ERROR_DESCRIPTIONS)
    @idempotent
    def post(self, request: Request) -> Response:
        valid = order_input_valid(request.data)  # a plainly valid body skips DRF's fields
        if valid is None:
            data = OrderInput(data=request.data)
            data.is_valid(raise_exception=True)
            valid = data.validated_data
        lines = valid["lines"]
        try:
            order = services.order_place(
                client_id=request.user.pk,
                customer_email=valid["customer_email"],
                currency=valid["currency"],
                payment_method=valid["payment_method"],
                lines=[(line["sku"], line["quantity"]) for line in lines],
                # The search read model finds an order by its key (events schema 2).
                idempotency_key=request.headers.get("Idempotency-Key"),
            )
        except ConcordError as exc:
            raise _with_line_fields(exc, lines) from exc
        # Before the commit: the worker poke published on commit carries it too.
        logs.bind(order_id=order.id)
        return Response(
            order_json(order), status=status.HTTP_201_CREATED, headers={"Location": order_location(order.id)}
        )


class OrderDetailApi(APIView):
    @extend_schema(
        operation_id="orders_retrieve",
        summary="Get one of your orders",
        parameters=[ORDER_ID_PARAMETER],
        responses={200: OrderOutput},
    )
    def get(self, request: Request, order_id: int) -> Response:
        logs.bind(order_id=order_id)
        order = order_get_for_client(client_id=request.user.pk, order_id=order_id)
        return Response(order_json(orders_with_payments([order])[0]))


class OrderCancelApi(APIView):
    @extend_schema(
        operation_id="orders_cancel",
        summary="Cancel one of your orders",
        description="A pending order is cancelled (`cancelled`, possibly after the running checkout "
        "step); a confirmed one is refunded and restocked first (`cancelling`, then `cancelled`). "
        "Cancelling a cancelled or cancelling order again returns it unchanged.",
        parameters=[ORDER_ID_PARAMETER],
        request=None,
        responses={202: OrderOutput},
    )
    @declares_errors(409, descriptions=CANCEL_ERROR_DESCRIPTIONS)
    @idempotent
    def post(self, request: Request, order_id: int) -> Response:
        logs.bind(order_id=order_id)
        # Scope first: another client's order is a 404 before anything is attempted.
        order_get_for_client(client_id=request.user.pk, order_id=order_id)
        try:
            order = services.order_request_cancel(
                order_id=order_id, by=request.user, reason="cancelled by the API client"
            )
        except Conflict as exc:
            raise Conflict(exc.message, code="order_not_cancellable", details=exc.details) from exc
        return Response(order_json(orders_with_payments([order])[0]), status=status.HTTP_202_ACCEPTED)
