"""Who may open which page. Roles are the groups of backoffice/roles.py; a superuser
is every role. Actions are checked again by the services (Django permissions)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from .roles import FINANCE, SUPPORT


def user_roles(user: Any) -> frozenset[str]:
    """The user's staff roles, one query, cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_backoffice_roles", None)
    if cached is None:
        if user.is_superuser:
            cached = frozenset({SUPPORT, FINANCE, "superuser"})
        elif not user.is_staff:
            cached = frozenset()
        else:
            cached = frozenset(user.groups.filter(name__in=(SUPPORT, FINANCE)).values_list("name", flat=True))
        user._backoffice_roles = cached
    return cached


def is_support(user: Any) -> bool:
    return SUPPORT in user_roles(user)


def is_finance(user: Any) -> bool:
    return FINANCE in user_roles(user)


def role_required(*roles: str) -> Callable:
    """Anonymous -> login page; logged in without one of `roles` -> 403."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_roles(request.user) & set(roles):
                raise PermissionDenied("Your role may not open this page.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


staff_required = role_required(SUPPORT, FINANCE)
support_required = role_required(SUPPORT)
finance_required = role_required(FINANCE)
