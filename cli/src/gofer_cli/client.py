"""The HTTP side of the Gofer API: requests, errors, pagination and no-op detection. Returns raw API JSON only.

Nothing here formats for people; commands pass what this returns to ``gofer_cli.output``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from gofer_cli import __version__
from gofer_cli.errors import ApiError, NetworkError

API_VERSION = "v0"
#: The API's largest page; ``--all`` walks a list in pages of this size.
MAX_PAGE = 500
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0


def normalise_base_url(url: str) -> str:
    """``http://host:8080`` from ``http://host:8080/``, ``http://host:8080/api`` or ``host:8080`` (http assumed)."""
    url = url.strip()
    if "://" not in url:
        url = f"http://{url}"
    url = url.rstrip("/")
    if url.endswith("/api"):
        url = url[: -len("/api")]
    return url


def segment(value: object) -> str:
    """One path segment, percent-encoded (ids and keys may hold characters that are special in URLs)."""
    return quote(str(value), safe="")


def path(*parts: object) -> str:
    """An API path from segments: ``path("namespaces", ns, "pipelines")`` is ``/namespaces/<ns>/pipelines``."""
    return "/" + "/".join(segment(p) for p in parts)


@dataclass(frozen=True)
class Page:
    """Which part of a list to fetch: the API's ``limit``/``offset``/``reverse``, or ``everything`` from ``offset``."""

    limit: int | None = None
    offset: int = 0
    reverse: bool = False
    everything: bool = False


@dataclass(frozen=True)
class Mutation:
    """The result of a write that may answer 204, or 200 with ``changed: false`` when nothing changed.

    ``changed`` is False when the server said the request changed nothing: ``{"changed": false}`` in the body
    (today's server) or a response header saying so (the coming one, whose no-ops may be 204 with an empty body).
    """

    status: int
    changed: bool
    message: str | None
    body: dict[str, Any]


#: The header by which the server says a successful call changed nothing (whatever the status, 204 included).
CHANGED_HEADER = "Gofer-Changed"


def _header_says_unchanged(headers: httpx.Headers) -> bool:
    if headers.get(CHANGED_HEADER, "").strip().lower() == "false":
        return True
    # Other spellings of the same signal (a proxy's prefix, an older name): any header ending in "-changed" that is
    # false, or in "-unchanged"/"-noop" that is true.
    for name, value in headers.items():
        lowered, flag = name.lower(), value.strip().lower()
        if lowered.endswith("-changed") and flag in ("false", "0", "no"):
            return True
        if (lowered.endswith("-unchanged") or lowered.endswith("-noop")) and flag in ("true", "1", "yes"):
            return True
    return False


