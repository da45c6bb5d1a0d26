"""Flow control for daphne 4 (the server ``make run`` starts): bounded memory for large request and response bodies,
and websocket streams that are neither buffered without limit nor cut short.

What daphne 4.2 does on its own (read in daphne/http_protocol.py and daphne/server.py; django/daphne#483, open):

- Requests. Twisted receives the whole body before daphne sees the request, into a temporary *file* (into memory
  only below 100 kB). Twisted then parses ``application/x-www-form-urlencoded`` and ``multipart/form-data`` POST
  bodies into ``request.args`` *in memory*, which daphne never uses. daphne's ``WebRequest.process`` then reads the
  file in 8 KiB pieces and ``put_nowait``s every piece into the application's unbounded ``asyncio.Queue``, in one
  synchronous loop that ends before the application runs: a 1 GiB upload becomes 1 GiB of bytes in memory.
- Responses. Each ``http.response.body`` message is written to Twisted's transport and ``send()`` returns at once;
  nothing waits for the socket. When the client reads slower than the application produces (a download from a
  fast disk), Twisted's send buffer, in memory, grows without bound.
- Websockets. The same for ``websocket.send``; and on ``websocket.close`` autobahn gives the client 1 s to answer
  the close, then drops the connection with whatever is still queued: a client still reading a long log replay
  loses its tail (measured in bench/log_throughput.py: 20k to 174k of 200k lines arrived).

``install()`` changes three things, only in processes where daphne is loaded:

- ``WebRequest`` no longer parses form bodies into ``request.args``;
- ``Server.create_application``: for an HTTP request whose body Twisted spooled to a file, the application's
  ``receive()`` reads that file on demand, ``BODY_CHUNK`` at a time, and daphne's eager loop reads an empty
  stand-in instead (its single empty message is dropped);
- ``Server.handle_reply``: after each response body message and each websocket message, waits while Twisted
  reports its send buffer full (Twisted's IPushProducer pause/resume protocol), so a response or stream is produced
  no faster than the client reads it; and a websocket close waits up to WEBSOCKET_CLOSE_TIMEOUT_SECONDS for the
  client's answer, so everything sent before it is delivered.

What remains, by design of the layers above: Twisted keeps the whole upload in a temporary file (``$TMPDIR``) and
Django's ASGIHandler copies it into its own ``SpooledTemporaryFile`` (memory up to FILE_UPLOAD_MAX_MEMORY_SIZE,
2.5 MiB, then ``$TMPDIR``) before the view runs; so an upload briefly takes about twice its size in ``$TMPDIR``,
plus the object itself. Memory stays at a few chunks per request.

**Slow and huge requests** (docs/security.md, "The server"). Twisted reads a request's headers and body before
daphne or Django see anything, with only an idle timeout (60 s, reset by every byte) and no limit on the body, so
``install()`` also patches Twisted's ``HTTPChannel``, in the server process only:

- the request line and headers must arrive within GOFER_HTTP_HEADER_TIMEOUT of the connection (on a kept-alive
  connection, of the next request's first byte; an idle kept-alive connection is closed by Twisted's 60 s idle
  timeout): a slowloris client is answered 408 and disconnected;
- the body must keep up: after GOFER_HTTP_BODY_TIMEOUT seconds, at least GOFER_HTTP_BODY_MIN_RATE bytes a second on
  average since the headers, else 408;
- before a byte of the body is read, once the headers are in: a Content-Length above the route's limit is a 413
  (``GoferAPIView.body_limit``: GOFER_MAX_REQUEST_BYTES, object uploads GOFER_OBJECT_MAX_BYTES; a chunked body is
  cut off with 413 when it passes the limit); a body on an ``/api/`` route that does not take anonymous callers
  needs an ``Authorization: Bearer`` header, else 401; and a body over AUTHENTICATE_BODIES_OVER bytes (or chunked)
  is read only after the access gate has accepted the token (the connection is paused meanwhile, and a
  ``100 Continue`` is sent only then), else 401. Refusals are Gofer's JSON error, ``Connection: close``; the
  connection then discards what the client still sends for REFUSAL_LINGER_SECONDS, so that the client reads the
  answer instead of a reset, and is closed;
- a client address holds at most GOFER_MAX_CONNECTIONS_PER_CLIENT connections (HTTP and websockets; trusted proxies,
  GOFER_TRUSTED_PROXIES, are not counted): one more is answered 429 and closed.

Websocket connections are HTTP only until the upgrade: the header deadline applies to the handshake, never to the
stream (daphne's pings find dead peers). A response is never timed: follow-mode logs and big downloads run as long
as their client reads.

The patch is tied to daphne 4's internals; ``install()`` refuses other major versions (with a warning), and
tests/objectstore/test_large_object_streaming.py measures the server's peak memory on a 1 GiB round trip, so a
daphne upgrade that breaks it fails that test rather than production; tests/kernel/test_slow_and_huge_requests.py
does the same for the limits.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

logger = logging.getLogger(__name__)

BODY_CHUNK = 1024 * 1024
# How often a response waiting on a full send buffer checks that its client is still there: Twisted does not tell
# a paused producer about a lost connection.
_DISCONNECT_POLL_SECONDS = 1.0
_MARK = "_gofer_streaming"
WEBSOCKET_CLOSE_TIMEOUT_SECONDS = 60
# Bodies up to this size are read once an Authorization header is there; larger (and chunked) ones only after the
# token has been checked. Twisted reads 64 KiB at a time: a body this small costs nothing to receive.
AUTHENTICATE_BODIES_OVER = 64 * 1024
REFUSAL_LINGER_SECONDS = 2.0
_STATE = "_gofer_limits"
_SLOT = "_gofer_client_slot"


class _EmptyBody:
    """What daphne's eager loop reads instead of the real body file: nothing. Closing it closes the real file."""

    def __init__(self, real: Any) -> None:
        self._real = real

    @property
    def closed(self) -> bool:
        return self._real.closed

    def read(self, size: int = -1) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def close(self) -> None:
        self._real.close()


