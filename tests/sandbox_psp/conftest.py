"""Helpers for talking to the sandbox over raw HTTP (the `psp` fixture is shared,
see tests/fixtures/psp.py)."""

import itertools

import pytest

_keys = itertools.count()


def charge_body(**overrides) -> dict:
    return {
        "amount": 2500,
        "currency": "EUR",
        "payment_method": "pm_card_ok",
        "reference": "order-1",
        **overrides,
    }


def new_key(prefix: str = "key") -> str:
    return f"{prefix}-{next(_keys)}"


@pytest.fixture
def post(psp):
    """post(path, body, key=...) -> httpx.Response, with a fresh Idempotency-Key unless given."""

    def _post(path: str, body: dict, key: str | None = None):
        return psp.request("POST", path, json=body, headers={"Idempotency-Key": key or new_key()})

    return _post


@pytest.fixture
def charge(post):
    """charge(**fields) -> the created charge object (asserting 200)."""

    def _charge(**overrides) -> dict:
        response = post("/v1/charges", charge_body(**overrides))
        assert response.status_code == 200, response.text
        return response.json()

    return _charge
