"""`@idempotent`: the Idempotency-Key protocol (DESIGN §4) for DRF view methods.

    class OrderCreateApi(APIView):
        @idempotent
        def post(self, request):
            ...  # validate, call the service, return Response(..., status=201)

The method's work and the idempotency record share one transaction (see
idempotency.services): one commit per accepted request, never a second effect.

What is stored (and replayed with `Idempotent-Replayed: true`): any response
below 500 except those in NOT_STORED_STATUSES. A response that is not stored is
rolled back with everything the method did, so the client may retry with the
same key. An exception the API maps to a stored status (e.g. 404, 422) is
stored after the method's writes were rolled back to a savepoint; an
unexpected exception (500) rolls back everything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from core.api_schema import declares_errors, declares_parameters
from idempotency.services import (
    HEADER,
    MAX_KEY_LENGTH,
    IdempotencyClaim,
    StoredResponse,
    idempotency_begin,
    idempotency_complete,
    idempotency_key_validate,
    request_fingerprint,
)

REPLAYED_HEADER = "Idempotent-Replayed"
# 400: validation (the client fixes the body and reuses the key, DESIGN §4).
# 401/403: credentials and permissions can change. 408/409/429: "try again later".
NOT_STORED_STATUSES = frozenset({400, 401, 403, 408, 409, 429})
# Response headers worth replaying; the rest (Date, Vary, Allow, ...) are set anew.
STORED_HEADERS = ("Content-Type", "Location")

IDEMPOTENCY_ERROR_DESCRIPTIONS = {
    400: "Invalid request: malformed JSON (`malformed_request`), a field that fails validation "
    "(`validation_error`; `details` names the field), or a missing or malformed Idempotency-Key "
    "(`idempotency_key_required`, `idempotency_key_invalid`). Not stored: fix and reuse the key.",
    409: "A request with this Idempotency-Key is still in progress (`idempotency_key_in_use`), "
    "or the request conflicts with the current state (`conflict`). Not stored: retry later.",
    422: "This Idempotency-Key was already used for a different request "
    "(`idempotency_key_reused`; method, path or body differ).",
}

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name=HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=True,
    description=(
        f"Client-chosen key, 1-{MAX_KEY_LENGTH} printable ASCII characters, unique per request "
        "you mean to make once (e.g. a UUID). Retrying with the same key and the same request "
        "replays the first response; the same key with another request is 422. "
        "Kept at least 24 hours."
    ),
)
IDEMPOTENT_REPLAYED_PARAMETER = OpenApiParameter(
    name=REPLAYED_HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    response=True,
    required=False,
    enum=["true"],
    description="Present (`true`) when this is the stored response of an earlier request with the same key.",
)


def is_storable(status: int) -> bool:
    return status < 500 and status not in NOT_STORED_STATUSES


def replay_response(stored: StoredResponse) -> HttpResponse:
    response = HttpResponse(content=stored.body, status=stored.status)
    for name, value in stored.headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _client_id(request: Request) -> int:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        # Keys are scoped per client: without a client there is no scope.
        raise NotAuthenticated()
    return int(user.pk)


def _run_in_savepoint(view: Any, handler: Callable[..., Any], request: Request, args, kwargs) -> Any:
    try:
        with transaction.atomic():
            return handler(view, request, *args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - handle_exception re-raises what the API does not map
        # The savepoint is rolled back: whatever the method wrote is gone, and the
        # mapped error response may be stored as this key's answer.
        return view.handle_exception(exc)


def _render(view: Any, request: Request, response: HttpResponseBase, args, kwargs) -> HttpResponseBase:
    if isinstance(response, StreamingHttpResponse):
        raise TypeError("An @idempotent view must not stream: its response is stored.")
    response = view.finalize_response(request, response, *args, **kwargs)
    if hasattr(response, "render"):
        response.render()
    return response


def idempotent(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a DRF view method (post/put/patch/delete, or a ViewSet action with
    `@action(...)` above it). Needs an authenticated client. Documents the header,
    the replay header and the 400/409/422 responses in the OpenAPI schema."""

    @functools.wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        key = idempotency_key_validate(request.headers.get(HEADER))
        client_id = _client_id(request)
        # Parsing happens here, outside the transaction: a malformed or oversized
        # body is a 400/413 that stores nothing.
        fingerprint = request_fingerprint(method=request.method, path=request.path, body=request.data)
        with transaction.atomic():
            claim: IdempotencyClaim = idempotency_begin(
                client_id=client_id,
                key=key,
                fingerprint=fingerprint,
                method=request.method,
                path=request.path,
            )
            if claim.replay is not None:
                return replay_response(claim.replay)
            response = _run_in_savepoint(view, handler, request, args, kwargs)
            if not is_storable(response.status_code):
                # Nothing stored, so nothing may stay: the claim and any effect go.
                transaction.set_rollback(True)
                return response
            response = _render(view, request, response, args, kwargs)
            idempotency_complete(
                record_id=claim.record_id,
                status=response.status_code,
                body=response.content,
                headers={name: response[name] for name in STORED_HEADERS if response.has_header(name)},
            )
        return response

    wrapper = declares_errors(400, 409, 422, descriptions=IDEMPOTENCY_ERROR_DESCRIPTIONS)(wrapper)
    return declares_parameters(IDEMPOTENCY_KEY_PARAMETER, IDEMPOTENT_REPLAYED_PARAMETER)(wrapper)
