"""Task logs end to end, on every engine: reading them over HTTP (raw, JSON, offset, follow), deleting them,
retention by run count, and what is stored (both streams, long lines).

The orchestrator runs in the test process (the ``engine`` fixture). ``follow=true`` is read from a real daphne
process with a streaming HTTP client while the engine drives the task, so what is tested is bytes arriving on a
socket before the task has ended, not an iterator in the test process. The server reads the log files the engine
writes, so this works on the memory engine too, whose containers only the test process sees.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from kernel.rbac import SYSTEM_PRINCIPAL
from runs import logs
from runs import services as runs
from runs.models import Run, TaskExecution
from tests.support.engine import log_text, pipeline_with, run_to_completion, sh, tasks_of
from tests.support.processes import Server

# One line longer than 100 KiB that Docker splits into 16 KiB messages; its content is checked, not only its length.
# It is written in the script itself (one argument of 100+ KiB, below Linux's 128 KiB), since the memory engine has
# no pipes to build it with.
LONG_COUNT = 23000
LONG_LINE = "".join(str(i) for i in range(1, LONG_COUNT + 1))
MIXED_SCRIPT = (
    "echo out-1; sleep 0.05; echo err-1 >&2; sleep 0.05; echo out-2; sleep 0.05; echo err-2 >&2; sleep 0.05; "
    f"echo {LONG_LINE}; sleep 0.05; echo after-long"
)
MIXED_LINES = ["out-1", "err-1", "out-2", "err-2", LONG_LINE, "after-long"]
MIXED_STREAMS = ["stdout", "stderr", "stdout", "stderr", "stdout", "stdout"]


def logs_path(pipeline_id: str, run_number: int, task_id: str) -> str:
    return f"/api/namespaces/team-a/pipelines/{pipeline_id}/runs/{run_number}/tasks/{task_id}/logs"


def body_of(response) -> str:
    return b"".join(response.streaming_content).decode("utf-8")


def json_records(response) -> list[dict]:
    return [json.loads(line) for line in body_of(response).splitlines()]


@pytest.fixture
def mixed(engine, namespaces):
    """A complete run of team-a/mixed whose one task wrote to stdout and stderr, and one line of 100+ KiB."""
    assert len(LONG_LINE) > 100 * 1024
    pipeline = pipeline_with([sh("mixed", engine.image, MIXED_SCRIPT)], pipeline_id="mixed")
    run = run_to_completion(engine, pipeline)
    te = tasks_of(run)["mixed"]
    assert te.status == "successful", te.status_description
    return run


# --- what is stored -------------------------------------------------------------------------------------------------


def test_stdout_and_stderr_are_stored_with_their_stream_and_a_long_line_whole(mixed):
    te = tasks_of(mixed)["mixed"]
    records = list(logs.read_records(logs.path_for(te)))
    lines = [r for r in records if not r.get("eof")]
    assert [r["m"] for r in lines] == MIXED_LINES
    assert [r["s"] for r in lines] == MIXED_STREAMS
    assert [r["n"] for r in records] == list(range(len(MIXED_LINES) + 1))
    # The end marker keeps the engine's cursor after the last line: a finished log is never read from the engine again.
    assert records[-1] == {"n": len(MIXED_LINES), "eof": True, "exit_code": 0, "c": records[-2]["c"]}
    times = [r["t"] for r in lines]
    assert times == sorted(times)
    assert te.started.timestamp() * 1000 - 1000 <= times[0] <= te.ended.timestamp() * 1000


# --- GET .../logs -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"format": "raw"}, {"format": ""}])
def test_raw_logs_are_the_text_lines(mixed, alice, params):
    response = alice.get(logs_path("mixed", mixed.number, "mixed"), **params)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert body_of(response) == "".join(f"{line}\n" for line in MIXED_LINES)


def test_json_logs_are_records_ending_with_the_end_marker(mixed, alice, bob):
    response = bob.get(logs_path("mixed", mixed.number, "mixed"), format="json")  # read permission is enough
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    records = json_records(response)
    assert records[-1] == {"eof": True, "exit_code": 0, "note": ""}
    lines = records[:-1]
    assert [set(r) for r in lines] == [{"line", "time", "stream", "text"}] * len(MIXED_LINES)
    assert [r["text"] for r in lines] == MIXED_LINES
    assert [r["stream"] for r in lines] == MIXED_STREAMS
    assert [r["line"] for r in lines] == list(range(len(MIXED_LINES)))
    stored = [r["t"] for r in logs.read_records(logs.path_for(tasks_of(mixed)["mixed"])) if not r.get("eof")]
    assert [r["time"] for r in lines] == stored


def test_offset_starts_at_that_line(mixed, alice):
    path = logs_path("mixed", mixed.number, "mixed")
    assert body_of(alice.get(path, offset="3")) == "err-2\n" + LONG_LINE + "\nafter-long\n"
    records = json_records(alice.get(path, offset="5", format="json"))
    assert records == [
        {"line": 5, "time": records[0]["time"], "stream": "stdout", "text": "after-long"},
        {"eof": True, "exit_code": 0, "note": ""},
    ]
    assert body_of(alice.get(path, offset="100")) == ""
    assert json_records(alice.get(path, offset="100", format="json")) == [{"eof": True, "exit_code": 0, "note": ""}]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"offset": "-1"}, "offset"),
        ({"offset": "two"}, "offset"),
        ({"offset": "1.5"}, "offset"),
        ({"format": "xml"}, "format"),
        ({"format": "JSON"}, "format"),
        ({"follow": "maybe"}, "follow"),
        ({"follow": "2"}, "follow"),
    ],
)
def test_bad_parameters_are_400_naming_them(mixed, alice, params, field):
    response = alice.get(logs_path("mixed", mixed.number, "mixed"), **params)
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "validation_error"
    assert body["errors"][0]["field"] == field
    assert body["message"].startswith(f"{field}:")


def test_outsiders_get_404_and_anonymous_callers_401(mixed, charlie, anonymous, alice):
    path = logs_path("mixed", mixed.number, "mixed")
    assert charlie.get(path).status_code == 404
    assert charlie.delete(path).status_code == 404
    assert anonymous.get(path).status_code == 401
    assert alice.get(logs_path("mixed", mixed.number, "nope")).status_code == 404
    assert alice.get(logs_path("mixed", 99, "mixed")).status_code == 404


def test_a_task_that_never_started_has_no_logs_410(engine, namespaces, alice):
    pipeline = pipeline_with(
        [sh("fails", engine.image, "exit 1"), sh("never", engine.image, "echo no", depends_on={"fails": "Success"})],
        pipeline_id="skip",
    )
    run = run_to_completion(engine, pipeline)
    assert tasks_of(run)["never"].status == "skipped"
    response = alice.get(logs_path("skip", run.number, "never"))
    assert response.status_code == 410
    assert "never started a container" in response.json()["message"]


# --- follow=true over a real server ---------------------------------------------------------------------------------


TICKS = 20


def test_follow_streams_a_running_task_until_its_end(engine, namespaces, alice):
    pipeline = pipeline_with(
        [sh("ticker", engine.image, "; ".join(f"echo tick-{i}; sleep 0.4" for i in range(1, TICKS + 1)))],
        pipeline_id="ticker",
    )
    server = Server()  # started first: its start-up must not eat into the task's running time
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})

    def te():
        return TaskExecution.objects.filter(run=run, task_slug="ticker").first()

    engine.drain(until=lambda: te() is not None and te().state == "running", timeout=60)
    received: list[tuple[float, dict]] = []
    failure: list[BaseException] = []

    def read() -> None:
        try:
            url = f"{server.url}{logs_path('ticker', run.number, 'ticker')}?follow=true&format=json"
            headers = {"Authorization": f"Bearer {alice.token}", "gofer-api-version": "v0"}
            with requests.get(url, headers=headers, stream=True, timeout=60) as response:
                assert response.status_code == 200, response.text
                for line in response.iter_lines(chunk_size=1):
                    if line:
                        received.append((time.time(), json.loads(line)))
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    try:
        reader.start()
        engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=90)
        reader.join(timeout=30)
        assert not reader.is_alive(), "the followed response did not end after the task did"
    finally:
        server.stop()
    assert not failure, failure
    records = [record for _, record in received]
    assert [r.get("text") for r in records[:-1]] == [f"tick-{i}" for i in range(1, TICKS + 1)]
    assert records[-1] == {"eof": True, "exit_code": 0, "note": ""}
    ended = te().ended.timestamp()
    # Streamed, not buffered: the first lines reached the client seconds before the task had ended, and the others
    # kept arriving as they were written (a buffered response delivers everything at once, after the end).
    arrivals = [at for at, _ in received]
    assert arrivals[0] < ended - 2, (arrivals[0], ended)
    assert arrivals[-2] - arrivals[0] > 2, arrivals
    assert arrivals[-1] >= ended - 1


def test_a_websocket_reader_past_the_last_line_gets_the_end_marker_and_a_normal_close(mixed, alice):
    server = Server()
    try:
        url = f"{server.ws_url}{logs_path('mixed', mixed.number, 'mixed')}?offset=100&format=json"
        with connect(url, additional_headers={"Authorization": f"Bearer {alice.token}"}, open_timeout=10) as ws:
            frame = json.loads(ws.recv(timeout=10))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
    finally:
        server.stop()
    assert frame == {"eof": True, "exit_code": 0, "note": ""}
    assert closed.value.rcvd.code == 1000


@pytest.mark.timeout(60)
def test_follow_on_a_finished_task_returns_at_once_even_past_its_last_line(mixed, alice):
    path = logs_path("mixed", mixed.number, "mixed")
    started = time.monotonic()
    assert body_of(alice.get(path, follow="true")) == "".join(f"{line}\n" for line in MIXED_LINES)
    assert json_records(alice.get(path, follow="true", offset="100", format="json")) == [
        {"eof": True, "exit_code": 0, "note": ""}
    ]
    assert body_of(alice.get(path, follow="true", offset="6")) == ""
    assert time.monotonic() - started < 10


# --- DELETE .../logs --------------------------------------------------------------------------------------------------


def test_deleting_logs_is_refused_while_the_task_runs_then_removes_them(engine, namespaces, alice, bob):
    pipeline = pipeline_with([sh("slow", engine.image, "echo leaked-secret-ish; sleep 3")], pipeline_id="slow")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    path = logs_path("slow", run.number, "slow")

    def te():
        return TaskExecution.objects.filter(run=run, task_slug="slow").first()

    engine.drain(until=lambda: te() is not None and te().state == "running", timeout=60)
    response = alice.delete(path)
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "task_id"
    assert "still running" in response.json()["message"]

    engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=60)
    file = logs.path_for(te())
    assert log_text(te()) == ["leaked-secret-ish"]
    assert bob.delete(path).status_code == 403  # read-only
    assert file.exists()

    response = alice.delete(path)
    assert response.status_code == 204
    assert "Gofer-Changed" not in response
    current = te()
    assert current.logs_removed is True
    assert current.logs_expired is False
    assert not file.exists()
    assert run.timeline.filter(kind="logs_deleted", task_slug="slow").exists()

    response = alice.get(path)
    assert response.status_code == 410
    assert response.json()["error_code"] == "gone"
    assert "removed" in response.json()["message"]
    assert alice.get(path, follow="true").status_code == 410

    again = alice.delete(path)
    assert again.status_code == 204
    assert again["Gofer-Changed"] == "false"


# --- retention by run count -----------------------------------------------------------------------------------------


def test_logs_of_runs_beyond_the_retention_count_expire_when_a_new_run_starts(engine, namespaces, alice, settings):
    settings.GOFER_TASK_LOG_RETENTION_RUNS = 2
    pipeline = pipeline_with(
        [sh("a", engine.image, "echo run-$GOFER_RUN_ID"), sh("b", engine.image, "echo b-$GOFER_RUN_ID")],
        pipeline_id="keep",
    )
    first = run_to_completion(engine, pipeline)
    second = run_to_completion(engine, pipeline)
    first_files = [logs.path_for(te) for te in tasks_of(first).values()]
    assert all(f.exists() for f in first_files)
    assert not any(te.logs_expired for te in tasks_of(first).values())  # two runs: nothing beyond the count yet

    third = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    engine.drain(until=lambda: Run.objects.get(pk=third.pk).state != "pending", timeout=60)
    for te in tasks_of(first).values():
        assert (te.logs_expired, te.logs_removed) == (True, True), te
    assert not any(f.exists() for f in first_files)
    assert all(not te.logs_expired for te in tasks_of(second).values())
    assert log_text(tasks_of(second)["a"]) == ["run-2"]

    response = alice.get(logs_path("keep", first.number, "a"))
    assert response.status_code == 410
    assert "expired (log retention)" in response.json()["message"]
    assert alice.get(logs_path("keep", first.number, "a"), follow="true").status_code == 410

    server = Server()
    try:
        url = f"{server.ws_url}{logs_path('keep', first.number, 'b')}"
        with connect(url, additional_headers={"Authorization": f"Bearer {alice.token}"}, open_timeout=10) as ws:
            frame = json.loads(ws.recv(timeout=10))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
    finally:
        server.stop()
    assert frame["error_code"] == "gone"
    assert "expired (log retention)" in frame["message"]
    assert closed.value.rcvd.code == 4410

    engine.drain(until=lambda: Run.objects.get(pk=third.pk).state == "complete", timeout=60)
    assert alice.get(logs_path("keep", second.number, "a")).status_code == 200
