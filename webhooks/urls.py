"""webhooks' API paths, relative to /api/v1/ (config/api_urls.py)."""

from django.urls import path

from orders.urls import OrderIdConverter  # noqa: F401 - registers the 18-digit id converter

from .api import EndpointDetailApi, EndpointListCreateApi, EventListApi

urlpatterns = [
    path("webhook-endpoints/", EndpointListCreateApi.as_view(), name="api-webhook-endpoints"),
    path(
        "webhook-endpoints/<order_id:endpoint_id>/",
        EndpointDetailApi.as_view(),
        name="api-webhook-endpoint-detail",
    ),
    path("events/", EventListApi.as_view(), name="api-events"),
]
