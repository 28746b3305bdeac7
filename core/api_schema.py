"""OpenAPI helpers: the error envelope as a component, and error responses that
every operation documents without each view repeating them.

`ConcordAutoSchema` (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) adds, for each
operation, the envelope responses that the plumbing can produce: 401 where a
token is required, 400/413/415 where a body is parsed, 404 where the path has
parameters, 429 where the view is throttled, and any status a view method
declared with `@declares_errors(...)` (idempotency.api.idempotent declares 409
and 422). Responses a view declares itself (`@extend_schema(responses=...)`) win.
Parameters declared with `@declares_parameters(...)` are added too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.viewsets import ViewSetMixin

F = TypeVar("F", bound=Callable[..., Any])

ERROR_STATUSES_ATTR = "concord_error_statuses"
PARAMETERS_ATTR = "concord_parameters"

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid request: malformed JSON (`malformed_request`) or a field that fails "
    "validation (`validation_error`; `details` names the field).",
    401: "No token, or an unknown token (`not_authenticated`, `authentication_failed`).",
    403: "The client may not do this (`permission_denied`).",
    404: "No such object, or it belongs to another client (`not_found`).",
    409: "The request conflicts with the current state (`conflict`).",
    413: "The request body is over the size limit (`request_too_large`).",
    415: "The body is not `application/json` (`unsupported_media_type`).",
    422: "The request is well-formed but cannot be processed.",
    429: "Too many requests from this client (`throttled`); retry after `Retry-After` seconds.",
}


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable error code.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    details = serializers.DictField(
        child=serializers.JSONField(),
        help_text="Extra facts; for validation errors, the failing fields and their messages.",
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    """{"error": {"code", "message", "details"}}: the body of every error response."""

    error = ErrorSerializer()


def error_response(http_status: int, description: str | None = None) -> OpenApiResponse:
    """For `@extend_schema(responses={..., 409: error_response(409)})`."""
    return OpenApiResponse(
        response=ErrorEnvelopeSerializer,
        description=description or ERROR_DESCRIPTIONS.get(http_status, "Error."),
    )


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    return {code: error_response(code) for code in statuses}


def declares_errors(*statuses: int, descriptions: dict[int, str] | None = None) -> Callable[[F], F]:
    """Mark a view method as able to answer these error statuses, documented by
    ConcordAutoSchema with the envelope, e.g. `@declares_errors(409)` on cancel.
    `descriptions` replaces the generic text for a status (say which codes occur)."""

    def decorate(func: F) -> F:
        declared = dict(getattr(func, ERROR_STATUSES_ATTR, {}))
        for http_status in statuses:
            declared.setdefault(http_status, None)
        declared.update(descriptions or {})
        setattr(func, ERROR_STATUSES_ATTR, declared)
        return func

    return decorate


def declares_parameters(*parameters: OpenApiParameter) -> Callable[[F], F]:
    """Attach OpenAPI parameters (request headers, or response headers with
    `response=True`) to a view method. Unlike @extend_schema this survives DRF's
    @action, which replaces the method's `kwargs` where extend_schema keeps its schema."""

    def decorate(func: F) -> F:
        setattr(func, PARAMETERS_ATTR, [*getattr(func, PARAMETERS_ATTR, []), *parameters])
        return func

    return decorate


_BODY_METHODS = {"POST", "PUT", "PATCH"}


class ConcordAutoSchema(AutoSchema):
    def _view_handler(self) -> Any:
        if isinstance(self.view, ViewSetMixin):
            return getattr(self.view, self.view.action, None)
        return getattr(self.view, self.method.lower(), None)

    def get_override_parameters(self) -> list[Any]:
        declared = getattr(self._view_handler(), PARAMETERS_ATTR, [])
        return [*super().get_override_parameters(), *declared]

    def _error_statuses(self, operation: dict[str, Any]) -> dict[int, str]:
        """Status -> description of the envelope responses this operation can give."""
        statuses: list[int] = []
        security = operation.get("security")
        if security and {} not in security:
            statuses.append(401)
        if self.method in _BODY_METHODS:
            statuses += [400, 413, 415]
        elif any(p.get("in") == "query" for p in operation.get("parameters", [])):
            statuses.append(400)
        if "{" in self.path:
            statuses.append(404)
        if self.view.get_throttles():
            statuses.append(429)
        result = {code: ERROR_DESCRIPTIONS.get(code, "Error.") for code in statuses}
        declared = getattr(self._view_handler(), ERROR_STATUSES_ATTR, {})
        for code, description in declared.items():
            result[code] = description or result.get(code) or ERROR_DESCRIPTIONS.get(code, "Error.")
        return dict(sorted(result.items()))

    def get_operation(self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any) -> Any:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        envelope_ref = self.resolve_serializer(ErrorEnvelopeSerializer, "response").ref
        responses = operation.setdefault("responses", {})
        media_types = self.map_renderers("media_type") or ["application/json"]
        for http_status, description in self._error_statuses(operation).items():
            if str(http_status) in responses:
                continue
            response: dict[str, Any] = {
                "description": description,
                "content": {media_type: {"schema": envelope_ref} for media_type in media_types},
            }
            if http_status == 401:
                response["headers"] = {
                    "WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Token`"}
                }
            if http_status == 429:
                response["headers"] = {
                    "Retry-After": {
                        "schema": {"type": "integer"},
                        "description": "Seconds to wait before retrying.",
                    }
                }
            responses[str(http_status)] = response
        return operation
