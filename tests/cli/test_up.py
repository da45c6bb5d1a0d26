"""gofer up: Python SDK files, JSON, TOML and YAML; the diff against the live version; the refusal of a config
identical to the latest; --no-deploy; directories."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.cli.conftest import Gofer

pytestmark = [pytest.mark.slow]

UP_FIELDS = {
    "pipeline_id",
    "namespace_id",
    "file",
    "format",
    "registered",
    "version",
    "identical_to",
    "deployed",
    "diff",
    "pipeline",
    "deployment",
}

PYTHON_PIPELINE = """
from gofer_sdk import Pipeline, RequiredParentStatus, Task, pipeline_secret

Pipeline("hello", "Hello").description("says hello").tasks(
    Task("greet", "busybox:latest").command("echo", "hello").variable("who", "world"),
    Task("done", "busybox:latest")
    .script('''
        echo done
    ''')
    .variable("TOKEN", pipeline_secret("token"))
    .depends_on("greet", RequiredParentStatus.SUCCESS)
    .timeout(minutes=10),
).finish()
"""

JSON_PIPELINE = {
    "id": "formats",
    "name": "Formats",
    "tasks": [
        {"id": "one", "image": "busybox:1", "command": ["echo", "one"]},
        {"id": "two", "image": "busybox:1", "depends_on": {"one": "Success"}, "variables": {"mode": "fast"}},
    ],
}

TOML_PIPELINE = """
id = "formats"
name = "Formats"

[[tasks]]
id = "one"
image = "busybox:2"
command = ["echo", "one"]

[[tasks]]
id = "two"
image = "busybox:1"
depends_on = { one = "success" }
variables = { MODE = "fast" }
"""

YAML_PIPELINE = """
id: formats
name: Formats
tasks:
  - id: two
    image: busybox:1
    depends_on: {one: Success}
    variables: {mode: fast}
  - id: one
    image: busybox:2
    command: [echo, one]
"""


def test_up_registers_and_deploys_a_python_sdk_file_then_refuses_the_identical_config(gofer: Gofer, home):
    (home / "gofer.py").write_text(PYTHON_PIPELINE)
    first = gofer("up", "gofer.py", "-o", "json").json
    assert set(first) == UP_FIELDS
    assert first["format"] == "python" and first["registered"] is True and first["version"] == 1
    assert first["deployed"] is True and first["deployment"]["end_version"] == 1
    assert '+tasks.greet.image: "busybox:latest"' in first["diff"]
    live = gofer.json("pipeline", "config", "get", "hello", "1")["config"]
    assert live["state"] == "live"
    assert live["tasks"]["done"]["command"] == ["/bin/sh", "-c", "echo done\n"]
    assert live["tasks"]["done"]["timeout"] == 600
    assert {"key": "TOKEN", "value": "pipeline_secret{{token}}", "source": "pipeline_config"} in live["tasks"]["done"][
        "variables"
    ]

    again = gofer("up", ".")  # a directory is searched for its pipeline file
    assert again.code == 0
    assert "identical to version 1" in again.stderr
    assert gofer.json("pipeline", "config", "list", "hello")["configs"][-1]["version"] == 1  # no new version
    refused = gofer("up", "-o", "json").json
    assert refused["registered"] is False and refused["identical_to"] == 1 and refused["diff"] == []
    forced = gofer("up", "--force", "-o", "json").json
    assert forced["registered"] is True and forced["version"] == 2


def test_json_toml_and_yaml_files_register_the_same_pipeline_and_up_shows_the_diff(gofer: Gofer, home):
    (home / "formats.json").write_text(json.dumps(JSON_PIPELINE))
    (home / "formats.toml").write_text(TOML_PIPELINE)
    (home / "formats.yaml").write_text(YAML_PIPELINE)

    first = gofer("up", "formats.json", "-o", "json").json
    assert first["format"] == "json" and first["version"] == 1 and first["deployed"] is True

    changed = gofer("up", "formats.toml")
    assert changed.code == 0
    # Only what changed shows: the image of task one (MODE and "success" are the same after normalising).
    assert '-tasks.one.image: "busybox:1"' in changed.stdout
    assert '+tasks.one.image: "busybox:2"' in changed.stdout
    assert "variables" not in "".join(
        line for line in changed.stdout.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    )
    assert "Registered formats version 2" in changed.stderr
    assert gofer.json("pipeline", "get", "formats")["config"]["version"] == 2

    same = gofer("up", "formats.yaml", "-o", "json").json  # other order, other case: the same config
    assert same["format"] == "yaml" and same["registered"] is False and same["identical_to"] == 2
    assert same["diff"] == []


def test_up_with_no_deploy_registers_only_and_a_later_up_deploys_that_version(gofer: Gofer, home):
    (home / "pipeline.json").write_text(json.dumps(JSON_PIPELINE))
    gofer("up")
    changed = {**JSON_PIPELINE, "name": "Formats renamed"}
    (home / "pipeline.json").write_text(json.dumps(changed))
    registered = gofer("up", "--no-deploy", "-o", "json").json
    assert registered["registered"] is True and registered["version"] == 2 and registered["deployed"] is False
    assert gofer.json("pipeline", "get", "formats")["config"]["version"] == 1  # still the live one
    assert '-name: "Formats"' in registered["diff"] and '+name: "Formats renamed"' in registered["diff"]
    deployed = gofer("up", "-o", "json").json
    assert deployed["registered"] is False and deployed["identical_to"] == 2 and deployed["deployed"] is True
    assert gofer.json("pipeline", "get", "formats")["config"]["version"] == 2


def test_up_refuses_an_invalid_config_before_sending_it_with_the_servers_messages(gofer: Gofer, home):
    broken = {
        "id": "bad",
        "name": "Bad",
        "tasks": [
            {"id": "a", "image": "busybox", "depends_on": {"b": "Success"}},
            {"id": "b", "image": "busybox", "depends_on": {"a": "Success"}, "timeout": 5},
        ],
    }
    (home / "gofer.json").write_text(json.dumps(broken))
    result = gofer("up", expect=2)
    assert "config.tasks[1].timeout: must be seconds between 300 (5 min) and 28800 (8 h)" in result.stderr
    assert gofer.json("pipeline", "list") == {"pipelines": []}


def test_up_names_what_is_wrong_with_the_path(gofer: Gofer, home):
    assert "no pipeline file here" in gofer("up", expect=2).stderr
    (home / "gofer.json").write_text("{}")
    (home / "gofer.yaml").write_text("id: x")
    assert "several pipeline files (gofer.json, gofer.yaml)" in gofer("up", expect=2).stderr
    assert "no such file" in gofer("up", "missing.py", expect=2).stderr
    (home / "broken.py").write_text("raise SystemExit('no pipeline today')")
    assert "no pipeline today" in gofer("up", "broken.py", expect=2).stderr
    (home / "silent.py").write_text("print('hello')")
    assert "printed no pipeline config" in gofer("up", "silent.py", expect=2).stderr
    (home / "invalid.py").write_text(
        textwrap.dedent("""
        from gofer_sdk import Pipeline, Task
        Pipeline("x", "X").tasks(Task("a", "busybox")).finish()
    """)
    )
    assert "config.id: must be 3 to 32 characters long" in gofer("up", "invalid.py", expect=2).stderr
