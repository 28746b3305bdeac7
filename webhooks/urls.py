"""webhooks' API paths, relative to /api/v1/ (config/api_urls.py)."""

from django.urls import path, register_converter

from core.url_converters import BigIntIdConverter

from .api import EndpointDetailApi, EndpointListCreateApi, EventListApi

register_converter(BigIntIdConverter, "id18")

urlpatterns = [
    path("webhook-endpoints/", EndpointListCreateApi.as_view(), name="api-webhook-endpoints"),
    path(
        "webhook-endpoints/<id18:endpoint_id>/",
        EndpointDetailApi.as_view(),
        name="api-webhook-endpoint-detail",
    ),
    path("events/", EventListApi.as_view(), name="api-events"),
]
