"""Durable task logs: one JSON-lines file per task execution under ``GOFER_LOG_DIR``.

Each line of a log file is one record:

- ``{"n":7,"t":1795873364335.123,"s":"stdout","m":"text"}``: line ``n`` (from 0), the engine's timestamp in epoch
  milliseconds, the stream and the (masked) text; the last line of each batch the worker stored also carries
  ``"c": {...}``, the scheduler's cursor just after it (files written before issue 9 have it on every line);
- ``{"n": 42, "eof": true, "exit_code": 0, "c": {...}}``: the end marker, always the last record once the task has
  finished, with the cursor of the last line (so that a worker taking over a finished log never reads it again).

A line longer than ``GOFER_LOG_MAX_LINE_BYTES`` is stored cut there, with a note saying how much was left out.

The file is the source of truth for where pumping resumes: a worker that takes over a task execution reads the
last cursor in the file and asks the scheduler for what comes after it, so a crash loses no line and repeats none.
Only the worker holding the task execution's lease writes, under an exclusive ``flock`` for the whole time it
writes, and every batch is one ``write`` of whole lines, fsynced by the writer's thread right behind it (the end
marker is fsynced before ``finish`` returns, the rest before the writer lets the lock go). A crash in a write
leaves a torn last line, cut off before appending, and perhaps complete lines after the last cursor (a batch
written in part): those stay, since a follower may have sent them already, and the first lines the scheduler gives
again from that cursor, the same lines, are not stored a second time (``Tail.replayed``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings

from kernel import files
from kernel.errors import ValidationFailed
from runs import log_wakeups
from runs.schedulers.base import LogBatch, LogLine, epoch_ns, truncation_note

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
    # Lines stored after the last cursor (a batch written in part before a crash): the scheduler gives them again
    # first when asked for what follows that cursor, and they are not stored twice.
    replayed: int = 0


def _cut_torn_line(fh: Any, size: int) -> int:
    """Cut a partial last record (a crash in the middle of a write; it will be pumped again); the new size."""
    if size == 0:
        return 0
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return size
    end, new_size = size, 0
    while end > 0:
        start = max(0, end - TAIL_READ_BYTES)
        fh.seek(start)
        cut = fh.read(end - start).rfind(b"\n")
        if cut >= 0:
            new_size = start + cut + 1
            break
        end = start
    fh.truncate(new_size)
    fh.flush()
    os.fsync(fh.fileno())
    return new_size


def _read_tail(path: Path) -> Tail:
    """The next line number, the last cursor, how many lines follow it, and whether the end marker is there. Cuts
    a torn last line."""
    if not path.exists():
        return Tail(0, None, False)
    with open(path, "rb+") as fh:
        size = _cut_torn_line(fh, fh.seek(0, os.SEEK_END))
        if size == 0:
            return Tail(0, None, False)
        window, next_line = TAIL_READ_BYTES, 0
        while True:
            start = max(0, size - window)
            fh.seek(start)
            lines = fh.read(size - start).rstrip(b"\n").split(b"\n")
            if start > 0:
                lines = lines[1:]  # the first may be the end of a record that began before the window
            if lines:
                next_line = json.loads(lines[-1])["n"] + 1
                for after, raw in enumerate(reversed(lines)):
                    record = json.loads(raw)
                    if "c" in record:
                        return Tail(next_line, record["c"], bool(record.get("eof")), replayed=after)
            if start == 0:
                return Tail(next_line, None, False, replayed=len(lines))
            window *= 4


# Room for the truncation note an engine already appended to a line it cut: the note is not counted in the limit.
NOTE_ROOM = 128


# JSON strings, with Python's own C encoder (what json.dumps uses for a str, with ensure_ascii=False).
_encode = json.encoder.encode_basestring
_STREAM_JSON = {"stdout": '"stdout"', "stderr": '"stderr"'}


def _capped(text: str, limit: int) -> str:
    """``text`` cut at ``limit`` UTF-8 bytes, with a note of what was left out. Engines cut long lines themselves
    while reading (Docker's does, without holding the rest); this holds the limit for every engine."""
    if len(text) * 4 <= limit:
        return text
    encoded = text.encode("utf-8")
    if len(encoded) <= limit + NOTE_ROOM:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore") + truncation_note(len(encoded) - limit)


class _Syncer:
    """A thread that fsyncs a file whenever something was written to it since its last fsync (group commit: the
    writes made during one fsync are made durable by the next)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = threading.Event()
        self._closing = False
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name=f"gofer-log-fsync-{fd}", daemon=True)
        self._thread.start()

    def written(self) -> None:
        if self._error is not None:
            raise self._error
        self._pending.set()

    def _run(self) -> None:
        while True:
            self._pending.wait()
            if self._closing:
                return
            self._pending.clear()
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._error = exc  # raised to the pump at its next write; close() fsyncs (and raises) again
                return

    def close(self) -> None:
        """Stop the thread, then fsync what it may not have (raises what an fsync raised)."""
        self._closing = True
        self._pending.set()
        self._thread.join()
        os.fsync(self._fd)


class LogWriter:
    """Appends a task execution's lines. Use as a context manager: it holds the file's exclusive lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None
        self.tail = Tail(0, None, False)
        self._syncer: _Syncer | None = None

    def __enter__(self) -> LogWriter:
        # Private: directories 0700, the file 0600 (kernel/files.py).
        files.private_directories(self.path.parent)
        self._fh = os.fdopen(files.open_private_append(self.path), "ab")
        # Blocks while a stale worker still writes; the lock dies with its process.
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        self.tail = _read_tail(self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        syncer, self._syncer = self._syncer, None
        try:
            if syncer is not None:
                syncer.close()  # what was written is on disk before the lock is let go
        finally:
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
        if not lines:
            return 0
        return self.append_batch(
            LogBatch([(epoch_ns(x.time), x.stream, x.text) for x in lines], lines[-1].cursor), mask
        )

    def append_batch(self, batch: LogBatch, mask: Any = None) -> int:
        """Append ``batch`` (masked by ``mask`` when given) in one write; returns how many lines were written. Lines
        already stored after the last cursor (``Tail.replayed``) are skipped, not stored again.

        The write is visible to followers at once; it is made durable by the writer's fsync thread (``_Syncer``),
        which fsyncs again as soon as the previous fsync returned, so the pump goes on reading while the disk syncs
        and a batch is on disk within about one fsync of being written; ``finish`` and leaving the context fsync
        before returning. Each record is formatted here rather than by ``json.dumps`` of a dict (the same JSON, in a
        third of the time); only the last record carries the batch's cursor."""
        lines = batch.lines
        if not lines or self.tail.finished:
            return 0
        if self.tail.replayed:
            skipped = min(self.tail.replayed, len(lines))
            lines = lines[skipped:]
            self.tail.replayed -= skipped
            if not lines:
                self.tail = Tail(self.tail.next_line, batch.cursor, False, self.tail.replayed)
                return 0
        limit = settings.GOFER_LOG_MAX_LINE_BYTES
        room = limit // 4  # a text of at most this many characters is within the limit in any encoding
        texts = [text if len(text) <= room else _capped(text, limit) for _, _, text in lines]
        if mask is not None:
            texts = mask.lines(texts) if hasattr(mask, "lines") else [mask(text) for text in texts]
        first = self.tail.next_line
        streams = _STREAM_JSON
        records = [
            f'{{"n":{n},"t":{ts // 1000 / 1000!r},"s":{streams.get(stream) or _encode(stream)},"m":{_encode(text)}}}'
            for n, (ts, stream, _), text in zip(range(first, first + len(lines)), lines, texts, strict=True)
        ]
        records[-1] = records[-1][:-1] + ',"c":' + json.dumps(batch.cursor, separators=(",", ":")) + "}"
        records.append("")
        self._fh.write("\n".join(records).encode("utf-8"))
        self._fh.flush()
        if self._syncer is None:
            self._syncer = _Syncer(self._fh.fileno())
        self._syncer.written()
        self.tail = Tail(next_line=first + len(lines), cursor=batch.cursor, finished=False)
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


def _line_number(raw: bytes) -> int:
    """The ``n`` of a stored record, read from its start when it has the usual form."""
    if raw.startswith(b'{"n":'):
        comma = raw.find(b",", 5)
        if comma > 5 and raw[5:comma].isdigit():
            return int(raw[5:comma])
    return json.loads(raw)["n"]


def _is_end_marker(raw: bytes) -> bool:
    if raw.startswith(b'{"n":'):
        comma = raw.find(b",", 5)
        if comma > 5 and raw[5:comma].isdigit():
            return raw.startswith(b'"eof":true', comma + 1)
    return bool(json.loads(raw).get("eof"))


class LogFollower:
    """Reads a log file incrementally by byte offset: each poll returns the complete records written since, at
    most READ_BYTES of them (plus the rest of a longer record); ``caught_up`` says whether it reached the end."""

    READ_BYTES = 1024 * 1024

    def __init__(self, path: Path, start_line: int = 0) -> None:
        self.path = path
        self.start_line = start_line
        self.offset = 0
        self.finished = False
        self.caught_up = False
        self.missing = False  # the file was not there at the last poll
        self._past_start = start_line <= 0

    def poll_raw(self) -> list[bytes]:
        """The complete records (JSON lines, newline included) written since the last poll, from line
        ``start_line`` on; the end marker always comes through, even to a reader past the last line."""
        if self.finished:
            return []
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed below; a missing file is an answer, not an error
        except FileNotFoundError:
            self.missing, self.caught_up = True, True
            return []
        self.missing = False
        with fh:
            fh.seek(self.offset)
            data = fh.read(self.READ_BYTES)
            at_end = len(data) < self.READ_BYTES
            end = data.rfind(b"\n") + 1
            while end == 0 and not at_end:
                # One record longer than a read: read on to its end.
                more = fh.read(self.READ_BYTES)
                data += more
                at_end = len(more) < self.READ_BYTES
                end = data.rfind(b"\n") + 1
        self.caught_up = at_end
        if end == 0:
            return []
        self.offset += end
        records = data[:end].split(b"\n")
        records.pop()  # what follows the last newline
        out = []
        for index, raw in enumerate(records):
            raw += b"\n"
            if not self._past_start:
                if _line_number(raw) < self.start_line and not _is_end_marker(raw):
                    continue
                self._past_start = True
            if _is_end_marker(raw):
                out.append(raw)
                self.finished = True
                # Nothing follows the end marker; should anything, it is not this task's output.
                self.offset -= sum(len(r) + 1 for r in records[index + 1 :])
                break
            out.append(raw)
        return out

    def poll(self) -> list[dict[str, Any]]:
        """``poll_raw``, parsed."""
        return [json.loads(raw) for raw in self.poll_raw()]

    def frames(self, fmt: str, batch: bool = False) -> list[str]:
        """What a client receives for the records written since the last poll: one frame per line, or with
        ``batch`` as many lines per frame as FRAME_BYTES allows, separated by newlines."""
        texts = frame_texts(self.poll_raw(), fmt)
        return pack(texts) if batch else texts


# --- Reading for clients (the websocket consumer and the HTTP view share these) -------------------------------------

FRAME_BYTES = 64 * 1024


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


def _fields(raw: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
    """The raw ``n``, ``t``, ``s`` and ``m`` values of a line record of the form this module writes
    (``{"n":..,"t":..,"s":"..","m":".."}``), or None for any other record (a batch's last line, with its cursor;
    the end marker). ``m`` is the JSON string as stored. The first ``,"m":"`` is the key: a quote inside a JSON
    string is always escaped."""
    if not raw.startswith(b'{"n":') or not raw.endswith(b'"}\n'):
        return None
    t = raw.find(b',"t":', 5)
    s = raw.find(b',"s":"', t) if t > 0 else -1
    m = raw.find(b',"m":"', s) if s > 0 else -1
    if m < 0:
        return None
    return raw[5:t], raw[t + 5 : s], raw[s + 5 : m], raw[m + 5 : -2]


def _fast_raw(raw: bytes) -> str | None:
    fields = _fields(raw)
    if fields is None:
        return None
    encoded = fields[3]
    inner = encoded[1:-1]
    if b"\\" not in inner and b'"' not in inner:
        return inner.decode("utf-8")  # a JSON string without escapes is its text
    text = json.loads(encoded)  # exactly one JSON string, or ValueError
    return text if isinstance(text, str) else None


def _fast_json(raw: bytes) -> str | None:
    fields = _fields(raw)
    if fields is None:
        return None
    n, t, s, m = fields
    if not n.isdigit() or (n[0] == 48 and n != b"0") or s not in (b'"stdout"', b'"stderr"'):
        return None
    if repr(float(t)).encode() != t:
        return None
    inner = m[1:-1]
    if b"\\" not in inner and b'"' not in inner and inner.isascii() and b"\x7f" not in inner:
        # What json.dumps writes for this text (ASCII, nothing to escape) is the stored string itself.
        return (b'{"line": ' + n + b', "time": ' + t + b', "stream": ' + s + b', "text": ' + m + b"}").decode()
    text = json.loads(m)
    if not isinstance(text, str):
        return None
    return f'{{"line": {n.decode()}, "time": {t.decode()}, "stream": {s.decode()}, "text": {json.dumps(text)}}}'


def frame_texts(raw_records: list[bytes], fmt: str) -> list[str]:
    """``frame(json.loads(raw), fmt)`` of each record, leaving out the Nones: the same text, but ordinary line
    records are read without building a dict (their values are cut out of the stored JSON, which this module
    writes in one fixed form)."""
    fast = _fast_json if fmt == "json" else _fast_raw
    out = []
    for raw in raw_records:
        try:
            text = fast(raw)
        except ValueError:
            text = None
        if text is None:
            text = frame(json.loads(raw), fmt)
            if text is None:
                continue
        out.append(text)
    return out


def pack(texts: list[str]) -> list[str]:
    """``texts`` joined by newlines into frames of about FRAME_BYTES (a longer text is a frame of its own). Log
    texts never contain a newline (lines are split on it; a JSON frame escapes it), so the receiver splits a frame
    on newlines to get the lines back, in order."""
    frames: list[str] = []
    pending: list[str] = []
    size = 0
    for text in texts:
        if pending and size + len(text) > FRAME_BYTES:
            frames.append("\n".join(pending))
            pending, size = [], 0
        pending.append(text)
        size += len(text) + 1
    if pending:
        frames.append("\n".join(pending))
    return frames


def _body_chunks(follower: LogFollower, fmt: str) -> Iterator[bytes]:
    """Response bytes of what ``follower`` has now, one line per text line, about CHUNK_BYTES at a time."""
    while True:
        texts = frame_texts(follower.poll_raw(), fmt)
        for start in range(0, len(texts), 1000):
            part = texts[start : start + 1000]
            part.append("")
            yield "\n".join(part).encode("utf-8")
        if follower.finished or follower.caught_up:
            return


def _ended_without_file(task_execution: Any, follower: LogFollower) -> bool:
    """Whether following can stop although no end marker came: the task is complete and its file is gone."""
    task_execution.refresh_from_db(fields=["state"])
    return task_execution.state == "complete" and not follower.path.exists()


def body(task_execution: Any, offset: int, fmt: str, follow: bool) -> Iterator[bytes]:
    """An HTTP response body of the logs from line ``offset`` (for WSGI servers and the test client)."""
    follower = LogFollower(path_for(task_execution), start_line=offset)
    with log_wakeups.subscribe(follower.path) as wakeups:
        while True:
            yield from _body_chunks(follower, fmt)
            if follower.finished or not follow or _ended_without_file(task_execution, follower):
                return
            wakeups.wait(FOLLOW_POLL_SECONDS)


async def abody(task_execution: Any, offset: int, fmt: str, follow: bool) -> AsyncIterator[bytes]:
    """The same body under ASGI. Django reads a plain iterator to its end before sending a byte, which would make
    ``follow`` wait for the end of the task; this sends each poll's lines as they come, does file and database work
    in threads, and stops when the client leaves (Django cancels it). The writer's appends wake it
    (runs/log_wakeups.py); FOLLOW_POLL_SECONDS is the fallback."""
    follower = LogFollower(path_for(task_execution), start_line=offset)
    read = sync_to_async(_read_one, thread_sensitive=False)
    ended_without_file = database_sync_to_async(_ended_without_file)
    with log_wakeups.subscribe(follower.path) as wakeups:
        while True:
            for chunk in await read(follower, fmt):
                yield chunk
            if follower.finished:
                return
            if not follower.caught_up:
                continue
            if not follow or await ended_without_file(task_execution, follower):
                return
            await wakeups.wait_async(FOLLOW_POLL_SECONDS)


def _read_one(follower: LogFollower, fmt: str) -> list[bytes]:
    """One poll's response bytes (at most about READ_BYTES of records)."""
    texts = frame_texts(follower.poll_raw(), fmt)
    if not texts:
        return []
    texts.append("")
    return ["\n".join(texts).encode("utf-8")]


def delete_run_logs(namespace_id: str, pipeline_slug: str, run_number: int) -> None:
    shutil.rmtree(Path(settings.GOFER_LOG_DIR) / namespace_id / pipeline_slug / str(run_number), ignore_errors=True)


def delete_pipeline_logs(namespace_id: str, pipeline_slug: str) -> None:
    shutil.rmtree(Path(settings.GOFER_LOG_DIR) / namespace_id / pipeline_slug, ignore_errors=True)


def delete_namespace_logs(namespace_id: str) -> None:
    shutil.rmtree(Path(settings.GOFER_LOG_DIR) / namespace_id, ignore_errors=True)
