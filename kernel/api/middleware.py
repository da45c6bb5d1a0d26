"""Request ids, the ``gofer-api-version`` header, and the client's address.

``client_address`` is the one answer to "who is on the other end" that every part of Gofer uses (request logs,
rate limits, the per-address connection cap, anonymous stream caps): the TCP peer, unless that peer is one of the
operator's reverse proxies (``GOFER_TRUSTED_PROXIES``, addresses or CIDRs, none by default), in which case the
right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy. A client that is not a trusted proxy cannot
choose its address by sending the header.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from kernel.api.errors import json_error
from kernel.errors import FieldError

SUPPORTED_API_VERSIONS = frozenset({"v0"})
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.cache
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def trusted_proxies() -> tuple[IPNetwork, ...]:
    """The networks of ``GOFER_TRUSTED_PROXIES`` (validated at start-up by the settings)."""
    return _networks(tuple(settings.GOFER_TRUSTED_PROXIES))


def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a peer or an X-Forwarded-For entry (``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80``, ``::1``)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted_proxy(peer: str | None) -> bool:
    """Whether ``peer`` (an address) is one of the operator's reverse proxies."""
    address = _parse_address(peer or "")
    return address is not None and any(address in network for network in trusted_proxies())


def client_address(peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
    """The client's address, from the TCP peer and the ``X-Forwarded-For`` header values (in order received).

    The peer is the answer unless it is a trusted proxy; then the hops that proxy reports are walked from the right
    (the nearest first), and the first one that is not a trusted proxy is the client. A malformed hop ends the walk:
    the last trusted proxy is then the best known address. "" when there is no peer at all (a unix socket).
    """
    current = (peer or "").strip()
    if not is_trusted_proxy(current):
        return current
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _parse_address(hop)
        if address is None:
            return current
        current = str(address)
        if not is_trusted_proxy(current):
            return current
    return current


def request_client_address(request: HttpRequest) -> str:
    """``client_address`` of a Django request (set once by ClientAddressMiddleware, computed here otherwise)."""
    known = getattr(request, "client_address", None)
    if known is not None:
        return known
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    return client_address(request.META.get("REMOTE_ADDR"), [forwarded] if forwarded else [])


def scope_client_address(scope: dict[str, Any]) -> str:
    """``client_address`` of an ASGI scope (websockets)."""
    client = scope.get("client") or ("", 0)
    forwarded = [v.decode("latin1") for k, v in scope.get("headers", []) if k.lower() == b"x-forwarded-for"]
    return client_address(client[0], forwarded)


class ClientAddressMiddleware:
    """Sets ``request.client_address`` and ``REMOTE_ADDR`` to ``client_address``: Django's logs, django-ratelimit
    (which reads ``REMOTE_ADDR``) and Gofer's code all see the same client. First in MIDDLEWARE."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        address = request_client_address(request)
        request.client_address = address
        request.META["REMOTE_ADDR"] = address
        return self.get_response(request)


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
