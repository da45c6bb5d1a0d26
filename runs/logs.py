"""Durable task logs: one JSON-lines file per task execution under ``GOFER_LOG_DIR``.

Each line of a log file is one record:

- ``{"n": 7, "t": 1795873364335.123, "s": "stdout", "m": "text", "c": {...}}``: line ``n`` (from 0), the engine's
  timestamp in epoch milliseconds, the stream, the (masked) text, and the scheduler's cursor just after this line;
- ``{"n": 42, "eof": true, "exit_code": 0, "c": {...}}``: the end marker, always the last record once the task has
  finished, with the cursor of the last line (so that a worker taking over a finished log never reads it again).

A line longer than ``GOFER_LOG_MAX_LINE_BYTES`` is stored cut there, with a note saying how much was left out.

The file is the source of truth for where pumping resumes: a worker that takes over a task execution reads the
last record's cursor and asks the scheduler for what comes after it, so a crash loses no line and repeats none.
Only the worker holding the task execution's lease writes, under an exclusive ``flock`` for the whole time it
writes, and every batch is one ``write`` of whole lines followed by ``fsync``; a torn last line (a crash in the
middle of a write) is cut off before appending.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings

from kernel import files
from kernel.errors import ValidationFailed
from runs.schedulers.base import LogLine, truncation_note

TAIL_READ_BYTES = 256 * 1024
FORMATS = ("raw", "json")
FOLLOW_POLL_SECONDS = 0.2
CHUNK_BYTES = 64 * 1024


def path_for(task_execution: Any) -> Path:
    """``<GOFER_LOG_DIR>/<namespace>/<pipeline>/<run>/<task>.<id>.log``. The task execution's id makes the name
    unique forever, so a namespace deleted and created again can never meet the files of its predecessor."""
    return (
        Path(settings.GOFER_LOG_DIR)
        / task_execution.namespace_id
        / task_execution.pipeline.slug
        / str(task_execution.run.number)
        / f"{task_execution.task_slug}.{task_execution.pk}.log"
    )


@dataclass
class Tail:
    next_line: int
    cursor: dict[str, Any] | None
    finished: bool


def _read_tail(path: Path) -> Tail:
    """The next line number, the last cursor and whether the end marker is there. Cuts a torn last line."""
    if not path.exists():
        return Tail(0, None, False)
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return Tail(0, None, False)
        start = max(0, size - TAIL_READ_BYTES)
        fh.seek(start)
        chunk = fh.read()
        if not chunk.endswith(b"\n"):
            # A crash in the middle of a write left a partial record: drop it, it will be pumped again.
            cut = chunk.rfind(b"\n")
            fh.truncate(start + cut + 1 if cut >= 0 else start)
            fh.flush()
            os.fsync(fh.fileno())
            chunk = chunk[: cut + 1] if cut >= 0 else b""
            if not chunk:
                return _read_tail(path) if start > 0 else Tail(0, None, False)
        lines = chunk.rstrip(b"\n").split(b"\n")
        last = json.loads(lines[-1])
        return Tail(next_line=last["n"] + 1, cursor=last.get("c"), finished=bool(last.get("eof")))


# Room for the truncation note an engine already appended to a line it cut: the note is not counted in the limit.
NOTE_ROOM = 128


def _capped(text: str, limit: int) -> str:
    """``text`` cut at ``limit`` UTF-8 bytes, with a note of what was left out. Engines cut long lines themselves
    while reading (Docker's does, without holding the rest); this holds the limit for every engine."""
    if len(text) * 4 <= limit:
        return text
    encoded = text.encode("utf-8")
    if len(encoded) <= limit + NOTE_ROOM:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore") + truncation_note(len(encoded) - limit)


class LogWriter:
    """Appends a task execution's lines. Use as a context manager: it holds the file's exclusive lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None
        self.tail = Tail(0, None, False)

    def __enter__(self) -> LogWriter:
        # Private: directories 0700, the file 0600 (kernel/files.py).
        files.private_directories(self.path.parent)
        self._fh = os.fdopen(files.open_private_append(self.path), "ab")
        # Blocks while a stale worker still writes; the lock dies with its process.
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        self.tail = _read_tail(self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    @property
    def cursor(self) -> dict[str, Any] | None:
        return self.tail.cursor

    @property
    def finished(self) -> bool:
        return self.tail.finished

    def append(self, lines: list[LogLine], mask: Any = None) -> int:
        """Append ``lines`` (masked by ``mask(text)`` when given) durably; returns how many were written."""
        if not lines or self.tail.finished:
            return 0
        out = []
        n = self.tail.next_line
        limit = settings.GOFER_LOG_MAX_LINE_BYTES
        for line in lines:
            text = _capped(line.text, limit)
            text = mask(text) if mask else text
            record = {
                "n": n,
                "t": round(line.time.timestamp() * 1000, 3),
                "s": line.stream,
                "m": text,
                "c": line.cursor,
            }
            out.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
            n += 1
        self._fh.write(("\n".join(out) + "\n").encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.tail = Tail(next_line=n, cursor=lines[-1].cursor, finished=False)
        return len(lines)

    def finish(self, exit_code: int | None, note: str = "") -> None:
        """Write the end marker (once), keeping the last cursor in it."""
        if self.tail.finished:
            return
        record: dict[str, Any] = {"n": self.tail.next_line, "eof": True, "exit_code": exit_code, "c": self.tail.cursor}
        if note:
            record["note"] = note
        self._fh.write((json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.tail = Tail(self.tail.next_line + 1, self.tail.cursor, True)


def read_records(path: Path, start_line: int = 0) -> Iterator[dict[str, Any]]:
    """Complete records from line ``start_line`` on, as they are now (a torn last line is not returned)."""
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            record = json.loads(raw)
            if record["n"] >= start_line:
                yield record


class LogFollower:
    """Reads a log file incrementally by byte offset: each ``poll`` returns the complete records written since."""

    def __init__(self, path: Path, start_line: int = 0) -> None:
        self.path = path
        self.start_line = start_line
        self.offset = 0
        self.finished = False

    def poll(self) -> list[dict[str, Any]]:
        if self.finished or not self.path.exists():
            return []
        out = []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            while True:
                raw = fh.readline()
                if not raw or not raw.endswith(b"\n"):
                    break
                self.offset += len(raw)
                record = json.loads(raw)
                if record["n"] < self.start_line and not record.get("eof"):
                    continue  # the end marker always comes through, even to a reader past the last line
                out.append(record)
                if record.get("eof"):
                    self.finished = True
                    break
        return out


# --- Reading for clients (the websocket consumer and the HTTP view share these) -------------------------------------


def parse_format(raw: str | None) -> str:
    """``raw`` (each line's text, what Gofer's CLI expects; the default) or ``json`` (one object per line)."""
    fmt = raw or "raw"
    if fmt not in FORMATS:
        raise ValidationFailed("format: must be raw or json", field="format")
    return fmt


def frame(record: dict[str, Any], fmt: str) -> str | None:
    """What a client receives for one stored record (None: nothing, e.g. the end marker in raw format)."""
    if fmt == "json":
        if record.get("eof"):
            return json.dumps({"eof": True, "exit_code": record.get("exit_code"), "note": record.get("note", "")})
        return json.dumps({"line": record["n"], "time": record["t"], "stream": record["s"], "text": record["m"]})
    if record.get("eof"):
        return None
    return record["m"]


def _body_chunks(records: list[dict[str, Any]], fmt: str) -> Iterator[bytes]:
    """Response bytes for ``records``, one frame per line, about CHUNK_BYTES at a time."""
    pending: list[bytes] = []
    size = 0
    for record in records:
        text = frame(record, fmt)
        if text is None:
            continue
        pending.append(f"{text}\n".encode())
        size += len(pending[-1])
        if size >= CHUNK_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def _ended_without_file(task_execution: Any, follower: LogFollower) -> bool:
    """Whether following can stop although no end marker came: the task is complete and its file is gone."""
    task_execution.refresh_from_db(fields=["state"])
    return task_execution.state == "complete" and not follower.path.exists()


def body(task_execution: Any, offset: int, fmt: str, follow: bool) -> Iterator[bytes]:
    """An HTTP response body of the logs from line ``offset`` (for WSGI servers and the test client)."""
    follower = LogFollower(path_for(task_execution), start_line=offset)
    while True:
        yield from _body_chunks(follower.poll(), fmt)
        if follower.finished or not follow or _ended_without_file(task_execution, follower):
            return
        time.sleep(FOLLOW_POLL_SECONDS)


async def abody(task_execution: Any, offset: int, fmt: str, follow: bool) -> AsyncIterator[bytes]:
    """The same body under ASGI. Django reads a plain iterator to its end before sending a byte, which would make
    ``follow`` wait for the end of the task; this sends each poll's lines as they come, does file and database work
    in threads, and stops when the client leaves (Django cancels it)."""
    follower = LogFollower(path_for(task_execution), start_line=offset)
    poll = sync_to_async(follower.poll, thread_sensitive=False)
    ended_without_file = database_sync_to_async(_ended_without_file)
    while True:
        for chunk in _body_chunks(await poll(), fmt):
            yield chunk
        if follower.finished or not follow or await ended_without_file(task_execution, follower):
            return
        await asyncio.sleep(FOLLOW_POLL_SECONDS)


def delete_run_logs(namespace_id: str, pipeline_slug: str, run_number: int) -> None:
    shutil.rmtree(Path(settings.GOFER_LOG_DIR) / namespace_id / pipeline_slug / str(run_number), ignore_errors=True)


def delete_pipeline_logs(namespace_id: str, pipeline_slug: str) -> None:
    shutil.rmtree(Path(settings.GOFER_LOG_DIR) / namespace_id / pipeline_slug, ignore_errors=True)


def delete_namespace_logs(namespace_id: str) -> None:
    shutil.rmtree(Path(settings.GOFER_LOG_DIR) / namespace_id, ignore_errors=True)
