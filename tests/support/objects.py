"""Helpers of the object store tests: raw (non-JSON) object requests through the test client, the blobs on disk,
and runs to hang run objects on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse

from kernel.rbac import SYSTEM_PRINCIPAL
from runs import services as runs
from runs.choices import RunState, RunStatus
from runs.models import Run

PIPELINE = "/api/namespaces/team-a/pipelines/build"


def raw_post(caller: Any, path: str, data: bytes, **query: str) -> Any:
    """POST ``data`` as the raw body (application/octet-stream), with ``query`` as the query string."""
    if query:
        path = path + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return caller.client.generic("POST", path, data, content_type="application/octet-stream", **caller._headers(None))


def head(caller: Any, path: str) -> Any:
    return caller.client.head(path, **caller._headers(None))


def content_of(response: Any) -> bytes:
    """The body of a download, which must be streamed."""
    assert isinstance(response, StreamingHttpResponse), type(response)
    return b"".join(response.streaming_content)


def blob_files() -> list[Path]:
    """Every file under GOFER_OBJECT_DIR (committed blobs and any leftover partial uploads)."""
    root = Path(settings.GOFER_OBJECT_DIR)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def start_run(pipeline, *, complete: bool = True) -> Run:
    """A run of ``pipeline``, complete unless asked otherwise (the run engine is not part of these tests)."""
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    if complete:
        Run.objects.filter(pk=run.pk).update(state=RunState.COMPLETE, status=RunStatus.SUCCESSFUL)
        run.refresh_from_db()
    return run
