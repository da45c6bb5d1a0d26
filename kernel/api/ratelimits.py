"""Rate limits, the one machinery: django-ratelimit's counters in the default cache (Redis, or the database table of
kernel/cache.py), so a limit holds across every server process. Over a limit is ``RateLimited``: 429 in the API's
error shape, with ``Retry-After`` the seconds until the counting window ends.

Who is counted (``caller_key``): a token by its id; a caller without one by its client address
(kernel/api/middleware.py: behind ``GOFER_TRUSTED_PROXIES``, the forwarded address), an IPv6 address by its /64
(one host is routinely given a whole /64: counted address by address, it would have 2^64 allowances). The limits:

- every API route (``GoferAPIView.initial``): ``GOFER_RATELIMIT_API`` per token, ``GOFER_RATELIMIT_ANONYMOUS`` per
  address;
- a route's own limit on top, with ``@rate_limited("GOFER_RATELIMIT_<NAME>")`` on its handler (the external
  endpoints, ``POST /api/sandbox``), counted in a group of its own;
- failed admin logins per address (``GOFER_RATELIMIT_ADMIN_LOGIN``): at the limit, ``login_lockout`` refuses
  further logins from that address until the window ends, right password or not.

A rate of "" is no limit, and costs nothing (no cache access).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage

from kernel.api.errors import json_error
from kernel.api.middleware import request_client_address
from kernel.errors import RateLimited

ADMIN_LOGIN_GROUP = "gofer.admin-login"
API_GROUP = "gofer.api"


def _http(request: Any) -> HttpRequest:
    """The Django request under a DRF one."""
    return getattr(request, "_request", request)


def counted_address(address: str) -> str:
    """What a client address is counted as: an IPv4 address itself (also when IPv4-mapped), an IPv6 address its /64
    network."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            # An IPv4 client on a dual-stack socket: its own address, not the /64 that holds every IPv4 client.
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


def address_key(request: Any) -> str:
    return f"address:{counted_address(request_client_address(_http(request)))}"


def caller_key(request: Any, principal: Any = None) -> str:
    """``token:<id>`` for a caller with a token, else ``address:<client address>``."""
    token_id = getattr(principal, "token_id", None)
    return f"token:{token_id}" if token_id else address_key(request)


def hit(request: Any, *, group: str, rate: str, key: str, setting: str) -> None:
    """Count one request of ``key`` in ``group``; raises RateLimited when that makes it more than ``rate``."""
    if not rate:
        return
    usage = get_usage(_http(request), group=group, key=lambda _group, _request: key, rate=rate, increment=True)
    if usage is not None and usage["should_limit"]:
        wait = max(1, int(usage["time_left"]))
        who = "this token" if key.startswith("token:") else "this address"
        raise RateLimited(f"too many requests from {who} ({setting}: {rate}); retry in {wait} s", retry_after=wait)


def limit_caller(request: Any, principal: Any) -> None:
    """The API-wide limit: ``GOFER_RATELIMIT_API`` per token, ``GOFER_RATELIMIT_ANONYMOUS`` per client address."""
    if getattr(principal, "token_id", None):
        hit(
            request,
            group=API_GROUP,
            rate=settings.GOFER_RATELIMIT_API,
            key=caller_key(request, principal),
            setting="GOFER_RATELIMIT_API",
        )
    else:
        hit(
            request,
            group=API_GROUP,
            rate=settings.GOFER_RATELIMIT_ANONYMOUS,
            key=address_key(request),
            setting="GOFER_RATELIMIT_ANONYMOUS",
        )


def rate_limited(setting: str, *, per: str = "address", group: str | None = None) -> Callable:
    """Decorate an API view's handler (``def post(self, request, ...)``) with the limit in setting ``setting``,
    read at each request, counted per client address (``per="address"``) or per caller (``per="caller"``: the token,
    or the address without one), in ``group`` (default: the setting's name). Over it: RateLimited (429)."""
    name = group or f"gofer.{setting.lower()}"

    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def wrapped(view: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            key = address_key(request) if per == "address" else caller_key(request, getattr(view, "principal", None))
            hit(request, group=name, rate=getattr(settings, setting), key=key, setting=setting)
            return handler(view, request, *args, **kwargs)

        return wrapped

    return decorate


# --- Admin login lockout ---------------------------------------------------------------------------------------


def _login_usage(request: HttpRequest, increment: bool) -> dict[str, Any] | None:
    rate = settings.GOFER_RATELIMIT_ADMIN_LOGIN
    if not rate:
        return None
    return get_usage(
        request, group=ADMIN_LOGIN_GROUP, key=lambda _g, _r: address_key(request), rate=rate, increment=increment
    )


def count_failed_login(sender: Any, credentials: Any = None, request: HttpRequest | None = None, **_: Any) -> None:
    """``user_login_failed`` receiver: one more failure for the request's client address."""
    if request is not None:
        _login_usage(request, increment=True)


def login_lockout(login_view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap the admin's login view: an address with ``GOFER_RATELIMIT_ADMIN_LOGIN`` failures in the current window
    gets 429 (with ``Retry-After``) for every login attempt until the window ends; the form is not even checked, so
    a right guess after the limit is refused too."""

    @functools.wraps(login_view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST":
            usage = _login_usage(request, increment=False)
            if usage is not None and usage["count"] >= usage["limit"]:
                wait = max(1, int(usage["time_left"]))
                response = json_error(
                    request,
                    429,
                    "rate_limited",
                    f"too many failed logins from this address (GOFER_RATELIMIT_ADMIN_LOGIN: "
                    f"{settings.GOFER_RATELIMIT_ADMIN_LOGIN}); retry in {wait} s",
                )
                response["Retry-After"] = str(wait)
                return response
        return login_view(request, *args, **kwargs)

    return wrapped
