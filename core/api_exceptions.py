"""API exceptions of the plumbing itself (kept apart from core.api, which imports
rest_framework.views, so that parser/throttle modules named in REST_FRAMEWORK can
import them without a cycle)."""

from rest_framework import exceptions, status


class RequestTooLarge(exceptions.APIException):
    """The request body is over settings.API_MAX_BODY_BYTES (see core.api_parsers)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"