class _LazyBody:
    """An ASGI ``receive`` that serves the request body from Twisted's file, then defers to daphne's queue."""

    def __init__(self, body_file: Any, receive: Any) -> None:
        self._file = body_file
        self._receive = receive
        self._body_done = False

    async def __call__(self) -> dict[str, Any]:
        if not self._body_done:
            try:
                # A read from the local temporary file (page cache, mostly): short enough for the event loop, and
                # it keeps the file on the one thread that may also close it.
                chunk = self._file.read(BODY_CHUNK)
            except ValueError:
                # Twisted closed the file: the client went away.
                self._body_done = True
                return {"type": "http.disconnect"}
            more = len(chunk) == BODY_CHUNK
            self._body_done = not more
            return {"type": "http.request", "body": chunk, "more_body": more}
        while True:
            message = await self._receive()
            if message.get("type") != "http.request":
                return message
            # daphne's own (empty) body message, read from the stand-in; the body was served above.


class _SendGate:
    """An IPushProducer registered on a response: Twisted pauses it when its send buffer fills, resumes it when the
    buffer drains."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted's interface
        self.open.clear()

    def resumeProducing(self) -> None:  # noqa: N802
        self.open.set()

    def stopProducing(self) -> None:  # noqa: N802
        self.open.set()


async def _wait_for_client(protocol: Any) -> None:
    gate = protocol.__dict__.get(_MARK)
    if gate is None:
        if getattr(protocol, "channel", None) is None or getattr(protocol, "producer", None) is not None:
            return
        gate = _SendGate()
        protocol.registerProducer(gate, True)
        protocol.__dict__[_MARK] = gate
    while not gate.open.is_set() and getattr(protocol, "channel", None) is not None:
        try:
            await asyncio.wait_for(gate.open.wait(), _DISCONNECT_POLL_SECONDS)
        except TimeoutError:
            continue


async def _wait_for_websocket_client(protocol: Any) -> None:
    """Back-pressure for websocket sends: wait while the connection's send buffer is full, so a consumer that sends
    faster than its client reads (a log replay) is slowed down instead of filling memory."""
    transport = getattr(protocol, "transport", None)
    if transport is None:
        return
    gate = transport.__dict__.get(_MARK)
    if gate is None:
        if getattr(transport, "producer", None) is not None or not hasattr(transport, "registerProducer"):
            return
        gate = _SendGate()
        transport.registerProducer(gate, True)
        transport.__dict__[_MARK] = gate
    while not gate.open.is_set() and getattr(transport, "connected", False):
        try:
            await asyncio.wait_for(gate.open.wait(), _DISCONNECT_POLL_SECONDS)
        except TimeoutError:
            continue


def _release(protocol: Any) -> None:
    gate = protocol.__dict__.pop(_MARK, None)
    if gate is not None and getattr(protocol, "channel", None) is not None and protocol.producer is gate:
        protocol.unregisterProducer()


# --- slow and huge requests ------------------------------------------------------------------------------------------


@dataclass
class _ChannelState:
    """What the limits keep per HTTP connection."""

    header_call: Any = None
    body_call: Any = None
    body_started: float = 0.0
    body_received: int = 0
    body_limit: int | None = None
    limit_name: str = ""
    verifying: bool = False
    content_waiting: bool = False
    expect_continue: bool = False
    refused: bool = False
    awaiting_request: bool = False
    calls: list = field(default_factory=list)


@dataclass(frozen=True)
class _BodyPolicy:
    limit: int
    limit_name: str
    needs_token: bool


def _settings() -> Any:
    # lazy: read at request time, in the server process, where Django is set up before daphne serves.
    from django.conf import settings

    return settings


def body_policy(method: str, path: str) -> _BodyPolicy:
    """The largest body ``method path`` takes and whether it needs a token, from the route's view (its
    ``body_limit`` and the ``rules`` of GoferAPIView). Unknown routes take the default limit and, under /api/, a
    token."""
    # lazy: URL resolution needs the URLconf, loaded once Django is set up.
    from django.urls import Resolver404, resolve

    settings = _settings()
    try:
        view_class = getattr(resolve(path).func, "view_class", None)
    except Resolver404:
        view_class = None
    setting, name = getattr(view_class, "body_limit", ("DATA_UPLOAD_MAX_MEMORY_SIZE", "GOFER_MAX_REQUEST_BYTES"))
    needs_token = path.startswith("/api/")
    declared = (getattr(view_class, "rules", None) or {}).get("GET" if method == "HEAD" else method)
    if declared is not None and (declared.public or (declared.anonymous and settings.GOFER_ALLOW_ANONYMOUS)):
        needs_token = False
    return _BodyPolicy(int(getattr(settings, setting)), name, needs_token)


def _error_response(status: int, reason: str, code: str, message: str, field_name: str, extra: str = "") -> bytes:
    request_id = uuid.uuid4().hex
    body = json.dumps(
        {
            "error_code": code,
            "message": message,
            "request_id": request_id,
            "errors": [{"field": field_name, "message": message}],
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-Request-Id: {request_id}\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode("latin1") + body


def _state(channel: Any) -> _ChannelState:
    state = channel.__dict__.get(_STATE)
    if state is None:
        state = channel.__dict__[_STATE] = _ChannelState()
    return state


def _cancel(call: Any) -> None:
    if call is not None and call.active():
        call.cancel()


def _discard(*args: Any) -> None:
    return None


def _refuse(channel: Any, response: bytes, *, linger: bool) -> None:
    """Answer ``response`` and close, reading no more of the request."""
    # lazy: the reactor daphne installed (asyncio); imported only in the server process.
    from twisted.internet import reactor

    state = _state(channel)
    if state.refused:
        return
    state.refused = True
    _cancel(state.header_call)
    _cancel(state.body_call)
    channel.dataReceived = channel.rawDataReceived = channel.lineReceived = _discard
    transport = channel.transport
    if transport is None:
        return
    transport.write(response)
    if not linger:
        transport.loseConnection()
        return
    # What the client still sends is read and dropped for a moment, so it reads the answer rather than a reset.
    transport.resumeProducing()
    state.calls.append(reactor.callLater(REFUSAL_LINGER_SECONDS, transport.loseConnection))
    state.calls.append(reactor.callLater(REFUSAL_LINGER_SECONDS + 5, transport.abortConnection))


def _too_large(channel: Any, limit: int, name: str, *, linger: bool) -> None:
    message = f"body: the request body is larger than the limit of {limit} bytes ({name}); nothing was stored"
    _refuse(channel, _error_response(413, "Payload Too Large", "body_too_large", message, "body"), linger=linger)


def _unauthenticated(channel: Any, message: str) -> None:
    response = _error_response(
        401, "Unauthorized", "unauthenticated", message, "Authorization", 'WWW-Authenticate: Bearer realm="gofer"\r\n'
    )
    _refuse(channel, response, linger=True)


def _timed_out(channel: Any, what: str) -> None:
    settings = _settings()
    message = (
        f"{what}: not received in time (GOFER_HTTP_HEADER_TIMEOUT={settings.GOFER_HTTP_HEADER_TIMEOUT} s; "
        f"bodies: GOFER_HTTP_BODY_TIMEOUT={settings.GOFER_HTTP_BODY_TIMEOUT} s, then at least "
        f"GOFER_HTTP_BODY_MIN_RATE={settings.GOFER_HTTP_BODY_MIN_RATE} bytes/s)"
    )
    _refuse(channel, _error_response(408, "Request Timeout", "request_timeout", message, what), linger=False)


def _arm_header_deadline(channel: Any) -> None:
    # lazy: the reactor daphne installed (asyncio).
    from twisted.internet import reactor

    state = _state(channel)
    _cancel(state.header_call)
    state.header_call = reactor.callLater(_settings().GOFER_HTTP_HEADER_TIMEOUT, _timed_out, channel, "headers")


def _start_body_clock(channel: Any) -> None:
    # lazy: the reactor daphne installed (asyncio).
    from twisted.internet import reactor

    state = _state(channel)
    state.body_started = time.monotonic()
    state.body_received = 0

    def check() -> None:
        settings = _settings()
        allowed = settings.GOFER_HTTP_BODY_TIMEOUT + state.body_received / settings.GOFER_HTTP_BODY_MIN_RATE
        if time.monotonic() - state.body_started > allowed:
            _timed_out(channel, "body")
        else:
            state.body_call = reactor.callLater(1, check)

    _cancel(state.body_call)
    state.body_call = reactor.callLater(1, check)


def _release_client_slot(transport: Any) -> None:
    peer = getattr(transport, "__dict__", {}).pop(_SLOT, None)
    if peer is not None:
        _CONNECTIONS[peer] -= 1
        if _CONNECTIONS[peer] <= 0:
            del _CONNECTIONS[peer]


_CONNECTIONS: Counter[str] = Counter()


def _install_limits(http_channel: Any, websocket_protocol: Any) -> None:
    """Patch Twisted's HTTPChannel (and daphne's websocket protocol, which inherits the connection) for the limits
    above. The bodies of ``allHeadersReceived`` are Twisted's own, with the checks between them."""
    # lazy: Gofer's client-address rules; the kernel's middleware module needs Django set up.
    from kernel import gate
    from kernel.api.middleware import is_trusted_proxy
    from kernel.errors import GoferError

    original_connection_made = http_channel.connectionMade
    original_connection_lost = http_channel.connectionLost
    original_raw_data = http_channel.rawDataReceived
    original_all_content = http_channel.allContentReceived
    original_request_done = http_channel.requestDone
    original_data_received = http_channel.dataReceived
    original_ws_lost = websocket_protocol.connectionLost

    def connectionMade(self: Any) -> None:  # noqa: N802 - Twisted's names
        original_connection_made(self)
        cap = _settings().GOFER_MAX_CONNECTIONS_PER_CLIENT
        peer = str(getattr(self.transport.getPeer(), "host", ""))
        if cap and peer and not is_trusted_proxy(peer):
            if _CONNECTIONS[peer] >= cap:
                message = (
                    f"connections: this address already has {cap} open connections "
                    "(GOFER_MAX_CONNECTIONS_PER_CLIENT); close one and retry"
                )
                _refuse(
                    self,
                    _error_response(429, "Too Many Requests", "rate_limited", message, "connections"),
                    linger=False,
                )
                return
            _CONNECTIONS[peer] += 1
            self.transport.__dict__[_SLOT] = peer
        _arm_header_deadline(self)

    def connectionLost(self: Any, reason: Any) -> None:  # noqa: N802
        state = _state(self)
        for call in (state.header_call, state.body_call, *state.calls):
            _cancel(call)
        _release_client_slot(self.transport)
        original_connection_lost(self, reason)

    def ws_connection_lost(self: Any, *args: Any, **kwargs: Any) -> None:
        _release_client_slot(self.transport)
        original_ws_lost(self, *args, **kwargs)

    def allHeadersReceived(self: Any) -> None:  # noqa: N802
        state = _state(self)
        _cancel(state.header_call)
        request = self.requests[-1]
        if self.length == 0:
            # No body: Twisted's own, unchanged.
            request.parseCookies()
            self.persistent = self.checkPersistence(request, self._version)
            request.gotLength(self.length)
            return
        method = self._command.decode("ascii", "replace")
        path = unquote(self._path.split(b"?", 1)[0].decode("ascii", "replace"))
        policy = body_policy(method, path)
        state.body_limit, state.limit_name = policy.limit, policy.limit_name
        if self.length is not None and self.length > policy.limit:
            _too_large(self, policy.limit, policy.limit_name, linger=True)
            return
        header = (request.requestHeaders.getRawHeaders(b"authorization") or [b""])[0].decode("latin1")
        scheme, _, secret = header.partition(" ")
        if policy.needs_token:
            if not header:
                _unauthenticated(self, "missing token: send the header 'Authorization: Bearer <token>'")
                return
            if scheme.lower() != "bearer" or not secret.strip():
                _unauthenticated(self, "malformed Authorization header: expected 'Bearer <token>'")
                return
        expect = request.requestHeaders.getRawHeaders(b"expect")
        state.expect_continue = bool(expect and expect[0].lower() == b"100-continue" and self._version == b"HTTP/1.1")
        # Twisted's allHeadersReceived, without its automatic 100 Continue (sent below, once the body may come).
        request.parseCookies()
        self.persistent = self.checkPersistence(request, self._version)
        request.gotLength(self.length)
        if header and (self.length is None or self.length > AUTHENTICATE_BODIES_OVER):
            _verify(self, secret.strip())
        else:
            _body_may_come(self)

    def _body_may_come(channel: Any) -> None:
        state = _state(channel)
        if state.expect_continue:
            state.expect_continue = False
            channel._send100Continue()
        _start_body_clock(channel)

    def _verify(channel: Any, secret: str) -> None:
        """Pause the connection, check the token through the access gate in a thread, then resume or refuse."""
        # lazy: Channels' database-aware thread runner (closes stale connections around the call).
        from channels.db import database_sync_to_async

        state = _state(channel)
        state.verifying = True
        channel.transport.pauseProducing()

        def check() -> str:
            try:
                gate.current().principal_for_bearer(secret)
            except GoferError as error:
                return error.message
            return ""

        def done(future: asyncio.Future) -> None:
            state.verifying = False
            if channel.transport is None or state.refused:
                return
            try:
                refusal = future.result()
            except Exception:
                # The database is unreachable: the view authenticates again and answers properly.
                logger.warning("could not check a token before reading a request body", exc_info=True)
                refusal = ""
            if refusal:
                _unauthenticated(channel, refusal)
                return
            channel.transport.resumeProducing()
            if state.content_waiting:
                # The whole body is already here: no 100 Continue, no body clock; on to the application.
                state.content_waiting = False
                original_all_content(channel)
            else:
                _body_may_come(channel)

        asyncio.ensure_future(database_sync_to_async(check, thread_sensitive=False)()).add_done_callback(done)

    def rawDataReceived(self: Any, data: bytes) -> None:  # noqa: N802
        state = _state(self)
        if not self._handlingRequest and state.body_limit is not None:
            state.body_received += len(data)
            if self.length is None and state.body_received > state.body_limit + 64 * 1024:
                # A chunked body (its framing counted too, hence the slack) past the limit.
                _too_large(self, state.body_limit, state.limit_name, linger=True)
                return
        original_raw_data(self, data)

    def allContentReceived(self: Any) -> None:  # noqa: N802
        state = _state(self)
        _cancel(state.body_call)
        state.body_limit = None
        if state.verifying:
            # The whole (small, chunked) body arrived with the headers: hold it until the token is checked.
            state.content_waiting = True
            self._handlingRequest = True
            return
        original_all_content(self)

    def requestDone(self: Any, request: Any) -> None:  # noqa: N802
        # The next request on a kept-alive connection gets as long for its headers as the first, counted from its
        # first byte (an idle kept-alive connection is Twisted's: closed after its 60 s idle timeout). Set before
        # Twisted replays what the client already sent, which may hold that request.
        if self.persistent:
            _state(self).awaiting_request = True
        original_request_done(self, request)

    def dataReceived(self: Any, data: bytes) -> None:  # noqa: N802
        state = _state(self)
        if state.awaiting_request:
            state.awaiting_request = False
            _arm_header_deadline(self)
        original_data_received(self, data)

    for name, function in {
        "connectionMade": connectionMade,
        "connectionLost": connectionLost,
        "allHeadersReceived": allHeadersReceived,
        "rawDataReceived": rawDataReceived,
        "allContentReceived": allContentReceived,
        "requestDone": requestDone,
        "dataReceived": dataReceived,
    }.items():
        setattr(http_channel, name, function)
    websocket_protocol.connectionLost = ws_connection_lost


