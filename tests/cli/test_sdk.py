"""gofer_sdk on its own: what it builds and prints. Its agreement with the server (validation, interpolation) is
tested against the live server in test_sdk_against_server.py."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
import textwrap

import pytest

import gofer_sdk
from gofer_sdk import Pipeline, RequiredParentStatus, Task, script


def build_pipeline() -> Pipeline:
    """A pipeline using every builder method."""
    return (
        Pipeline("build-app", "Build app")
        .description("compiles and tests")
        .parallelism(2, "cancel_oldest")
        .tasks(
            Task("compile", "golang:1.22").script("go build ./...").cpu(1.5).memory(512).timeout(minutes=20),
            Task("test", "golang:1.22")
            .command("go", "test", "./...")
            .variable("goflags", "-count=1")
            .variable("API_KEY", gofer_sdk.pipeline_secret("api_key"))
            .depends_on("compile", RequiredParentStatus.SUCCESS)
            .registry_auth("bot", "pw")
            .inject_api_token()
            .always_pull_newest_image(),
            [Task("notify", "alpine:3").command("true").depends_on_many({"test": "any", "compile": "Failure"})],
        )
    )


def test_a_pipeline_prints_the_fields_of_gofers_config_json():
    pipeline = build_pipeline()
    config = pipeline.to_dict()
    assert pipeline.validate() == []
    assert config["parallelism"] == 2 and config["parallelism_mode"] == "cancel_oldest"
    compile_, test, notify = config["tasks"]
    assert compile_ == {
        "id": "compile",
        "image": "golang:1.22",
        "command": ["/bin/sh", "-c", "go build ./...\n"],
        "timeout": 1200,
        "cpu": 1.5,
        "memory": 512,
    }
    assert test["variables"] == {"goflags": "-count=1", "API_KEY": "pipeline_secret{{api_key}}"}
    assert test["depends_on"] == {"compile": "Success"}
    assert test["registry_auth"] == {"user": "bot", "pass": "pw"}
    assert test["inject_api_token"] is True and test["always_pull_newest_image"] is True
    assert notify["depends_on"] == {"test": "Any", "compile": "Failure"}  # Gofer's spelling, whatever the input's
    assert json.loads(pipeline.to_json()) == config
    with pytest.raises(gofer_sdk.ConfigError) as invalid:
        Pipeline("x", "X").to_json()
    assert [e.field for e in invalid.value.errors] == ["config.id", "config.tasks"]


def test_finish_prints_the_config_as_one_line_of_json_and_an_invalid_pipeline_exits_2(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(
        textwrap.dedent("""
        from gofer_sdk import Pipeline, Task
        print("noise before the config: gofer up reads the last line")
        Pipeline("hello", "Hello").tasks(Task("greet", "busybox").command("echo", "hi")).finish()
    """)
    )
    done = subprocess.run([sys.executable, str(good)], capture_output=True, text=True, check=True, timeout=60)
    last = done.stdout.splitlines()[-1]
    assert json.loads(last) == {
        "id": "hello",
        "name": "Hello",
        "tasks": [{"id": "greet", "image": "busybox", "command": ["echo", "hi"]}],
    }
    bad = tmp_path / "bad.py"
    bad.write_text("from gofer_sdk import Pipeline\nPipeline('hello', 'Hello').finish()\n")
    failed = subprocess.run([sys.executable, str(bad)], capture_output=True, text=True, check=False, timeout=60)
    assert failed.returncode == 2 and failed.stdout == ""
    assert "invalid pipeline: config.tasks: required: a list of at least one task" in failed.stderr


def test_interpolation_wrappers_spell_gofers_references():
    assert gofer_sdk.pipeline_secret("db.password") == "pipeline_secret{{db.password}}"
    assert gofer_sdk.global_secret("registry") == "global_secret{{registry}}"
    assert gofer_sdk.pipeline_object("cache") == "pipeline_object{{cache}}"
    assert gofer_sdk.run_object("report") == "run_object{{report}}"
    with pytest.raises(ValueError):
        gofer_sdk.pipeline_secret("")
    with pytest.raises(ValueError):
        gofer_sdk.run_object("a}}b")


def test_script_dedents_a_multi_line_script_for_a_posix_shell():
    assert script("""
        set -e
        echo one
    """) == ["/bin/sh", "-c", "set -e\necho one\n"]
    assert script("echo hi", "/bin/bash")[0] == "/bin/bash"


def test_timeouts_take_seconds_minutes_hours_or_a_timedelta():
    import datetime as dt

    assert Task("a", "i").timeout(600).to_dict()["timeout"] == 600
    assert Task("a", "i").timeout(hours=1, minutes=30).to_dict()["timeout"] == 5400
    assert Task("a", "i").timeout(dt.timedelta(minutes=7)).to_dict()["timeout"] == 420


def test_every_public_sdk_name_has_a_docstring():
    missing = []
    for name in gofer_sdk.__all__:
        obj = getattr(gofer_sdk, name)
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") and (attr != "__init__" or dataclasses.is_dataclass(obj)):
                    continue  # a dataclass's generated __init__ is documented by its fields
                if callable(member) and not (member.__doc__ or "").strip():
                    missing.append(f"{name}.{attr}")
    assert missing == []
