"""gofer_sdk against the live server: it refuses what the server refuses, in the server's words, and what it
builds registers, runs and has its references resolved."""

from __future__ import annotations

import httpx
import pytest

import gofer_sdk
from gofer_sdk import Pipeline, Task, check_identifier, validate_config
from tests.cli.conftest import Gofer

pytestmark = [pytest.mark.slow]


def task(**fields):
    return {"id": "a", "image": "busybox", **fields}


INVALID_CONFIGS = {
    "no tasks": {"id": "p-1", "name": "P", "tasks": []},
    "short id": {"id": "p", "name": "P", "tasks": [task()]},
    "underscore id": {"id": "p_1", "name": "P", "tasks": [task()]},
    "blank name": {"id": "p-1", "name": "  ", "tasks": [task()]},
    "unknown fields": {"id": "p-1", "name": "P", "colour": "red", "tasks": [task(colour="blue")]},
    "bad task id and image": {"id": "p-1", "name": "P", "tasks": [{"id": "-a", "image": "has space"}]},
    "duplicate ids": {"id": "p-1", "name": "P", "tasks": [task(), task()]},
    "unknown parent": {"id": "p-1", "name": "P", "tasks": [task(depends_on={"zz": "Success"})]},
    "self dependency": {"id": "p-1", "name": "P", "tasks": [task(depends_on={"a": "Any"})]},
    "bad requirement": {"id": "p-1", "name": "P", "tasks": [task(depends_on={"a": "Maybe"})]},
    "cycle": {
        "id": "p-1",
        "name": "P",
        "tasks": [
            task(id="a", depends_on={"c": "Success"}),
            task(id="b", depends_on={"a": "Success"}),
            task(id="c", depends_on={"b": "Success"}),
        ],
    },
    "variables": {
        "id": "p-1",
        "name": "P",
        "tasks": [task(variables={"1bad": "x", "ok": 1, "Mode": "a", "MODE": "b"})],
    },
    "variable list": {"id": "p-1", "name": "P", "tasks": [task(variables=[{"key": "A"}, "x"])]},
    "limits": {"id": "p-1", "name": "P", "tasks": [task(timeout=10, cpu=0, memory=2, entrypoint="sh", command=[1])]},
    "booleans": {"id": "p-1", "name": "P", "logging": "yes", "tasks": [task(inject_api_token=1, logging="no")]},
    "registry auth": {"id": "p-1", "name": "P", "tasks": [task(registry_auth={"user": "", "pass": "x"})]},
    "parallelism": {"id": "p-1", "name": "P", "parallelism": -1, "parallelism_mode": "stack", "tasks": [task()]},
    "long description": {"id": "p-1", "name": "P", "description": "x" * 2001, "tasks": [task(description=5)]},
    "not an object": {"id": "p-1", "name": "P", "tasks": ["a"]},
}


def path_id(config: dict) -> str:
    """The pipeline id to register ``config`` under: its own, or a valid one when its own is not (the server would
    refuse the path before reading the body)."""
    return config["id"] if not check_identifier(config["id"]) else "placeholder"


def server_faults(gofer: Gofer, config: dict) -> list[tuple[str, str]]:
    """What the server answers to registering ``config``: the (field, message) of each fault, [] when accepted."""
    response = httpx.post(
        f"{gofer.url}/api/namespaces/default/pipelines/{path_id(config)}/configs",
        json={"config": config},
        headers={"Authorization": f"Bearer {gofer.token}", "gofer-api-version": "v0"},
        timeout=30,
    )
    if response.status_code == 201:
        return []
    assert response.status_code == 400, response.text
    return [(e["field"], e["message"]) for e in response.json()["errors"]]


def test_sdk_validation_reports_the_faults_the_server_reports_in_its_words(gofer: Gofer):
    for name, config in INVALID_CONFIGS.items():
        expected = server_faults(gofer, config)
        assert expected, f"the server accepts {name!r}; the case is useless"
        found = [(e.field, e.message) for e in validate_config(config, path_id(config))]
        # The same faults, in any order. The only rule the SDK cannot know is the server's maximum parallelism:
        # its message differs there.
        assert sorted(f for f, _ in found) == sorted(f for f, _ in expected), name
        assert sorted((f, m) for f, m in found if not f.endswith("parallelism")) == sorted(
            (f, m) for f, m in expected if not f.endswith("parallelism")
        ), name


def test_references_built_with_the_sdk_are_resolved_when_the_task_starts(gofer: Gofer, home):
    (home / "gofer.py").write_text(
        "from gofer_sdk import Pipeline, Task, pipeline_object\n"
        "Pipeline('refs', 'Refs').tasks(\n"
        "    Task('show', 'busybox').command('sh', '-c', 'echo \"greeting=$GREETING\"')\n"
        "    .variable('greeting', pipeline_object('greeting')),\n"
        ").finish()\n"
    )
    gofer("up")
    gofer("pipeline", "object", "put", "refs", "greeting", "-", input="hello from an object")
    run_id = str(gofer.json("pipeline", "run", "refs", "--wait")["run"]["run_id"])
    texts = [line["text"] for line in gofer.json("task", "logs", "refs", run_id, "show")["lines"]]
    assert texts == ["greeting=hello from an object"]


def test_every_builder_option_registers_as_built(gofer: Gofer):
    pipeline = Pipeline("every-option", "Every option").description("d").parallelism(2, "cancel_oldest").logging(True)
    pipeline.tasks(
        Task("one", "busybox").script("echo one").cpu(0.5).memory(64).timeout(minutes=10).logging(False),
        Task("two", "busybox")
        .command("true")
        .entrypoint("/bin/sh", "-c")
        .depends_on("one", "any")
        .variable("key", gofer_sdk.global_secret("g"))
        .registry_auth("u", "p")
        .inject_api_token()
        .always_pull_newest_image()
        .description("second"),
    )
    assert server_faults(gofer, pipeline.to_dict()) == []
    config = gofer.json("pipeline", "config", "get", "every-option", "1")["config"]
    assert config["parallelism"] == 2 and config["parallelism_mode"] == "cancel_oldest"
    one, two = config["tasks"]["one"], config["tasks"]["two"]
    assert (one["cpu"], one["memory"], one["timeout"], one["logging"]) == (0.5, 64, 600, False)
    assert two["depends_on"] == {"one": "any"} and two["registry_auth"] == {"user": "u", "pass": "[redacted]"}
    assert two["entrypoint"] == ["/bin/sh", "-c"] and two["inject_api_token"] and two["always_pull_newest_image"]
