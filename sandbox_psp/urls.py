from django.urls import re_path

from . import views

# Trailing slashes optional: clients written for either style work.
urlpatterns = [
    re_path(r"^healthz/?$", views.healthz),
    re_path(r"^v1/charges/?$", views.charges),
    re_path(r"^v1/charges/(?P<charge_id>[^/]{1,255})/?$", views.charge_detail),
    re_path(r"^v1/refunds/?$", views.refunds),
    re_path(r"^v1/refunds/(?P<refund_id>[^/]{1,255})/?$", views.refund_detail),
    re_path(r"^v1/settlements/?$", views.settlements),
    re_path(r"^_sandbox/faults/?$", views.sandbox_faults),
    re_path(r"^_sandbox/reset/?$", views.sandbox_reset),
    re_path(r"^_sandbox/config/?$", views.sandbox_config),
    re_path(r"^_sandbox/webhooks/?$", views.sandbox_webhooks),
]

handler404 = "sandbox_psp.views.not_found"
handler500 = "sandbox_psp.views.server_error"
