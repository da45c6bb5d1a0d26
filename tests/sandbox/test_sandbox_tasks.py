"""Task containers in sandbox mode: a config asking for more than the sandbox gives is a 400 naming the field; the
caps are applied to every task at admission; the container runs as a fixed unprivileged user with every capability
dropped, no-new-privileges, a read-only root with size-capped tmpfs workspaces and pids/CPU/memory caps, on Docker
for real and in the Nomad job; no attach, no host network, no local-process or memory engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from kernel.errors import Forbidden
from pipelines.models import PipelineConfig
from runs import services as runs
from runs.engine import driving
from runs.models import Run, TaskExecution
from runs.schedulers import get_scheduler
from runs.schedulers.base import ContainerSpec
from runs.schedulers.nomad import job_for_spec
from tests.conftest import need, simple_config
from tests.support import engine as engine_support
from tests.support.engine import log_text
from tests.support.fake_nomad import validate_job
from tests.support.images import docker_available

REPO = Path(__file__).resolve().parents[2]


def register(caller, namespace_id: str, config: dict, pipeline_id: str = "build"):
    return caller.post(f"/api/namespaces/{namespace_id}/pipelines/{pipeline_id}/configs", {"config": config})


def fields_of(response) -> set[str]:
    return {error["field"] for error in response.json()["errors"]}


def test_a_config_asking_for_more_than_the_sandbox_gives_is_a_400_naming_each_field(visitor):
    caller, body = visitor
    config = simple_config()
    config["tasks"][0].update(
        {"timeout": 3600, "cpu": 4, "memory": 8192, "registry_auth": {"user": "me", "pass": "secret-password"}}
    )
    config["tasks"][1]["image"] = "registry.example.com/team/app:1"

    response = register(caller, body["namespace"]["id"], config)

    assert response.status_code == 400, response.content
    assert fields_of(response) == {
        "config.tasks[0].timeout",
        "config.tasks[0].cpu",
        "config.tasks[0].memory",
        "config.tasks[0].registry_auth",
        "config.tasks[1].image",
    }
    assert "GOFER_SANDBOX_MAX_TASK_TIMEOUT" in response.json()["message"]
    assert not PipelineConfig.objects.exists()


def test_a_task_that_asks_for_nothing_gets_the_sandbox_caps(visitor):
    caller, body = visitor

    response = register(caller, body["namespace"]["id"], simple_config())

    assert response.status_code == 201, response.content
    tasks = response.json()["pipeline"]["config"]["tasks"]
    assert tasks["compile"]["timeout"] == 600  # GOFER_SANDBOX_MAX_TASK_TIMEOUT, not the 8 h default


def test_outside_sandbox_mode_the_same_config_is_accepted(alice, namespaces):
    config = simple_config()
    config["tasks"][0].update({"timeout": 3600, "cpu": 4, "memory": 8192})
    assert register(alice, "team-a", config).status_code == 201


def test_the_sandbox_hardening_is_forced_whatever_the_operator_defaults_say(sandbox_mode):
    sandbox_mode.GOFER_TASK_USER = ""
    sandbox_mode.GOFER_TASK_READ_ONLY_ROOTFS = False
    sandbox_mode.GOFER_TASK_NO_NEW_PRIVILEGES = False
    sandbox_mode.GOFER_TASK_CAPABILITIES = "docker-default"
    sandbox_mode.GOFER_TASK_PIDS_LIMIT = 0

    hardening = driving.task_hardening()

    assert hardening.user == "65534:65534"
    assert hardening.read_only_rootfs is True and hardening.tmpfs_mib == 256
    assert hardening.no_new_privileges is True
    assert hardening.capabilities == ()
    assert hardening.pids_limit == 256


def test_the_nomad_job_carries_the_sandbox_caps(sandbox_mode):
    spec = ContainerSpec(
        name="gofer-x",
        image="busybox:latest",
        command=["true"],
        cpu=1,
        memory_mib=512,
        hardening=driving.task_hardening(),
    )
    job = job_for_spec(
        spec, namespace="default", datacenters=["dc1"], region=None, mhz_per_core=1000, default_memory_mib=1024
    )
    validate_job(job)
    task = job["TaskGroups"][0]["Tasks"][0]
    config = task["Config"]
    assert task["User"] == "65534:65534"
    assert config["cap_drop"] == ["all"] and not config.get("cap_add")
    assert config["security_opt"] == ["no-new-privileges"]
    assert config["pids_limit"] == 256
    assert config["readonly_rootfs"] is True
    assert config["mount"][0]["tmpfs_options"] == [{"size": 256 * 1024 * 1024}]
    assert task["Resources"] == {"CPU": 1000, "MemoryMB": 512}
    assert "network_mode" not in config or config["network_mode"] != "host"


def test_attach_is_refused_in_sandbox_mode(sandbox_mode):
    with pytest.raises(Forbidden, match="sandbox"):
        runs.check_attach_allowed(None)


def test_host_network_and_host_engines_are_refused_in_sandbox_mode(sandbox_mode):
    sandbox_mode.GOFER_DOCKER_NETWORK_MODE = "host"
    get_scheduler.cache_clear()
    try:
        for name in ("docker", "local", "memory"):
            with pytest.raises(ImproperlyConfigured):
                get_scheduler(name)
    finally:
        get_scheduler.cache_clear()


@pytest.mark.docker
def test_a_visitors_task_runs_locked_down_on_docker(
    transactional_db, visitor, sandbox_mode, monkeypatch, busybox_image, docker_client
):
    need(docker_available(), "the Docker engine is not running")
    sandbox_mode.GOFER_SCHEDULER = "docker"
    sandbox_mode.GOFER_DOCKER_NETWORK_MODE = "none"
    sandbox_mode.GOFER_DRIVE_SLICE_SECONDS = 2
    sandbox_mode.GOFER_LEASE_SECONDS = 4
    sandbox_mode.GOFER_CONTAINER_PRUNE_AFTER = 3600  # kept for docker inspect; removed at the end
    get_scheduler.cache_clear()
    inline = engine_support.install(monkeypatch)
    caller, body = visitor
    namespace_id = body["namespace"]["id"]
    script = (
        "id -u; id -g; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
        "touch /not-here 2>/dev/null && echo root-writable || echo root-read-only; "
        "touch /tmp/a && touch /workspace/b && echo workspaces-writable; "
        "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max 2>/dev/null "
        "|| cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes"
    )
    config = {
        "id": "locked",
        "name": "locked",
        "tasks": [{"id": "probe", "image": busybox_image, "command": ["sh", "-c", script]}],
    }
    assert register(caller, namespace_id, config, "locked").status_code == 201
    assert caller.post(f"/api/namespaces/{namespace_id}/pipelines/locked/configs/1").status_code == 201
    started = caller.post(f"/api/namespaces/{namespace_id}/pipelines/locked/runs", {"variables": {}})
    assert started.status_code == 201, started.content
    run = Run.objects.get(namespace_id=namespace_id)

    try:
        inline.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=90)
        te = TaskExecution.objects.get(run=run)
        assert te.status == "successful", (te.status_description, log_text(te))
        assert (te.task["timeout"], te.task["cpu"], te.task["memory"]) == (600, 1.0, 512)
        assert log_text(te) == [
            "65534",
            "65534",
            "CapEff:\t0000000000000000",
            "NoNewPrivs:\t1",
            "root-read-only",
            "workspaces-writable",
            "256",
            str(512 * 1024 * 1024),
        ]
        container = docker_client.api.inspect_container(te.container_id)
        host = container["HostConfig"]
        assert container["Config"]["User"] == "65534:65534"
        assert (host["CapDrop"], host["CapAdd"], host["ReadonlyRootfs"]) == (["ALL"], None, True)
        assert (host["NanoCpus"], host["Memory"], host["PidsLimit"]) == (10**9, 512 * 1024 * 1024, 256)
        assert "no-new-privileges:true" in host["SecurityOpt"] and host["NetworkMode"] == "none"
    finally:
        engine_support.remove_docker_containers_of_this_test()
        get_scheduler.cache_clear()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"GOFER_SANDBOX": "true", "GOFER_DOCKER_NETWORK_MODE": "host"}, "refused in sandbox mode"),
        ({"GOFER_SANDBOX": "true", "GOFER_SANDBOX_TASK_USER": "0:0"}, "never run as root"),
        ({"GOFER_SANDBOX": "true", "GOFER_SANDBOX_TASK_USER": "1000:0"}, "never run as root"),
    ],
)
def test_a_server_set_up_to_give_sandbox_tasks_the_host_or_root_does_not_start(tmp_path, variables, message):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GOFER_")},
        "GOFER_HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "gofer_site.settings",
        **variables,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr
