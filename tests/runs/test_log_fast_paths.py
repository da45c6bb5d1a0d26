"""The fast paths of task logs (issue 9) do what the slow ones did: batches stored with one cursor and completed
after a crash without a line twice, batch masking, records read back without parsing, several lines per websocket
frame, Docker's stream read many chunks at a time, and followers woken by the writer with the poll as fallback."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import threading
from types import SimpleNamespace

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from kernel.rbac import SYSTEM_PRINCIPAL
from runs import log_wakeups, logs
from runs import services as runs
from runs.engine.masking import LineMask
from runs.models import Run, TaskExecution
from runs.schedulers import docker as docker_scheduler
from runs.schedulers.base import ContainerSpec, LogBatch, LogLine
from secretstore.masking import Masker
from tests.support.engine import pipeline_with, run_to_completion, sh, tasks_of
from tests.support.processes import Server
from tests.support.schedulers import wait_for

T0 = 1_795_873_364_335_123_456  # ns


def batch(first: int, count: int, cursor: dict | None = None) -> LogBatch:
    lines = [(T0 + i * 1000, "stdout" if i % 3 else "stderr", f"line {i}") for i in range(first, first + count)]
    return LogBatch(lines, cursor if cursor is not None else {"i": first + count})


def stored(path) -> list[dict]:
    return list(logs.read_records(path))


# --- storing --------------------------------------------------------------------------------------------------------


def test_a_batch_is_stored_with_its_cursor_on_its_last_line_only(tmp_path):
    path = tmp_path / "te.log"
    with logs.LogWriter(path) as writer:
        assert writer.append_batch(batch(0, 3)) == 3
        assert writer.append_batch(batch(3, 2)) == 2
        writer.finish(0)
    records = stored(path)
    assert [r["n"] for r in records] == [0, 1, 2, 3, 4, 5]
    assert [r.get("c") for r in records] == [None, None, {"i": 3}, None, {"i": 5}, {"i": 5}]
    assert records[0] == {"n": 0, "t": 1795873364335.123, "s": "stderr", "m": "line 0"}
    assert records[-1] == {"n": 5, "eof": True, "exit_code": 0, "c": {"i": 5}}


def test_log_lines_and_batches_are_stored_as_the_same_records(tmp_path):
    when = dt.datetime(2026, 12, 4, 18, 0, 0, 123456, tzinfo=dt.UTC)
    with logs.LogWriter(tmp_path / "a.log") as writer:
        writer.append([LogLine(when, "stdout", 'quote " tab \t é \x7f', {"i": 1})])
    with logs.LogWriter(tmp_path / "b.log") as writer:
        writer.append_batch(LogBatch([(1796407200123456000, "stdout", 'quote " tab \t é \x7f')], {"i": 1}))
    assert (tmp_path / "a.log").read_bytes() == (tmp_path / "b.log").read_bytes()
    [record] = stored(tmp_path / "a.log")
    assert record == {
        "n": 0,
        "t": round(when.timestamp() * 1000, 3),
        "s": "stdout",
        "m": 'quote " tab \t é \x7f',
        "c": {"i": 1},
    }


def test_a_batch_cut_short_by_a_crash_is_completed_without_storing_a_line_twice(tmp_path):
    path = tmp_path / "te.log"
    with logs.LogWriter(path) as writer:
        writer.append_batch(batch(0, 3))
    # What a worker killed in the middle of its next write leaves: two whole records of that batch (without the
    # cursor, which only the batch's last record carries) and part of a third.
    with open(path, "ab") as fh:
        fh.write(b'{"n":3,"t":1.0,"s":"stdout","m":"line 3"}\n{"n":4,"t":1.0,"s":"stdout","m":"line 4"}\n{"n":5,"t')
    with logs.LogWriter(path) as writer:
        assert (writer.tail.next_line, writer.cursor, writer.tail.replayed) == (5, {"i": 3}, 2)
        # The engine gives again what follows the cursor: lines 3 and 4 are already there, 5 and 6 are new.
        assert writer.append_batch(batch(3, 1)) == 0
        assert writer.cursor == {"i": 4}
        assert writer.append_batch(batch(4, 3)) == 2
        writer.finish(0)
    records = stored(path)
    assert [r["n"] for r in records] == list(range(8))
    assert [r.get("m") for r in records[:-1]] == [f"line {i}" for i in range(7)]
    assert records[-2]["c"] == records[-1]["c"] == {"i": 7}


def test_a_first_batch_cut_short_is_completed_from_the_start(tmp_path):
    path = tmp_path / "te.log"
    path.write_bytes(b'{"n":0,"t":1.0,"s":"stdout","m":"line 0"}\n{"n":1,"t":1.')
    with logs.LogWriter(path) as writer:
        assert (writer.tail.next_line, writer.cursor, writer.tail.replayed) == (1, None, 1)
        assert writer.append_batch(batch(0, 3)) == 2
    assert [r["m"] for r in stored(path)] == ["line 0", "line 1", "line 2"]


# --- masking --------------------------------------------------------------------------------------------------------


def test_masking_a_batch_gives_what_masking_each_line_gives(settings):
    settings.GOFER_SECRET_MASK_MIN_LENGTH = 4
    masker = Masker(["s3cr3t-value", "tokenABCD", "p@ss word"])
    mask = LineMask(masker)
    texts = [
        "nothing here",
        "s3cr3t-value",  # a whole line
        "ends with tokenABCD",
        "tokenABCD starts it",
        "",
        "two: s3cr3t-valuetokenABCD and p%40ss%20word",
        "half s3cr3t- then -value",
        "base64 " + base64.b64encode(b"s3cr3t-value").decode(),
    ]
    assert mask.lines(texts) == [masker.mask(text) for text in texts]
    assert mask.lines(texts)[1] == "********"
    clean = ["a", "b", "c"]
    assert mask.lines(clean) is clean  # nothing to mask: the same list back
    # A text with a newline of its own (not from an engine, which splits on them) is masked on its own.
    assert mask.lines(["x\ns3cr3t-value", "y"]) == ["x\n********", "y"]


# --- reading --------------------------------------------------------------------------------------------------------

TRICKY = ["plain", "", 'a "quoted" word', "back\\slash", "tab\tand\rreturn", "é ü 中文 😀", "del \x7f", "ctl \x01"]


def test_records_read_without_parsing_give_the_frames_that_parsing_gives(tmp_path):
    path = tmp_path / "te.log"
    lines = [(T0 + i, "stderr" if i % 2 else "stdout", text) for i, text in enumerate(TRICKY * 2)]
    with logs.LogWriter(path) as writer:
        writer.append_batch(LogBatch(lines[:5], {"i": 5}))
        writer.append_batch(LogBatch(lines[5:], {"i": len(lines)}))
        writer.finish(3, note='a "note"')
    # And a record as written before issue 9 (a cursor on every line, keys in the same order).
    with open(path, "rb") as fh:
        raws = fh.read().splitlines(keepends=True)
    raws.insert(0, b'{"n":0,"t":5.5,"s":"stdout","m":"old \\"style\\"","c":{"since":"x","skip":1}}\n')
    for fmt in logs.FORMATS:
        expected = [logs.frame(json.loads(raw), fmt) for raw in raws]
        assert logs.frame_texts(raws, fmt) == [text for text in expected if text is not None]


def test_batched_frames_split_back_into_every_line_in_order(monkeypatch):
    monkeypatch.setattr(logs, "FRAME_BYTES", 50)
    texts = [f"line {i}" for i in range(40)] + ["x" * 120, "", "last"]
    frames = logs.pack(texts)
    assert len(frames) > 3
    assert "\n".join(frames).split("\n") == texts
    assert all(len(frame) <= 50 or "\n" not in frame for frame in frames)  # only a long line makes a long frame


def test_a_follower_reads_a_long_log_in_bounded_polls(tmp_path, monkeypatch):
    monkeypatch.setattr(logs.LogFollower, "READ_BYTES", 1000)
    path = tmp_path / "te.log"
    with logs.LogWriter(path) as writer:
        writer.append_batch(batch(0, 200))
        writer.finish(0)
    follower = logs.LogFollower(path, start_line=150)
    texts: list[str] = []
    polls = 0
    while not follower.finished:
        texts += follower.frames("raw")
        polls += 1
        assert polls < 100
    assert polls > 5
    assert texts == [f"line {i}" for i in range(150, 200)]


# --- Docker's stream ------------------------------------------------------------------------------------------------


class Reads:
    """A socket file whose reads return the given pieces."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)

    def read1(self, size: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


def test_a_chunked_body_is_read_whole_wherever_the_reads_cut_it():
    body = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in [b"abc", b"d" * 300, b"\n", b"ef"])
    whole = body + b"0\r\n\r\n"
    for cut in range(1, len(whole)):
        blocks = list(docker_scheduler._dechunked(Reads([whole[:cut], whole[cut:]])))
        assert b"".join(blocks) == b"abc" + b"d" * 300 + b"\nef", cut
    one_by_one = list(docker_scheduler._dechunked(Reads([whole[i : i + 1] for i in range(len(whole))])))
    assert b"".join(one_by_one) == b"abc" + b"d" * 300 + b"\nef"
    # Cut before the last chunk: what came whole is returned, the cut chunk is not.
    assert b"".join(docker_scheduler._dechunked(Reads([body[:-4]]))) == b"abc" + b"d" * 300 + b"\n"


