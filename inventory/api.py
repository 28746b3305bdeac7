"""GET /api/v1/products/: the catalog as API clients see it (DESIGN §5).

Keyset ("cursor") pagination by sku: the cursor is an opaque token naming the
last sku of the page, so pages stay stable while products are added, and each
page is one indexed query whatever its position.
"""

from __future__ import annotations

import base64
import binascii

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from core.money import format_amount

from .selectors import product_list

PAGE_SIZE_DEFAULT = 50
# One more row than the page is read to know whether a next page exists;
# the selector allows 200, so pages stop at 100.
PAGE_SIZE_MAX = 100
_CURSOR_PREFIX = "sku:"


def encode_cursor(sku: str) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{sku}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> str:
    """The sku a cursor points after; a token we did not make is a 400, not a 500."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith(_CURSOR_PREFIX) or len(raw) == len(_CURSOR_PREFIX) or "\x00" in raw:
        raise serializers.ValidationError({"cursor": ["Not a cursor from this API."]})
    return raw[len(_CURSOR_PREFIX) :]


class ProductListQuery(serializers.Serializer):
    cursor = serializers.CharField(required=False, max_length=512)
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=PAGE_SIZE_MAX, default=PAGE_SIZE_DEFAULT
    )


class ProductOutput(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    price = serializers.CharField(help_text='Decimal string in the currency, e.g. "12.50".')
    currency = serializers.CharField(help_text="ISO 4217 code.")
    available = serializers.IntegerField(help_text="On hand minus reserved, at the time of reading.")


class ProductPageOutput(serializers.Serializer):
    results = ProductOutput(many=True)
    next = serializers.URLField(allow_null=True, help_text="URL of the next page; null on the last page.")


class ProductListApi(APIView):
    @extend_schema(
        operation_id="products_list",
        summary="List the catalog",
        description="Active products ordered by sku, with prices (decimal strings) and availability.",
        parameters=[
            OpenApiParameter(
                "cursor", OpenApiTypes.STR, description="The `next` link's cursor; omit for the first page."
            ),
            OpenApiParameter(
                "limit",
                OpenApiTypes.INT,
                description=f"Page size, 1-{PAGE_SIZE_MAX} (default {PAGE_SIZE_DEFAULT}).",
            ),
        ],
        responses={200: ProductPageOutput},
    )
    def get(self, request: Request) -> Response:
        query = ProductListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit = query.validated_data["limit"]
        cursor = query.validated_data.get("cursor")
        after_sku = decode_cursor(cursor) if cursor else None

        products = product_list(after_sku=after_sku, limit=limit + 1)
        page, more = products[:limit], len(products) > limit
        next_url = None
        if more:
            next_url = replace_query_param(
                request.build_absolute_uri(), "cursor", encode_cursor(page[-1].sku)
            )
        return Response(
            {
                "results": [
                    {
                        "sku": p.sku,
                        "name": p.name,
                        "price": format_amount(p.price, p.currency),
                        "currency": p.currency,
                        "available": p.available,
                    }
                    for p in page
                ],
                "next": next_url,
            }
        )
