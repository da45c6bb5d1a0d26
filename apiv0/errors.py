"""Errors and the one JSON shape every error response has.

Every 4xx/5xx body is ``{"error_code", "message", "request_id", "errors": [{"field", "message"}]}``: Gofer v0's
``{error_code, message, request_id}`` plus the list of fields at fault. ``message`` always names the field, so a
client that only prints ``message`` still tells the user what to fix.

Service functions raise the GoferError subclasses below; views never build error responses themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class GoferError(Exception):
    """Base of every error the API reports on purpose. ``status`` is the HTTP status; ``code`` is stable."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors or [])
        if field is not None and not self.errors:
            self.errors.append(FieldError(field, message))


class ValidationFailed(GoferError):
    """The request is malformed. Raise with ``field=`` or ``errors=`` so the response names what is wrong."""

    status = 400
    code = "validation_error"

    @classmethod
    def from_errors(cls, errors: list[FieldError]) -> ValidationFailed:
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        if len(errors) > 5:
            summary += f"; and {len(errors) - 5} more"
        return cls(summary, errors=errors)


class Unauthenticated(GoferError):
    status = 401
    code = "unauthenticated"


class Forbidden(GoferError):
    status = 403
    code = "permission_denied"


class NotFound(GoferError):
    status = 404
    code = "not_found"

    @classmethod
    def of(cls, what: str, ident: object, field: str | None = None) -> NotFound:
        return cls(f"{what} {ident!s:.100} not found", field=field)


class Conflict(GoferError):
    status = 409
    code = "conflict"


class Gone(GoferError):
    """The thing existed but its content is no longer kept (expired or removed logs, expired run objects)."""

    status = 410
    code = "gone"


class Unavailable(GoferError):
    status = 503
    code = "unavailable"


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
        return Response(error_body(request, exc.code, exc.message, exc.errors), status=exc.status)
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
