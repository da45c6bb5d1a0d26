"""Gofer's side of the extension protocol (docs/extensions.md): the HTTP calls Gofer makes to a third-party
extension's service, and the version rule.

Every call goes to the extension's own address (``Extension.url``, set by Gofer when it started the service) and
nowhere else: no redirects are followed, and the URL never comes from a request. All calls but ``/api/health``
carry ``Authorization: Bearer <the extension's secret>``; every call carries ``Gofer-Protocol-Version``.

The protocol's version is Gofer's own semver (``GOFER_SEMVER``): Gofer accepts an extension that reports the same
major version in ``/api/info`` (``protocol_version``) and refuses any other with an error saying both versions.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

VERSION_HEADER = "Gofer-Protocol-Version"
_SEMVER = re.compile(r"v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:[-+][0-9A-Za-z.+-]*)?")
MAX_ANSWER = 1024 * 1024


class ExtensionUnreachable(Exception):
    """The service did not answer (refused, timed out, or answered something that is not the protocol)."""


class ExtensionRefused(Exception):
    """The service answered with an error (4xx/5xx); ``message`` is what it said, trimmed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class IncompatibleExtension(Exception):
    """The extension speaks another major version of the protocol."""


def protocol_version() -> str:
    return settings.GOFER_SEMVER


def check_version(reported: object) -> str:
    """``reported`` if it is a semver of Gofer's major version; IncompatibleExtension otherwise."""
    ours = protocol_version()
    match = _SEMVER.fullmatch(str(reported or ""))
    if match is None:
        raise IncompatibleExtension(
            f"the extension reports protocol_version {str(reported)[:40]!r}, not a semver; "
            f"this Gofer speaks {ours} and accepts {ours.split('.')[0]}.x"
        )
    if match.group(1) != ours.split(".")[0]:
        raise IncompatibleExtension(
            f"the extension speaks protocol {reported} but this Gofer speaks {ours}: only major version "
            f"{ours.split('.')[0]} is accepted; use a build of the extension for Gofer {ours.split('.')[0]}.x"
        )
    return str(reported)


@dataclass(frozen=True)
class Target:
    """Where and how to call one extension."""

    url: str
    secret: str

    def _call(self, method: str, path: str, body: Any = None, *, auth: bool = True, timeout: float | None = None):
        headers = {VERSION_HEADER: protocol_version()}
        if auth:
            headers["Authorization"] = f"Bearer {self.secret}"
        try:
            response = requests.request(
                method,
                self.url.rstrip("/") + path,
                json=body,
                headers=headers,
                timeout=timeout or settings.GOFER_EXTENSION_REQUEST_TIMEOUT,
                allow_redirects=False,
                stream=True,
            )
        except requests.RequestException as exc:
            raise ExtensionUnreachable(f"{method} {path}: {type(exc).__name__}") from None
        content = response.raw.read(MAX_ANSWER + 1, decode_content=True) or b""
        response.close()
        if response.status_code >= 400:
            raise ExtensionRefused(response.status_code, _message(content) or f"HTTP {response.status_code}")
        if 300 <= response.status_code < 400:
            raise ExtensionUnreachable(f"{method} {path}: answered a redirect, which Gofer does not follow")
        return response.status_code, content[:MAX_ANSWER]

    def health(self, timeout: float | None = None) -> bool:
        try:
            status, _ = self._call("GET", "/api/health", auth=False, timeout=timeout)
        except (ExtensionUnreachable, ExtensionRefused):
            return False
        return 200 <= status < 300

    def info(self) -> dict[str, Any]:
        _, content = self._call("GET", "/api/info")
        try:
            parsed = json.loads(content)
        except ValueError:
            raise ExtensionUnreachable("GET /api/info: not JSON") from None
        if not isinstance(parsed, dict):
            raise ExtensionUnreachable("GET /api/info: not a JSON object")
        return parsed

    def debug(self) -> str:
        _, content = self._call("GET", "/api/debug")
        try:
            parsed = json.loads(content)
        except ValueError:
            return content.decode("utf-8", "replace")
        if isinstance(parsed, dict) and isinstance(parsed.get("info"), str):
            return parsed["info"]
        return json.dumps(parsed)

    def subscribe(self, namespace_id: str, pipeline_id: str, subscription_id: str, params: dict[str, str]) -> None:
        self._call(
            "POST",
            "/api/subscribe",
            {
                "namespace_id": namespace_id,
                "pipeline_id": pipeline_id,
                "pipeline_subscription_id": subscription_id,
                "pipeline_subscription_params": params,
            },
        )

    def unsubscribe(self, namespace_id: str, pipeline_id: str, subscription_id: str) -> None:
        self._call(
            "DELETE",
            "/api/subscribe",
            {"namespace_id": namespace_id, "pipeline_id": pipeline_id, "pipeline_subscription_id": subscription_id},
        )

    def shutdown(self) -> None:
        self._call("POST", "/api/shutdown", timeout=2)

    def external_event(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        return self._call(
            "POST", "/api/external-event", {"headers": headers, "body": base64.b64encode(body).decode("ascii")}
        )


def _message(content: bytes) -> str:
    try:
        parsed = json.loads(content)
    except ValueError:
        return content[:300].decode("utf-8", "replace").strip()
    if isinstance(parsed, dict):
        return str(parsed.get("message") or parsed.get("error") or "")[:300]
    return ""
