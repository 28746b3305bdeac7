"""Staff sign-in for the back office and the admin: one flow for both.

1. Username and password (Django's LoginView). django-axes counts failures per
   username and per client address and locks either out (settings, docs/security.md).
2. A user with a confirmed TOTP device (django-otp) is not logged in yet: the user id
   waits in the session for at most PENDING_SECONDS while the code is asked for. Only a
   valid code logs in, and marks the session verified. A wrong code counts as a failed
   login for django-axes, and django-otp slows each device down after a failure.
3. With BACKOFFICE_FINANCE_OTP_REQUIRED (production's default) a finance user without
   a device is refused: finance approves large refunds, so its password alone must not
   move money. Devices are enrolled with `manage.py otp_enrol USER`.
"""

from __future__ import annotations

import time

from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, user_login_failed
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django_otp import user_has_device
from django_otp.forms import OTPTokenForm

from .roles import FINANCE

PENDING = "backoffice_otp_pending"
PENDING_SECONDS = 300


def otp_required_for(user) -> bool:
    return settings.BACKOFFICE_FINANCE_OTP_REQUIRED and user.groups.filter(name=FINANCE).exists()


class StaffLoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def form_valid(self, form: forms.Form) -> HttpResponse:
        user = form.get_user()
        if user_has_device(user):
            self.request.session[PENDING] = {"user_id": user.pk, "backend": user.backend, "at": time.time()}
            verify = reverse("backoffice:login-verify")
            return redirect(f"{verify}?{urlencode({'next': self.get_redirect_url()})}")
        if otp_required_for(user):
            form.add_error(
                None,
                "Finance accounts sign in with an authenticator code, and this account has none enrolled: "
                "ask an administrator to enrol one (manage.py otp_enrol USERNAME).",
            )
            return self.form_invalid(form)
        return super().form_valid(form)


class _CodeForm(OTPTokenForm):
    otp_error_messages = {
        **OTPTokenForm.otp_error_messages,
        "invalid_token": "That code is not valid. Enter the current code from your authenticator app.",
    }


def login_verify(request: HttpRequest) -> HttpResponse:
    pending = request.session.get(PENDING)
    if not pending or time.time() - pending["at"] > PENDING_SECONDS:
        request.session.pop(PENDING, None)
        messages.error(request, "Log in again: the code was not entered in time.")
        return redirect("backoffice:login")
    user = get_user_model().objects.get(pk=pending["user_id"])
    credentials = {"username": user.get_username()}
    if not AxesProxyHandler.is_allowed(request, credentials):
        request.session.pop(PENDING, None)
        return render(request, settings.AXES_LOCKOUT_TEMPLATE, status=settings.AXES_HTTP_RESPONSE_CODE)
    form = _CodeForm(user, request, data=request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            del request.session[PENDING]
            user.backend = pending["backend"]
            auth_login(request, user)  # django-otp's login signal marks the session verified
            return redirect(_safe_next(request))
        user_login_failed.send(sender=__name__, credentials=credentials, request=request)
        if not AxesProxyHandler.is_allowed(request, credentials):
            request.session.pop(PENDING, None)
            return render(request, settings.AXES_LOCKOUT_TEMPLATE, status=settings.AXES_HTTP_RESPONSE_CODE)
    return render(request, "registration/login_verify.html", {"form": form, "next": _safe_next(request)})


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return settings.LOGIN_REDIRECT_URL
