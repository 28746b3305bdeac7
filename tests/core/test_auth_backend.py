"""core.auth_backend.PermissionsBackend gives every user exactly ModelBackend's
permissions (own, through groups, a superuser's, an inactive user's) in one statement."""

from __future__ import annotations

import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.auth_backend import PermissionsBackend

pytestmark = pytest.mark.django_db


def _fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)  # no permission cache


def test_the_permissions_are_model_backends_in_one_statement():
    perms = list(Permission.objects.order_by("id")[:6])
    staff = Group.objects.create(name="g1")
    other = Group.objects.create(name="g2")
    staff.permissions.add(perms[0], perms[1])
    other.permissions.add(perms[1], perms[2])  # the same permission through two groups
    user = User.objects.create_user("p1", password="x")
    user.groups.add(staff, other)
    user.user_permissions.add(perms[3], perms[0])
    nobody = User.objects.create_user("p2", password="x")
    boss = User.objects.create_superuser("p3", password="x")
    gone = User.objects.create_user("p4", password="x", is_active=False)
    gone.user_permissions.add(perms[4])

    for someone in (user, nobody, boss, gone):
        expected = ModelBackend().get_all_permissions(_fresh(someone))
        fresh = _fresh(someone)
        with CaptureQueriesContext(connection) as ctx:
            got = PermissionsBackend().get_all_permissions(fresh)
            again = PermissionsBackend().get_all_permissions(fresh)  # kept on the user
        assert got == again == expected, someone.username
        if someone is user:
            assert len(expected) == 4 and len(ctx.captured_queries) == 1
    codename = perms[2]
    assert _fresh(user).has_perm(f"{codename.content_type.app_label}.{codename.codename}")
    assert not _fresh(nobody).has_perm(f"{codename.content_type.app_label}.{codename.codename}")
