"""Where a notifier may send (kernel/outbound.py's one policy, with the install setting ``allowed_hosts``) and the
HTTP call itself.

A URL is checked by name when it is set (a subscription's ``url``, an install's ``webhook_url`` or ``api_url``: an
address or ``localhost`` that is not listed is a 400 naming the setting), and again with DNS just before every
attempt, since a name can start resolving to a private address after it was accepted. The connection itself
goes to an address checked in the same lookup (``_PinnedConnection``): a name that answers a public address to the
check and a private one to the connection (DNS rebinding) is refused, not connected to. Redirects are never
followed: a 3xx is a failed attempt, so a public host cannot bounce a delivery into the operator's network. Proxies
and ``.netrc`` from the environment are ignored (``trust_env`` off): a proxy would resolve the name itself, past the
policy.
"""

from __future__ import annotations

import email.utils
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from kernel import outbound
from notifiers.choices import RESPONSE_EXCERPT_BYTES
from triggers.builtins.base import settings_error

USER_AGENT = "Gofer-Notifier"
# Longest Retry-After honoured: a receiver cannot park a notice for a day.
MAX_RETRY_AFTER = 3600
# The most of an answer read (Slack's and GitHub's JSON answers are small): a receiver cannot make a worker hold
# gigabytes, nor keep it reading a trickle for longer than the timeout allows.
MAX_RESPONSE_BYTES = 256 * 1024


class DeliveryError(Exception):
    """An attempt failed. ``retryable``: network errors, 5xx and 429; everything else is permanent."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        status: int | None = None,
        response: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.response = response
        self.retry_after = retry_after


@dataclass(frozen=True)
class Sent:
    """A successful attempt: the status and the start of the answer (masked before it is stored)."""

    status: int | None
    response: str = ""
    remote_id: str = ""


def policy_for(config: dict[str, str], extension_id: str) -> outbound.Policy:
    allowed = [h.strip() for h in (config.get("allowed_hosts") or "").split(",") if h.strip()]
    return outbound.policy(allowed, allow_public=True, setting=f"{extension_id}'s install setting allowed_hosts")


def _literal_host(host: str) -> str:
    """``host`` as the IPv4 address the resolver makes of it when it is one in inet_aton's forms (``2130706433``,
    ``0x7f.1``, ``127.1``, ``0177.0.0.1``, ``0``), else ``host``: such names are addresses, and are judged as
    addresses by name."""
    try:
        return socket.inet_ntoa(socket.inet_aton(host.strip("[]")))
    except (OSError, UnicodeError, ValueError):
        return host


def check_url(url: str, policy: outbound.Policy, key: str) -> str:
    """``url`` as a destination, by name (no DNS): http(s), a host, allowed by ``policy``. Raises a 400 naming
    ``settings.<key>``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise settings_error(key, "must be an http:// or https:// URL with a host")
    try:
        port = parts.port
    except ValueError:
        raise settings_error(key, "has an invalid port") from None
    if port == 0:
        raise settings_error(key, "has an invalid port")
    try:
        policy.check_literal(parts.hostname, port)
    except outbound.Refused as exc:
        raise settings_error(key, f"refused: {exc}") from None
    literal = _literal_host(parts.hostname)
    if literal != parts.hostname and not policy.lists(parts.hostname, port):
        try:
            policy.check_literal(literal, port)
        except outbound.Refused as exc:
            raise settings_error(key, f"refused: {parts.hostname} is the address {literal}: {exc}") from None
    return url.strip()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER)


def _pinned_address(host: str, port: int | None, policy: outbound.Policy) -> str:
    """The address to connect to for ``host``: resolved once, and every address allowed by ``policy`` (a host the
    operator lists is allowed whatever it resolves to). Raises Refused."""
    addresses = outbound.resolve(host, port)
    if not addresses:
        raise outbound.Refused(f"{host} does not resolve")
    if not policy.lists(host, port):
        for address in addresses:
            try:
                policy.check_literal(str(address), port)
            except outbound.Refused as exc:
                raise outbound.Refused(f"{host} resolved to {address} when connecting: {exc}") from None
    return str(addresses[0])


def _session(policy: outbound.Policy, refusals: list[str]) -> requests.Session:
    """A session whose connections go only to addresses ``policy`` allows, checked in the lookup that the
    connection uses; a refusal is appended to ``refusals`` (the connection then fails)."""

    def new_conn(connection: Any, base: type) -> Any:
        original = connection._dns_host
        try:
            connection._dns_host = _pinned_address(original, connection.port, policy)
        except outbound.Refused as exc:
            # Raised as the OSError urllib3 expects of a connection that cannot be made; ``request`` says why.
            refusals.append(str(exc))
            raise OSError(f"destination refused: {exc}") from None
        try:
            return base._new_conn(connection)
        finally:
            connection._dns_host = original

    class Pinned(HTTPConnection):
        def _new_conn(self) -> Any:
            return new_conn(self, HTTPConnection)

    class PinnedTLS(HTTPSConnection):
        def _new_conn(self) -> Any:
            return new_conn(self, HTTPSConnection)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Pinned

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = PinnedTLS

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}

    session = requests.Session()
    session.trust_env = False
    session.mount("http://", Adapter())
    session.mount("https://", Adapter())
    return session


def request(
    method: str, url: str, *, policy: outbound.Policy, headers: dict[str, str] | None = None, **kwargs: Any
) -> requests.Response:
    """One HTTP call to ``url`` after the DNS check of the policy, connected to an address the policy allows (checked
    again in the connection's own lookup), never following a redirect. A 2xx is returned; anything else raises
    DeliveryError (network errors, 5xx and 429 retryable, with Retry-After)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError("the URL is not http(s)", retryable=False)
    try:
        policy.check(parts.hostname, parts.port)
    except outbound.Refused as exc:
        raise DeliveryError(f"destination refused: {exc}", retryable=False) from None
    refusals: list[str] = []
    try:
        with _session(policy, refusals) as session:
            response = session.request(
                method,
                url,
                headers={"User-Agent": USER_AGENT, **(headers or {})},
                timeout=settings.GOFER_NOTIFIER_TIMEOUT_SECONDS,
                allow_redirects=False,
                stream=True,
                **kwargs,
            )
            with response:
                response._content = _bounded_body(response)
    except requests.RequestException as exc:
        if refusals:
            raise DeliveryError(f"destination refused: {refusals[0]}", retryable=False) from None
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if 200 <= response.status_code < 300:
        return response
    retryable = response.status_code == 429 or response.status_code >= 500
    raise DeliveryError(
        f"{parts.hostname} answered {response.status_code}",
        retryable=retryable,
        status=response.status_code,
        response=excerpt(response),
        retry_after=_retry_after(response.headers.get("Retry-After")) if retryable else None,
    )


def _bounded_body(response: requests.Response) -> bytes:
    """At most MAX_RESPONSE_BYTES of the answer, read within twice the notifier timeout; the rest is dropped."""
    deadline = time.monotonic() + 2 * settings.GOFER_NOTIFIER_TIMEOUT_SECONDS
    body = b""
    for chunk in response.iter_content(chunk_size=16 * 1024):
        body += chunk
        if len(body) >= MAX_RESPONSE_BYTES or time.monotonic() > deadline:
            break
    return body[:MAX_RESPONSE_BYTES]


def excerpt(response: requests.Response) -> str:
    """The first bytes of the answer (masked by the caller before it is stored)."""
    return response.content[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace")