@pytest.mark.docker
def test_log_batches_give_the_lines_and_cursors_that_logs_gives(scheduler, names, busybox_image):
    script = "i=0; while [ $i -lt 3000 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done; printf 'no newline'"
    started = scheduler.start(ContainerSpec(name=names(), image=busybox_image, command=["sh", "-c", script]))
    wait_for(scheduler, started.handle)
    lines = list(scheduler.logs(started.handle, None))
    batches = list(scheduler.log_batches(started.handle, None))
    assert [(x.stream, x.text) for x in lines] == [(s, text) for b in batches for _, s, text in b.lines]
    assert len(lines) == 6001 and lines[-1].text == "no newline"
    assert batches[-1].cursor == lines[-1].cursor
    # Every batch's cursor is the cursor of its last line: resuming from it gives the rest, once.
    position = 0
    for b in batches[:-1]:
        position += len(b.lines)
        rest = [x.text for x in scheduler.logs(started.handle, b.cursor)]
        assert rest == [x.text for x in lines[position:]]
    assert list(scheduler.log_batches(started.handle, batches[-1].cursor)) == []


# --- wake-ups -------------------------------------------------------------------------------------------------------


def _append_soon(path, first: int = 0) -> threading.Thread:
    def write() -> None:
        with logs.LogWriter(path) as writer:
            writer.append_batch(batch(first, 1))

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_a_follower_is_woken_when_the_writer_appends(tmp_path):
    path = tmp_path / "run" / "te.log"
    with logs.LogWriter(path) as writer:
        writer.append_batch(batch(0, 1))
    follower = logs.LogFollower(path)
    with log_wakeups.subscribe(path) as wakeups:
        assert wakeups.watching
        assert follower.frames("raw") == ["line 0"]
        writer_thread = _append_soon(path, first=1)
        assert wakeups.wait(60) is True
        writer_thread.join()
        assert follower.frames("raw") == ["line 1"]


