"""The Nomad scheduler against a fake Nomad agent that checks every request against Nomad's documented shapes.

No Nomad runs here (there is no Nomad binary on our machines): tests/support/fake_nomad.py answers the HTTP API and
refuses what Nomad would refuse, and each test says which requests it expects. What this cannot show (real
allocation timing, the docker driver inside Nomad, ACL policies) is listed in docs/schedulers-nomad.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
import requests

from runs.schedulers import SCHEDULERS
from runs.schedulers import nomad as nomad_module
from runs.schedulers.base import (
    LABEL_MANAGED,
    LABEL_TASK_EXECUTION,
    ContainerSpec,
    EngineUnavailable,
    NoSuchContainer,
    RegistryAuth,
    SchedulerError,
    State,
)
from runs.schedulers.nomad import NomadScheduler, cpu_mhz
from tests.support.fake_nomad import FakeNomad, event
from tests.support.processes import free_port

TOKEN = "9f1c-acl-token"
NAME = "gofer-team-a-build-7-compile-1f2e"
SIGNAL_PATH = "/v1/client/allocation/{}/signal"


@pytest.fixture
def fake():
    with FakeNomad(acl_token=TOKEN) as server:
        yield server


@pytest.fixture
def scheduler(fake, settings, monkeypatch):
    # python-nomad falls back on these when Gofer's settings are empty; keep the developer's shell out of the test.
    for variable in ("NOMAD_TOKEN", "NOMAD_REGION", "NOMAD_NAMESPACE", "NOMAD_ADDR", "NOMAD_CLIENT_CERT"):
        monkeypatch.delenv(variable, raising=False)
    settings.GOFER_NOMAD_ADDR = fake.address
    settings.GOFER_NOMAD_TOKEN = TOKEN
    settings.GOFER_NOMAD_NAMESPACE = "default"
    settings.GOFER_NOMAD_DATACENTERS = ["dc1", "dc2"]
    settings.GOFER_NOMAD_REGION = ""
    instance = NomadScheduler(poll_interval=0.02)
    yield instance
    instance.close()


def spec(**overrides: Any) -> ContainerSpec:
    values: dict[str, Any] = {"name": NAME, "image": "busybox:1.36"}
    values.update(overrides)
    return ContainerSpec(**values)


def lines_of(scheduler: NomadScheduler, cursor: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
    return list(scheduler.logs(NAME, cursor, **kwargs))


def texts(lines: list[Any]) -> list[tuple[str, str]]:
    return [(line.stream, line.text) for line in lines]


def later(delay: float, action: Any) -> threading.Timer:
    timer = threading.Timer(delay, action)
    timer.start()
    return timer


# --- the job ------------------------------------------------------------------------------------------------------


def test_start_registers_exactly_the_documented_batch_job_for_a_spec(scheduler, fake):
    full = spec(
        env={"GOFER_TASK_ID": "compile", "MODE": "fast"},
        entrypoint=["/bin/sh", "-c"],
        command=["make build"],
        registry_auth=RegistryAuth("robot", "hunter2"),
        always_pull=True,
        labels={LABEL_MANAGED: "true", LABEL_TASK_EXECUTION: "42"},
        cpu=Decimal("1.5"),
        memory_mib=2048,
    )

    started = scheduler.start(full)

    assert started.handle == NAME and started.adopted is False and started.image_digest == ""
    (request,) = [r for r in fake.requests if r.path == "/v1/jobs"]
    assert request.method == "POST"
    assert request.query == {"namespace": ["default"]}
    assert request.json == {
        "EnforceIndex": True,
        "JobModifyIndex": 0,
        "Job": {
            "ID": NAME,
            "Name": NAME,
            "Type": "batch",
            "Namespace": "default",
            "Datacenters": ["dc1", "dc2"],
            "Meta": {LABEL_MANAGED: "true", LABEL_TASK_EXECUTION: "42"},
            "TaskGroups": [
                {
                    "Name": "gofer",
                    "Count": 1,
                    "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
                    "ReschedulePolicy": {"Attempts": 0, "Unlimited": False},
                    "Tasks": [
                        {
                            "Name": "task",
                            "Driver": "docker",
                            "Config": {
                                "image": "busybox:1.36",
                                "force_pull": True,
                                "entrypoint": ["/bin/sh", "-c"],
                                "args": ["make build"],
                                "auth": [{"username": "robot", "password": "hunter2"}],
                                "labels": [{LABEL_MANAGED: "true", LABEL_TASK_EXECUTION: "42"}],
                            },
                            "Env": {"GOFER_TASK_ID": "compile", "MODE": "fast"},
                            "Resources": {"CPU": 1500, "MemoryMB": 2048},
                            "KillSignal": "SIGKILL",
                        }
                    ],
                }
            ],
        },
    }


def test_a_minimal_spec_gets_default_resources_and_no_optional_docker_keys(scheduler, fake):
    scheduler.start(spec())

    task = fake.registrations()[0]["Job"]["TaskGroups"][0]["Tasks"][0]
    assert task["Config"] == {"image": "busybox:1.36", "force_pull": False}
    assert task["Env"] == {}
    assert task["Resources"] == {"CPU": 100, "MemoryMB": 1024}


def test_cpu_cores_become_mhz_with_the_configured_mhz_per_core_rounded_up(scheduler, fake, settings):
    settings.GOFER_NOMAD_MHZ_PER_CORE = 2400
    settings.GOFER_NOMAD_DEFAULT_MEMORY_MIB = 512
    configured = NomadScheduler()

    configured.start(spec(cpu=Decimal("0.25")))

    resources = fake.registrations()[0]["Job"]["TaskGroups"][0]["Tasks"][0]["Resources"]
    assert resources == {"CPU": 600, "MemoryMB": 512}
    assert cpu_mhz(Decimal("0.0001"), 1000) == 1  # never under Nomad's minimum of 1 MHz
    assert cpu_mhz(Decimal("2.0004"), 1000) == 2001
    assert cpu_mhz(None, 1000) == 100


def test_the_region_goes_into_the_job_and_onto_every_request(scheduler, fake, settings):
    settings.GOFER_NOMAD_REGION = "eu-west"
    regional = NomadScheduler()

    regional.start(spec())
    regional.status(NAME)

    assert fake.registrations()[0]["Job"]["Region"] == "eu-west"
    assert fake.requests and all(r.param("region") == "eu-west" for r in fake.requests)


def test_starting_twice_registers_once_and_adopts_the_existing_job(scheduler, fake):
    first = scheduler.start(spec())
    second = scheduler.start(spec())

    assert (first.adopted, second.adopted) == (False, True)
    assert second.handle == NAME
    assert len(fake.registrations()) == 1


def test_a_registration_race_lost_to_another_worker_adopts_the_winners_job(scheduler, fake):
    scheduler.start(spec())  # the other worker
    fake.fail_next("GET", f"/v1/job/{NAME}", 404, "job not found")  # our look-up ran before theirs landed

    started = scheduler.start(spec())

    assert started.adopted is True
    attempts = [r for r in fake.requests if r.path == "/v1/jobs"]
    assert [r.status for r in attempts] == [200, 500]  # EnforceIndex refused the second registration
    assert len(fake.registrations()) == 1


def test_a_job_nomad_refuses_is_a_permanent_error_carrying_nomads_message(scheduler, fake):
    with pytest.raises(SchedulerError) as caught:
        scheduler.start(spec(memory_mib=5))

    assert caught.value.permanent is True
    assert "minimum MemoryMB value is 10; got 5" in str(caught.value)
    assert fake.jobs == {}


def test_a_server_error_on_registration_is_worth_retrying(scheduler, fake):
    fake.fail_next("POST", "/v1/jobs", 500, "rpc error: No cluster leader")

    with pytest.raises(SchedulerError) as caught:
        scheduler.start(spec())

    assert caught.value.permanent is False
    assert "No cluster leader" in str(caught.value)


def test_find_returns_the_job_id_only_when_nomad_has_the_job(scheduler, fake):
    assert scheduler.find(NAME) is None
    scheduler.start(spec())
    assert scheduler.find(NAME) == NAME
    assert fake.requests_to("GET", f"/v1/job/{NAME}")


def test_the_nomad_scheduler_is_the_one_registered_for_gofer_scheduler_nomad():
    assert SCHEDULERS["nomad"] == "runs.schedulers.nomad.NomadScheduler"


# --- status -------------------------------------------------------------------------------------------------------


def test_status_of_an_unknown_job_is_missing(scheduler):
    assert scheduler.status(NAME).state == State.MISSING


def test_a_job_without_an_allocation_is_pending(scheduler, fake):
    scheduler.start(spec())

    status = scheduler.status(NAME)

    assert (status.state, status.message) == (State.PENDING, "")
    assert fake.requests_to("GET", f"/v1/job/{NAME}/allocations")
    assert fake.requests_to("GET", f"/v1/job/{NAME}/evaluations")


def test_a_placement_failure_is_explained_by_the_newest_evaluation(scheduler, fake):
    scheduler.start(spec(memory_mib=64000))
    fake.add_evaluation(
        NAME,
        FailedTGAllocs={
            "gofer": {
                "NodesEvaluated": 3,
                "NodesFiltered": 1,
                "NodesAvailable": {"dc1": 3},
                "ConstraintFiltered": {"${attr.kernel.name} = linux": 1},
                "DimensionExhausted": {"memory": 2},
            }
        },
        BlockedEval="b1",
    )

    status = scheduler.status(NAME)

    assert status.state == State.PENDING
    assert status.message == (
        "Nomad cannot place the task yet: constraint '${attr.kernel.name} = linux' filtered 1 node(s); "
        "memory exhausted on 2 node(s)"
    )


def test_a_datacenter_without_ready_nodes_is_named_in_the_message(scheduler, fake):
    scheduler.start(spec())
    fake.add_evaluation(NAME, FailedTGAllocs={"gofer": {"NodesEvaluated": 0, "NodesAvailable": {"dc1": 0}}})

    assert "no ready client node in datacenter(s) dc1" in scheduler.status(NAME).message


def test_a_pending_allocation_reports_what_the_client_is_doing(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(
        NAME,
        client_status="pending",
        events=[event("Driver", DriverMessage="Downloading image", DisplayMessage="Downloading image")],
    )

    status = scheduler.status(NAME)

    assert (status.state, status.message, status.started_at) == (State.PENDING, "Downloading image", None)


def test_a_running_task_reports_nomads_start_time(scheduler, fake):
    started = dt.datetime(2025, 3, 1, 12, 0, 1, 250000, tzinfo=dt.UTC)
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="running", started_at=started)

    status = scheduler.status(NAME)

    assert (status.state, status.started_at, status.finished_at, status.exit_code) == (
        State.RUNNING,
        started,
        None,
        None,
    )


@pytest.mark.parametrize(("client_status", "exit_code"), [("complete", 0), ("failed", 3)])
def test_a_finished_task_reports_its_exit_code_and_nomads_times(scheduler, fake, client_status, exit_code):
    started = dt.datetime(2025, 3, 1, 12, 0, 1, 250000, tzinfo=dt.UTC)
    finished = dt.datetime(2025, 3, 1, 12, 4, 2, 500001, tzinfo=dt.UTC)
    scheduler.start(spec())
    fake.set_allocation(
        NAME, client_status=client_status, exit_code=exit_code, started_at=started, finished_at=finished
    )

    status = scheduler.status(NAME)

    assert (status.state, status.exit_code, status.started_at, status.finished_at, status.message) == (
        State.EXITED,
        exit_code,
        started,
        finished,
        "",
    )


def test_an_image_that_cannot_be_pulled_ends_the_task_with_the_drivers_message(scheduler, fake):
    scheduler.start(spec(image="registry.example/nope:1"))
    pull_error = "Failed to pull `registry.example/nope:1`: Error response from daemon: manifest unknown"
    fake.set_allocation(
        NAME,
        client_status="failed",
        events=[
            event("Driver Failure", FailsTask=True, DriverError=pull_error, DisplayMessage=pull_error),
            event("Not Restarting", DisplayMessage="Error was unrecoverable"),
        ],
    )

    status = scheduler.status(NAME)

    assert (status.state, status.exit_code, status.started_at, status.message) == (
        State.EXITED,
        None,
        None,
        pull_error,
    )


def test_an_oom_kill_is_named_in_the_message(scheduler, fake):
    scheduler.start(spec(memory_mib=64))
    fake.set_allocation(
        NAME,
        client_status="failed",
        started_at=dt.datetime.now(dt.UTC),
        events=[event("Terminated", ExitCode=137, Details={"exit_code": "137", "oom_killed": "true"})],
    )

    status = scheduler.status(NAME)

    assert (status.state, status.exit_code) == (State.EXITED, 137)
    assert status.message.startswith("OOM killed")


def test_a_lost_allocation_has_ended_without_an_exit_code(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="running")
    fake.set_allocation(NAME, client_status="lost", client_description="alloc is lost since its node is down")

    status = scheduler.status(NAME)

    assert (status.state, status.exit_code) == (State.EXITED, None)
    assert status.message == "Nomad lost the allocation: alloc is lost since its node is down"


def test_an_allocation_on_a_disconnected_client_is_unknown(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="unknown", task_state="running")

    assert scheduler.status(NAME).state == State.UNKNOWN


def test_the_newest_allocation_decides_the_status(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="failed", exit_code=1)
    fake.set_allocation(NAME, client_status="running", new=True)

    assert scheduler.status(NAME).state == State.RUNNING


def test_a_job_stopped_before_placement_has_exited(scheduler, fake):
    scheduler.start(spec())
    scheduler.kill(NAME)

    status = scheduler.status(NAME)

    assert (status.state, status.exit_code) == (State.EXITED, None)
    assert "stopped before it was placed" in status.message


# --- logs ---------------------------------------------------------------------------------------------------------


def test_logs_read_both_streams_from_the_start_with_documented_parameters(scheduler, fake):
    scheduler.start(spec())
    alloc = fake.set_allocation(NAME, client_status="running", stdout=b"one\ntwo\n", stderr=b"warn\n")
    fake.finish(NAME)

    lines = lines_of(scheduler)

    assert texts(lines) == [("stdout", "one"), ("stdout", "two"), ("stderr", "warn")]
    assert [line.cursor for line in lines] == [
        {"alloc": alloc, "stdout": 4, "stderr": 0},
        {"alloc": alloc, "stdout": 8, "stderr": 0},
        {"alloc": alloc, "stdout": 8, "stderr": 5},
    ]
    reads = fake.requests_to("GET", f"/v1/client/fs/logs/{alloc}")
    assert [r.query for r in reads] == [
        {
            "task": ["task"],
            "type": [stream],
            "origin": ["start"],
            "offset": ["0"],
            "plain": ["true"],
            "follow": ["false"],
            "namespace": ["default"],
        }
        for stream in ("stdout", "stderr")
    ]


def test_lines_are_stamped_with_the_time_they_were_read(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="complete", exit_code=0, stdout=b"hello\n")
    before = dt.datetime.now(dt.UTC)

    (line,) = lines_of(scheduler)

    assert before <= line.time <= dt.datetime.now(dt.UTC)


def test_a_partial_last_line_waits_until_its_newline_arrives(scheduler, fake):
    scheduler.start(spec())
    alloc = fake.set_allocation(NAME, client_status="running", stdout=b"one\ntw")

    first = lines_of(scheduler)
    fake.append_log(alloc, "stdout", b"o\nthr")
    second = lines_of(scheduler, first[-1].cursor)

    assert texts(first) == [("stdout", "one")]
    assert texts(second) == [("stdout", "two")]
    assert second[-1].cursor["stdout"] == len(b"one\ntwo\n")


def test_a_last_line_without_newline_is_returned_once_the_task_is_dead(scheduler, fake):
    scheduler.start(spec())
    alloc = fake.set_allocation(NAME, client_status="running", stdout=b"done\nno newline")
    assert texts(lines_of(scheduler)) == [("stdout", "done")]
    fake.finish(NAME)

    (last,) = lines_of(scheduler, {"alloc": alloc, "stdout": 5, "stderr": 0})

    assert (last.text, last.cursor["stdout"]) == ("no newline", len(b"done\nno newline"))
    assert lines_of(scheduler, last.cursor) == []


def test_resuming_from_any_stored_cursor_never_repeats_or_loses_a_line(scheduler, fake, monkeypatch):
    # Small reads so that a line often straddles two requests; stop consuming at odd points, as a worker crash would.
    monkeypatch.setattr(nomad_module, "READ_CHUNK_BYTES", 37)
    scheduler.start(spec())
    alloc = fake.set_allocation(NAME, client_status="running")
    expected: dict[str, list[str]] = {"stdout": [], "stderr": []}
    stored: list[Any] = []
    cursor = None
    for round_ in range(40):
        for stream in ("stdout", "stderr"):
            batch = [f"{stream} line {round_}-{i} " + "x" * ((round_ * 7 + i) % 23) for i in range(round_ % 4 + 1)]
            expected[stream].extend(batch)
            payload = "".join(f"{text}\n" for text in batch).encode()
            cut = len(payload) // 2  # deliver in two pieces: the first ends mid-line
            fake.append_log(alloc, stream, payload[:cut])
            fake.append_log(alloc, stream, payload[cut:])
        keep = round_ % 5 + 1
        for count, line in enumerate(scheduler.logs(NAME, cursor), start=1):
            stored.append(line)
            cursor = line.cursor
            if count == keep:
                break  # the worker died here; the next one resumes from the last stored cursor
    fake.finish(NAME)
    while True:
        more = lines_of(scheduler, cursor)
        if not more:
            break
        stored.extend(more)
        cursor = more[-1].cursor

    got = {s: [line.text for line in stored if line.stream == s] for s in ("stdout", "stderr")}
    assert got == expected
    total = {s: sum(len(t) + 1 for t in expected[s]) for s in ("stdout", "stderr")}
    assert cursor == {"alloc": alloc, **total}


def test_a_line_longer_than_the_limit_comes_in_pieces(scheduler, fake, monkeypatch):
    monkeypatch.setattr(nomad_module, "MAX_LINE_BYTES", 10)
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="running", stdout=b"a" * 25)

    lines = lines_of(scheduler)

    assert [line.text for line in lines] == ["a" * 10, "a" * 10]
    assert lines[-1].cursor["stdout"] == 20


def test_bytes_that_are_not_utf8_are_replaced_not_fatal(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="complete", exit_code=0, stdout=b"caf\xe9\n")

    (line,) = lines_of(scheduler)

    assert (line.text, line.cursor["stdout"]) == ("caf\ufffd", 5)


def test_a_task_that_never_started_has_no_logs(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="failed", events=[event("Driver Failure", FailsTask=True)])

    assert lines_of(scheduler) == []
    assert {r.status for r in fake.requests if r.path.startswith("/v1/client/fs/logs/")} == {404}


def test_logs_of_a_job_nomad_does_not_have_raise_no_such_container(scheduler):
    with pytest.raises(NoSuchContainer):
        lines_of(scheduler)


def test_logs_of_a_job_not_placed_yet_are_empty_without_waiting(scheduler, fake):
    scheduler.start(spec())

    began = time.monotonic()
    assert lines_of(scheduler) == []
    assert time.monotonic() - began < 0.5


def test_logs_resumed_for_an_allocation_nomad_has_collected_raise_no_such_container(scheduler, fake):
    scheduler.start(spec())

    with pytest.raises(NoSuchContainer):
        lines_of(scheduler, {"alloc": "0b8c9f6e-gone", "stdout": 10, "stderr": 0})


@pytest.mark.parametrize(
    "cursor",
    [{"stdout": 3, "stderr": 0}, {"alloc": "a1", "stdout": "3", "stderr": 0}, {"alloc": "a1", "stdout": -1}],
)
def test_a_cursor_this_scheduler_did_not_make_is_a_permanent_error(scheduler, fake, cursor):
    scheduler.start(spec())

    with pytest.raises(SchedulerError) as caught:
        lines_of(scheduler, cursor)

    assert caught.value.permanent is True
    assert "invalid Nomad log cursor" in str(caught.value)


def test_without_follow_for_logs_return_at_once_while_the_task_runs(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="running", stdout=b"a\n")

    began = time.monotonic()
    lines = lines_of(scheduler)

    assert texts(lines) == [("stdout", "a")]
    assert time.monotonic() - began < 0.5


def test_follow_for_waits_for_new_lines_and_returns_once_the_task_is_dead_and_drained(scheduler, fake):
    scheduler.start(spec())
    alloc = fake.set_allocation(NAME, client_status="running")
    timers = [
        later(0.2, lambda: fake.append_log(alloc, "stdout", b"late\n")),
        later(0.4, lambda: (fake.append_log(alloc, "stderr", b"bye"), fake.finish(NAME))),
    ]

    began = time.monotonic()
    lines = lines_of(scheduler, follow_for=10)
    elapsed = time.monotonic() - began

    for timer in timers:
        timer.join()
    assert texts(lines) == [("stdout", "late"), ("stderr", "bye")]
    assert 0.4 <= elapsed < 3


def test_follow_for_gives_up_after_its_time_while_the_task_keeps_running(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="running")

    began = time.monotonic()
    lines = lines_of(scheduler, follow_for=0.6)
    elapsed = time.monotonic() - began

    assert lines == []
    assert 0.6 <= elapsed < 1.5


def test_follow_for_waits_for_the_allocation_to_be_placed(scheduler, fake):
    scheduler.start(spec())
    timer = later(0.2, lambda: fake.set_allocation(NAME, client_status="complete", exit_code=0, stdout=b"hi\n"))

    lines = lines_of(scheduler, follow_for=5)

    timer.join()
    assert texts(lines) == [("stdout", "hi")]


# --- stop, kill, remove -------------------------------------------------------------------------------------------


def test_stop_sends_sigterm_to_the_running_task_through_the_signal_endpoint(scheduler, fake):
    scheduler.start(spec())
    alloc = fake.set_allocation(NAME, client_status="running")

    scheduler.stop(NAME)

    (request,) = fake.requests_to("POST", SIGNAL_PATH.format(alloc))
    assert request.json == {"Signal": "SIGTERM", "Task": "task"}
    assert request.param("namespace") == "default"
    assert not [r for r in fake.requests if r.method == "DELETE"]


def test_stop_of_a_finished_task_sends_nothing(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="complete", exit_code=0)

    scheduler.stop(NAME)

    assert not [r for r in fake.requests if r.method in ("POST", "DELETE") and r.path != "/v1/jobs"]


def test_stop_of_a_task_not_started_yet_deregisters_its_job(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="pending")

    scheduler.stop(NAME)

    (request,) = fake.requests_to("DELETE", f"/v1/job/{NAME}")
    assert request.param("purge") is None
    assert not [r for r in fake.requests if r.path.endswith("/signal")]


def test_stop_of_a_task_that_ends_just_before_the_signal_is_not_an_error(scheduler, fake):
    scheduler.start(spec())
    alloc = fake.set_allocation(NAME, client_status="running")
    # It exits between the scheduler's read and its signal: Nomad answers 500 "Task not running".
    fake.fail_next("POST", SIGNAL_PATH.format(alloc), 500, "Task not running", then=lambda: fake.finish(NAME))

    scheduler.stop(NAME)

    assert [r.status for r in fake.requests if r.path == SIGNAL_PATH.format(alloc)] == [500]
    assert not fake.requests_to("DELETE", f"/v1/job/{NAME}")


def test_a_signal_that_fails_while_the_task_still_runs_is_a_retryable_error(scheduler, fake):
    scheduler.start(spec())
    alloc = fake.set_allocation(NAME, client_status="running")
    fake.fail_next("POST", SIGNAL_PATH.format(alloc), 500, "rpc error: node unreachable")

    with pytest.raises(SchedulerError) as caught:
        scheduler.stop(NAME)

    assert caught.value.permanent is False
    assert "node unreachable" in str(caught.value)


def test_stop_and_kill_of_a_job_nomad_does_not_have_do_nothing(scheduler, fake):
    scheduler.stop(NAME)
    scheduler.kill(NAME)

    assert not [r for r in fake.requests if r.path.endswith("/signal")]
    assert [r.status for r in fake.requests if r.method == "DELETE"] == [200]  # Nomad: deregistering nothing is fine


def test_kill_deregisters_the_job_without_purging_so_its_end_stays_readable(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="running")

    scheduler.kill(NAME)

    (request,) = fake.requests_to("DELETE", f"/v1/job/{NAME}")
    assert request.query == {"namespace": ["default"]}
    status = scheduler.status(NAME)
    assert (status.state, status.exit_code) == (State.EXITED, 137)
    assert scheduler.find(NAME) == NAME


def test_remove_deregisters_with_purge_and_tolerates_a_missing_job(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="complete", exit_code=0)

    scheduler.remove(NAME)
    scheduler.remove(NAME)

    requests_ = fake.requests_to("DELETE", f"/v1/job/{NAME}")
    assert [r.query for r in requests_] == [{"purge": ["true"], "namespace": ["default"]}] * 2
    assert scheduler.find(NAME) is None
    assert scheduler.status(NAME).state == State.MISSING


# --- exec ---------------------------------------------------------------------------------------------------------


def test_exec_opens_nomads_exec_websocket_and_relays_stdin_and_output(scheduler, fake):
    scheduler.start(spec())
    alloc = fake.set_allocation(NAME, client_status="running")

    session = scheduler.exec(NAME, ["/bin/sh", "-c", "cat"])
    try:
        session.send(b"hello\n")
        echoed = session.recv(5)
        session.send(b"exit\n")
        assert session.recv(5) == b"exit\n"
        ended = session.recv(5)
    finally:
        session.close()

    assert echoed == b"hello\n"
    assert ended is None
    assert session.exit_code == 0
    (request,) = fake.requests_to("GET", f"/v1/client/allocation/{alloc}/exec")
    assert request.query == {
        "task": ["task"],
        "command": ['["/bin/sh", "-c", "cat"]'],
        "tty": ["false"],
        "namespace": ["default"],
    }
    assert request.header("X-Nomad-Token") == TOKEN
    assert fake.exec_frames[0] == {"stdin": {"data": base64.b64encode(b"hello\n").decode()}}


def test_recv_returns_nothing_new_as_empty_bytes_within_its_timeout(scheduler, fake):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status="running")
    session = scheduler.exec(NAME, ["sh"])
    try:
        began = time.monotonic()
        assert session.recv(0.2) == b""
        assert time.monotonic() - began < 1
    finally:
        session.close()
    assert fake.exec_frames[-1] == {"stdin": {"close": True}}


def test_an_exec_nomad_refuses_after_the_upgrade_raises_with_its_message(scheduler, fake):
    scheduler.start(spec())
    alloc = fake.set_allocation(NAME, client_status="running")
    fake.fail_next("GET", f"/v1/client/allocation/{alloc}/exec", 403, "Permission denied")

    session = scheduler.exec(NAME, ["sh"])
    try:
        with pytest.raises(SchedulerError, match="Permission denied"):
            session.recv(5)
        assert session.recv(1) is None
    finally:
        session.close()


@pytest.mark.parametrize(("client_status", "permanent"), [("complete", True), ("lost", True), ("pending", False)])
def test_exec_into_a_task_that_is_not_running_is_refused(scheduler, fake, client_status, permanent):
    scheduler.start(spec())
    fake.set_allocation(NAME, client_status=client_status)

    with pytest.raises(SchedulerError) as caught:
        scheduler.exec(NAME, ["sh"])

    assert caught.value.permanent is permanent
    assert not [r for r in fake.requests if r.path.endswith("/exec")]


# --- token, connection --------------------------------------------------------------------------------------------


def test_every_request_carries_the_acl_token_from_settings(scheduler, fake):
    scheduler.start(spec())
    alloc = fake.set_allocation(NAME, client_status="running", stdout=b"x\n")
    scheduler.status(NAME)
    lines_of(scheduler)
    scheduler.stop(NAME)
    scheduler.kill(NAME)
    scheduler.remove(NAME)

    paths = {r.path for r in fake.requests}
    assert {"/v1/jobs", f"/v1/client/fs/logs/{alloc}", SIGNAL_PATH.format(alloc)} <= paths
    assert {r.header("X-Nomad-Token") for r in fake.requests} == {TOKEN}


def test_a_token_nomad_rejects_is_a_permanent_error(scheduler, fake, settings):
    settings.GOFER_NOMAD_TOKEN = "wrong-token"

    with pytest.raises(SchedulerError) as caught:
        NomadScheduler().start(spec())

    assert caught.value.permanent is True
    assert "403 Permission denied" in str(caught.value)


def test_an_unreachable_nomad_is_engine_unavailable(settings, monkeypatch):
    monkeypatch.delenv("NOMAD_TOKEN", raising=False)
    port = free_port()  # nothing listens there
    settings.GOFER_NOMAD_ADDR = f"http://127.0.0.1:{port}"
    unreachable = NomadScheduler()

    for call in (
        lambda: unreachable.start(spec()),
        lambda: unreachable.status(NAME),
        lambda: lines_of(unreachable, {"alloc": "a1", "stdout": 0, "stderr": 0}),
        lambda: unreachable.kill(NAME),
        lambda: unreachable.exec(NAME, ["sh"]),
    ):
        with pytest.raises(EngineUnavailable) as caught:
            call()
        assert caught.value.permanent is False
        assert f"127.0.0.1:{port}" in str(caught.value)


# --- the fake refuses what Nomad would (otherwise the tests above would prove little) ------------------------------


def good_job() -> dict[str, Any]:
    return {
        "ID": "j1",
        "Type": "batch",
        "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "docker", "Config": {"image": "busybox"}}]}],
    }


def broken(change: Any) -> dict[str, Any]:
    job = good_job()
    change(job)
    return {"Job": job}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/v1/jobz", None, 404, ""),
        ("PATCH", "/v1/jobs", None, 405, "Invalid method"),
        ("GET", "/v1/job/j1/allocations?al=true", None, 400, "does not take the query parameter 'al'"),
        ("POST", "/v1/jobs", {}, 400, "Job must be specified"),
        ("POST", "/v1/jobs", broken(lambda j: j.pop("ID")), 400, "Job ID hasn't been provided"),
        ("POST", "/v1/job/other", {"Job": good_job()}, 400, "Job ID does not match name"),
        ("POST", "/v1/jobs", broken(lambda j: j.update(Type="service")), 400, "batch jobs only"),
        ("POST", "/v1/jobs", broken(lambda j: j.update(Restart={})), 400, "unknown field(s) Restart"),
        (
            "POST",
            "/v1/jobs",
            broken(lambda j: j["TaskGroups"][0]["Tasks"][0].pop("Driver")),
            400,
            'Task "t" missing driver',
        ),
        (
            "POST",
            "/v1/jobs",
            broken(lambda j: j["TaskGroups"][0]["Tasks"][0]["Config"].update(labels={"a": "b"})),
            400,
            'Inappropriate value for attribute "labels"',
        ),
        (
            "POST",
            "/v1/jobs",
            broken(lambda j: j["TaskGroups"][0]["Tasks"][0]["Config"].update(cmd="x")),
            400,
            'An argument named "cmd" is not expected here',
        ),
        (
            "POST",
            "/v1/jobs",
            broken(lambda j: j["TaskGroups"][0].update(RestartPolicy={"Attempts": 0, "Mode": "delay"})),
            400,
            "is ambiguous",
        ),
        ("DELETE", "/v1/job/j1?purge=yes", None, 500, 'Failed to parse value of "purge" (yes) as a bool'),
        ("GET", "/v1/client/fs/logs/a1?type=stdout", None, 400, "must provide task name"),
        ("GET", "/v1/client/fs/logs/a1?task=t&type=console", None, 400, "must provide log type (stdout/stderr)"),
        ("GET", "/v1/client/fs/logs/a1?task=t&type=stdout&origin=middle", None, 400, "origin must be start or end"),
        ("POST", "/v1/client/allocation/a1/signal", {"Task": "t"}, 400, "needs a Signal"),
    ],
)
def test_the_fake_refuses_requests_nomad_documents_differently(fake, method, path, body, status, message):
    response = requests.request(
        method,
        fake.address + path,
        data=None if body is None else json.dumps(body),
        headers={"X-Nomad-Token": TOKEN},
        timeout=5,
    )

    assert response.status_code == status
    assert message in response.text


def test_the_fake_accepts_the_minimal_documented_job(fake):
    response = requests.post(
        fake.address + "/v1/jobs", data=json.dumps({"Job": good_job()}), headers={"X-Nomad-Token": TOKEN}, timeout=5
    )

    assert response.status_code == 200
    assert response.json()["JobModifyIndex"] > 0
