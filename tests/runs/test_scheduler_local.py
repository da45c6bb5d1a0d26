"""The local scheduler: real processes under real detached supervisors, in a temporary $GOFER_HOME (no mocks)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from runs.schedulers import get_scheduler
from runs.schedulers.base import (
    LABEL_MANAGED,
    LABEL_TASK_EXECUTION,
    ContainerSpec,
    NoSuchContainer,
    SchedulerError,
    State,
)
from runs.schedulers.local import LocalScheduler
from tests.support.schedulers import texts, wait_for


@pytest.fixture
def scheduler(settings, tmp_path) -> Iterator[LocalScheduler]:
    settings.GOFER_HOME = tmp_path
    engine = LocalScheduler()
    yield engine
    # Leave no process behind, whatever the test did.
    if engine.root.is_dir():
        for directory in engine.root.iterdir():
            engine.remove(directory.name)


def name() -> str:
    return f"local-{uuid.uuid4().hex[:12]}"


def sh(script: str, **fields) -> ContainerSpec:
    return ContainerSpec(name=name(), image="ignored:latest", command=["sh", "-c", script], **fields)


def live_processes_in_group(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies waiting for init to reap them are dead)."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in {"Z", "X"}:
            alive.append(int(entry))
    return alive


def test_start_runs_the_command_and_status_reports_exit_code_and_times(scheduler):
    before = dt.datetime.now(dt.UTC)
    started = scheduler.start(sh("sleep 0.3; exit 7"))
    assert started.adopted is False
    assert started.image_digest == ""
    assert scheduler.status(started.handle).state in {State.RUNNING, State.EXITED}

    status = wait_for(scheduler, started.handle)

    assert status.exit_code == 7
    assert before <= status.started_at <= status.finished_at <= dt.datetime.now(dt.UTC)
    assert status.finished_at - status.started_at >= dt.timedelta(seconds=0.25)


def test_start_adopts_an_existing_container_of_the_same_name(scheduler):
    spec = sh("echo ran")
    first = scheduler.start(spec)
    wait_for(scheduler, first.handle)

    again = scheduler.start(spec)

    assert again.handle == first.handle
    assert again.adopted is True
    assert texts(list(scheduler.logs(first.handle, None))) == ["ran"]  # not run a second time


def test_concurrent_starts_of_one_name_run_the_command_once(scheduler):
    spec = sh("echo ran-once; sleep 0.3")
    results, errors = [], []
    barrier = threading.Barrier(5)

    def run() -> None:
        barrier.wait()
        try:
            results.append(scheduler.start(spec))
        except Exception as exc:  # reported below: any failure is a bug
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(result.adopted for result in results) == [False, True, True, True, True]
    wait_for(scheduler, spec.name)
    assert texts(list(scheduler.logs(spec.name, None))) == ["ran-once"]


def test_adoption_finishes_the_start_of_a_worker_that_died_after_making_the_directory(scheduler, monkeypatch):
    monkeypatch.setattr("runs.schedulers.local.ADOPT_GRACE", 0.3)
    spec = sh("echo started-by-adopter")
    (scheduler.root / spec.name).mkdir(parents=True)  # what a worker killed right after mkdir leaves

    started = scheduler.start(spec)

    assert started.adopted is True
    assert wait_for(scheduler, started.handle).exit_code == 0
    assert texts(list(scheduler.logs(started.handle, None))) == ["started-by-adopter"]


def test_the_process_outlives_the_worker_that_started_it(scheduler, tmp_path):
    # A separate worker process starts the task and is SIGKILLed at once; the task goes on and its end is recorded.
    spec_name = name()
    worker = textwrap.dedent(f"""
        import os, signal, django
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        django.setup()
        from django.conf import settings
        from runs.schedulers.base import ContainerSpec
        from runs.schedulers.local import LocalScheduler
        LocalScheduler({str(scheduler.root)!r}).start(ContainerSpec(
            name={spec_name!r}, image="x", command=["sh", "-c", "echo before; sleep 0.5; echo after; exit 4"]))
        print("started", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run(
        [sys.executable, "-c", worker],
        cwd=os.getcwd(),
        env={**os.environ, "GOFER_TEST_HOME": str(tmp_path / "worker-home")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert result.stdout == "started\n"

    status = wait_for(scheduler, spec_name)

    assert status.exit_code == 4
    assert texts(list(scheduler.logs(spec_name, None))) == ["before", "after"]


def test_env_reaches_the_command_without_the_workers_environment(scheduler, monkeypatch):
    monkeypatch.setenv("GOFER_SECRET_OF_THE_WORKER", "must-not-leak")
    started = scheduler.start(sh('echo "$GREETING"; env', env={"GREETING": "hello"}))
    wait_for(scheduler, started.handle)
    lines = texts(list(scheduler.logs(started.handle, None)))
    assert lines[0] == "hello"
    assert "GREETING=hello" in lines
    assert not any("must-not-leak" in line for line in lines)
    assert any(line.startswith("PATH=") for line in lines)


def test_the_command_is_entrypoint_then_command_without_a_shell(scheduler):
    started = scheduler.start(
        ContainerSpec(name=name(), image="x", entrypoint=["echo", "from-entrypoint"], command=["$NOT_EXPANDED"])
    )
    wait_for(scheduler, started.handle)
    assert texts(list(scheduler.logs(started.handle, None))) == ["from-entrypoint $NOT_EXPANDED"]


def test_a_spec_without_a_command_is_refused(scheduler):
    with pytest.raises(SchedulerError) as caught:
        scheduler.start(ContainerSpec(name=name(), image="busybox:latest"))
    assert caught.value.permanent is True


def test_a_program_that_does_not_exist_raises_a_permanent_error_and_status_explains(scheduler):
    spec = ContainerSpec(name=name(), image="x", command=["/nonexistent/program"])
    with pytest.raises(SchedulerError) as caught:
        scheduler.start(spec)
    assert caught.value.permanent is True
    assert "/nonexistent/program" in str(caught.value)
    status = scheduler.status(spec.name)
    assert status.state == State.EXITED
    assert status.exit_code == 127
    assert "/nonexistent/program" in status.message


def test_labels_are_recorded_with_gofer_managed(scheduler):
    started = scheduler.start(sh("true", labels={LABEL_TASK_EXECUTION: "te-1"}))
    recorded = json.loads((scheduler.root / started.handle / "spec.json").read_text())
    assert recorded["labels"] == {LABEL_TASK_EXECUTION: "te-1", LABEL_MANAGED: "true"}
    assert (scheduler.root / started.handle / "spec.json").stat().st_mode & 0o077 == 0  # holds the env: private


def test_status_and_logs_of_an_unknown_container(scheduler):
    assert scheduler.find(name()) is None
    assert scheduler.status(name()).state == State.MISSING
    with pytest.raises(NoSuchContainer):
        list(scheduler.logs(name(), None))
    with pytest.raises(SchedulerError):
        scheduler.status("../escape")


def test_logs_tell_stdout_from_stderr_in_order_and_resume_from_every_cursor(scheduler):
    started = scheduler.start(sh("for i in $(seq 1 50); do echo out-$i; echo err-$i >&2; sleep 0.002; done"))
    wait_for(scheduler, started.handle)

    everything = list(scheduler.logs(started.handle, None))

    assert [(line.stream, line.text) for line in everything if line.stream == "stdout"] == [
        ("stdout", f"out-{i}") for i in range(1, 51)
    ]
    assert [line.text for line in everything if line.stream == "stderr"] == [f"err-{i}" for i in range(1, 51)]
    assert [line.time for line in everything] == sorted(line.time for line in everything)
    for index, line in enumerate(everything):
        assert texts(list(scheduler.logs(started.handle, line.cursor))) == texts(everything[index + 1 :])


def test_a_last_line_without_newline_and_invalid_utf8_are_kept(scheduler):
    started = scheduler.start(sh(r"printf 'caf\303\251 \377\nno newline'"))
    wait_for(scheduler, started.handle)
    assert texts(list(scheduler.logs(started.handle, None))) == ["café \ufffd", "no newline"]


def test_follow_returns_in_time_for_a_silent_process(scheduler):
    started = scheduler.start(sh("echo hello; sleep 30"))
    began = time.monotonic()
    lines = list(scheduler.logs(started.handle, None, follow_for=1.0))
    elapsed = time.monotonic() - began
    assert texts(lines) == ["hello"]
    assert 0.9 <= elapsed < 2.0


def test_follow_delivers_lines_as_they_come_and_returns_when_the_process_exits(scheduler):
    started = scheduler.start(sh("echo early; sleep 1; echo late"))
    began = time.monotonic()
    arrivals = [(line.text, time.monotonic() - began) for line in scheduler.logs(started.handle, None, follow_for=30)]
    assert [text for text, _ in arrivals] == ["early", "late"]
    assert arrivals[0][1] < 0.8
    assert time.monotonic() - began < 5


def test_stop_sends_sigterm_to_the_process_group(scheduler):
    started = scheduler.start(sh("trap 'echo got-sigterm; exit 3' TERM; echo ready; while true; do sleep 0.05; done"))
    lines = scheduler.logs(started.handle, None, follow_for=5)
    assert next(lines).text == "ready"
    lines.close()

    began = time.monotonic()
    scheduler.stop(started.handle)
    assert time.monotonic() - began < 1

    assert wait_for(scheduler, started.handle).exit_code == 3
    # The whole group got it: the shell's "sleep" died of it too, which the host's shell may report on stderr.
    stdout = [line.text for line in scheduler.logs(started.handle, None) if line.stream == "stdout"]
    assert stdout == ["ready", "got-sigterm"]
    scheduler.stop(started.handle)
    scheduler.kill(started.handle)


def test_kill_stops_a_process_that_ignores_sigterm(scheduler):
    started = scheduler.start(sh("trap '' TERM; echo ready; while true; do sleep 0.05; done"))
    lines = scheduler.logs(started.handle, None, follow_for=5)
    assert next(lines).text == "ready"
    lines.close()
    scheduler.stop(started.handle)
    time.sleep(0.4)
    assert scheduler.status(started.handle).state == State.RUNNING

    scheduler.kill(started.handle)

    assert wait_for(scheduler, started.handle).exit_code == 128 + signal.SIGKILL


def test_background_processes_end_with_the_command(scheduler, tmp_path):
    marker = tmp_path / "background-still-running"
    started = scheduler.start(sh(f"(sleep 1; touch {marker}) & echo main-done"))
    assert wait_for(scheduler, started.handle).exit_code == 0
    time.sleep(1.3)
    assert not marker.exists()


def test_remove_kills_and_deletes_and_a_missing_one_is_fine(scheduler):
    started = scheduler.start(sh("sleep 30"))
    state = json.loads((scheduler.root / started.handle / "state.json").read_text())
    scheduler.remove(started.handle)
    assert scheduler.status(started.handle).state == State.MISSING
    assert scheduler.find(started.handle) is None
    assert live_processes_in_group(state["pgid"]) == []
    scheduler.remove(started.handle)
    scheduler.stop(started.handle)


def test_prune_removes_only_old_finished_containers_that_is_done_accepts(scheduler):
    done = scheduler.start(sh("true", labels={LABEL_TASK_EXECUTION: "done"})).handle
    busy = scheduler.start(sh("true", labels={LABEL_TASK_EXECUTION: "busy"})).handle
    running = scheduler.start(sh("sleep 30", labels={LABEL_TASK_EXECUTION: "running"})).handle
    for handle in (done, busy):
        wait_for(scheduler, handle)
    is_done = {"done", "running"}.__contains__

    assert scheduler.prune(dt.timedelta(hours=1), is_done) == 0
    assert scheduler.prune(dt.timedelta(0), is_done) == 1

    assert scheduler.status(done).state == State.MISSING
    assert scheduler.status(busy).state == State.EXITED
    assert scheduler.status(running).state == State.RUNNING


def test_exec_is_not_supported(scheduler):
    started = scheduler.start(sh("sleep 30"))
    with pytest.raises(SchedulerError) as caught:
        scheduler.exec(started.handle, ["sh"])
    assert caught.value.permanent is True


def test_get_scheduler_refuses_the_local_scheduler_in_sandbox_mode(settings):
    settings.GOFER_SANDBOX = True
    get_scheduler.cache_clear()
    try:
        with pytest.raises(ImproperlyConfigured):
            get_scheduler("local")
    finally:
        get_scheduler.cache_clear()
