"""The Docker scheduler against the real Docker engine (no mocks).

The engine in the test machines runs without a bridge, so every container uses ``network_mode="none"``. Images are
built locally (tests/support/images.py); nothing is pulled from the internet: the pull failures below go to a
registry address on the loopback interface where nothing listens, which fails at once.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import random
import threading
import time
import uuid
from decimal import Decimal

import pytest

from runs.schedulers import docker as docker_scheduler
from runs.schedulers.base import (
    LABEL_MANAGED,
    LABEL_TASK_EXECUTION,
    ContainerSpec,
    EngineUnavailable,
    LogLine,
    NoSuchContainer,
    NoSuchImage,
    SchedulerError,
    State,
)
from runs.schedulers.docker import DockerScheduler, _ResumePoint, format_rfc3339_ns, parse_rfc3339_ns
from tests.support.images import build_image
from tests.support.schedulers import texts, wait_for

UNREACHABLE_REGISTRY = "127.0.0.1:1"  # loopback port 1: connection refused at once, no traffic leaves the host


def spec(name: str, image: str, script: str | None = None, **fields) -> ContainerSpec:
    if script is not None:
        fields["command"] = ["sh", "-c", script]
    return ContainerSpec(name=name, image=image, **fields)


def first_line(scheduler: DockerScheduler, handle: str, timeout: float = 5) -> str | None:
    """The first log line, waiting for it up to ``timeout`` seconds, without following the log any further."""
    with contextlib.closing(scheduler.logs(handle, None, follow_for=timeout)) as lines:
        return next(iter(lines), LogLine(dt.datetime.now(dt.UTC), "stdout", "", {})).text or None


# --- starting ----------------------------------------------------------------------------------------------------


@pytest.mark.docker
def test_start_runs_the_container_and_status_reports_exit_code_and_engine_times(scheduler, names, busybox_image):
    before = dt.datetime.now(dt.UTC)
    started = scheduler.start(spec(names(), busybox_image, "sleep 0.3; exit 7"))
    assert started.adopted is False
    assert scheduler.status(started.handle).state in {State.RUNNING, State.EXITED}

    status = wait_for(scheduler, started.handle)
    after = dt.datetime.now(dt.UTC)

    assert status.exit_code == 7
    assert (
        before - dt.timedelta(seconds=1) <= status.started_at <= status.finished_at <= after + dt.timedelta(seconds=1)
    )
    assert status.finished_at - status.started_at >= dt.timedelta(seconds=0.25)
    assert status.message == ""


@pytest.mark.docker
def test_status_of_a_running_container_has_a_start_time_and_no_exit_code(scheduler, names, busybox_image):
    started = scheduler.start(spec(names(), busybox_image, "sleep 30"))
    status = wait_for(scheduler, started.handle, State.RUNNING)
    assert status.started_at is not None
    assert status.finished_at is None
    assert status.exit_code is None


@pytest.mark.docker
def test_start_adopts_an_existing_container_of_the_same_name(scheduler, names, busybox_image, docker_client):
    name = names()
    first = scheduler.start(spec(name, busybox_image, "echo ran"))
    wait_for(scheduler, first.handle)
    finished = scheduler.status(first.handle).finished_at

    again = scheduler.start(spec(name, busybox_image, "echo ran"))

    assert again.handle == first.handle
    assert again.adopted is True
    assert again.image_digest == first.image_digest
    assert len(docker_client.containers.list(all=True, filters={"name": name})) == 1
    # Adopting an exited container must not restart it: Docker would run the task a second time.
    time.sleep(0.3)
    assert scheduler.status(first.handle).finished_at == finished
    assert texts(list(scheduler.logs(first.handle, None))) == ["ran"]


@pytest.mark.docker
def test_concurrent_starts_of_one_name_create_a_single_container(scheduler, names, busybox_image, docker_client):
    name = names()
    results, errors = [], []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        try:
            results.append(scheduler.start(spec(name, busybox_image, "echo ran-once; sleep 0.5")))
        except Exception as exc:  # reported below: any failure is a bug
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len({result.handle for result in results}) == 1
    assert sorted(result.adopted for result in results) == [False] + [True] * 5
    assert len(docker_client.containers.list(all=True, filters={"name": name})) == 1
    handle = results[0].handle
    wait_for(scheduler, handle)
    assert texts(list(scheduler.logs(handle, None))) == ["ran-once"]


@pytest.mark.docker
def test_adoption_starts_a_created_container_whose_creator_died_before_starting_it(
    scheduler, names, busybox_image, docker_client, monkeypatch
):
    # The grace is a constant of ours, not Docker's: shortened so the test does not wait 5 s.
    monkeypatch.setattr(docker_scheduler, "ADOPT_GRACE", 0.5)
    name = names()
    orphan = docker_client.containers.create(
        busybox_image, ["echo", "started-by-adopter"], name=name, network_mode="none"
    )

    started = scheduler.start(spec(name, busybox_image, "echo never-used"))

    assert started.handle == orphan.id
    assert started.adopted is True
    assert wait_for(scheduler, started.handle).exit_code == 0
    assert texts(list(scheduler.logs(started.handle, None))) == ["started-by-adopter"]


@pytest.mark.docker
def test_env_entrypoint_and_command_reach_the_container(scheduler, names, busybox_image, docker_client):
    image = build_image(
        docker_client,
        "gofer-test/entrypoint:latest",
        f'FROM {busybox_image}\nENTRYPOINT ["echo", "image-entrypoint"]\nCMD ["image-cmd"]\n',
    )
    cases = {
        "image": (None, None, "image-entrypoint image-cmd"),
        "command": (None, ["ours"], "image-entrypoint ours"),
        "both": (["sh", "-c"], ['echo "$GREETING, $WHO"'], "hello, gofer"),
    }
    handles = {}
    for key, (entrypoint, command, _) in cases.items():
        started = scheduler.start(
            ContainerSpec(
                name=names(key),
                image=image,
                entrypoint=entrypoint,
                command=command,
                env={"GREETING": "hello", "WHO": "gofer"},
            )
        )
        handles[key] = started.handle
    for key, (_, _, expected) in cases.items():
        wait_for(scheduler, handles[key])
        assert texts(list(scheduler.logs(handles[key], None))) == [expected], key


@pytest.mark.docker
def test_labels_are_the_spec_labels_plus_gofer_managed(scheduler, names, busybox_image, docker_client):
    # Not numbers: the orchestrator's own tests prune containers whose task execution ids are done in their database.
    labels = {LABEL_TASK_EXECUTION: f"te-{uuid.uuid4().hex}", "dev.gofer.run": "run-7"}
    started = scheduler.start(spec(names(), busybox_image, "true", labels=labels))
    container_labels = docker_client.containers.get(started.handle).labels
    # The image's own labels are inherited too; ours must all be there.
    assert {key: container_labels.get(key) for key in [*labels, LABEL_MANAGED]} == {**labels, LABEL_MANAGED: "true"}


@pytest.mark.docker
def test_cpu_and_memory_limits_and_network_mode_are_visible_in_docker_inspect(
    scheduler, names, busybox_image, docker_client
):
    started = scheduler.start(spec(names(), busybox_image, "true", cpu=Decimal("0.5"), memory_mib=64))
    host_config = docker_client.api.inspect_container(started.handle)["HostConfig"]
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["Memory"] == 64 * 1024 * 1024
    assert host_config["NetworkMode"] == "none"
    # A task's cpu can come from JSON as a float.
    fractional = scheduler.start(spec(names(), busybox_image, "true", cpu=0.1))
    assert docker_client.api.inspect_container(fractional.handle)["HostConfig"]["NanoCpus"] == 100_000_000


@pytest.mark.docker
def test_no_limits_are_set_when_the_spec_has_none(scheduler, names, busybox_image, docker_client):
    started = scheduler.start(spec(names(), busybox_image, "true"))
    host_config = docker_client.api.inspect_container(started.handle)["HostConfig"]
    assert host_config["NanoCpus"] == 0
    assert host_config["Memory"] == 0


@pytest.mark.docker
def test_image_digest_is_the_image_id_that_ran_when_the_image_has_no_registry_digest(
    scheduler, names, busybox_image, docker_client
):
    image = docker_client.images.get(busybox_image)
    assert image.attrs["RepoDigests"] == []  # imported locally, never pushed
    started = scheduler.start(spec(names(), busybox_image, "true"))
    assert started.image_digest == image.id
    assert started.image_digest.startswith("sha256:")


@pytest.mark.docker
def test_the_container_runs_the_image_whose_digest_is_recorded_even_when_its_tag_moves(
    scheduler, names, busybox_image, docker_client, monkeypatch
):
    tag = f"gofer-test/moving:{uuid.uuid4().hex[:8]}"
    docker_client.images.get(busybox_image).tag(tag)
    first = docker_client.images.get(tag).id
    build_image(docker_client, tag, "FROM " + busybox_image + '\nLABEL moved="yes"\n')  # the tag's next image
    moved = docker_client.images.get(tag).id
    assert moved != first
    docker_client.images.get(first).tag(tag)  # back to the first one for the check
    real_create = scheduler._client().api.create_container

    def create_after_a_concurrent_pull(**kwargs):
        # A pull on the same host moves the tag between Gofer's look at the image and its create.
        docker_client.images.get(moved).tag(tag)
        return real_create(**kwargs)

    monkeypatch.setattr(scheduler._client().api, "create_container", create_after_a_concurrent_pull)
    try:
        started = scheduler.start(spec(names(), tag, "true"))
        attrs = docker_client.api.inspect_container(started.handle)
        assert attrs["Image"] == first == started.image_digest  # what ran is what is recorded
        assert attrs["Config"]["Labels"]["dev.gofer.image"] == tag  # the name as the task gave it
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(tag, force=True)


@pytest.mark.docker
def test_a_container_gofer_started_is_read_without_inspecting_it_first(scheduler, names, busybox_image, monkeypatch):
    started = scheduler.start(spec(names(), busybox_image, "echo hello"))
    api = scheduler._client().api
    inspected: list[str] = []
    real_inspect = api.inspect_container
    monkeypatch.setattr(api, "inspect_container", lambda handle: inspected.append(handle) or real_inspect(handle))
    wait_for(scheduler, started.handle)
    inspected.clear()
    assert texts(list(scheduler.logs(started.handle, None))) == ["hello"]
    assert inspected == []  # created without a TTY by this scheduler: nothing to ask before reading its log


@pytest.mark.docker
def test_a_missing_image_that_cannot_be_pulled_raises_no_such_image_quickly(scheduler, names, docker_client):
    name = names()
    began = time.monotonic()
    with pytest.raises(NoSuchImage) as caught:
        scheduler.start(spec(name, f"{UNREACHABLE_REGISTRY}/gofer-test/no-such-image:missing", "true"))
    assert time.monotonic() - began < 10
    assert "no-such-image" in str(caught.value)
    assert "could not be pulled" in str(caught.value)
    assert caught.value.permanent is True
    assert docker_client.containers.list(all=True, filters={"name": name}) == []


@pytest.mark.docker
def test_always_pull_fails_with_no_such_image_when_the_registry_cannot_be_reached(
    scheduler, names, busybox_image, docker_client
):
    local_only = f"{UNREACHABLE_REGISTRY}/gofer-test/busybox:latest"
    docker_client.images.get(busybox_image).tag(local_only)
    try:
        started = scheduler.start(spec(names("present"), local_only, "true"))  # present locally: no pull
        assert started.handle
        with pytest.raises(NoSuchImage, match="always_pull"):
            scheduler.start(spec(names("pull"), local_only, "true", always_pull=True))
    finally:
        docker_client.images.remove(local_only)


@pytest.mark.docker
def test_a_command_that_cannot_start_raises_a_permanent_error_and_status_explains(
    scheduler, names, busybox_image, settings
):
    settings.GOFER_DOCKER_INIT = False  # with an init process, the init starts and the task exits 127 (next test)
    name = names()
    with pytest.raises(SchedulerError) as caught:
        scheduler.start(ContainerSpec(name=name, image=busybox_image, command=["/bin/no-such-program"]))
    assert caught.value.permanent is True
    assert "no-such-program" in str(caught.value)

    handle = scheduler.find(name)
    assert handle is not None
    status = scheduler.status(handle)
    assert status.state == State.EXITED
    assert status.exit_code != 0
    assert "no-such-program" in status.message
    # A re-driven start adopts it and reports the same failure, without trying to start it again.
    with pytest.raises(SchedulerError, match="no-such-program"):
        scheduler.start(ContainerSpec(name=name, image=busybox_image, command=["/bin/no-such-program"]))


@pytest.mark.docker
def test_with_an_init_process_a_missing_command_exits_127_and_the_logs_say_why(
    scheduler, names, busybox_image, settings
):
    settings.GOFER_DOCKER_INIT = True
    started = scheduler.start(ContainerSpec(name=names(), image=busybox_image, command=["/bin/no-such-program"]))
    deadline = time.monotonic() + 20
    while scheduler.status(started.handle).state != State.EXITED and time.monotonic() < deadline:
        time.sleep(0.1)
    assert scheduler.status(started.handle).exit_code == 127
    text = " ".join(line.text for line in scheduler.logs(started.handle, None))
    assert "no-such-program" in text


@pytest.mark.docker
def test_an_unreachable_engine_raises_engine_unavailable(settings, monkeypatch, tmp_path, busybox_image):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker-here.sock")
    engine = DockerScheduler()
    with pytest.raises(EngineUnavailable) as caught:
        engine.start(ContainerSpec(name="never", image=busybox_image))
    assert caught.value.permanent is False
    with pytest.raises(EngineUnavailable):
        engine.status("0123456789ab")


@pytest.mark.docker
def test_find_and_status_of_unknown_containers(scheduler, names, busybox_image):
    assert scheduler.find(names()) is None
    assert scheduler.status("0" * 64).state == State.MISSING
    with pytest.raises(NoSuchContainer):
        list(scheduler.logs("0" * 64, None))


@pytest.mark.docker
def test_find_matches_the_exact_name_only(scheduler, names, busybox_image):
    started = scheduler.start(spec(names(), busybox_image, "true"))
    assert scheduler.find(started.handle[:12]) is None  # Docker itself would accept an id prefix as a name


@pytest.mark.docker
def test_status_reports_an_out_of_memory_kill(scheduler, names, busybox_image):
    # A shell variable of 64 MB in a container limited to 8 MiB.
    started = scheduler.start(
        spec(names(), busybox_image, 'x="$(head -c 64000000 /dev/zero | tr "\\0" a)"', memory_mib=8)
    )
    status = wait_for(scheduler, started.handle)
    assert status.exit_code != 0
    assert "out of memory" in status.message


# --- logs ----------------------------------------------------------------------------------------------------------


@pytest.mark.docker
def test_logs_tell_stdout_from_stderr_in_the_order_written(scheduler, names, busybox_image):
    script = "echo one; sleep 0.05; echo two >&2; sleep 0.05; echo three; sleep 0.05; echo 'four  spaced ' >&2"
    started = scheduler.start(spec(names(), busybox_image, script))
    wait_for(scheduler, started.handle)

    lines = list(scheduler.logs(started.handle, None))

    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", "one"),
        ("stderr", "two"),
        ("stdout", "three"),
        ("stderr", "four  spaced "),
    ]
    assert [line.time for line in lines] == sorted(line.time for line in lines)
    status = scheduler.status(started.handle)
    assert all(line.time.tzinfo is dt.UTC for line in lines)
    assert status.started_at - dt.timedelta(seconds=1) <= lines[0].time <= status.finished_at


@pytest.mark.docker
def test_logs_decode_invalid_utf8_with_replacement_characters(scheduler, names, busybox_image):
    started = scheduler.start(spec(names(), busybox_image, r"printf 'caf\303\251 \377 end\n'"))
    wait_for(scheduler, started.handle)
    assert texts(list(scheduler.logs(started.handle, None))) == ["café \ufffd end"]


@pytest.mark.docker
def test_resuming_from_every_cursor_returns_exactly_the_remaining_lines(scheduler, names, busybox_image):
    # Two writers per stream, as fast as the shell goes: Docker stamps the streams in separate goroutines, so the
    # log holds lines stamped slightly earlier than the line before them.
    script = (
        "(seq 1 125 | sed 's/^/err-a /' >&2) & (seq 1 125 | sed 's/^/err-b /' >&2) & "
        "(seq 1 125 | sed 's/^/out-a /') & seq 1 125 | sed 's/^/out-b /'; wait"
    )
    started = scheduler.start(spec(names(), busybox_image, script))
    wait_for(scheduler, started.handle)

    everything = list(scheduler.logs(started.handle, None))

    expected = {f"{stream}-{writer} {n}" for stream in ("out", "err") for writer in "ab" for n in range(1, 126)}
    assert len(everything) == 500
    assert set(texts(everything)) == expected
    for stream in ("out", "err"):  # each writer's own lines stay in order
        for writer in "ab":
            mine = [t for t in texts(everything) if t.startswith(f"{stream}-{writer} ")]
            assert mine == [f"{stream}-{writer} {n}" for n in range(1, 126)]

    def resume(index: int) -> None:
        rest = list(scheduler.logs(started.handle, everything[index].cursor))
        assert texts(rest) == texts(everything[index + 1 :]), f"resuming after line {index}"
        assert [r.cursor for r in rest] == [e.cursor for e in everything[index + 1 :]]

    # In threads: 500 reads go faster, and one scheduler serving several threads is part of the contract.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(resume, range(len(everything))))


@pytest.mark.docker
def test_resuming_while_the_container_still_writes_loses_and_repeats_nothing(scheduler, names, busybox_image):
    script = "for i in $(seq 1 40); do echo out-$i; echo err-$i >&2; usleep 20000; done"
    started = scheduler.start(spec(names(), busybox_image, script))
    collected: list[LogLine] = []
    cursor = None
    give_up = time.monotonic() + 20
    while time.monotonic() < give_up:
        batch = list(scheduler.logs(started.handle, cursor, follow_for=0.2))
        collected += batch
        cursor = batch[-1].cursor if batch else cursor
        if scheduler.status(started.handle).state == State.EXITED and not batch:
            break
    expected = [f"{stream}-{i}" for i in range(1, 41) for stream in ("out", "err")]
    assert sorted(texts(collected)) == sorted(expected)


@pytest.mark.docker
def test_long_lines_split_by_docker_come_back_whole(scheduler, names, busybox_image):
    # Docker cuts lines at 16 KiB into messages without a newline; 40,000 characters make three of them.
    script = "echo before; head -c 40000 /dev/zero | tr '\\0' x; echo; echo after"
    started = scheduler.start(spec(names(), busybox_image, script))
    wait_for(scheduler, started.handle)

    lines = list(scheduler.logs(started.handle, None))

    assert texts(lines) == ["before", "x" * 40000, "after"]
    assert texts(list(scheduler.logs(started.handle, lines[0].cursor))) == ["x" * 40000, "after"]
    assert texts(list(scheduler.logs(started.handle, lines[1].cursor))) == ["after"]


@pytest.mark.docker
def test_a_last_line_without_newline_is_returned_once_the_container_has_exited(scheduler, names, busybox_image):
    started = scheduler.start(spec(names(), busybox_image, "echo first; printf 'no newline'"))
    lines = list(scheduler.logs(started.handle, None, follow_for=10))
    # What the engine does: follow, then read once more after the exit (Docker may end a followed stream before it
    # sent the last frames, which a loaded machine shows). Together they hold every line, once.
    lines += list(scheduler.logs(started.handle, lines[-1].cursor if lines else None))
    assert texts(lines) == ["first", "no newline"]
    assert texts(list(scheduler.logs(started.handle, None))) == ["first", "no newline"]
    assert list(scheduler.logs(started.handle, lines[-1].cursor)) == []


@pytest.mark.docker
def test_follow_returns_in_time_for_a_silent_container(scheduler, names, busybox_image):
    started = scheduler.start(spec(names(), busybox_image, "echo hello; sleep 60"))
    wait_for(scheduler, started.handle, State.RUNNING)
    time.sleep(0.2)

    began = time.monotonic()
    lines = list(scheduler.logs(started.handle, None, follow_for=1.0))
    elapsed = time.monotonic() - began

    assert texts(lines) == ["hello"]
    assert 0.9 <= elapsed < 2.0
    # The connection the timer cut does not poison later calls from this thread.
    assert scheduler.status(started.handle).state == State.RUNNING
    began = time.monotonic()
    assert list(scheduler.logs(started.handle, lines[-1].cursor, follow_for=0.5)) == []
    assert time.monotonic() - began < 1.5


@pytest.mark.docker
def test_follow_delivers_lines_as_they_come_and_returns_when_the_container_exits(scheduler, names, busybox_image):
    started = scheduler.start(spec(names(), busybox_image, "echo early; sleep 1; echo late"))
    began = time.monotonic()
    arrivals = []
    for line in scheduler.logs(started.handle, None, follow_for=30):
        arrivals.append((line.text, time.monotonic() - began))
    elapsed = time.monotonic() - began

    assert [text for text, _ in arrivals] == ["early", "late"]
    assert arrivals[0][1] < 0.8  # delivered before the container went on
    assert elapsed < 5  # not the 30 s allowed: the container exited
    assert scheduler.status(started.handle).state == State.EXITED


@pytest.mark.docker
def test_without_follow_logs_return_what_exists_now(scheduler, names, busybox_image):
    started = scheduler.start(spec(names(), busybox_image, "echo now; sleep 60"))
    wait_for(scheduler, started.handle, State.RUNNING)
    time.sleep(0.2)
    began = time.monotonic()
    assert texts(list(scheduler.logs(started.handle, None))) == ["now"]
    assert time.monotonic() - began < 1


@pytest.mark.docker
def test_docker_since_is_inclusive_to_the_nanosecond(scheduler, names, busybox_image, docker_client):
    # The cursor design leans on this engine behaviour (and asks 1 ns earlier anyway, in case it changes).
    started = scheduler.start(spec(names(), busybox_image, "echo a; usleep 10000; echo b; usleep 10000; echo c"))
    wait_for(scheduler, started.handle)
    stamps = [
        line.split(" ", 1)[0] for line in docker_client.api.logs(started.handle, timestamps=True).decode().splitlines()
    ]
    b_at = parse_rfc3339_ns(stamps[1])
    api = docker_client.api

    def since(ns: int) -> list[bytes]:
        params = {"stdout": 1, "stderr": 1, "timestamps": 1, "since": "{}.{:09d}".format(*divmod(ns, 1_000_000_000))}
        response = api._get(api._url("/containers/{0}/logs", started.handle), params=params, stream=True)
        return [payload.split(b" ", 1)[1] for _, payload in docker_scheduler._frames(response.raw)]

    assert since(b_at) == [b"b\n", b"c\n"]
    assert since(b_at + 1) == [b"c\n"]


# --- stopping, removing, pruning, attaching ----------------------------------------------------------------------


@pytest.mark.docker
def test_stop_sends_sigterm_that_a_trap_in_the_container_sees(scheduler, names, busybox_image):
    script = "trap 'echo got-sigterm; exit 3' TERM; echo ready; while true; do usleep 50000; done"
    started = scheduler.start(spec(names(), busybox_image, script))
    assert first_line(scheduler, started.handle) == "ready"

    began = time.monotonic()
    scheduler.stop(started.handle)
    assert time.monotonic() - began < 1  # returns at once

    status = wait_for(scheduler, started.handle, timeout=5)
    assert status.exit_code == 3
    assert texts(list(scheduler.logs(started.handle, None))) == ["ready", "got-sigterm"]
    scheduler.stop(started.handle)  # already exited: nothing to do
    scheduler.kill(started.handle)


@pytest.mark.docker
def test_kill_stops_a_container_that_ignores_sigterm(scheduler, names, busybox_image):
    started = scheduler.start(
        spec(names(), busybox_image, "trap '' TERM; echo ready; while true; do usleep 50000; done")
    )
    assert first_line(scheduler, started.handle) == "ready"
    scheduler.stop(started.handle)
    time.sleep(0.5)
    assert scheduler.status(started.handle).state == State.RUNNING

    scheduler.kill(started.handle)

    assert wait_for(scheduler, started.handle, timeout=5).exit_code == 137
    scheduler.kill(started.handle)  # already exited: nothing to do


@pytest.mark.docker
def test_remove_deletes_the_container_and_a_missing_one_is_fine(scheduler, names, busybox_image):
    name = names()
    started = scheduler.start(spec(name, busybox_image, "sleep 60"))
    scheduler.remove(started.handle)  # even while running
    assert scheduler.status(started.handle).state == State.MISSING
    assert scheduler.find(name) is None
    scheduler.remove(started.handle)
    scheduler.stop(started.handle)
    scheduler.kill(started.handle)


@pytest.mark.docker
def test_prune_removes_only_old_finished_gofer_containers_that_is_done_accepts(
    scheduler, names, busybox_image, docker_client
):
    tag = uuid.uuid4().hex[:8]

    def launch(key: str, script: str) -> str:
        return scheduler.start(
            spec(names(key), busybox_image, script, labels={LABEL_TASK_EXECUTION: f"{tag}-{key}"})
        ).handle

    done_and_exited = launch("done", "true")
    not_done = launch("busy", "true")
    running = launch("running", "sleep 60")
    foreign = docker_client.containers.run(
        busybox_image,
        ["true"],
        name=names("foreign"),
        labels={LABEL_TASK_EXECUTION: f"{tag}-foreign"},
        network_mode="none",
        detach=True,
    )
    for handle in (done_and_exited, not_done):
        wait_for(scheduler, handle)
    foreign.wait()
    asked = []

    def is_done(execution: str) -> bool:
        asked.append(execution)
        return execution in {f"{tag}-done", f"{tag}-running", f"{tag}-foreign"}

    assert scheduler.prune(dt.timedelta(hours=1), is_done) == 0  # too recent
    assert scheduler.prune(dt.timedelta(0), is_done) == 1

    assert scheduler.status(done_and_exited).state == State.MISSING
    assert scheduler.status(not_done).state == State.EXITED
    assert scheduler.status(running).state == State.RUNNING
    foreign.reload()
    assert foreign.status == "exited"
    assert f"{tag}-busy" in asked
    assert f"{tag}-foreign" not in asked


@pytest.mark.docker
def test_exec_runs_an_interactive_command_in_the_running_container(scheduler, names, busybox_image):
    started = scheduler.start(spec(names(), busybox_image, "sleep 60"))
    wait_for(scheduler, started.handle, State.RUNNING)
    session = scheduler.exec(started.handle, ["sh"])
    try:
        session.send(b"echo hi-$((40 + 2))\n")
        output = b""
        give_up = time.monotonic() + 5
        while b"hi-42" not in output and time.monotonic() < give_up:
            output += session.recv(0.2) or b""
        assert b"hi-42" in output
        # The prompt follows; once the shell waits for input, recv times out with b"" rather than ending.
        for _ in range(10):
            chunk = session.recv(0.3)
            assert chunk is not None
            if chunk == b"":
                break
        else:
            pytest.fail("the shell never went quiet")
        session.send(b"exit\n")
        while session.recv(2) is not None:
            assert time.monotonic() < give_up + 5
        assert session.recv(0.1) is None
    finally:
        session.close()


@pytest.mark.docker
def test_exec_into_an_exited_container_is_refused(scheduler, names, busybox_image):
    started = scheduler.start(spec(names(), busybox_image, "true"))
    wait_for(scheduler, started.handle)
    with pytest.raises(SchedulerError) as caught:
        scheduler.exec(started.handle, ["sh"])
    assert caught.value.permanent is True
    with pytest.raises(NoSuchContainer):
        scheduler.exec("0" * 64, ["sh"])


@pytest.mark.docker
def test_one_instance_serves_several_threads_at_once(scheduler, names, busybox_image):
    results: dict[int, list[str]] = {}
    errors = []

    def work(n: int) -> None:
        try:
            started = scheduler.start(spec(names(f"t{n}"), busybox_image, f"for i in 1 2 3; do echo {n}-$i; done"))
            results[n] = texts(list(scheduler.logs(started.handle, None, follow_for=10)))
        except Exception as exc:  # reported below: any failure is a bug
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == {n: [f"{n}-1", f"{n}-2", f"{n}-3"] for n in range(6)}


# --- the cursor, without Docker ---------------------------------------------------------------------------------


def replay(log: list[tuple[int, str]], cursor: dict | None) -> list[tuple[str, dict]]:
    """What logs() does with Docker's answer: Docker returns the lines stamped at or after ``since`` (asked 1 ns
    early), in log order; the resume point drops the ones already returned."""
    point = _ResumePoint(cursor)
    since = None if point.floor is None else point.floor - 1
    out = []
    for ts, text in log:
        if since is not None and ts < since:
            continue
        if point.is_new(ts):
            out.append((text, point.advance(ts)))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_cursors_survive_out_of_order_and_repeated_timestamps(seed):
    rng = random.Random(seed)
    base = 1_700_000_000 * 1_000_000_000
    log, clock = [], base
    for n in range(300):
        clock += rng.choice([0, 0, 1, 1000, 50_000])  # many lines share a timestamp
        # Like Docker's two stream copiers: now and then a line stamped up to 8 ms before the previous one.
        stamp = clock - rng.randrange(8_000_000) if rng.random() < 0.1 else clock
        log.append((stamp, f"line {n}"))
    assert any(b[0] < a[0] for a, b in zip(log, log[1:], strict=False))

    everything = replay(log, None)
    assert [text for text, _ in everything] == [text for _, text in log]
    for index, (_, cursor) in enumerate(everything):
        rest = replay(log, cursor)
        assert [text for text, _ in rest] == [text for _, text in log[index + 1 :]], f"after line {index}"


def test_a_cursor_is_json_with_a_nanosecond_rfc3339_time():
    stamp = "2024-05-01T10:00:00.123456789Z"
    ns = parse_rfc3339_ns(stamp)
    assert format_rfc3339_ns(ns) == stamp
    assert parse_rfc3339_ns("2024-05-01T12:00:00.123456789+02:00") == ns
    assert parse_rfc3339_ns("2024-05-01T10:00:00Z") == ns - 123456789
    point = _ResumePoint(None)
    assert point.advance(ns) == {"since": "2024-05-01T09:59:59.123456789Z", "skip": 1}
    for bad in ({}, {"since": "yesterday"}, {"since": stamp, "skip": -1}, {"since": stamp, "skip": "x"}):
        with pytest.raises(SchedulerError):
            _ResumePoint(bad)
