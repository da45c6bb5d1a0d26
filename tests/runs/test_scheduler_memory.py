"""The memory scheduler: every method of the Scheduler interface and every feature of its shell subset, with no
Docker and no mocks (its threads are real, and so are their times)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured

from runs.schedulers import get_scheduler, memory
from runs.schedulers.base import (
    LABEL_TASK_EXECUTION,
    ContainerSpec,
    ExecSession,
    LogLine,
    NoSuchContainer,
    NoSuchImage,
    SchedulerError,
    State,
    Status,
)
from runs.schedulers.memory import MemoryScheduler
from tests.support.schedulers import texts, wait_for


@pytest.fixture(autouse=True)
def _fresh_engine() -> Iterator[None]:
    memory.reset()
    yield
    memory.reset()


@pytest.fixture
def scheduler() -> MemoryScheduler:
    return MemoryScheduler()


def name() -> str:
    return f"memory-{uuid.uuid4().hex[:12]}"


def sh(script: str, **fields) -> ContainerSpec:
    return ContainerSpec(name=name(), image="busybox:latest", command=["sh", "-c", script], **fields)


def program(argv: list[str], **fields) -> ContainerSpec:
    return ContainerSpec(name=name(), image="busybox:latest", command=argv, **fields)


def run(scheduler: MemoryScheduler, spec: ContainerSpec) -> tuple[str, Status, list[LogLine]]:
    """Start ``spec``, wait for it to exit; its handle, its status and its whole log."""
    handle = scheduler.start(spec).handle
    return handle, wait_for(scheduler, handle, timeout=5), list(scheduler.logs(handle, None))


def streams_and_texts(lines: list[LogLine]) -> list[tuple[str, str]]:
    return [(line.stream, line.text) for line in lines]


def first_line(scheduler: MemoryScheduler, handle: str) -> str:
    return next(scheduler.logs(handle, None, follow_for=2)).text


def read_until(session: ExecSession, wanted: bytes, timeout: float = 2) -> bytes:
    output = b""
    give_up = time.monotonic() + timeout
    while wanted not in output:
        assert time.monotonic() < give_up, f"no {wanted!r} within {timeout} s; got {output!r}"
        chunk = session.recv(0.1)
        assert chunk is not None, f"the session ended before {wanted!r}; got {output!r}"
        output += chunk
    return output


def read_to_end(session: ExecSession, timeout: float = 2) -> bytes:
    output = b""
    give_up = time.monotonic() + timeout
    while (chunk := session.recv(0.1)) is not None:
        assert time.monotonic() < give_up, f"the session did not end within {timeout} s; got {output!r}"
        output += chunk
    return output


# --- registration ------------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    get_scheduler.cache_clear()
    yield
    get_scheduler.cache_clear()


def test_get_scheduler_builds_the_memory_scheduler_when_dev_schedulers_are_enabled(settings, fresh_registry):
    settings.GOFER_DEV_SCHEDULERS = True
    engine = get_scheduler("memory")
    assert isinstance(engine, MemoryScheduler)
    assert engine.name == "memory"


def test_get_scheduler_refuses_the_memory_scheduler_unless_dev_schedulers_are_enabled(settings, fresh_registry):
    settings.GOFER_DEV_SCHEDULERS = False
    with pytest.raises(ImproperlyConfigured, match="GOFER_DEV_SCHEDULERS"):
        get_scheduler("memory")


def test_get_scheduler_refuses_the_memory_scheduler_in_sandbox_mode_even_when_enabled(settings, fresh_registry):
    settings.GOFER_DEV_SCHEDULERS = True
    settings.GOFER_SANDBOX = True
    with pytest.raises(ImproperlyConfigured, match="sandbox"):
        get_scheduler("memory")


# --- start, find, status -------------------------------------------------------------------------------------------


def test_start_runs_the_program_and_status_reports_its_exit_code_and_real_times(scheduler):
    before = dt.datetime.now(dt.UTC)
    started = scheduler.start(sh("echo hello; sleep 0.2; exit 7"))
    assert started.adopted is False
    assert len(started.handle) == 64
    assert scheduler.status(started.handle).state in {State.RUNNING, State.EXITED}

    status = wait_for(scheduler, started.handle, timeout=5)

    assert status.exit_code == 7
    assert status.started_at.tzinfo is dt.UTC and status.finished_at.tzinfo is dt.UTC
    assert before <= status.started_at <= status.finished_at <= dt.datetime.now(dt.UTC)
    assert status.finished_at - status.started_at >= dt.timedelta(seconds=0.2)
    (line,) = scheduler.logs(started.handle, None)
    assert status.started_at <= line.time <= status.finished_at


def test_a_running_container_has_a_start_time_and_no_exit_code(scheduler):
    started = scheduler.start(sh("sleep 60"))
    status = scheduler.status(started.handle)
    assert status.state == State.RUNNING
    assert status.started_at is not None
    assert status.exit_code is None and status.finished_at is None


def test_second_start_with_the_same_name_adopts_the_container(scheduler):
    spec = sh("echo ran")
    first = scheduler.start(spec)
    wait_for(scheduler, first.handle)

    again = scheduler.start(spec)

    assert again == type(first)(handle=first.handle, image_digest=first.image_digest, adopted=True)
    assert texts(list(scheduler.logs(first.handle, None))) == ["ran"]  # not run a second time


def test_concurrent_starts_of_one_name_run_the_program_once(scheduler):
    spec = sh("echo ran-once; sleep 0.2")
    results, errors = [], []
    barrier = threading.Barrier(5)

    def start() -> None:
        barrier.wait()
        try:
            results.append(scheduler.start(spec))
        except Exception as exc:  # reported below: any failure is a bug
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(result.adopted for result in results) == [False, True, True, True, True]
    assert len({result.handle for result in results}) == 1
    wait_for(scheduler, results[0].handle)
    assert texts(list(scheduler.logs(results[0].handle, None))) == ["ran-once"]


def test_a_second_scheduler_instance_finds_and_adopts_the_containers_of_the_first(scheduler):
    # A worker "crashes" after starting a task: a new worker (a new instance) adopts the running container and
    # reads its whole log, once.
    spec = sh("echo before; sleep 0.3; echo after; exit 4")
    started = scheduler.start(spec)
    assert first_line(scheduler, started.handle) == "before"

    second_worker = MemoryScheduler()

    assert second_worker.find(spec.name) == started.handle
    assert second_worker.start(spec).adopted is True
    assert texts(list(second_worker.logs(started.handle, None, follow_for=5))) == ["before", "after"]
    assert second_worker.status(started.handle).exit_code == 4


def test_image_digest_is_a_sha256_of_the_image_name(scheduler):
    started = scheduler.start(ContainerSpec(name=name(), image="example/app:1.2", command=["true"]))
    assert started.image_digest == "memory@sha256:" + hashlib.sha256(b"example/app:1.2").hexdigest()
    assert scheduler.start(sh("true")).image_digest != started.image_digest


def test_an_image_in_missing_images_raises_no_such_image_and_creates_nothing(scheduler):
    memory.MISSING_IMAGES.add("gofer-test/does-not-exist:never")
    spec = ContainerSpec(name=name(), image="gofer-test/does-not-exist:never", command=["true"])

    with pytest.raises(NoSuchImage) as caught:
        scheduler.start(spec)

    assert caught.value.permanent is True
    assert "does-not-exist" in str(caught.value)
    assert scheduler.find(spec.name) is None
    assert scheduler.start(sh("true")).handle  # other images are fine
    memory.reset()
    assert not memory.MISSING_IMAGES  # reset() forgets them too
    assert scheduler.start(spec).adopted is False


@pytest.mark.parametrize("bad", ["", "-starts-with-dash", "has/slash", "has space", "x"])
def test_a_name_docker_would_refuse_is_a_permanent_error(scheduler, bad):
    with pytest.raises(SchedulerError) as caught:
        scheduler.start(ContainerSpec(name=bad, image="busybox", command=["true"]))
    assert caught.value.permanent is True


def test_find_and_status_of_unknown_containers(scheduler):
    assert scheduler.find(name()) is None
    assert scheduler.status("0" * 64) == Status(State.MISSING)


def test_find_matches_the_name_not_the_handle(scheduler):
    spec = sh("true")
    started = scheduler.start(spec)
    assert scheduler.find(spec.name) == started.handle
    assert scheduler.find(started.handle) is None


def test_reset_kills_and_forgets_every_container_and_ends_its_thread(scheduler):
    spec = sh("sleep 60")
    started = scheduler.start(spec)
    (thread,) = [thread for thread in threading.enumerate() if thread.name == f"gofer-memory-{spec.name}"]

    memory.reset()

    assert scheduler.status(started.handle).state == State.MISSING
    assert scheduler.find(spec.name) is None
    assert not thread.is_alive()


# --- logs --------------------------------------------------------------------------------------------------------------


def test_logs_tell_stdout_from_stderr_in_the_order_written_with_real_times(scheduler):
    _, status, lines = run(scheduler, sh("echo one; echo two >&2; echo three; echo 'four  spaced ' >&2"))

    assert streams_and_texts(lines) == [
        ("stdout", "one"),
        ("stderr", "two"),
        ("stdout", "three"),
        ("stderr", "four  spaced "),
    ]
    assert all(line.time.tzinfo is dt.UTC for line in lines)
    assert [line.time for line in lines] == sorted(line.time for line in lines)
    assert status.started_at <= lines[0].time and lines[-1].time <= status.finished_at


def test_resuming_from_every_cursor_returns_exactly_the_remaining_lines(scheduler):
    script = "; ".join(f"echo out-{i}; echo err-{i} >&2" for i in range(1, 51))
    handle, _, everything = run(scheduler, sh(script))
    assert len(everything) == 100

    for index, line in enumerate(everything):
        cursor = json.loads(json.dumps(line.cursor))  # as the log file stores it and a new worker reads it back
        rest = list(scheduler.logs(handle, cursor))
        assert streams_and_texts(rest) == streams_and_texts(everything[index + 1 :]), f"resuming after line {index}"
        assert [r.cursor for r in rest] == [e.cursor for e in everything[index + 1 :]]
        assert [r.time for r in rest] == [e.time for e in everything[index + 1 :]]


def test_resuming_while_the_container_still_writes_loses_and_repeats_nothing(scheduler):
    script = "; ".join(f"echo out-{i}; echo err-{i} >&2; sleep 0.01" for i in range(1, 41))
    started = scheduler.start(sh(script))
    collected: list[LogLine] = []
    cursor = None
    give_up = time.monotonic() + 5
    while time.monotonic() < give_up:
        ended = scheduler.status(started.handle).state == State.EXITED
        batch = list(scheduler.logs(started.handle, cursor, follow_for=0.03))
        collected += batch
        cursor = batch[-1].cursor if batch else cursor
        if ended and not batch:
            break
    assert texts(collected) == [f"{stream}-{i}" for i in range(1, 41) for stream in ("out", "err")]


def test_follow_delivers_lines_as_they_come_and_returns_early_when_the_container_exits(scheduler):
    started = scheduler.start(sh("echo early; sleep 0.3; echo late"))
    began = time.monotonic()
    arrivals = [(line.text, time.monotonic() - began) for line in scheduler.logs(started.handle, None, follow_for=30)]
    elapsed = time.monotonic() - began

    assert [text for text, _ in arrivals] == ["early", "late"]
    assert arrivals[0][1] < 0.2  # delivered before the program went on
    assert arrivals[1][1] >= 0.25
    assert elapsed < 1  # not the 30 s allowed: the container exited
    assert scheduler.status(started.handle).state == State.EXITED


def test_follow_returns_after_follow_for_while_a_container_is_silent(scheduler):
    started = scheduler.start(sh("echo hello; sleep 60"))

    began = time.monotonic()
    lines = list(scheduler.logs(started.handle, None, follow_for=0.3))
    elapsed = time.monotonic() - began

    assert texts(lines) == ["hello"]
    assert 0.28 <= elapsed < 0.8
    began = time.monotonic()
    assert list(scheduler.logs(started.handle, lines[-1].cursor, follow_for=0.2)) == []
    assert 0.18 <= time.monotonic() - began < 0.7


def test_without_follow_logs_return_what_exists_now(scheduler):
    started = scheduler.start(sh("echo now; sleep 60"))
    first_line(scheduler, started.handle)
    began = time.monotonic()
    assert texts(list(scheduler.logs(started.handle, None))) == ["now"]
    assert time.monotonic() - began < 0.1


def test_a_line_without_newline_is_held_until_the_container_exits(scheduler):
    started = scheduler.start(sh("echo first; echo -n 'no newline'; sleep 60"))
    assert texts(list(scheduler.logs(started.handle, None, follow_for=0.2))) == ["first"]

    scheduler.kill(started.handle)

    lines = list(scheduler.logs(started.handle, None))
    assert texts(lines) == ["first", "no newline"]
    assert list(scheduler.logs(started.handle, lines[-1].cursor)) == []


def test_unfinished_lines_of_both_streams_end_in_the_order_they_began(scheduler):
    _, _, lines = run(scheduler, sh("echo -n a; echo -n b >&2; echo -n c; printf x >&2"))
    assert streams_and_texts(lines) == [("stdout", "ac"), ("stderr", "bx")]


@pytest.mark.parametrize("cursor", [{"i": -1}, {"i": "1"}, {"i": True}, {"i": 1.0}, {"offset": 0}, {"i": 99}])
def test_a_cursor_the_container_never_gave_is_a_permanent_error(scheduler, cursor):
    handle, _, _ = run(scheduler, sh("echo only"))
    with pytest.raises(SchedulerError) as caught:
        list(scheduler.logs(handle, cursor))
    assert caught.value.permanent is True


def test_logs_of_an_unknown_container_raise_no_such_container(scheduler):
    with pytest.raises(NoSuchContainer):
        list(scheduler.logs("0" * 64, None))


def test_a_removed_container_ends_a_follow_at_once(scheduler):
    started = scheduler.start(sh("echo hi; sleep 60"))
    threading.Timer(0.2, scheduler.remove, args=(started.handle,)).start()
    began = time.monotonic()
    assert texts(list(scheduler.logs(started.handle, None, follow_for=10))) == ["hi"]
    assert time.monotonic() - began < 1


# --- stop, kill, remove --------------------------------------------------------------------------------------------


def test_stop_runs_the_term_trap_which_exits_with_its_own_code(scheduler):
    script = "trap 'echo got-sigterm; exit 3' TERM; echo ready; while true; do sleep 0.05; done"
    started = scheduler.start(sh(script))
    assert first_line(scheduler, started.handle) == "ready"

    began = time.monotonic()
    scheduler.stop(started.handle)
    assert time.monotonic() - began < 0.05  # returns at once

    assert wait_for(scheduler, started.handle, timeout=2).exit_code == 3
    assert texts(list(scheduler.logs(started.handle, None))) == ["ready", "got-sigterm"]


def test_stop_cuts_a_long_sleep_short_to_run_the_trap(scheduler):
    started = scheduler.start(sh("trap 'echo got-sigterm; exit 143' TERM; echo ready; sleep 60; echo never"))
    assert first_line(scheduler, started.handle) == "ready"
    scheduler.stop(started.handle)
    assert wait_for(scheduler, started.handle, timeout=1).exit_code == 143
    assert texts(list(scheduler.logs(started.handle, None))) == ["ready", "got-sigterm"]


def test_a_trap_for_a_term_during_the_last_command_runs_before_the_shell_ends(scheduler):
    started = scheduler.start(sh("trap 'echo trapped' TERM; echo ready; sleep 60"))
    assert first_line(scheduler, started.handle) == "ready"
    scheduler.stop(started.handle)
    status = wait_for(scheduler, started.handle, timeout=1)
    assert status.exit_code == 0  # the trap did not exit: the shell ends with the status of the cut sleep
    assert texts(list(scheduler.logs(started.handle, None))) == ["ready", "trapped"]


def test_stop_without_a_trap_exits_143_at_once(scheduler):
    started = scheduler.start(sh("echo ready; sleep 60"))
    assert first_line(scheduler, started.handle) == "ready"

    scheduler.stop(started.handle)

    status = scheduler.status(started.handle)
    assert (status.state, status.exit_code) == (State.EXITED, 143)
    assert status.finished_at - status.started_at < dt.timedelta(seconds=1)


def test_stop_of_a_program_run_without_a_shell_exits_143(scheduler):
    started = scheduler.start(program(["sleep", "60"]))
    scheduler.stop(started.handle)
    assert scheduler.status(started.handle).exit_code == 143


def test_a_trap_that_does_not_exit_keeps_the_program_running_until_kill(scheduler):
    started = scheduler.start(sh("trap 'echo ignoring TERM' TERM; echo ready; while true; do sleep 0.05; done"))
    assert first_line(scheduler, started.handle) == "ready"

    scheduler.stop(started.handle)
    lines = list(scheduler.logs(started.handle, None, follow_for=0.3))
    assert texts(lines) == ["ready", "ignoring TERM"]
    assert scheduler.status(started.handle).state == State.RUNNING
    scheduler.stop(started.handle)  # every TERM runs the trap again
    assert texts(list(scheduler.logs(started.handle, lines[-1].cursor, follow_for=0.3))) == ["ignoring TERM"]

    scheduler.kill(started.handle)

    assert scheduler.status(started.handle).exit_code == 137


def test_an_ignored_term_changes_nothing_and_kill_ends_the_program(scheduler):
    started = scheduler.start(sh("trap '' TERM; echo ready; while true; do sleep 0.05; done"))
    assert first_line(scheduler, started.handle) == "ready"
    scheduler.stop(started.handle)
    assert texts(list(scheduler.logs(started.handle, None, follow_for=0.2))) == ["ready"]
    assert scheduler.status(started.handle).state == State.RUNNING
    scheduler.kill(started.handle)
    assert scheduler.status(started.handle).exit_code == 137


def test_trap_dash_restores_the_default_term_action(scheduler):
    started = scheduler.start(sh("trap 'echo trapped' TERM; trap - TERM; echo ready; sleep 60"))
    assert first_line(scheduler, started.handle) == "ready"
    scheduler.stop(started.handle)
    assert scheduler.status(started.handle).exit_code == 143
    assert texts(list(scheduler.logs(started.handle, None))) == ["ready"]


def test_kill_exits_137_at_once_even_in_a_sleep_or_a_busy_loop(scheduler):
    sleeping = scheduler.start(sh("echo ready; sleep 60"))
    busy = scheduler.start(sh("while true; do true; done"))
    assert first_line(scheduler, sleeping.handle) == "ready"

    for started in (sleeping, busy):
        scheduler.kill(started.handle)
        status = scheduler.status(started.handle)
        assert (status.state, status.exit_code) == (State.EXITED, 137)
        assert status.finished_at is not None


def test_stop_and_kill_of_an_exited_or_missing_container_do_nothing(scheduler):
    handle, status, _ = run(scheduler, sh("exit 5"))
    scheduler.stop(handle)
    scheduler.kill(handle)
    assert scheduler.status(handle) == status
    scheduler.stop("0" * 64)
    scheduler.kill("0" * 64)


def test_remove_deletes_the_container_even_while_running_and_a_missing_one_is_fine(scheduler):
    spec = sh("sleep 60")
    started = scheduler.start(spec)

    scheduler.remove(started.handle)

    assert scheduler.status(started.handle).state == State.MISSING
    assert scheduler.find(spec.name) is None
    with pytest.raises(NoSuchContainer):
        list(scheduler.logs(started.handle, None))
    scheduler.remove(started.handle)
    scheduler.stop(started.handle)
    scheduler.kill(started.handle)
    again = scheduler.start(spec)  # the name is free again
    assert again.adopted is False and again.handle != started.handle


# --- exec --------------------------------------------------------------------------------------------------------------


def test_exec_runs_commands_sent_to_a_shell_in_the_containers_environment(scheduler):
    started = scheduler.start(sh("sleep 60", env={"GREETING": "hello"}))
    session = scheduler.exec(started.handle, ["sh"])
    try:
        session.send(b"echo $GREETING-from-exec; echo to-stderr >&2\n")
        assert read_until(session, b"to-stderr\n") == b"hello-from-exec\nto-stderr\n"
        assert session.recv(0.1) == b""  # waiting for input: quiet, not ended
        session.send(b"exit\n")
        assert read_to_end(session) == b""
        assert session.recv(0.1) is None
        with pytest.raises(SchedulerError) as caught:
            session.send(b"echo too late\n")
        assert caught.value.permanent is True
    finally:
        session.close()
    assert scheduler.status(started.handle).state == State.RUNNING  # leaving the shell leaves the task alone


def test_exec_shell_reads_a_loop_over_several_lines_and_carriage_returns(scheduler):
    started = scheduler.start(sh("sleep 60"))
    session = scheduler.exec(started.handle, ["/bin/sh"])
    try:
        session.send(b"while true; do\r\n")
        session.send(b"echo in-loop; exit 5\n")
        assert session.recv(0.1) == b""  # nothing runs before the loop is complete
        session.send(b"done\n")
        assert read_to_end(session) == b"in-loop\n"
    finally:
        session.close()


def test_exec_shell_reports_what_it_cannot_run_and_goes_on(scheduler):
    started = scheduler.start(sh("sleep 60"))
    session = scheduler.exec(started.handle, ["sh"])
    try:
        session.send(b"ls /\ndone\n")
        output = read_until(session, b"syntax error: unexpected done\n")
        assert output.startswith(b"memory scheduler: unsupported: ls\n")
        session.send(b"echo still-here\n")
        read_until(session, b"still-here\n")
    finally:
        session.close()


def test_exec_of_a_one_off_command_ends_after_its_output(scheduler):
    started = scheduler.start(sh("sleep 60"))
    assert read_to_end(scheduler.exec(started.handle, ["echo", "one-off"])) == b"one-off\n"
    assert read_to_end(scheduler.exec(started.handle, ["sh", "-c", "echo a; echo b >&2; exit 3"])) == b"a\nb\n"
    unsupported = read_to_end(scheduler.exec(started.handle, ["hostname"]))
    assert unsupported == b"memory scheduler: unsupported: hostname\n"


def test_ctrl_d_ends_the_input_of_an_exec_shell(scheduler):
    started = scheduler.start(sh("sleep 60"))
    session = scheduler.exec(started.handle, ["sh"])
    session.send(b"echo last\n\x04echo never\n")
    assert read_to_end(session) == b"last\n"


def test_closing_an_exec_session_ends_its_command_at_once(scheduler):
    started = scheduler.start(sh("sleep 60"))
    session = scheduler.exec(started.handle, ["sh"])
    session.send(b"echo sleeping; sleep 30\n")
    read_until(session, b"sleeping\n")

    began = time.monotonic()
    session.close()

    assert time.monotonic() - began < 0.5
    assert read_to_end(session) == b""
    session.close()  # twice is fine
    assert scheduler.status(started.handle).state == State.RUNNING


def test_an_exec_session_ends_when_its_container_does(scheduler):
    started = scheduler.start(sh("sleep 60"))
    session = scheduler.exec(started.handle, ["sh"])
    session.send(b"sleep 30\n")
    scheduler.kill(started.handle)
    assert read_to_end(session, timeout=0.5) == b""


def test_exec_into_an_exited_or_missing_container_is_refused(scheduler):
    handle, _, _ = run(scheduler, sh("true"))
    with pytest.raises(SchedulerError) as caught:
        scheduler.exec(handle, ["sh"])
    assert caught.value.permanent is True
    with pytest.raises(NoSuchContainer):
        scheduler.exec("0" * 64, ["sh"])


# --- prune ---------------------------------------------------------------------------------------------------------


def test_prune_removes_only_old_exited_containers_whose_task_execution_is_done(scheduler):
    def launch(execution: str | None, script: str) -> str:
        labels = {LABEL_TASK_EXECUTION: execution} if execution else {}
        return scheduler.start(sh(script, labels=labels)).handle

    done = launch("done", "true")
    busy = launch("busy", "true")
    running = launch("running", "sleep 60")
    unlabelled = launch(None, "true")
    for handle in (done, busy, unlabelled):
        wait_for(scheduler, handle)
    asked: list[str] = []

    def is_done(execution: str) -> bool:
        asked.append(execution)
        return execution in {"done", "running"}

    assert scheduler.prune(dt.timedelta(hours=1), is_done) == 0  # too recent
    assert scheduler.prune(dt.timedelta(0), is_done) == 1

    assert scheduler.status(done).state == State.MISSING
    assert scheduler.status(busy).state == State.EXITED
    assert scheduler.status(running).state == State.RUNNING
    assert scheduler.status(unlabelled).state == State.EXITED
    assert sorted(set(asked)) == ["busy", "done"]  # never asked about running or unlabelled containers


# --- the shell subset ----------------------------------------------------------------------------------------------

OUT, ERR = "stdout", "stderr"

SCRIPTS = {
    "semicolons and newlines separate commands": ("echo one; echo two\necho three", {}, ["one", "two", "three"], 0),
    "and runs the next command only after a success": ("true && echo yes; false && echo never", {}, ["yes"], 1),
    "or runs the next command only after a failure": ("false || echo rescued; true || echo never", {}, ["rescued"], 0),
    "a newline may follow and and or": ("true &&\necho a ||\necho b", {}, ["a"], 0),
    "echo expands both forms of variables": ('echo $A ${A}-x "$A"', {"A": "v"}, ["v v-x v"], 0),
    "single quotes keep dollars and spaces": ("echo '$A  two'", {"A": "v"}, ["$A  two"], 0),
    "double quotes keep spaces and take escapes": ('echo "a  \\"b\\" \\$A \\\\"', {"A": "v"}, ['a  "b" $A \\'], 0),
    "a backslash quotes one character": ("echo \\$A \\'x\\'", {"A": "v"}, ["$A 'x'"], 0),
    "unquoted expansions are split and empty ones vanish": (
        'printf "[%s]" $SPACED $EMPTY "$EMPTY" x$SPACED"y"; echo',
        {"SPACED": " a  b ", "EMPTY": ""},
        ["[a][b][][x][a][b][y]"],
        0,
    ),
    "an unset variable is empty": ('echo "<$NOPE>"', {}, ["<>"], 0),
    "a dollar before anything else is itself": ('echo $ "a$" $/', {}, ["$ a$ $/"], 0),
    "echo -n leaves the line open": ("echo -n a; echo -n -n b; echo c", {}, ["abc"], 0),
    "echo keeps backslashes as busybox does": ("echo 'a\\nb'", {}, ["a\\nb"], 0),
    "echo of a multi-line value writes several lines": ('echo "$MULTI"', {"MULTI": "one\ntwo"}, ["one", "two"], 0),
    "printf formats strings and reuses its format": (
        "printf '%s=%s\\n' a 1 b 2; printf '100%%\\tdone\\\\\\n'; printf %s",
        {},
        ["a=1", "b=2", "100%\tdone\\"],
        0,
    ),
    "exit ends the script with its code": ("echo before; exit 7; echo after", {}, ["before"], 7),
    "exit without a code keeps the last status": ("false || exit", {}, [], 1),
    "the last command's status is the exit code": ("echo x; false", {}, ["x"], 1),
    "exit codes wrap at 256": ("exit 258", {}, [], 2),
    "env and printenv print the environment sorted": ("env; printenv", {"B": "2", "A": "1"}, ["A=1", "B=2"] * 2, 0),
    "seq counts from first to last": ("seq 3 5; seq 2; seq 5 3", {}, ["3", "4", "5", "1", "2"], 0),
    "cat reads the empty stdin": ("cat; echo after", {}, ["after"], 0),
    "while loops until exit": ("while true; do echo looping; exit 3; done", {}, ["looping"], 3),
    "a false while condition never runs the body": ("while false; do echo never; done; echo after", {}, ["after"], 0),
    "while loops nest and span lines": (
        "while true\ndo\n  while true; do echo inner; exit 4; done\ndone",
        {},
        ["inner"],
        4,
    ),
    "comments and line continuations": ("# a comment\necho a \\\n  b # trailing\necho c#d", {}, ["a b", "c#d"], 0),
    "sleep takes fractions": ("sleep 0.05; sleep .01; sleep 0; echo slept", {}, ["slept"], 0),
    "a command name may come from a variable": ("$CMD hi", {"CMD": "echo"}, ["hi"], 0),
    "a command may be named by its path in bin": ("/bin/echo hi", {}, ["hi"], 0),
    "an empty script succeeds": ("", {}, [], 0),
    "a trap that never fires changes nothing": ("trap 'echo never' SIGTERM; trap '' 15; echo done", {}, ["done"], 0),
    "test compares strings": (
        'test "$A" = v && echo equal; test "$A" != w && echo differs; test "$A" = w || echo not-w',
        {"A": "v"},
        ["equal", "differs", "not-w"],
        0,
    ),
    "test tells empty from non-empty strings": (
        'test -n "$A" && echo set; test -z "$EMPTY" && echo empty; test "$A" && echo one; test "$EMPTY" || echo none',
        {"A": "v", "EMPTY": ""},
        ["set", "empty", "one", "none"],
        0,
    ),
    "a failed test is status 1": ('test -z "$A"', {"A": "v"}, [], 1),
    "keywords are only keywords unquoted at a command's start": (
        "echo while do done; 'true'",
        {},
        ["while do done"],
        0,
    ),
}


@pytest.mark.parametrize(("script", "env", "expected", "exit_code"), SCRIPTS.values(), ids=SCRIPTS.keys())
def test_the_shell_subset_runs_scripts_as_busybox_sh_does(scheduler, script, env, expected, exit_code):
    _, status, lines = run(scheduler, sh(script, env=env))
    assert (texts(lines), status.exit_code) == (expected, exit_code)
    assert {line.stream for line in lines} <= {OUT}


def test_redirections_send_a_commands_stdout_to_stderr_and_back(scheduler):
    _, _, lines = run(scheduler, sh("echo out; echo err >&2; echo also 1>&2; >&2 echo first; echo back 2>&1"))
    assert streams_and_texts(lines) == [(OUT, "out"), (ERR, "err"), (ERR, "also"), (ERR, "first"), (OUT, "back")]


def test_sleep_sleeps_for_real(scheduler):
    _, status, _ = run(scheduler, sh("sleep 0.25"))
    assert status.finished_at - status.started_at >= dt.timedelta(seconds=0.25)


PROGRAMS = {
    "a program runs without a shell": (["echo", "after"], ["after"], 0),
    "without a shell nothing is expanded": (["echo", "$HOME", "'q'"], ["$HOME 'q'"], 0),
    "true succeeds": (["true"], [], 0),
    "false fails": (["false"], [], 1),
    "a program may be named by its path in bin": (["/bin/printf", "%s\\n", "x"], ["x"], 0),
    "bin sh runs a script": (["/bin/sh", "-c", "echo via bin sh"], ["via bin sh"], 0),
    "arguments after the script are ignored": (["sh", "-c", "echo x", "name", "arg"], ["x"], 0),
    "sh alone reads its empty stdin and ends": (["sh"], [], 0),
}


@pytest.mark.parametrize(("argv", "expected", "exit_code"), PROGRAMS.values(), ids=PROGRAMS.keys())
def test_the_program_is_run_as_docker_runs_entrypoint_and_command(scheduler, argv, expected, exit_code):
    _, status, lines = run(scheduler, program(argv))
    assert (texts(lines), status.exit_code) == (expected, exit_code)


def test_entrypoint_and_command_are_joined(scheduler):
    spec = ContainerSpec(name=name(), image="busybox", entrypoint=["sh", "-c"], command=["echo joined"])
    _, status, lines = run(scheduler, spec)
    assert (texts(lines), status.exit_code) == (["joined"], 0)


def test_seq_writes_sixty_thousand_lines_quickly(scheduler):
    began = time.monotonic()
    _, status, lines = run(scheduler, program(["seq", "1", "60000"]))
    assert status.exit_code == 0
    assert texts(lines) == [str(n) for n in range(1, 60001)]
    assert time.monotonic() - began < 3


def test_a_word_of_a_hundred_kibibytes_is_read_and_written_whole_and_quickly(scheduler):
    word = "".join(str(n) for n in range(1, 23001))
    began = time.monotonic()
    _, status, lines = run(scheduler, sh(f"echo {word}; echo after"))
    assert (texts(lines), status.exit_code) == ([word, "after"], 0)
    assert time.monotonic() - began < 2


UNSUPPORTED = {
    "an unknown command": ("ls", "ls"),
    "a pipe": ("echo a | cat", "|"),
    "a background job": ("echo a &", "&"),
    "a command substitution": ("echo $(date)", "$("),
    "backquotes": ("echo `date`", "`"),
    "arithmetic": ("echo $((1 + 1))", "$(("),
    "special parameters": ("echo $?", "$?"),
    "positional parameters": ("echo $1", "$1"),
    "parameter operators": ("echo ${A:-x}", "${A:-x}"),
    "assignments": ("FOO=1 echo", "FOO=1"),
    "for loops": ("for i in 1 2; do echo $i; done", "for"),
    "if": ("if true; then echo; fi", "if"),
    "until": ("until true; do echo; done", "until"),
    "negation": ("! true", "!"),
    "groups": ("{ echo; }", "{"),
    "subshells": ("(echo sub)", "("),
    "case": ("case $A in", "case"),
    "double semicolons": ("echo a;; echo b", ";;"),
    "output to a file": ("echo > file", ">"),
    "appending to a file": ("echo >> file", ">>"),
    "redirecting stderr to a file": ("echo 2>/dev/null", "2>/dev/null"),
    "redirecting to another descriptor": ("echo >&3", ">&3"),
    "input redirection": ("cat < file", "<"),
    "redirecting a loop": ("while true; do exit; done >&2", ">&2 after done (only simple commands are redirected)"),
    "pathname expansion": ("echo *.txt", "* (pathname expansion)"),
    "tilde expansion": ("echo ~", "~"),
    "cat with a file": ("cat file", "cat file"),
    "a printf conversion other than s": ("printf %d 1", "printf %d"),
    "a printf escape other than n t and backslash": ("printf 'caf\\303'", "printf \\3"),
    "printf without a format": ("printf", "printf"),
    "echo -e": ("echo -e 'a\\nb'", "echo -e"),
    "a sleep with a unit": ("sleep 1m", "sleep 1m"),
    "a sleep without a duration": ("sleep", "sleep"),
    "a trap on another signal": ("trap 'echo' INT", "trap echo INT"),
    "trap without a signal": ("trap", "trap"),
    "an unsupported command in a trap": ("trap 'ls' TERM", "ls"),
    "seq with an increment": ("seq 1 2 9", "seq 1 2 9"),
    "env with a command": ("env FOO=1 true", "env FOO=1 true"),
    "printenv of one variable": ("printenv HOME", "printenv HOME"),
    "exit with a word": ("exit abc", "exit abc"),
    "a nested shell": ("sh -c 'echo nested'", "sh"),
    "an unknown command from a variable": ("$CMD", "ls"),
    "test of numbers": ("test 1 -eq 1", "test 1 -eq 1"),
    "test of a file": ("test -f /etc/passwd", "test -f /etc/passwd"),
    "test with negation": ("test ! a", "test ! a"),
    "test with and": ("test a -a b", "test a -a b"),
    "the bracket form of test": ("[ a = a ]", "[ (pathname expansion)"),
}


@pytest.mark.parametrize(("script", "word"), UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_unsupported_syntax_exits_127_saying_what_is_unsupported(scheduler, script, word):
    _, status, lines = run(scheduler, sh(script, env={"CMD": "ls"}))
    assert status.exit_code == 127
    assert streams_and_texts(lines) == [(ERR, f"memory scheduler: unsupported: {word}")]
    assert status.message == f"memory scheduler: unsupported: {word}"


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["/bin/no-such-program"], "/bin/no-such-program"),
        (["exit", "3"], "exit"),  # a shell builtin is no program
        (["sh", "script.sh"], "sh script.sh"),
        (["sh", "-c"], "sh -c without a script"),
        ([], "an empty command (there is no image default command here)"),
    ],
    ids=["an unknown program", "a shell builtin", "a script file", "sh -c alone", "no command at all"],
)
def test_an_unsupported_program_exits_127_saying_what_is_unsupported(scheduler, argv, word):
    _, status, lines = run(scheduler, program(argv))
    assert (status.exit_code, texts(lines)) == (127, [f"memory scheduler: unsupported: {word}"])


def test_an_unsupported_word_written_in_the_script_stops_it_before_anything_runs(scheduler):
    _, status, lines = run(scheduler, sh("echo before; false && ls"))
    assert (status.exit_code, texts(lines)) == (127, ["memory scheduler: unsupported: ls"])


def test_an_unsupported_operand_stops_the_script_where_it_is_met(scheduler):
    _, status, lines = run(scheduler, sh("echo before; sleep 1m; echo after"))
    assert status.exit_code == 127
    assert streams_and_texts(lines) == [(OUT, "before"), (ERR, "memory scheduler: unsupported: sleep 1m")]


SYNTAX_ERRORS = {
    "an unterminated single quote": ("echo 'open", "unterminated single quote"),
    "an unterminated double quote": ('echo "open', "unterminated double quote"),
    "an unterminated brace": ("echo ${A", "unterminated ${"),
    "a missing done": ("while true; do echo x", "missing done"),
    "a missing do": ("while true", "missing do"),
    "an operator with nothing after it": ("echo a &&", "the script ends where a command was expected"),
    "a stray done": ("done", "unexpected done"),
    "a leading semicolon": ("; echo", "unexpected ;"),
    "an empty loop body": ("while true; do done", "a while loop needs a condition and a body"),
    "words after done": ("while true; do exit; done echo", "unexpected echo"),
}


@pytest.mark.parametrize(("script", "what"), SYNTAX_ERRORS.values(), ids=SYNTAX_ERRORS.keys())
def test_a_syntax_error_exits_2_as_sh_does(scheduler, script, what):
    _, status, lines = run(scheduler, sh(script))
    assert (status.exit_code, streams_and_texts(lines)) == (2, [(ERR, f"memory scheduler: syntax error: {what}")])


def test_a_bug_in_the_engine_ends_the_container_with_125_and_no_traceback_in_its_log(scheduler, monkeypatch, caplog):
    def broken(*args) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(memory._COMMANDS, "true", broken)
    _, status, lines = run(scheduler, sh("echo before; true"))
    assert status.exit_code == 125
    assert texts(lines) == ["before", "memory scheduler: internal error (see the worker's log)"]
    assert "ZeroDivisionError" in caplog.text


# --- inspect ------------------------------------------------------------------------------------------------------


def test_inspect_tells_what_docker_inspect_would_without_going_through_a_scheduler(scheduler, monkeypatch):
    spec = sh("exit 3", env={"A": "1"}, labels={LABEL_TASK_EXECUTION: "42"})
    handle, status, _ = run(scheduler, spec)
    monkeypatch.setattr(MemoryScheduler, "status", lambda self, handle: 1 / 0)  # a test's fault injection
    found = memory.inspect(handle)
    assert found is not None
    assert (found.name, found.image, found.state, found.exit_code) == (spec.name, "busybox:latest", State.EXITED, 3)
    assert (found.started_at, found.finished_at) == (status.started_at, status.finished_at)
    assert found.env == {"A": "1"}
    assert found.labels[LABEL_TASK_EXECUTION] == "42"


def test_inspect_of_a_removed_or_unknown_container_is_none(scheduler):
    handle = scheduler.start(sh("sleep 5")).handle
    assert memory.inspect(handle).state == State.RUNNING
    scheduler.remove(handle)
    assert memory.inspect(handle) is None
    assert memory.inspect("0" * 64) is None
