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

The patch is tied to daphne 4's internals; ``install()`` refuses other major versions (with a warning), and
tests/objectstore/test_large_object_streaming.py measures the server's peak memory on a 1 GiB round trip, so a
daphne upgrade that breaks it fails that test rather than production.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)

BODY_CHUNK = 1024 * 1024
# How often a response waiting on a full send buffer checks that its client is still there: Twisted does not tell
# a paused producer about a lost connection.
_DISCONNECT_POLL_SECONDS = 1.0
_MARK = "_gofer_streaming"
WEBSOCKET_CLOSE_TIMEOUT_SECONDS = 60


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


def install() -> bool:
    """Patch daphne 4 if this process has loaded it (see the module docstring). Idempotent; returns whether active."""
    if "daphne.server" not in sys.modules:
        return False
    # lazy: daphne is patched only in a process that serves with it, never imported by workers or commands.
    import daphne
    from daphne.http_protocol import WebRequest
    from daphne.server import Server

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
    return True
