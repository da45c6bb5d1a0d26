"""Task containers are locked down by operator defaults (issue 8, finding 5): capabilities dropped but a minimal set,
no-new-privileges, pids, memory and CPU limits, a bounded engine log; optionally a fixed unprivileged user and a
read-only root filesystem with size-capped tmpfs workspaces. On Docker for real, and in the Nomad job spec."""

from __future__ import annotations

import contextlib
import uuid

import docker
import pytest

from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines.models import Namespace
from runs import services as runs
from runs.engine import driving
from runs.models import Run
from runs.schedulers import get_scheduler, memory
from runs.schedulers.base import ContainerSpec, State
from runs.schedulers.docker import DockerScheduler
from runs.schedulers.nomad import job_for_spec
from tests.conftest import deployed_pipeline
from tests.support import engine as engine_support
from tests.support.fake_nomad import validate_job
from tests.support.schedulers import texts, wait_for

# Linux capability numbers (linux/capability.h) of the default kept set and of two that are dropped.
CAPABILITY_BITS = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "FOWNER": 3,
    "FSETID": 4,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "NET_BIND_SERVICE": 10,
    "NET_RAW": 13,
    "MKNOD": 27,
}


@pytest.fixture
def docker_engine(settings, busybox_image, docker_client):
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    engine = DockerScheduler()
    names = []

    def run(script: str, **hardening_overrides):
        name = f"gofer-test-harden-{uuid.uuid4().hex[:10]}"
        names.append(name)
        hardening = driving.task_hardening()
        if hardening_overrides:
            hardening = type(hardening)(**{**hardening.__dict__, **hardening_overrides})
        spec = ContainerSpec(
            name=name,
            image=busybox_image,
            command=["sh", "-c", script],
            cpu=settings.GOFER_TASK_DEFAULT_CPU,
            memory_mib=settings.GOFER_TASK_DEFAULT_MEMORY_MIB,
            hardening=hardening,
        )
        handle = engine.start(spec).handle
        status = wait_for(engine, handle, timeout=30)
        assert status.state == State.EXITED
        return handle, status, texts(engine.logs(handle, None))

    yield run
    for name in names:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(name).remove(force=True)
    engine.close()


def _effective_capabilities(lines: list[str]) -> set[str]:
    [cap_eff] = [line.split()[1] for line in lines if line.startswith("CapEff:")]
    bits = int(cap_eff, 16)
    return {name for name, bit in CAPABILITY_BITS.items() if bits & (1 << bit)}


@pytest.mark.docker
def test_a_task_container_keeps_only_the_minimal_capabilities_and_cannot_gain_privileges(docker_engine, docker_client):
    handle, status, lines = docker_engine("grep -E '^(CapEff|NoNewPrivs)' /proc/self/status")
    assert status.exit_code == 0
    assert _effective_capabilities(lines) == set(CAPABILITY_BITS) - {"NET_RAW", "MKNOD"}
    assert "NoNewPrivs:\t1" in lines
    host = docker_client.api.inspect_container(handle)["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]


@pytest.mark.docker
def test_a_task_container_has_pids_memory_cpu_and_engine_log_limits(docker_engine, docker_client, settings):
    handle, _, _ = docker_engine("true")
    host = docker_client.api.inspect_container(handle)["HostConfig"]
    assert host["PidsLimit"] == settings.GOFER_TASK_PIDS_LIMIT == 4096
    assert host["Memory"] == 4096 * 1024 * 1024
    assert host["NanoCpus"] == 2 * 10**9
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": str(100 * 1024 * 1024)}}


@pytest.mark.docker
def test_the_pids_and_memory_limits_are_what_the_kernel_enforces_inside_the_container(docker_engine):
    _, status, lines = docker_engine(
        "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max 2>/dev/null "
        "|| cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes",
        pids_limit=50,
    )
    assert status.exit_code == 0
    assert lines == ["50", str(4096 * 1024 * 1024)]


@pytest.mark.docker
def test_a_fixed_user_and_a_read_only_root_leave_only_the_tmpfs_workspaces_writable(docker_engine, docker_client):
    script = (
        "id -u; id -g; "
        "touch /not-here 2>/dev/null && echo root-writable || echo root-read-only; "
        "touch /tmp/a && touch /workspace/b && echo workspaces-writable"
    )
    handle, status, lines = docker_engine(script, user="65534:65534", read_only_rootfs=True, tmpfs_mib=16)
    assert status.exit_code == 0
    assert lines == ["65534", "65534", "root-read-only", "workspaces-writable"]
    host = docker_client.api.inspect_container(handle)["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert "size=16m" in host["Tmpfs"]["/tmp"]


def test_the_engine_gives_every_task_the_operator_defaults(transactional_db, settings, monkeypatch):
    settings.GOFER_SCHEDULER = "memory"
    settings.GOFER_TASK_USER = "1000:1000"
    settings.GOFER_TASK_PIDS_LIMIT = 123
    get_scheduler.cache_clear()
    memory.reset()
    inline = engine_support.install(monkeypatch)
    seen = []
    real_start = memory.MemoryScheduler.start
    monkeypatch.setattr(memory.MemoryScheduler, "start", lambda self, spec: seen.append(spec) or real_start(self, spec))
    Namespace.objects.create(id="harden", name="harden")
    pipeline = deployed_pipeline(
        "harden",
        "defaults",
        {
            "id": "defaults",
            "name": "defaults",
            "tasks": [
                {"id": "own", "image": "busybox:latest", "command": ["true"], "cpu": 0.5, "memory": 256},
                {"id": "defaults", "image": "busybox:latest", "command": ["true"]},
            ],
        },
    )
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    inline.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=30)
    by_task = {spec.labels["dev.gofer.task"]: spec for spec in seen}
    assert (float(by_task["own"].cpu), by_task["own"].memory_mib) == (0.5, 256)
    assert (float(by_task["defaults"].cpu), by_task["defaults"].memory_mib) == (2.0, 4096)
    for spec in seen:
        assert spec.hardening.user == "1000:1000"
        assert spec.hardening.pids_limit == 123
        assert spec.hardening.no_new_privileges
        assert spec.hardening.capabilities == (
            *("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID"),
        )
    memory.reset()
    get_scheduler.cache_clear()


def test_the_nomad_job_carries_the_same_lockdown(settings):
    settings.GOFER_TASK_USER = "65534:65534"
    settings.GOFER_TASK_READ_ONLY_ROOTFS = True
    settings.GOFER_TASK_TMPFS_MIB = 64
    spec = ContainerSpec(name="gofer-x", image="busybox:latest", command=["true"], hardening=driving.task_hardening())
    job = job_for_spec(
        spec, namespace="default", datacenters=["dc1"], region=None, mhz_per_core=1000, default_memory_mib=1024
    )
    validate_job(job)  # the docker driver's schema, as the fake Nomad checks registrations
    task = job["TaskGroups"][0]["Tasks"][0]
    config = task["Config"]
    assert task["User"] == "65534:65534"
    assert config["cap_drop"] == ["all"]
    assert "chown" in config["cap_add"] and "net_raw" not in config["cap_add"]
    assert config["security_opt"] == ["no-new-privileges"]
    assert config["pids_limit"] == 4096
    assert config["readonly_rootfs"] is True
    assert {m["target"] for m in config["mount"]} == {"/tmp", "/workspace"}
    assert config["mount"][0]["tmpfs_options"] == [{"size": 64 * 1024 * 1024}]
    assert task["LogConfig"] == {"MaxFiles": 3, "MaxFileSizeMB": 100}
