"""The error envelope, the sandbox's own copy of Concord's contract (DESIGN §5):
{"error": {"code", "message", "details"}}."""

import json

from django.http import HttpResponse


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> HttpResponse:
    return text_response(status, json.dumps(body), headers)


def text_response(status: int, text: str, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(text, status=status, content_type="application/json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error_response(
    status: int, code: str, message: str, details: dict | None = None, headers: dict[str, str] | None = None
) -> HttpResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return json_response(status, body, headers)


def api_error_response(error: ApiError) -> HttpResponse:
    return error_response(error.status, error.code, error.message, error.details)