def install() -> bool:
    """Patch daphne 4 if this process has loaded it (see the module docstring). Idempotent; returns whether active."""
    if "daphne.server" not in sys.modules:
        return False
    # lazy: daphne is patched only in a process that serves with it, never imported by workers or commands.
    import daphne
    from daphne.http_protocol import WebRequest
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.web.http import HTTPChannel

    if getattr(Server.create_application, _MARK, False):
        return True
    if not str(daphne.__version__).startswith("4."):
        logger.warning(
            "daphne %s is not daphne 4: object uploads and downloads are not memory-bounded (objectstore/"
            "daphne_streaming.py supports daphne 4 only)",
            daphne.__version__,
        )
        return False

    original_init = WebRequest.__init__
    original_create = Server.create_application
    original_reply = Server.handle_reply

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        original_init(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        body_file = getattr(protocol, "content", None)
        if scope.get("type") != "http" or body_file is None or isinstance(body_file, io.BytesIO):
            return original_create(self, protocol, scope)
        application = self.application

        def with_lazy_body(*, scope: dict[str, Any], receive: Any, send: Any) -> Any:
            return application(scope=scope, receive=_LazyBody(body_file, receive), send=send)

        # create_application calls self.application synchronously, on the reactor's one thread: swapping it for
        # the duration of the call affects this request only.
        self.application = with_lazy_body
        try:
            queue = original_create(self, protocol, scope)
        finally:
            self.application = application
        if queue is not None:
            protocol.content = _EmptyBody(body_file)
        return queue

    async def handle_reply(self: Any, protocol: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        is_body = kind == "http.response.body"
        more = bool(message.get("more_body", False))
        if is_body and not more:
            # Twisted wants producers gone before the request finishes, which this last message does.
            _release(protocol)
        if kind == "websocket.close":
            # Everything sent before the close is still queued for a slow client; give it time to read it all and
            # answer the close, instead of autobahn's default of 1 s, after which the rest would be dropped.
            protocol.closeHandshakeTimeout = WEBSOCKET_CLOSE_TIMEOUT_SECONDS
        await original_reply(self, protocol, message)
        if is_body and more:
            await _wait_for_client(protocol)
        elif kind == "websocket.send":
            await _wait_for_websocket_client(protocol)

    for function in (__init__, create_application, handle_reply):
        setattr(function, _MARK, True)
    WebRequest.__init__ = __init__
    Server.create_application = create_application
    Server.handle_reply = handle_reply
    _install_limits(HTTPChannel, WebSocketProtocol)
    return True
