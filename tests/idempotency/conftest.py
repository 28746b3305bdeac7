import itertools

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

_names = itertools.count(1)


def make_client(username: str | None = None) -> APIClient:
    user = User.objects.create_user(username or f"client{next(_names)}")
    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    client.user = user
    return client


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_client(db):
    return make_client()


@pytest.fixture
def client_factory(db):
    return make_client


def post(client, url, body, key, **extra):
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(url, body, format="json", headers=headers, **extra)
