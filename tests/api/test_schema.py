"""OpenAPI 3 schema at /api/v1/schema/ and the docs page at /api/v1/docs/ (no CDN)."""

import json

import pytest
from django.contrib.staticfiles import finders
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db


def test_schema_endpoint_serves_valid_openapi_3(client):
    response = client.get("/api/v1/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)  # raises on an invalid document


def test_schema_is_public_even_with_a_bad_token(client):
    response = client.get("/api/v1/schema/", headers={"Authorization": "Token bad"})

    assert response.status_code == 200


def test_docs_page_serves_swagger_ui_from_local_static_files(client):
    response = client.get("/api/v1/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


def _generate(urlconf):
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator(urlconf=urlconf).get_schema(request=None, public=True)
    problems = bool(GENERATOR_STATS)
    GENERATOR_STATS.reset()
    return json.loads(json.dumps(schema)), problems


def test_idempotent_endpoint_documents_header_and_errors():
    schema, problems = _generate("tests.idempotency.urls")
    assert not problems, "drf-spectacular reported warnings or errors"
    validate_schema(schema)
    operation = schema["paths"]["/api/v1/test/groups/"]["post"]

    header = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header"
    assert header["required"] is True
    responses = operation["responses"]
    for code in ("400", "401", "409", "413", "415", "422", "429"):
        assert responses[code]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorEnvelope"
        }, code
    assert "idempotency_key_reused" in responses["422"]["description"]
    assert "idempotency_key_in_use" in responses["409"]["description"]
    assert "Retry-After" in responses["429"]["headers"]
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "Idempotent-Replayed" in responses["201"]["headers"]
    assert responses["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GroupOutput"
    }
    envelope = schema["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    # Path parameters bring a documented 404; GET without body/query gets no 400.
    rename = schema["paths"]["/api/v1/test/groups/{id}/rename/"]["post"]
    assert {"404", "409", "422"} <= set(rename["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in rename["parameters"])
    count = schema["paths"]["/api/v1/test/groups/count/"]["get"]["responses"]
    assert "400" not in count and "401" in count


def test_idempotent_viewset_action_is_documented_whatever_the_decorator_order():
    schema, problems = _generate("tests.idempotency.urls")

    assert not problems
    operation = schema["paths"]["/api/v1/test/vs/groups/{id}/rename/"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in operation["parameters"])
    assert "Idempotent-Replayed" in operation["responses"]["202"]["headers"]
    assert {"400", "401", "404", "409", "422", "429"} <= set(operation["responses"])


def test_declared_errors_are_documented_and_generation_is_clean():
    schema, problems = _generate("tests.api.urls")

    assert not problems, "drf-spectacular reported warnings or errors"
    validate_schema(schema)
    conflict = schema["paths"]["/api/v1/test/conflict/"]["post"]["responses"]
    assert {"202", "401", "409", "429"} <= set(conflict)
    assert "Idempotency-Key" not in json.dumps(schema["paths"]["/api/v1/test/echo/"])
    assert "conflicts" in conflict["409"]["description"]
