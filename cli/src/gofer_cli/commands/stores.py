"""Objects and secrets, shared by ``pipeline object``, ``run object``, ``pipeline secret`` and ``secret global``.

Objects are raw bytes: uploads stream from a file or stdin and downloads stream to a file or stdout, with a
progress bar on stderr when it is a terminal. Secrets are small strings sent in JSON.
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from gofer_cli import views
from gofer_cli.client import Page, path
from gofer_cli.commands.base import report_mutation, state
from gofer_cli.errors import UsageError

CHUNK = 256 * 1024
STDIN_NAMES = ("-", "@stdin", "@")


def list_objects(base: tuple[object, ...], page: Page) -> None:
    st = state()
    items = st.client.list(path(*base, "objects"), "objects", page)
    st.out.document({"objects": items}, human=lambda: st.out.rows(items, views.OBJECT, "no objects"))


def _progress(total: int | None, description: str) -> Any:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=state().out.err,
        transient=True,
    )


def _chunks(stream: BinaryIO, on_chunk: Any = None) -> Iterator[bytes]:
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return
        if on_chunk is not None:
            on_chunk(len(chunk))
        yield chunk


def put_object(base: tuple[object, ...], key: str, source: str, force: bool) -> None:
    """Upload ``source`` (a file path, or ``-``/``@stdin`` for standard input) as object ``key``."""
    st = state()
    api_path = path(*base, "objects", key)
    params = {"force": True} if force else None
    if source in STDIN_NAMES:
        stream: BinaryIO = sys.stdin.buffer
        size = None
        label = "stdin"
    else:
        file = Path(source)
        if not file.is_file():
            raise UsageError(f"{source}: no such file", hint="give a file path, or - to read standard input")
        stream = open(file, "rb")  # noqa: SIM115 - closed below
        size = file.stat().st_size
        label = file.name
    try:
        if st.out.progress_allowed and size:
            with _progress(size, f"uploading {label}") as progress:
                task = progress.add_task(f"uploading {label}", total=size)
                body = st.client.upload(
                    api_path, _chunks(stream, lambda n: progress.advance(task, n)), size, params=params
                )
        else:
            body = st.client.upload(api_path, _chunks(stream), size, params=params)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    st.out.document(body, human=lambda: st.out.done(f"Object {key} stored."))


def get_object(base: tuple[object, ...], key: str, file: str | None) -> None:
    """Download object ``key`` to ``file`` (or stdout). JSON output describes it instead of dumping bytes."""
    st = state()
    api_path = path(*base, "objects", key)
    with st.client.stream("GET", api_path) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        if st.out.json and file is None:
            data = response.read()
            try:
                text: str | None = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            st.out.document(
                {"key": key, "size": len(data), "content": text, "content_base64": base64.b64encode(data).decode()}
            )
            return
        sink: BinaryIO = open(file, "wb") if file else sys.stdout.buffer  # noqa: SIM115 - closed below
        written = 0
        try:
            if st.out.progress_allowed and file and total:
                with _progress(total, f"downloading {key}") as progress:
                    task = progress.add_task(f"downloading {key}", total=total)
                    for chunk in response.iter_bytes(CHUNK):
                        sink.write(chunk)
                        written += len(chunk)
                        progress.advance(task, len(chunk))
            else:
                for chunk in response.iter_bytes(CHUNK):
                    sink.write(chunk)
                    written += len(chunk)
        finally:
            if file:
                sink.close()
            else:
                sink.flush()
    if file:
        st.out.document(
            {"key": key, "size": written, "file": os.path.abspath(file)},
            human=lambda: st.out.info(f"Object {key} saved to {file} ({written} bytes)."),
        )


def delete_object(base: tuple[object, ...], key: str) -> None:
    result = state().client.mutate("DELETE", path(*base, "objects", key))
    report_mutation(result, f"Object {key} deleted.")


# --- secrets ----------------------------------------------------------------------------------------------------


def secret_value(value: str) -> str:
    """The secret's content: the argument itself, ``@`` or ``-`` for stdin, ``@PATH`` for a file's content."""
    if value in ("@", "-", "@stdin"):
        return sys.stdin.read()
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{value[1:]}: cannot be read: {exc.strerror}") from None
    return value


def list_secrets(api_path: str, page: Page) -> None:
    st = state()
    items = st.client.list(api_path, "secrets", page)
    st.out.document({"secrets": items}, human=lambda: st.out.rows(items, views.SECRET, "no secrets"))


def get_secret(api_path: str, include_secret: bool) -> None:
    st = state()
    body = st.client.get(api_path, {"include_secret": True} if include_secret else None)

    def human() -> None:
        views.generic_detail(st.out, body.get("metadata") or {})
        if "secret" in body:
            st.out.pairs([("secret", body["secret"], None)])

    st.out.document(body, human=human)


def put_secret(api_path: str, body: dict[str, Any], key: str) -> None:
    st = state()
    answer = st.client.post(api_path, body)
    st.out.document(answer, human=lambda: st.out.done(f"Secret {key} stored."))


def delete_secret(api_path: str, key: str) -> None:
    result = state().client.mutate("DELETE", api_path)
    report_mutation(result, f"Secret {key} deleted.")
