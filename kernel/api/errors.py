"""The one JSON shape every error response has, and the one place domain errors become HTTP statuses.

Every 4xx/5xx body is ``{"error_code", "message", "request_id", "errors": [{"field", "message"}]}``: Gofer v0's
``{error_code, message, request_id}`` plus the list of fields at fault. ``message`` always names the field, so a
client that only prints ``message`` still tells the user what to fix.

Service functions raise the domain errors of kernel/errors.py; views never build error responses themselves.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from kernel.errors import (
    Conflict,
    FieldError,
    Forbidden,
    GoferError,
    Gone,
    LengthRequired,
    NotFound,
    QuotaExceeded,
    QuotaExceededForNow,
    TooLarge,
    TooMany,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)

logger = logging.getLogger(__name__)


# The one table from domain errors to HTTP statuses. Looked up along the error's class hierarchy, so a subclass
# (an app's own NotFound) answers like its base unless it is listed itself.
STATUS_OF: dict[type[GoferError], int] = {
    ValidationFailed: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    LengthRequired: 411,
    TooLarge: 413,
    TooMany: 429,
    # Before Forbidden in its MRO: a quota that frees up with time is a 429, the others 403 (QuotaExceeded).
    QuotaExceededForNow: 429,
    QuotaExceeded: 403,
    Unavailable: 503,
    GoferError: 400,
}


def status_of(error: GoferError) -> int:
    """The HTTP status of a domain error: the entry of the nearest class in its hierarchy."""
    for klass in type(error).__mro__:
        if klass in STATUS_OF:
            return STATUS_OF[klass]
    return 400


def request_id_of(request: Any) -> str:
    return getattr(request, "request_id", "") or getattr(getattr(request, "_request", None), "request_id", "")


def error_body(request: Any, code: str, message: str, errors: list[FieldError] | None = None) -> dict[str, Any]:
    return {
        "error_code": code,
        "message": message,
        "request_id": request_id_of(request),
        "errors": [e.as_dict() for e in errors or []],
    }


def _flatten_drf_detail(detail: Any, prefix: str = "") -> list[FieldError]:
    """Turn DRF's nested error detail into a flat list of dotted field paths."""
    out: list[FieldError] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            out.extend(_flatten_drf_detail(value, path))
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            for item in detail:
                out.append(FieldError(prefix or "body", str(item)))
        else:
            for index, item in enumerate(detail):
                out.extend(_flatten_drf_detail(item, f"{prefix}[{index}]"))
    else:
        out.append(FieldError(prefix or "body", str(detail)))
    return out


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error leaves in the Gofer shape."""
    request = context.get("request")
    if isinstance(exc, GoferError):
        body = error_body(request, exc.code, exc.message, exc.errors)
        if isinstance(exc, QuotaExceeded):
            body["quota"] = exc.details()
        response = Response(body, status=status_of(exc))
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            response["Retry-After"] = str(int(retry_after))
        return response
    if isinstance(exc, drf_exceptions.ValidationError):
        errors = _flatten_drf_detail(exc.detail)
        failed = ValidationFailed.from_errors(errors)
        return Response(error_body(request, failed.code, failed.message, failed.errors), status=400)
    if isinstance(exc, drf_exceptions.ParseError):
        return Response(
            error_body(
                request, "malformed_body", f"body: {exc.detail}", [FieldError("body", "request body is not valid JSON")]
            ),
            status=400,
        )
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return Response(
            error_body(
                request,
                "unsupported_media_type",
                f"Content-Type: {exc.detail}",
                [FieldError("Content-Type", "send application/json")],
            ),
            status=415,
        )
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return Response(error_body(request, "method_not_allowed", str(exc.detail)), status=405)
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        return Response(error_body(request, "unauthenticated", str(exc.detail)), status=401)
    if isinstance(exc, drf_exceptions.PermissionDenied | DjangoPermissionDenied):
        return Response(error_body(request, "permission_denied", str(exc)), status=403)
    if isinstance(exc, drf_exceptions.NotFound | Http404):
        return Response(error_body(request, "not_found", "not found"), status=404)
    if isinstance(exc, drf_exceptions.Throttled):
        return Response(error_body(request, "rate_limited", str(exc.detail)), status=429)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(request, "body_too_large", "body: request body is too large", [FieldError("body", "too large")]),
            status=413,
        )
    if isinstance(exc, drf_exceptions.APIException):
        return Response(error_body(request, exc.default_code, str(exc.detail)), status=exc.status_code)
    return None


def json_error(
    request: Any, status: int, code: str, message: str, errors: list[FieldError] | None = None
) -> JsonResponse:
    """An error response outside DRF (middleware, plain Django views, handler404/500)."""
    return JsonResponse(error_body(request, code, message, errors), status=status)
