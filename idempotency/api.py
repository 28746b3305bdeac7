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
same key. An exception the API maps to a stored status (e.g. 404, 422) rolls
back the whole transaction (the method's writes and the claim), and the error
response is then stored under the key in a second, short transaction; an
unexpected exception (500) rolls back everything.

Why no savepoint around the method: on the common path (success) it would
cost two round trips (SAVEPOINT, RELEASE) per request for nothing, and an error
path can afford a second transaction. Between the two transactions another
request with the same key may claim it; then that request's response is the
key's answer and this one replays it.

Every request through the wrapper is counted by result in /metrics
(`concord_idempotency_requests_total`: first, replayed, not_stored and the key
errors), and its key is bound as `idempotency_key` for the request's log lines.
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

from core import logs, metrics
from core.api_schema import declares_errors, declares_parameters
from core.errors import ConcordError
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


def _render(view: Any, request: Request, response: HttpResponseBase, args, kwargs) -> HttpResponseBase:
    if isinstance(response, StreamingHttpResponse):
        raise TypeError("An @idempotent view must not stream: its response is stored.")
    response = view.finalize_response(request, response, *args, **kwargs)
    if hasattr(response, "render"):
        response.render()
    return response


def _store(claim: IdempotencyClaim, response: HttpResponseBase) -> None:
    idempotency_complete(
        record_id=claim.record_id,
        status=response.status_code,
        body=response.content,
        headers={name: response[name] for name in STORED_HEADERS if response.has_header(name)},
    )


# The protocol's own refusals, as metric results (idempotency/errors.py codes).
_KEY_ERRORS = {
    "idempotency_key_required": "key_required",
    "idempotency_key_invalid": "key_invalid",
    "idempotency_key_reused": "key_reused",
    "idempotency_key_in_use": "key_in_use",
}


def _replayed(stored: StoredResponse) -> HttpResponse:
    metrics.idempotency_request(result="replayed")
    return replay_response(stored)


def idempotent(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a DRF view method (post/put/patch/delete, or a ViewSet action with
    `@action(...)` above it). Needs an authenticated client. Documents the header,
    the replay header and the 400/409/422 responses in the OpenAPI schema."""

    @functools.wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return _run(view, request, *args, **kwargs)
        except ConcordError as exc:
            if exc.code in _KEY_ERRORS:
                metrics.idempotency_request(result=_KEY_ERRORS[exc.code])
            raise

    def _run(view: Any, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        key = idempotency_key_validate(request.headers.get(HEADER))
        logs.bind(idempotency_key=key)
        client_id = _client_id(request)
        logs.bind(client_id=client_id)
        # Parsing happens here, outside the transaction: a malformed or oversized
        # body is a 400/413 that stores nothing.
        fingerprint = request_fingerprint(method=request.method, path=request.path, body=request.data)
        claim_key = functools.partial(
            idempotency_begin,
            client_id=client_id,
            key=key,
            fingerprint=fingerprint,
            method=request.method,
            path=request.path,
        )
        with transaction.atomic():
            claim: IdempotencyClaim = claim_key()
            if claim.replay is not None:
                return _replayed(claim.replay)
            try:
                response = handler(view, request, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - handle_exception re-raises what the API does not map
                # Re-raised (500): the atomic block rolls everything back.
                response = view.handle_exception(exc)
                # Mapped: whatever the method wrote goes, and with it the claim
                # (see the module docstring); a storable error is stored below.
                transaction.set_rollback(True)
                if not is_storable(response.status_code):
                    metrics.idempotency_request(result="not_stored")
                    return response
            else:
                if not is_storable(response.status_code):
                    # Nothing stored, so nothing may stay: the claim and any effect go.
                    transaction.set_rollback(True)
                    metrics.idempotency_request(result="not_stored")
                    return response
                response = _render(view, request, response, args, kwargs)
                _store(claim, response)
                metrics.on_commit(metrics.idempotency_request, result="first")
                return response
        response = _render(view, request, response, args, kwargs)
        with transaction.atomic():
            claim = claim_key()
            if claim.replay is not None:
                return _replayed(claim.replay)
            _store(claim, response)
            metrics.on_commit(metrics.idempotency_request, result="first")
        return response

    wrapper = declares_errors(400, 409, 422, descriptions=IDEMPOTENCY_ERROR_DESCRIPTIONS)(wrapper)
    return declares_parameters(IDEMPOTENCY_KEY_PARAMETER, IDEMPOTENT_REPLAYED_PARAMETER)(wrapper)
