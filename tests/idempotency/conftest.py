import itertools

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.test import APIClient

from apitokens.services import api_token_issue

_names = itertools.count(1)


def make_client(username: str | None = None) -> APIClient:
    user = User.objects.create_user(username or f"client{next(_names)}")
    token = api_token_issue(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    client.user = user
    client.token = token
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