def test_a_follower_of_a_file_not_made_yet_is_woken_when_it_appears(tmp_path):
    path = tmp_path / "namespace" / "pipeline" / "7" / "te.log"  # none of these exists yet
    with log_wakeups.subscribe(path) as wakeups:
        assert wakeups.watching
        writer_thread = _append_soon(path)
        while not path.exists():
            assert wakeups.wait(60) is True  # woken at each directory made on the way, then by the file
        writer_thread.join()
        assert logs.LogFollower(path).frames("raw") == ["line 0"]


@pytest.mark.asyncio
async def test_a_follower_waiting_in_an_event_loop_is_woken_when_the_writer_appends(tmp_path):
    path = tmp_path / "te.log"
    path.touch()
    with log_wakeups.subscribe(path) as wakeups:
        writer_thread = _append_soon(path)
        assert await wakeups.wait_async(60) is True
        await asyncio.to_thread(writer_thread.join)


def test_a_lost_wake_up_is_caught_by_the_poll(tmp_path, monkeypatch):
    """No wake-up ever comes (a writer on another machine, say): following still ends with every line."""
    monkeypatch.setattr(log_wakeups.Subscription, "wake", lambda self: None)
    path = tmp_path / "te.log"
    te = SimpleNamespace(state="running", refresh_from_db=lambda fields: None)
    monkeypatch.setattr(logs, "path_for", lambda task_execution: path)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.extend(logs.body(te, 0, "raw", True)), daemon=True)
    reader.start()
    with logs.LogWriter(path) as writer:
        writer.append_batch(batch(0, 2))
        writer.append_batch(batch(2, 1))
        writer.finish(0)
    reader.join(60)
    assert not reader.is_alive()
    assert b"".join(received) == b"line 0\nline 1\nline 2\n"


