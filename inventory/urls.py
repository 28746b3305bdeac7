"""inventory's API paths, relative to /api/v1/ (config/api_urls.py)."""

from django.urls import path

from .api import ProductListApi

urlpatterns = [
    path("products/", ProductListApi.as_view(), name="api-products"),
]
