"""Raw request bodies in, raw response bodies out, a chunk at a time under both ASGI and WSGI.

Uploads are read from the Django request under DRF's (``request._request.read(UPLOAD_CHUNK)``), never through
``request.data``/``request.body``: those parse or load the whole body. How much reaches the view at once depends on
the server (docs/objects.md, "Streaming and memory"):
- ASGI (daphne, ``make run``): Django's ASGIHandler has received the whole body into a SpooledTemporaryFile (memory
  up to FILE_UPLOAD_MAX_MEMORY_SIZE, then a temporary file) before the view runs; reading it is reading that file.
  kernel/api/daphne_streaming.py keeps daphne itself from holding the body in memory first.
- WSGI: ``read`` pulls from the server's input stream, limited to Content-Length; Django ignores a chunked body
  without Content-Length (it would read zero bytes), so such uploads are refused with 411 rather than stored empty.

Downloads are a StreamingHttpResponse over the backend's reader. Django materialises a *synchronous* iterator into a
list under ASGI (StreamingHttpResponse.__aiter__) and an *asynchronous* one under WSGI, so the iterator matches the
handler: async under ASGI, reading each chunk in a worker thread; sync under WSGI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from rest_framework.parsers import BaseParser
from rest_framework.request import Request

from kernel.errors import ValidationFailed
from objectstore.errors import LengthRequired
from objectstore.services import ObjectDownload

UPLOAD_CHUNK = 1024 * 1024
DOWNLOAD_CHUNK = 1024 * 1024
OCTET_STREAM = "application/octet-stream"


class StreamedBodyParser(BaseParser):
    """Declares raw uploads (for content negotiation and the schema) and refuses to parse them: the view streams
    the body itself, and anything that touched ``request.data`` would read it whole."""

    media_type = OCTET_STREAM

    def parse(self, stream, media_type=None, parser_context=None):  # noqa: ANN001, ANN201 - DRF's signature
        raise RuntimeError("object uploads are streamed with objectstore.api.streaming.upload_of, not request.data")


def _django_request(request: Request | HttpRequest) -> HttpRequest:
    return request._request if isinstance(request, Request) else request


def content_length_of(request: Request | HttpRequest) -> int | None:
    """The announced body size, None when there is none; a 400 naming Content-Length when it is not a size."""
    raw = _django_request(request).META.get("CONTENT_LENGTH", "")
    if raw in ("", None):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValidationFailed("Content-Length: must be a non-negative integer", field="Content-Length")
    return value


def upload_of(request: Request | HttpRequest) -> tuple[Iterator[bytes], int | None]:
    """The request body as chunks of at most UPLOAD_CHUNK bytes, and its announced size (None when unknown)."""
    django_request = _django_request(request)
    content_length = content_length_of(django_request)
    chunked = "chunked" in django_request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if content_length is None and chunked and not isinstance(django_request, ASGIRequest):
        raise LengthRequired(
            "Content-Length: required by this server for uploads (it cannot read chunked bodies); send the size",
            field="Content-Length",
        )

    def chunks() -> Iterator[bytes]:
        while chunk := django_request.read(UPLOAD_CHUNK):
            yield chunk

    return chunks(), content_length


class _Body:
    """A response body over an open object. Django calls ``close()`` when the response ends, read to the end or
    not (a client that went away, a HEAD): that closes the blob."""

    def __init__(self, download: ObjectDownload) -> None:
        self._download = download

    def close(self) -> None:
        self._download.close()


class _SyncBody(_Body):
    """For WSGI: a plain iterator."""

    def __iter__(self) -> Iterator[bytes]:
        return self._download.chunks(DOWNLOAD_CHUNK)


class _AsyncBody(_Body):
    """For ASGI: an asynchronous iterator (no ``__iter__``, so Django takes it as one); each chunk is read in a
    worker thread, off the event loop."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._download.chunks(DOWNLOAD_CHUNK)
        read = sync_to_async(next, thread_sensitive=False)
        try:
            while (chunk := await read(chunks, None)) is not None:
                yield chunk
        finally:
            self._download.close()


def _headers(response: HttpResponse, download: ObjectDownload) -> HttpResponse:
    response["Content-Length"] = str(download.size)
    response["ETag"] = f'"{download.sha256}"'
    return response


def download_response(request: Request | HttpRequest, download: ObjectDownload) -> StreamingHttpResponse:
    """The object's bytes as a streamed ``application/octet-stream`` response with Content-Length and ETag."""
    body = _AsyncBody(download) if isinstance(_django_request(request), ASGIRequest) else _SyncBody(download)
    return _headers(StreamingHttpResponse(body, content_type=OCTET_STREAM), download)


def head_response(download: ObjectDownload) -> HttpResponse:
    """The headers a GET would send, without the bytes (closes the download)."""
    download.close()
    return _headers(HttpResponse(content_type=OCTET_STREAM), download)
