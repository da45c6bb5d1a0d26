"""How bodies move: ASGI and WSGI requests, raw uploads that DRF never parses, and the daphne patch's pieces."""

from __future__ import annotations

import asyncio
import inspect
import io
import os

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, AsyncRequestFactory, RequestFactory

from kernel.api import daphne_streaming
from kernel.api.errors import status_of
from kernel.errors import ValidationFailed
from objectstore import services
from objectstore.api.streaming import StreamedBodyParser, download_response, upload_of
from objectstore.api.views import ObjectsView, PipelineObjectDetailView
from objectstore.errors import LengthRequired
from objectstore.models import PipelineObject
from tests.support.objects import PIPELINE, raw_post

OBJECT = f"{PIPELINE}/objects/streamed"


def asgi_headers(caller) -> dict[str, str]:
    return {"Authorization": f"Bearer {caller.token}", "gofer-api-version": "v0"}


def test_under_asgi_a_download_streams_from_an_asynchronous_iterator(pipeline, alice):
    """A synchronous iterator would be read into a list first under ASGI (StreamingHttpResponse.__aiter__)."""
    payload = bytes(range(256)) * 8192  # 2 MiB: more than one chunk
    assert raw_post(alice, OBJECT, payload).status_code == 201

    async def download():
        response = await AsyncClient().get(OBJECT, headers=asgi_headers(alice))
        assert response.status_code == 200
        assert response.is_async
        assert inspect.isasyncgen(response._iterator)
        return response["Content-Length"], b"".join([chunk async for chunk in response.streaming_content])

    length, content = async_to_sync(download)()

    assert length == str(len(payload))
    assert content == payload


def test_under_asgi_an_upload_is_stored(pipeline, alice):
    async def upload():
        return await AsyncClient().post(
            OBJECT, b"via asgi", content_type="application/octet-stream", headers=asgi_headers(alice)
        )

    response = async_to_sync(upload)()

    assert response.status_code == 201, response.content
    assert PipelineObject.objects.get(key="streamed").size == 8


def test_under_wsgi_a_download_streams_from_a_synchronous_iterator(pipeline, alice):
    raw_post(alice, OBJECT, b"abc")

    response = alice.get(OBJECT)

    assert response.streaming and not response.is_async
    assert b"".join(response.streaming_content) == b"abc"


def open_blob_files() -> list[str]:
    """Blob files this process holds open."""
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "/blobs/" in target:
            paths.append(target)
    return paths


@pytest.mark.parametrize("factory", [RequestFactory, AsyncRequestFactory], ids=["wsgi", "asgi"])
def test_a_download_response_closed_unread_releases_its_file(pipeline, factory):
    services.put_pipeline_object(pipeline, "k", [b"abc"])
    response = download_response(factory().get("/x"), services.open_pipeline_object(pipeline, "k"))
    assert len(open_blob_files()) == 1

    response.close()

    assert open_blob_files() == []


def test_under_wsgi_a_chunked_upload_without_content_length_is_a_411_not_an_empty_object():
    request = RequestFactory().generic("POST", "/x", b"", content_type="application/octet-stream")
    request.META.pop("CONTENT_LENGTH", None)
    request.META["HTTP_TRANSFER_ENCODING"] = "chunked"

    with pytest.raises(LengthRequired) as raised:
        upload_of(request)
    assert status_of(raised.value) == 411
    assert raised.value.errors[0].field == "Content-Length"


def test_an_upload_is_read_in_chunks_of_at_most_one_mebibyte():
    payload = b"y" * (2 * 1024 * 1024 + 5)
    request = RequestFactory().generic("POST", "/x", payload, content_type="application/octet-stream")

    chunks, length = upload_of(request)
    sizes = [len(chunk) for chunk in chunks]

    assert length == len(payload)
    assert sizes == [1024 * 1024, 1024 * 1024, 5]


def test_an_invalid_content_length_is_a_400_naming_it(pipeline, alice):
    response = alice.client.generic(
        "POST", OBJECT, b"abc", content_type="application/octet-stream", CONTENT_LENGTH="-3", **alice._headers(None)
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Content-Length"
    assert not PipelineObject.objects.exists()


def test_the_object_views_refuse_to_parse_bodies_with_drf():
    assert PipelineObjectDetailView.parser_classes == [StreamedBodyParser]
    with pytest.raises(RuntimeError, match="streamed"):
        StreamedBodyParser().parse(io.BytesIO(b"x"))
    with pytest.raises(RuntimeError, match="stream"):
        ObjectsView().body()


def test_a_request_that_ends_early_under_wsgi_is_not_stored(pipeline):
    """LimitedStream returns what arrived; the announced size tells a cut upload from a complete one."""
    request = RequestFactory().generic("POST", "/x", b"only-part", content_type="application/octet-stream")
    request.META["CONTENT_LENGTH"] = "100"
    request._stream = io.BytesIO(b"only-part")
    chunks, length = upload_of(request)

    with pytest.raises(ValidationFailed, match="9 bytes arrived but Content-Length announced 100"):
        services.put_pipeline_object(pipeline, "cut", chunks, content_length=length)
    assert not PipelineObject.objects.exists()


# --- the daphne patch, piece by piece (the end-to-end proof is test_large_object_streaming.py) ------------------------


def test_daphne_is_patched_in_processes_that_load_it():
    from daphne.http_protocol import WebRequest
    from daphne.server import Server

    assert daphne_streaming.install() is True
    assert daphne_streaming.install() is True  # idempotent
    for function in (Server.create_application, Server.handle_reply, WebRequest.__init__):
        assert getattr(function, "_gofer_streaming", False), function


def test_the_lazy_body_serves_the_file_in_chunks_then_skips_daphnes_empty_copy():
    body = io.BytesIO(b"a" * daphne_streaming.BODY_CHUNK + b"tail")
    queue: asyncio.Queue = asyncio.Queue()

    async def scenario():
        receive = daphne_streaming._LazyBody(body, queue.get)
        # What daphne's own loop puts in the queue after reading the empty stand-in, then a disconnect.
        queue.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        queue.put_nowait({"type": "http.disconnect"})
        return [await receive() for _ in range(3)]

    first, second, third = asyncio.run(scenario())

    assert (len(first["body"]), first["more_body"]) == (daphne_streaming.BODY_CHUNK, True)
    assert (second["body"], second["more_body"]) == (b"tail", False)
    assert third == {"type": "http.disconnect"}


def test_the_lazy_body_reports_a_disconnect_when_twisted_closed_the_file():
    body = io.BytesIO(b"abc")
    body.close()

    message = asyncio.run(daphne_streaming._LazyBody(body, None)())

    assert message == {"type": "http.disconnect"}


def test_the_stand_in_reads_nothing_and_closes_the_real_file():
    real = io.BytesIO(b"abc")
    stand_in = daphne_streaming._EmptyBody(real)

    assert stand_in.read(8192) == b""
    assert stand_in.closed is False
    stand_in.close()
    assert real.closed and stand_in.closed


def test_the_send_gate_blocks_while_twisted_reports_a_full_buffer():
    async def scenario():
        gate = daphne_streaming._SendGate()
        gate.pauseProducing()
        waiter = asyncio.ensure_future(gate.open.wait())
        await asyncio.sleep(0.01)
        blocked = not waiter.done()
        gate.resumeProducing()
        await asyncio.wait_for(waiter, 1)
        return blocked

    assert asyncio.run(scenario()) is True
