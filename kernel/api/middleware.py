"""Request ids and the ``gofer-api-version`` header."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from kernel.api.errors import json_error
from kernel.errors import FieldError

SUPPORTED_API_VERSIONS = frozenset({"v0"})
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    """Give every request an id (or keep a sane ``X-Request-Id`` from a proxy), echo it, and check the API version.

    Gofer clients send ``gofer-api-version: v0``; plain clients (curl) may send nothing. Any other version is refused
    with 400 before a view runs, so a client built for a future API never gets a silently different answer.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-Id", "")
        request.request_id = incoming if _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        version = request.headers.get("gofer-api-version")
        if request.path.startswith("/api/") and version is not None and version not in SUPPORTED_API_VERSIONS:
            response: HttpResponse = json_error(
                request,
                400,
                "unsupported_api_version",
                f"gofer-api-version: {version!r:.40} is not supported; this server speaks v0",
                [FieldError("gofer-api-version", "must be v0")],
            )
        else:
            response = self.get_response(request)
        response["X-Request-Id"] = request.request_id
        return response


class RequestIdLogFilter(logging.Filter):
    """Puts the request id on Django's request log lines, so the id in an error body finds its traceback.

    ``Internal Server Error: /api/namespaces [request 3f6c...]``; the id is also ``record.request_id`` for
    structured formatters. Installed on the ``django.request`` logger by the kernel's AppConfig.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = getattr(getattr(record, "request", None), "request_id", "")
        if request_id and not hasattr(record, "request_id"):
            record.request_id = request_id
            record.msg = f"{record.msg} [request {request_id}]"
        return True
