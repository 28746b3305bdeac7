"""API tokens are stored as digests: a copy of the database authenticates nothing; tokens
can be rotated (with a grace period) and revoked; the admin never shows one."""

from __future__ import annotations

import hashlib
import importlib
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apitokens.models import ApiToken
from apitokens.services import token_cache, token_cache_clear

pytestmark = pytest.mark.django_db
URL = "/api/v1/products/"


def _call(*args, **kwargs) -> str:
    out = StringIO()
    call_command(*args, stdout=out, **kwargs)
    return out.getvalue().strip().splitlines()[-1]


def _status(token: str) -> int:
    return APIClient().get(URL, HTTP_AUTHORIZATION=f"Token {token}").status_code


def _database_dump() -> str:
    """Every column of every API-token and user row, as an attacker with a dump has them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(t)::text FROM apitokens_apitoken t")
        rows = [r[0] for r in cursor.fetchall()]
        cursor.execute("SELECT row_to_json(u)::text FROM auth_user u")
        rows += [r[0] for r in cursor.fetchall()]
    return "\n".join(rows)


def test_a_database_dump_holds_no_usable_token():
    token = _call("create_api_client", "shop-a")
    assert _status(token) == 200

    dump = _database_dump()
    assert token not in dump
    # What the dump does hold (the digest, the prefix) is refused as a token.
    stored = ApiToken.objects.get(user__username="shop-a")
    assert stored.digest == hashlib.sha256(token.encode()).hexdigest()
    assert _status(stored.digest) == 401
    assert _status(stored.prefix) == 401


def test_rotate_retires_the_old_token_and_prints_a_working_new_one():
    old = _call("create_api_client", "shop-a")

    new = _call("rotate_api_token", "shop-a")

    assert new != old
    assert _status(new) == 200
    assert _status(old) == 401


def test_rotate_with_grace_keeps_the_old_token_until_the_grace_ends():
    old = _call("create_api_client", "shop-a")

    new = _call("rotate_api_token", "shop-a", grace_minutes=30)

    assert _status(old) == 200 and _status(new) == 200
    ApiToken.objects.filter(digest=hashlib.sha256(old.encode()).hexdigest()).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    # Moving expires_at by hand is not how a grace ends (the clock passes it, and
    # the cached row's expires_at is checked on every request); start from the rows.
    token_cache_clear()
    assert _status(old) == 401 and _status(new) == 200


def test_a_cached_token_still_ends_with_its_grace_period(monkeypatch):
    old = _call("create_api_client", "shop-a")
    _call("rotate_api_token", "shop-a", grace_minutes=30)
    assert _status(old) == 200  # cached now, with its expires_at

    later = timezone.now() + timedelta(minutes=31)
    monkeypatch.setattr("apitokens.authentication.timezone.now", lambda: later)

    assert _status(old) == 401


def test_revoking_in_this_process_stops_the_token_at_once(settings):
    settings.API_TOKEN_CACHE_SECONDS = 3600
    token = _call("create_api_client", "shop-a")
    assert _status(token) == 200
    assert token_cache  # the next request would not look it up

    _call("revoke_api_token", "shop-a")

    assert _status(token) == 401


def test_a_token_revoked_elsewhere_stops_within_the_cache_bound(settings, monkeypatch):
    """Another process (the revoke command, another web worker) cannot clear this
    process's cache: the token keeps working for at most API_TOKEN_CACHE_SECONDS."""
    settings.API_TOKEN_CACHE_SECONDS = 5
    clock = [time.monotonic()]
    monkeypatch.setattr("apitokens.authentication.time.monotonic", lambda: clock[0])
    token = _call("create_api_client", "shop-a")
    assert _status(token) == 200  # cached at clock[0]
    ApiToken.objects.filter(user__username="shop-a").update(revoked_at=timezone.now())  # as another process

    clock[0] += 4.9
    assert _status(token) == 200  # within the bound
    clock[0] += 0.2
    assert _status(token) == 401


def test_a_cached_token_makes_no_query(settings):
    settings.API_TOKEN_CACHE_SECONDS = 5
    token = _call("create_api_client", "shop-a")

    def queries() -> list[str]:
        with CaptureQueriesContext(connection) as ctx:
            assert _status(token) == 200
        return [q["sql"] for q in ctx.captured_queries]

    first, second = queries(), queries()

    assert sum("apitokens_apitoken" in sql for sql in first) == 1
    assert not any("apitokens_apitoken" in sql for sql in second)
    assert len(second) == len(first) - 1


def test_revoke_stops_every_token_or_the_one_named_by_its_prefix():
    first = _call("create_api_client", "shop-a")
    second = _call("rotate_api_token", "shop-a", grace_minutes=60)

    _call("revoke_api_token", "shop-a", prefix=first[:8])
    assert _status(first) == 401 and _status(second) == 200

    _call("revoke_api_token", "shop-a")
    assert _status(second) == 401


@pytest.mark.parametrize("command", ["rotate_api_token", "revoke_api_token"])
def test_token_commands_refuse_unknown_clients_and_staff(command, django_user_model):
    django_user_model.objects.create_user("alice", is_staff=True)
    for name in ("nobody", "alice"):
        with pytest.raises(CommandError, match="no API client"):
            _call(command, name)


def test_revoke_with_an_unknown_prefix_fails_clearly():
    _call("create_api_client", "shop-a")
    with pytest.raises(CommandError, match="no active token"):
        _call("revoke_api_token", "shop-a", prefix="00000000")


def test_rotate_refuses_a_grace_longer_than_a_week():
    _call("create_api_client", "shop-a")
    with pytest.raises(CommandError, match="grace"):
        _call("rotate_api_token", "shop-a", grace_minutes=7 * 24 * 60 + 1)


def test_the_admin_shows_neither_the_token_nor_its_digest(admin_client):
    token = _call("create_api_client", "shop-a")
    stored = ApiToken.objects.get(user__username="shop-a")

    pages = [
        admin_client.get(reverse("admin:apitokens_apitoken_changelist")),
        admin_client.get(reverse("admin:apitokens_apitoken_change", args=[stored.pk])),
    ]

    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert stored.prefix in html
        assert token not in html and stored.digest not in html
    assert admin_client.get(reverse("admin:apitokens_apitoken_add")).status_code == 403


def test_legacy_plaintext_tokens_are_converted_to_digests_and_deleted(django_user_model):
    # given: the table DRF's authtoken app kept, with a plaintext token in it
    user = django_user_model.objects.create_user("old-shop")
    legacy_key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamptz NOT NULL, "
            "user_id integer NOT NULL UNIQUE)"
        )
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, now(), %s)", [legacy_key, user.pk])
    migration = importlib.import_module("apitokens.migrations.0002_convert_drf_tokens")

    # when
    with connection.schema_editor() as editor:
        migration.convert_legacy_tokens(apps, editor)

    # then: the client's token still works, and its plaintext is gone
    assert _status(legacy_key) == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0
    assert legacy_key not in _database_dump()