class Client:
    """A Gofer API client. ``base_url`` is the server's root (``http://127.0.0.1:8080``); paths start after ``/api``.

    Every method raises ``ApiError`` for an error response and ``NetworkError`` when the server cannot be reached.
    """

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = READ_TIMEOUT) -> None:
        self.base_url = normalise_base_url(base_url)
        self.token = token
        headers = {"gofer-api-version": API_VERSION, "User-Agent": f"gofer-cli/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.headers = headers
        self._http = httpx.Client(
            base_url=f"{self.base_url}/api",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def url(self, api_path: str) -> str:
        return f"{self.base_url}/api{api_path}"

    def ws_url(self, api_path: str) -> str:
        """The websocket URL of ``api_path``: ``ws://`` for ``http://``, ``wss://`` for ``https://``."""
        url = self.url(api_path)
        if url.startswith("https://"):
            return "wss://" + url[len("https://") :]
        return "ws://" + url[len("http://") :]

    # --- requests -------------------------------------------------------------------------------------------------

    def send(self, method: str, api_path: str, **kwargs: Any) -> httpx.Response:
        """Send one request and return its (successful) response, read whole."""
        try:
            response = self._http.request(method, api_path, **kwargs)
        except httpx.TimeoutException as exc:
            raise NetworkError(self.url(api_path), f"timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise NetworkError(self.url(api_path), _reason(exc)) from None
        self._raise_for_error(method, api_path, response)
        return response

    @contextmanager
    def stream(self, method: str, api_path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A streamed response (body not read yet); errors are raised before it is yielded."""
        try:
            with self._http.stream(method, api_path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                self._raise_for_error(method, api_path, response)
                yield response
        except httpx.TimeoutException as exc:
            raise NetworkError(self.url(api_path), f"timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise NetworkError(self.url(api_path), _reason(exc)) from None

    def _raise_for_error(self, method: str, api_path: str, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise ApiError.from_body(response.status_code, body, method=method, url=self.url(api_path))

    def get(self, api_path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON object."""
        return _json(self.send("GET", api_path, params=_params(params)))

    def post(self, api_path: str, body: Any = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a JSON body (``{}`` when None) and return the JSON answer (``{}`` for an empty one)."""
        return _json(self.send("POST", api_path, json=body if body is not None else {}, params=_params(params)))

    def mutate(self, method: str, api_path: str, body: Any = None, params: dict[str, Any] | None = None) -> Mutation:
        """A write that may be a no-op: PATCH, DELETE or a deploy. Works with 200, 201 and 204 answers alike."""
        kwargs: dict[str, Any] = {"params": _params(params)}
        if body is not None:
            kwargs["json"] = body
        response = self.send(method, api_path, **kwargs)
        payload = _json(response)
        changed = payload.get("changed") is not False and not _header_says_unchanged(response.headers)
        message = payload.get("message") if isinstance(payload.get("message"), str) else None
        return Mutation(response.status_code, changed, message, payload)

    def list(self, api_path: str, key: str, page: Page, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The items under ``key`` of a paginated list: one page, or every page from ``page.offset`` on."""
        base = dict(params or {})
        if page.reverse:
            base["reverse"] = "true"
        if not page.everything:
            query = {**base, "offset": page.offset or None, "limit": page.limit}
            return list(self.get(api_path, query).get(key) or [])
        items: list[dict[str, Any]] = []
        offset = page.offset
        while True:
            chunk = list(self.get(api_path, {**base, "offset": offset or None, "limit": MAX_PAGE}).get(key) or [])
            items.extend(chunk)
            if len(chunk) < MAX_PAGE:
                return items
            offset += len(chunk)

    def find(
        self, api_path: str, key: str, predicate: Callable[[dict[str, Any]], bool], *, newest_first: bool = True
    ) -> dict[str, Any] | None:
        """The first item of a list matching ``predicate``, reading page by page (newest first by default)."""
        offset = 0
        while True:
            params = {"limit": MAX_PAGE, "offset": offset or None, "reverse": "true" if newest_first else None}
            chunk = list(self.get(api_path, params).get(key) or [])
            for item in chunk:
                if predicate(item):
                    return item
            if len(chunk) < MAX_PAGE:
                return None
            offset += len(chunk)

    def upload(
        self, api_path: str, chunks: Iterable[bytes], size: int | None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """POST raw bytes (an object) from ``chunks``; ``size`` sets Content-Length when known."""
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        # Uploads can take long: no read timeout while the body is sent and stored.
        timeout = httpx.Timeout(None, connect=CONNECT_TIMEOUT)
        return _json(
            self.send("POST", api_path, content=chunks, headers=headers, params=_params(params), timeout=timeout)
        )


def _params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    out = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out or None


def _json(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        payload = response.json()
    except ValueError:
        raise ApiError(
            response.status_code,
            "bad_response",
            f"the server answered with something that is not JSON: {response.text[:200]!r}",
            url=str(response.url),
        ) from None
    return payload if isinstance(payload, dict) else {"items": payload}


def _reason(exc: httpx.HTTPError) -> str:
    cause: BaseException | None = exc
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(cause or exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError) and "refused" in text.lower():
        return "connection refused (is the server running?)"
    return text


def parse_json_lines(text: str) -> list[dict[str, Any]]:
    """NDJSON (the logs' ``format=json``) as a list of objects; blank lines are skipped."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
