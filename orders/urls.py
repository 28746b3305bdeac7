"""orders' API paths, relative to /api/v1/ (config/api_urls.py)."""

from django.urls import path, register_converter

from .api import OrderCancelApi, OrderDetailApi, OrderListCreateApi


class OrderIdConverter:
    """At most 18 digits: always inside PostgreSQL's bigint, so an absurd id is
    the catch-all's 404, never an out-of-range database error."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(OrderIdConverter, "order_id")

urlpatterns = [
    path("orders/", OrderListCreateApi.as_view(), name="api-orders"),
    path("orders/<order_id:order_id>/", OrderDetailApi.as_view(), name="api-order-detail"),
    path("orders/<order_id:order_id>/cancel/", OrderCancelApi.as_view(), name="api-order-cancel"),
]
