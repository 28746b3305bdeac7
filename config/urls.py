from django.contrib import admin
from django.urls import include, path, re_path

from backoffice.auth_views import StaffLoginView
from core import api, health
from monitoring import views as monitoring_views

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", monitoring_views.metrics, name="metrics"),
    # The admin signs in through the back office's flow (lockout, TOTP), not its own form.
    path("admin/login/", StaffLoginView.as_view(), name="admin-login"),
    path("admin/", admin.site.urls),
    path("backoffice/", include("backoffice.urls")),
    path("api/v1/", include("config.api_urls")),
    # Last under /api/: anything unknown is a 404 in the error envelope, whatever DEBUG says.
    re_path(r"^api/", api.api_not_found, name="api-not-found"),
]

handler400 = "core.api.handler400"
handler403 = "core.api.handler403"
handler404 = "core.api.handler404"
handler500 = "core.api.handler500"
