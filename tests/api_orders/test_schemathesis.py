"""Property-based run of the published OpenAPI schema (schemathesis) against the
app served by a live server: zero server errors, and every answer is one the
schema documents (status, content type, body shape, headers).

Bounded: a fixed number of examples per operation, derandomized, so the run is
reproducible and stays well under a minute. 4xx answers (validation, unknown
sku, 401 with a garbage token, 409/422 from colliding Idempotency-Keys, 429) are
fine as long as they are documented; a 5xx is never fine.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api_orders.conftest import make_client
from tests.inventory.factories import ProductFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

# Per operation and mode (valid data, and data the schema says is invalid).
EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def _operations():
    spec = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(spec)
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith("/api/v1/") and operation.path not in (
            "/api/v1/schema/",
            "/api/v1/docs/",
        ):
            yield operation


def _fuzz(operation, mode, *, base_url: str, headers: dict[str, str]) -> list[int]:
    statuses: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call(base_url=base_url, headers=headers)
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()
    return statuses


def test_every_operation_answers_as_documented_and_never_5xx(live_server):
    ProductFactory(sku="MUG-1", price=Decimal("12.50"), on_hand=10_000)
    client = make_client()
    auth = {"Authorization": f"Token {client.token}"}
    operations = list(_operations())
    assert {op.label for op in operations} >= {
        "GET /api/v1/products/",
        "GET /api/v1/orders/",
        "POST /api/v1/orders/",
        "GET /api/v1/orders/{order_id}/",
        "POST /api/v1/orders/{order_id}/cancel/",
        "POST /api/v1/webhooks/psp/",
    }
    calls: dict[str, list[int]] = {}

    for operation, mode in itertools.product(operations, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
        statuses = _fuzz(operation, mode, base_url=live_server.url, headers=auth)
        if mode == GenerationMode.POSITIVE:
            calls[operation.label] = statuses

    # The run reached the success paths, not only the validation errors.
    assert 201 in calls["POST /api/v1/orders/"], calls["POST /api/v1/orders/"]
    assert 200 in calls["GET /api/v1/orders/"]
    assert 200 in calls["GET /api/v1/products/"]
