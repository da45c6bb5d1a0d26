"""The websocket side of the API: events, task logs, extension logs and attach.

The server's protocol (apiv0/websockets.py): the handshake authenticates like HTTP; an error arrives as one JSON
text frame in the API's error shape, then the socket closes with code 4000 + the HTTP status (4401, 4404, 4410...);
a stream that ends normally closes with 1000. ``frames`` turns that into values and ``ApiError``s.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from gofer_cli.errors import ApiError, NetworkError

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from gofer_cli.client import Client

# websockets is imported inside the functions: only streaming commands pay for it at start-up.

OPEN_TIMEOUT = 15.0
#: The largest frame accepted: a log line can be long, an attach chunk too.
MAX_FRAME = 16 * 1024 * 1024


def _is_error_frame(obj: Any) -> bool:
    return isinstance(obj, dict) and "error_code" in obj and "message" in obj and "request_id" in obj


@asynccontextmanager
async def open_stream(
    client: Client, api_path: str, params: dict[str, Any] | None = None
) -> AsyncIterator[ClientConnection]:
    """An open websocket to ``api_path`` with the client's token and version header.

    Raises ``NetworkError`` when the server cannot be reached and ``ApiError`` when the handshake is refused.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus

    query = {
        k: ("true" if v is True else "false" if v is False else v) for k, v in (params or {}).items() if v is not None
    }
    url = client.ws_url(api_path) + (f"?{urlencode(query)}" if query else "")
    try:
        ws = await connect(
            url,
            additional_headers=client.headers,
            open_timeout=OPEN_TIMEOUT,
            max_size=MAX_FRAME,
            user_agent_header=None,
            # The server sends nothing on quiet streams (events, a silent task); keepalive pings keep proxies happy.
            ping_interval=20,
            ping_timeout=20,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        try:
            body: Any = json.loads(exc.response.body or b"")
        except ValueError:
            body = (exc.response.body or b"").decode("utf-8", "replace")
        raise ApiError.from_body(status, body, method="GET (websocket)", url=url) from None
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise NetworkError(url, str(exc) or type(exc).__name__) from None
    try:
        yield ws
    finally:
        await ws.close()


async def frames(ws: ClientConnection) -> AsyncIterator[str | bytes]:
    """The frames of a stream until it closes normally. An error frame followed by a 4xxx close raises ``ApiError``;
    a connection lost abnormally raises ``NetworkError``."""
    from websockets.exceptions import ConnectionClosed

    url = str(getattr(ws.request, "path", "")) if getattr(ws, "request", None) else ""
    while True:
        try:
            frame = await ws.recv()
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            if code in (1000, 1001):
                return
            if code >= 4000:
                raise ApiError(
                    code - 4000, f"http_{code - 4000}", closed.rcvd.reason or f"stream closed with {code}", url=url
                ) from None
            raise NetworkError(url or "websocket", f"the stream was cut (close code {code})") from None
        if isinstance(frame, str) and frame.startswith("{") and '"error_code"' in frame:
            try:
                obj = json.loads(frame)
            except ValueError:
                obj = None
            if _is_error_frame(obj):
                # The server closes with 4000 + status right after an error frame. A raw stream could carry a line
                # that merely looks like one: then the stream goes on, and both frames are passed through.
                try:
                    following = await ws.recv()
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd is not None else 1006
                    if code >= 4000:
                        raise ApiError.from_body(code - 4000, obj, method="GET (websocket)", url=url) from None
                    yield frame
                    return
                yield frame
                yield following
                continue
        yield frame


async def json_frames(ws: ClientConnection) -> AsyncIterator[dict[str, Any]]:
    """The frames of a JSON stream (events, ``format=json`` logs), parsed."""
    async for frame in frames(ws):
        if isinstance(frame, bytes):
            frame = frame.decode("utf-8", "replace")
        yield json.loads(frame)
