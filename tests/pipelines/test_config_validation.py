"""Every rule of pipelines/validation.py, through the API: 400, each fault named by its path, nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.models import Pipeline

BUILD = "/api/namespaces/team-a/pipelines/build"


def config(*tasks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "build", "name": "Build"}
    base["tasks"] = list(tasks) if tasks else [task("compile")]
    base.update(fields)
    return base


def task(task_id: str = "compile", **fields: Any) -> dict[str, Any]:
    return {"id": task_id, "image": "busybox:latest", **fields}


def register(caller, body_config):
    return caller.post(f"{BUILD}/configs", {"config": body_config})


def assert_refused(response, field: str, says: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error_code"] == "validation_error"
    fields = {e["field"]: e["message"] for e in body["errors"]}
    assert field in fields, fields
    assert says in fields[field], fields[field]
    assert f"{field}: " in body["message"]
    assert not Pipeline.objects.exists()


INVALID = {
    # pipeline fields
    "no tasks": (config(tasks=[]), "config.tasks", "at least one task"),
    "tasks missing": ({"id": "build", "name": "Build"}, "config.tasks", "at least one task"),
    "tasks not a list": (config(tasks={"compile": task()}), "config.tasks", "at least one task"),
    "too many tasks": (config(tasks=[task(f"t{n}") for n in range(201)]), "config.tasks", "at most 200 tasks"),
    "id missing": ({"name": "Build", "tasks": [task()]}, "config.id", "must be a string"),
    "id with a trailing newline": (config(id="build\n"), "config.id", "may only contain"),
    "name missing": ({"id": "build", "tasks": [task()]}, "config.name", "required"),
    "name blank": (config(name="  "), "config.name", "required"),
    "name too long": (config(name="x" * 201), "config.name", "1 to 200 characters"),
    "description too long": (config(description="x" * 2001), "config.description", "at most 2000"),
    "description not a string": (config(description=5), "config.description", "must be a string"),
    "unknown pipeline field": (config(triggers=[]), "config.triggers", "unknown field"),
    "parallelism negative": (config(parallelism=-1), "config.parallelism", "must be 0"),
    "parallelism over the maximum": (config(parallelism=101), "config.parallelism", "to 100"),
    "parallelism a string": (config(parallelism="2"), "config.parallelism", "must be 0"),
    "parallelism a boolean": (config(parallelism=True), "config.parallelism", "must be 0"),
    "parallelism_mode unknown": (config(parallelism_mode="drop"), "config.parallelism_mode", "queue, cancel_oldest"),
    "logging not a boolean": (config(logging="no"), "config.logging", "true or false"),
    # task ids and dependencies
    "task not an object": (config(tasks=["compile"]), "config.tasks[0]", "must be an object"),
    "task id missing": (config(tasks=[{"image": "busybox"}]), "config.tasks[0].id", "required"),
    "task id with a space": (config(task("a b")), "config.tasks[0].id", "letters, digits"),
    "task id starting with a dash": (config(task("-x")), "config.tasks[0].id", "starting with a letter or digit"),
    "task id too long": (config(task("x" * 65)), "config.tasks[0].id", "1 to 64"),
    "task id with a trailing newline": (config(task("compile\n")), "config.tasks[0].id", "1 to 64"),
    "duplicate task ids": (config(task("a"), task("a")), "config.tasks[1].id", "duplicate task id 'a'"),
    "depends_on an unknown task": (
        config(task("a"), task("b", depends_on={"nope": "Success"})),
        "config.tasks[1].depends_on.nope",
        "no task with this id",
    ),
    "depends_on itself": (config(task("a", depends_on={"a": "Any"})), "config.tasks[0].depends_on.a", "itself"),
    "depends_on an unknown status": (
        config(task("a"), task("b", depends_on={"a": "Maybe"})),
        "config.tasks[1].depends_on.a",
        "Any, Success or Failure",
    ),
    "depends_on a list": (config(task("a"), task("b", depends_on=["a"])), "config.tasks[1].depends_on", "object"),
    "unknown task field": (config(task("a", retries=3)), "config.tasks[0].retries", "unknown field"),
    # images and commands
    "image missing": (config({"id": "a"}), "config.tasks[0].image", "required"),
    "image empty": (config(task("a", image="")), "config.tasks[0].image", "required"),
    "image with a space": (config(task("a", image="busy box")), "config.tasks[0].image", "without spaces"),
    "image too long": (config(task("a", image="x" * 513)), "config.tasks[0].image", "512"),
    "image with a trailing newline": (config(task("a", image="busybox\n")), "config.tasks[0].image", "without spaces"),
    "command a string": (config(task("a", command="echo hi")), "config.tasks[0].command", "list of strings"),
    "command with a number": (config(task("a", command=["sleep", 5])), "config.tasks[0].command", "list of strings"),
    "command too long": (config(task("a", command=["x"] * 1001)), "config.tasks[0].command", "at most 1000"),
    "entrypoint a string": (config(task("a", entrypoint="/bin/sh")), "config.tasks[0].entrypoint", "list of strings"),
    "inject_api_token a string": (
        config(task("a", inject_api_token="yes")),
        "config.tasks[0].inject_api_token",
        "true",
    ),
    "always_pull a number": (
        config(task("a", always_pull_newest_image=1)),
        "config.tasks[0].always_pull_newest_image",
        "true or false",
    ),
    "task description a list": (config(task("a", description=["x"])), "config.tasks[0].description", "string"),
    "task description too long": (
        config(task("a", description="x" * 2001)),
        "config.tasks[0].description",
        "at most 2000",
    ),
    "task logging a string": (config(task("a", logging="off")), "config.tasks[0].logging", "true or false"),
    # variables
    "variable name starting with a digit": (
        config(task("a", variables={"1ABC": "x"})),
        "config.tasks[0].variables.1ABC",
        "not starting with a digit",
    ),
    "variable name with a dash": (
        config(task("a", variables={"MY-VAR": "x"})),
        "config.tasks[0].variables.MY-VAR",
        "letters, digits and '_'",
    ),
    "variable name with a trailing newline": (
        config(task("a", variables={"MODE\n": "x"})),
        "config.tasks[0].variables.MODE\n",
        "letters, digits and '_'",
    ),
    "variable value not a string": (
        config(task("a", variables={"COUNT": 3})),
        "config.tasks[0].variables.COUNT",
        "must be a string",
    ),
    "duplicate variable after upper-casing": (
        config(task("a", variables={"mode": "fast", "MODE": "slow"})),
        "config.tasks[0].variables.MODE",
        "duplicates 'mode'",
    ),
    "variables a string": (config(task("a", variables="A=1")), "config.tasks[0].variables", "NAME: value"),
    "variable list item without a value": (
        config(task("a", variables=[{"key": "A"}])),
        "config.tasks[0].variables[0]",
        "key and value",
    ),
    "too many variables": (
        config(task("a", variables={f"V{n}": "x" for n in range(501)})),
        "config.tasks[0].variables",
        "at most 500 variables",
    ),
    "variable value too long": (
        config(task("a", variables={"BIG": "x" * (64 * 1024 + 1)})),
        "config.tasks[0].variables.BIG",
        "at most 65536",
    ),
    # timeouts and resources
    "timeout under 300": (config(task("a", timeout=299)), "config.tasks[0].timeout", "between 300"),
    "timeout over 28800": (config(task("a", timeout=28801)), "config.tasks[0].timeout", "28800"),
    "timeout a string": (config(task("a", timeout="600")), "config.tasks[0].timeout", "between 300"),
    "timeout a float": (config(task("a", timeout=600.5)), "config.tasks[0].timeout", "between 300"),
    "cpu zero": (config(task("a", cpu=0)), "config.tasks[0].cpu", "between 0.001 and 256"),
    "cpu negative": (config(task("a", cpu=-1)), "config.tasks[0].cpu", "between 0.001"),
    "cpu over 256": (config(task("a", cpu=257)), "config.tasks[0].cpu", "256"),
    "cpu not a number": (config(task("a", cpu="two")), "config.tasks[0].cpu", "number of CPU cores"),
    "cpu a boolean": (config(task("a", cpu=True)), "config.tasks[0].cpu", "number of CPU cores"),
    "memory under 4 MiB": (config(task("a", memory=3)), "config.tasks[0].memory", "between 4"),
    "memory over 4 TiB": (config(task("a", memory=4 * 1024 * 1024 + 1)), "config.tasks[0].memory", "4194304"),
    "memory a float": (config(task("a", memory=512.5)), "config.tasks[0].memory", "MiB"),
    # registry credentials
    "registry_auth a string": (config(task("a", registry_auth="u:p")), "config.tasks[0].registry_auth", "{user, pass}"),
    "registry_auth without pass": (
        config(task("a", registry_auth={"user": "u"})),
        "config.tasks[0].registry_auth",
        "{user, pass}",
    ),
    "registry_auth with an empty user": (
        config(task("a", registry_auth={"user": "", "pass": "p"})),
        "config.tasks[0].registry_auth",
        "non-empty user",
    ),
    "registry_auth with a numeric pass": (
        config(task("a", registry_auth={"user": "u", "pass": 1234})),
        "config.tasks[0].registry_auth",
        "{user, pass}",
    ),
    "registry_auth with an extra key": (
        config(task("a", registry_auth={"user": "u", "pass": "p", "token": "t"})),
        "config.tasks[0].registry_auth",
        "{user, pass}",
    ),
}


@pytest.mark.parametrize(("body_config", "field", "says"), INVALID.values(), ids=INVALID.keys())
def test_invalid_config_is_400_naming_the_path(alice, body_config, field, says):
    assert_refused(register(alice, body_config), field, says)


def test_a_cycle_is_reported_with_its_path(alice):
    cyclic = config(
        task("a", depends_on={"b": "Success"}),
        task("b", depends_on={"c": "Any"}),
        task("c", depends_on={"a": "Failure"}),
    )
    response = register(alice, cyclic)
    assert_refused(response, "config.tasks", "dependency cycle: a -> b -> c -> a")


def test_a_two_task_cycle_is_reported(alice):
    response = register(alice, config(task("a", depends_on={"b": "Any"}), task("b", depends_on={"a": "Any"})))
    assert_refused(response, "config.tasks", "dependency cycle: a -> b -> a")


def test_every_fault_is_reported_at_once(alice):
    broken = config(task("a", image="", timeout=1), task("a"), triggers=[])
    response = register(alice, broken)
    assert response.status_code == 400
    fields = [e["field"] for e in response.json()["errors"]]
    assert set(fields) == {"config.triggers", "config.tasks[0].image", "config.tasks[0].timeout", "config.tasks[1].id"}


def test_a_long_error_list_is_summarised_in_the_message(alice):
    broken = config(*[task(f"t{n}", image="") for n in range(7)])
    body = register(alice, broken).json()
    assert len(body["errors"]) == 7
    assert body["message"].endswith("; and 2 more")


# --- what is accepted -----------------------------------------------------------------------------------------------


def registered_task(alice, body_config, task_id="a"):
    response = register(alice, body_config)
    assert response.status_code == 201, response.content
    return response.json()["pipeline"]["config"]["tasks"][task_id]


@pytest.mark.parametrize("timeout", [300, 28800])
def test_timeout_bounds_are_inclusive(alice, timeout):
    assert registered_task(alice, config(task("a", timeout=timeout)))["timeout"] == timeout


def test_timeout_defaults_to_8_hours(alice):
    assert registered_task(alice, config(task("a")))["timeout"] == 28800
    assert registered_task(alice, config(task("a", timeout=None)))["timeout"] == 28800


def test_cpu_and_memory_are_returned(alice):
    registered = registered_task(alice, config(task("a", cpu=0.5, memory=512)))
    assert (registered["cpu"], registered["memory"]) == (0.5, 512)


@pytest.mark.parametrize(("cpu", "memory"), [(0.001, 4), (256, 4 * 1024 * 1024), ("1.5", 64)])
def test_cpu_and_memory_bounds_are_inclusive(alice, cpu, memory):
    registered = registered_task(alice, config(task("a", cpu=cpu, memory=memory)))
    assert registered["cpu"] == float(cpu)
    assert registered["memory"] == memory


@pytest.mark.parametrize("parallelism", [0, 1, 100])
def test_parallelism_bounds_are_inclusive(alice, parallelism):
    response = register(alice, config(parallelism=parallelism))
    assert response.status_code == 201
    assert response.json()["pipeline"]["config"]["parallelism"] == parallelism


def test_parallelism_mode_cancel_oldest_is_accepted(alice):
    response = register(alice, config(parallelism=1, parallelism_mode="cancel_oldest"))
    assert response.json()["pipeline"]["config"]["parallelism_mode"] == "cancel_oldest"


def test_task_ids_may_use_underscores_like_gofers_examples(alice):
    assert registered_task(alice, config(task("simple_task")), "simple_task")["id"] == "simple_task"


def test_variables_in_list_form_are_accepted(alice):
    registered = registered_task(
        alice, config(task("a", variables=[{"key": "b", "value": "2"}, {"key": "A", "value": "1"}]))
    )
    assert registered["variables"] == [
        {"key": "B", "value": "2", "source": "pipeline_config"},
        {"key": "A", "value": "1", "source": "pipeline_config"},
    ]


RUST_SDK_OUTPUT = {
    "id": "build",
    "name": "Build",
    "description": None,
    "parallelism": 0,
    "tasks": [
        {
            "id": "compile",
            "description": None,
            "image": "ghcr.io/clintjedwards/gofer/debug/log:latest",
            "registry_auth": None,
            "depends_on": {},
            "variables": {"log_lines": "50"},
            "entrypoint": None,
            "command": None,
            "inject_api_token": False,
            "always_pull_newest_image": False,
        },
        {
            "id": "test",
            "description": "runs the tests",
            "image": "ubuntu:latest",
            "registry_auth": None,
            "depends_on": {"compile": "Success"},
            "variables": {},
            "entrypoint": ["/bin/bash", "-c"],
            "command": ["echo hi"],
            "inject_api_token": True,
            "always_pull_newest_image": True,
        },
        {
            "id": "notify",
            "image": "ubuntu:latest",
            "depends_on": {"compile": "Any", "test": "Failure"},
            "variables": {},
            "inject_api_token": False,
            "always_pull_newest_image": False,
        },
    ],
}


def test_gofer_sdk_json_is_accepted_as_printed(alice):
    response = register(alice, RUST_SDK_OUTPUT)
    assert response.status_code == 201, response.content
    registered = response.json()["pipeline"]["config"]
    assert registered["description"] == ""
    tasks = registered["tasks"]
    assert list(tasks) == ["compile", "test", "notify"]
    assert tasks["compile"]["variables"] == [{"key": "LOG_LINES", "value": "50", "source": "pipeline_config"}]
    assert tasks["test"]["depends_on"] == {"compile": "success"}
    assert tasks["notify"]["depends_on"] == {"compile": "any", "test": "failure"}
    assert tasks["test"]["entrypoint"] == ["/bin/bash", "-c"]
    assert tasks["test"]["command"] == ["echo hi"]
    assert tasks["test"]["inject_api_token"] is True
    assert tasks["test"]["always_pull_newest_image"] is True


@pytest.mark.parametrize("status", ["Success", "success", "SUCCESS", "Any", "any", "Failure", "failure"])
def test_depends_on_accepts_gofers_statuses_in_any_case(alice, status):
    registered = registered_task(alice, config(task("a"), task("b", depends_on={"a": status})), "b")
    assert registered["depends_on"] == {"a": status.lower()}
