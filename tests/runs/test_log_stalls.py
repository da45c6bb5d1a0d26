"""One task must not stall the workers (issue 8, finding 3).

The audit: a task printing one 100 MB line made a worker join Docker's 16 KiB frames quadratically (4.5 min at 100 %
CPU, longer than the lease), a second worker took over and read the whole log again (a finished log's cursor was
None), the run stayed ``running`` 12 minutes after its container exited, and cancelling it did nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection

from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines.models import Namespace
from runs import logs
from runs import services as runs
from runs.engine import driving, leases
from runs.models import Run, TaskExecution
from runs.schedulers import get_scheduler, memory
from runs.schedulers.base import LogLine
from tests.conftest import deployed_pipeline, need
from tests.support import engine as engine_support
from tests.support.images import docker_available

HUGE = 100_000_000
# The single-task test needs less to show the point (the quadratic join took minutes at 30 MB too).
ONE_HUGE = 30_000_000


def pipeline_of(tasks, pipeline_id, namespace_id="stall-a"):
    if not Namespace.objects.filter(id=namespace_id).exists():
        Namespace.objects.create(id=namespace_id, name=namespace_id)
    return deployed_pipeline(namespace_id, pipeline_id, {"id": pipeline_id, "name": pipeline_id, "tasks": tasks})


def sh(task_id, image, script):
    return {"id": task_id, "image": image, "command": ["sh", "-c", script]}


def records(te):
    return list(logs.read_records(logs.path_for(te)))


@pytest.fixture
def on_memory(transactional_db, settings, monkeypatch):
    settings.GOFER_SCHEDULER = "memory"
    settings.GOFER_DRIVE_SLICE_SECONDS = 1
    settings.GOFER_LEASE_SECONDS = 3
    get_scheduler.cache_clear()
    memory.reset()
    inline = engine_support.install(monkeypatch)
    yield inline
    memory.reset()
    get_scheduler.cache_clear()


@pytest.fixture
def on_docker(transactional_db, settings, monkeypatch, request):
    need(docker_available(), "the Docker engine is not running (see docs/development.md)")
    image = request.getfixturevalue("busybox_image")
    settings.GOFER_SCHEDULER = "docker"
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    settings.GOFER_DRIVE_SLICE_SECONDS = 2
    settings.GOFER_LEASE_SECONDS = 4
    get_scheduler.cache_clear()
    inline = engine_support.install(monkeypatch)
    inline.image = image
    yield inline
    get_scheduler.cache_clear()


def test_the_end_marker_keeps_the_last_cursor(tmp_path):
    path = tmp_path / "t.log"
    with logs.LogWriter(path) as writer:
        writer.append([LogLine(time=dt.datetime.now(dt.UTC), stream="stdout", text="x", cursor={"i": 1})])
        writer.finish(0)
    with logs.LogWriter(path) as again:
        assert again.finished
        assert again.cursor == {"i": 1}


def test_a_line_longer_than_the_limit_is_stored_cut_with_a_note(tmp_path, settings):
    settings.GOFER_LOG_MAX_LINE_BYTES = 1024
    path = tmp_path / "t.log"
    with logs.LogWriter(path) as writer:
        writer.append([LogLine(time=dt.datetime.now(dt.UTC), stream="stdout", text="a" * 5000, cursor={"i": 1})])
    [record] = logs.read_records(path)
    assert record["m"].startswith("a" * 1024)
    assert record["m"].endswith("[gofer: line truncated, 3976 more bytes not kept]")


def test_a_finished_log_is_not_read_again_by_a_worker_that_takes_over(on_memory, monkeypatch):
    """A worker that wrote the end marker and died before recording the exit: the next one records the exit from
    the engine's status without asking the engine for the log again."""
    pipeline = pipeline_of([sh("talk", "busybox:latest", "seq 1 2000")], "takeover")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    real_record_exit = driving._record_exit
    died = []

    def die_after_finishing(te, status, lease):
        if not died:
            died.append(te.pk)
            raise leases.LeaseLost(te.pk)  # the worker "dies" after the end marker, before the exit is recorded
        return real_record_exit(te, status, lease)

    monkeypatch.setattr(driving, "_record_exit", die_after_finishing)
    on_memory.drain(until=lambda: bool(died), timeout=30)
    te = TaskExecution.objects.get(run=run)
    assert records(te)[-1]["eof"] and records(te)[-1]["c"] is not None
    reads = []
    real_logs = memory.MemoryScheduler.logs

    def counting_logs(self, handle, cursor, *, follow_for=0.0):
        reads.append(cursor)
        return real_logs(self, handle, cursor, follow_for=follow_for)

    monkeypatch.setattr(memory.MemoryScheduler, "logs", counting_logs)
    TaskExecution.objects.filter(pk=te.pk).update(lease_owner="", lease_expires=None)  # the lease lapsed
    on_memory.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=30)
    assert reads == []
    lines = [r for r in records(te) if not r.get("eof")]
    assert len(lines) == 2000 and lines[-1]["m"] == "2000"
    assert TaskExecution.objects.get(pk=te.pk).status == "successful"


