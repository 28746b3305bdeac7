"""payments' API paths, relative to /api/v1/ (config/api_urls.py)."""

from django.urls import path

from .webhooks import ProviderWebhookApi

urlpatterns = [
    path("webhooks/psp/", ProviderWebhookApi.as_view(), name="api-webhooks-psp"),
]