# --- the websocket ----------------------------------------------------------------------------------------------------


def logs_url(server: Server, run: Run, task_id: str, query: str) -> str:
    path = f"/api/namespaces/team-a/pipelines/{run.pipeline.slug}/runs/{run.number}/tasks/{task_id}/logs"
    return f"{server.ws_url}{path}?{query}"


def read_frames(url: str, token: str) -> tuple[list[str], int]:
    frames = []
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as ws:
        while True:
            try:
                frames.append(ws.recv(timeout=60))
            except ConnectionClosed as closed:
                return frames, closed.rcvd.code if closed.rcvd else 1006


LINES = 3000


def test_batched_frames_carry_every_line_of_a_running_task_once_in_order(engine, namespaces, alice):
    # Echo commands (both engines run them), in bursts: a reader that keeps up gets several batches.
    script = "; sleep 0.3; ".join("; ".join(f"echo line-{i}" for i in range(k, k + 500)) for k in range(0, LINES, 500))
    pipeline = pipeline_with([sh("spew", engine.image, script)], pipeline_id="spew")
    server = Server()
    try:
        run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
        engine.drain(until=lambda: TaskExecution.objects.filter(run=run, state__in=["running", "complete"]).exists())
        result: dict = {}

        def read() -> None:
            result["raw"], result["code"] = read_frames(logs_url(server, run, "spew", "batch=true"), alice.token)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=90)
        reader.join(60)
        assert not reader.is_alive()
        json_frames, code = read_frames(logs_url(server, run, "spew", "batch=true&format=json&offset=10"), alice.token)
    finally:
        server.stop()
    assert result["code"] == 1000 and code == 1000
    assert "\n".join(result["raw"]).split("\n") == [f"line-{i}" for i in range(LINES)]
    records = [json.loads(line) for frame in json_frames for line in frame.split("\n")]
    assert [r.get("line") for r in records[:-1]] == list(range(10, LINES))
    assert records[-1] == {"eof": True, "exit_code": 0, "note": ""}
    assert len(json_frames) < len(records) / 10  # several lines per frame


def test_a_bad_batch_parameter_is_refused_naming_it(engine, namespaces, alice):
    pipeline = pipeline_with([sh("one", engine.image, "echo one")], pipeline_id="one")
    run = run_to_completion(engine, pipeline)
    assert tasks_of(run)["one"].status == "successful"
    server = Server()
    try:
        frames, code = read_frames(logs_url(server, run, "one", "batch=maybe"), alice.token)
        default_frames, default_code = read_frames(logs_url(server, run, "one", ""), alice.token)
    finally:
        server.stop()
    assert code == 4400
    [error] = [json.loads(frame) for frame in frames]
    assert "batch" in error["message"]
    assert (default_frames, default_code) == (["one"], 1000)  # one line per frame, as Gofer v0