def test_cancelling_a_task_whose_output_is_still_being_stored_ends_it_at_once(on_memory, monkeypatch, settings):
    """The container has exited, but its output takes long to store: a cancel must stop the drain, not wait."""
    settings.GOFER_CONTINUE_IN_WORKER = False  # stop after the start, so the test can swap the engine's log reader
    pipeline = pipeline_of([sh("flood", "busybox:latest", "true")], "flood")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    on_memory.drain(until=lambda: TaskExecution.objects.filter(run=run, state="running").exists(), timeout=30)
    te = TaskExecution.objects.get(run=run)

    def endless_output(self, handle, cursor, *, follow_for=0.0):
        # An engine that keeps handing over stored output, slowly: 2,000 lines every 10 ms, forever.
        i = (cursor or {}).get("i", 0)
        while True:
            for _ in range(2000):
                i += 1
                yield LogLine(time=dt.datetime.now(dt.UTC), stream="stdout", text=f"line {i}", cursor={"i": i})
            time.sleep(0.01)

    monkeypatch.setattr(memory.MemoryScheduler, "logs", endless_output)
    lease = leases.claim(te.pk) or _free_and_claim(te.pk)
    te.refresh_from_db()
    done = threading_result(lambda: driving._watch(te, get_scheduler("memory"), lease))
    time.sleep(1.5)
    runs.cancel_task_execution(SYSTEM_PRINCIPAL, te, 0)
    outcome = done(timeout=20)
    assert outcome is True
    te.refresh_from_db()
    assert (te.state, te.status) == ("complete", "cancelled")
    assert "remaining output was not stored" in te.status_description
    assert records(te)[-1]["note"] == "log drain stopped: the task was cancelled"


def _free_and_claim(te_pk):
    TaskExecution.objects.filter(pk=te_pk).update(lease_owner="", lease_expires=None)
    return leases.claim(te_pk)


def threading_result(func):
    """Run ``func`` in a thread (with its own database connection); returns a waiter for its result."""
    box = {}

    def target():
        try:
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter
            box["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def wait(timeout):
        thread.join(timeout)
        assert not thread.is_alive(), f"still running after {timeout} s"
        if "error" in box:
            raise box["error"]
        return box["value"]

    return wait


@pytest.mark.docker
def test_a_task_printing_one_30_mb_line_stores_it_cut_at_the_limit_and_completes(on_docker):
    script = f"yes a | tr -d '\\n' | head -c {ONE_HUGE}; echo; echo after"
    pipeline = pipeline_of([sh("huge", on_docker.image, script)], "huge")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    on_docker.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=180)
    te = TaskExecution.objects.get(run=run)
    assert te.status == "successful"
    lines = [r for r in records(te) if not r.get("eof")]
    assert [len(r["m"]) > 0 for r in lines] == [True, True]
    first, last = lines
    limit = django_settings.GOFER_LOG_MAX_LINE_BYTES
    assert first["m"][:limit] == "a" * limit
    # The count is of the bytes that reached Gofer. Under load (CI on PostgreSQL) Docker's follow reader was seen to
    # deliver only 22.4 of the 28.9 MB beyond the limit, so the count is bounded, not exact: never more than the
    # line had, never nothing.
    marker = re.search(r" \[gofer: line truncated, (\d+) more bytes not kept\]$", first["m"])
    assert marker is not None
    assert 0 < int(marker.group(1)) <= ONE_HUGE - limit
    assert last["m"] == "after"


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(600)  # three 100 MB lines through Docker: minutes on a loaded 2-core machine
def test_a_few_tasks_printing_huge_lines_do_not_stop_another_tenants_run(transactional_db, settings, request):
    """Three tenants' tasks each print a 100 MB line on a two-worker cluster; a fourth tenant's small run still
    completes, and so do the three, each line stored cut. (Before the fix, each huge task held a worker for minutes
    and two of them stopped the cluster.)"""
    from tests.support.processes import Worker

    need(docker_available(), "the Docker engine is not running (see docs/development.md)")
    image = request.getfixturevalue("busybox_image")
    settings.GOFER_SCHEDULER = "docker"
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    settings.GOFER_DRIVE_SLICE_SECONDS = 2
    settings.GOFER_LEASE_SECONDS = 4
    get_scheduler.cache_clear()
    script = f"yes a | tr -d '\\n' | head -c {HUGE}; echo"
    huge = [
        runs.start_run(SYSTEM_PRINCIPAL, pipeline_of([sh("huge", image, script)], "huge", f"stall-{n}"), {})
        for n in range(3)
    ]
    small = runs.start_run(SYSTEM_PRINCIPAL, pipeline_of([sh("hello", image, "echo hello")], "small", "stall-z"), {})
    worker = Worker(workers=2)
    small_done_while = None
    try:
        deadline = time.monotonic() + 540
        while time.monotonic() < deadline:
            states = dict(Run.objects.filter(pk__in=[r.pk for r in [*huge, small]]).values_list("pk", "state"))
            if small_done_while is None and states[small.pk] == "complete":
                small_done_while = {states[r.pk] for r in huge}
            if set(states.values()) == {"complete"}:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"runs still {states} after 540 s\n{worker.output()[-3000:]}")
    finally:
        worker.stop()
    assert Run.objects.get(pk=small.pk).status == "successful"
    # The point: the small run did not wait for the huge ones (with two workers, before the fix, it did).
    assert small_done_while is not None and small_done_while != {"complete"}, small_done_while
    for run in huge:
        te = TaskExecution.objects.get(run=run)
        assert te.status == "successful"
        [line] = [r for r in records(te) if not r.get("eof")]
        marker = re.search(r" \[gofer: line truncated, (\d+) more bytes not kept\]$", line["m"])
        assert marker is not None  # bounded, not exact: see the 30 MB test above
        assert 0 < int(marker.group(1)) <= HUGE - django_settings.GOFER_LOG_MAX_LINE_BYTES
