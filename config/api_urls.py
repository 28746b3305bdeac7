"""The /api/v1/ router (mounted by config/urls.py).

An app that serves API endpoints has a urls module with paths relative to
/api/v1/ (e.g. `path("orders/", ...)`) and adds one line to API_URL_MODULES.
Unknown paths under /api/ end at the catch-all in config/urls.py (404 envelope).
"""

from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

# One entry per app, e.g. "orders.urls". Order matters only if two apps claim a path.
API_URL_MODULES: list[str] = ["inventory.urls", "orders.urls", "payments.urls", "webhooks.urls"]

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script from a URL (no inline script under
    # the CSP); its page and Swagger UI itself still write inline styles: allowed here only.
    path(
        "docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema")
        ),
        name="api-docs",
    ),
    *(path("", include(module)) for module in API_URL_MODULES),
]
