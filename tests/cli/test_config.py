"""Where settings come from: defaults < ~/.gofer.toml < ~/.config/gofer/config.toml < environment < flags.

These tests need no server: ``gofer context`` reports what is in effect even when the server cannot be reached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import free_port


def gofer(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GOFER_")}
    base.update({"HOME": str(home), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "gofer_cli", *args], env=base, capture_output=True, text=True, timeout=60, check=False
    )


def context(home: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    result = gofer(home, "context", "--output", "json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_without_any_configuration_the_defaults_apply(home):
    doc = context(home)
    assert doc["settings"] == {
        "api_base_url": {"value": "http://127.0.0.1:8080", "source": "default"},
        "token": {"value": None, "source": "default"},
        "namespace": {"value": "default", "source": "default"},
        "output_format": {"value": "json", "source": "flag --output"},
    }
    assert doc["config_files"] == []


def test_config_precedence_is_file_then_env_then_flag(home):
    dead = f"http://127.0.0.1:{free_port()}"
    gofers = write(
        home / ".gofer.toml",
        f'api_base_url = "{dead}"\ntoken = "from-gofer-file"\nnamespace = "gofer-ns"\ndetail = true\n',
    )
    ours = write(home / ".config" / "gofer" / "config.toml", 'namespace = "our-ns"\n')
    doc = context(home)
    settings = doc["settings"]
    assert settings["api_base_url"] == {"value": dead, "source": str(gofers)}
    assert settings["token"] == {"value": "from…", "source": str(gofers)}  # shown shortened
    assert settings["namespace"] == {"value": "our-ns", "source": str(ours)}  # our file over Gofer's
    assert doc["config_files"] == [str(gofers), str(ours)]
    assert doc["server"] is None and "could not reach" in doc["server_error"]

    env = {"GOFER_NAMESPACE": "env-ns", "GOFER_TOKEN": "from-env-token"}
    settings = context(home, env=env)["settings"]
    assert settings["namespace"] == {"value": "env-ns", "source": "env GOFER_NAMESPACE"}
    assert settings["token"]["source"] == "env GOFER_TOKEN"

    settings = context(home, "--namespace", "flag-ns", "--show-token", env=env)["settings"]
    assert settings["namespace"] == {"value": "flag-ns", "source": "flag --namespace"}
    assert settings["token"] == {"value": "from-env-token", "source": "env GOFER_TOKEN"}
    # A flag given before the command counts the same as after it.
    assert context(home, env=env)["settings"]["namespace"]["value"] == "env-ns"
    result = gofer(home, "--namespace", "root-flag", "context", "-o", "json", env=env)
    assert json.loads(result.stdout)["settings"]["namespace"]["source"] == "flag --namespace"


def test_output_format_from_the_config_file_turns_json_on(home):
    write(home / ".config" / "gofer" / "config.toml", 'output_format = "json"\napi_base_url = "http://127.0.0.1:9"\n')
    result = gofer(home, "context")
    assert json.loads(result.stdout)["settings"]["output_format"]["source"].endswith("config.toml")
    human = gofer(home, "context", "-o", "human")
    assert "api_base_url" in human.stdout and not human.stdout.startswith("{")


def test_inside_a_task_container_the_namespace_comes_from_the_injected_variables(home):
    env = {"GOFER_API_BASE_URL": "http://127.0.0.1:9", "GOFER_TOKEN": "run-token", "GOFER_NAMESPACE_ID": "team-a"}
    settings = context(home, env=env)["settings"]
    assert settings["namespace"] == {"value": "team-a", "source": "env GOFER_NAMESPACE_ID"}
    assert settings["api_base_url"]["source"] == "env GOFER_API_BASE_URL"
    assert context(home, env={**env, "GOFER_NAMESPACE": "other"})["settings"]["namespace"]["value"] == "other"


def test_a_broken_config_file_is_a_usage_error_naming_the_file(home):
    path = write(home / ".config" / "gofer" / "config.toml", "namespace = \n")
    result = gofer(home, "namespace", "list")
    assert result.returncode == 2
    assert str(path) in result.stderr and "not valid TOML" in result.stderr
    write(home / ".config" / "gofer" / "config.toml", 'output_format = "yaml"\n')
    assert gofer(home, "namespace", "list").returncode == 2


def test_namespace_set_without_check_writes_a_private_config_file_keeping_other_keys(home):
    path = write(home / ".config" / "gofer" / "config.toml", 'token = "keep-me"\n')
    result = gofer(home, "namespace", "set", "team-b", "--no-check")
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    assert 'namespace = "team-b"' in text and 'token = "keep-me"' in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert context(home)["settings"]["namespace"] == {"value": "team-b", "source": str(path)}
