"""The CLI's documentation: generated pages match its help, every command's help has an example, the command tree
is Gofer's, and the package never imports Django."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import click

from gofer_cli.commands import cli

REPO = Path(__file__).resolve().parents[2]
GEN_DOCS = REPO / "cli" / "scripts" / "gen_docs.py"

# The tree (Gofer's, plus the roadmap's additions).
TREE = {
    "namespace": {"list", "get", "create", "update", "delete", "set"},
    "pipeline": {
        "list",
        "get",
        "run",
        "enable",
        "disable",
        "delete",
        "subscribe",
        "unsubscribe",
        "config",
        "deployment",
        "object",
        "secret",
    },
    "pipeline config": {"list", "get", "delete", "deploy"},
    "pipeline deployment": {"list", "get"},
    "pipeline object": {"list", "get", "put", "delete"},
    "pipeline secret": {"list", "get", "put", "delete"},
    "run": {"list", "get", "start", "cancel", "watch", "logs", "object"},
    "run object": {"list", "get", "put", "delete"},
    "task": {"list", "get", "attach", "cancel", "logs"},
    "secret global": {"list", "get", "put", "delete"},
    "extension": {"list", "get", "install", "uninstall", "enable", "disable", "logs", "debug"},
    "event": {"list", "get"},
    "token": {"list", "get", "create", "bootstrap", "enable", "disable", "whoami", "delete"},
    "role": {"list", "get", "create", "update", "delete"},
    "system": {"get", "update"},
}


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_docs", GEN_DOCS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _commands(command: click.Command, path: str = "gofer"):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, f"{path} {name}")


def test_generated_cli_docs_are_up_to_date():
    stale = _load_generator().stale()
    assert stale == [], f"docs/cli is stale ({', '.join(stale)}): run .venv/bin/python cli/scripts/gen_docs.py"


def test_the_command_tree_has_every_command_of_gofers_tree():
    groups = dict(_commands(cli))
    for group, names in TREE.items():
        command = groups[f"gofer {group}"]
        assert isinstance(command, click.Group), group
        assert names <= set(command.commands), f"gofer {group} lacks {sorted(names - set(command.commands))}"
    assert {"up", "context", "completion"} <= set(cli.commands)
    # pipeline run and run start are the same command.
    assert groups["gofer pipeline run"] is groups["gofer run start"]


def test_every_command_help_has_an_example_and_every_leaf_takes_the_global_options():
    for path, command in _commands(cli):
        ctx = click.Context(command, info_name=path)
        assert "Example" in command.get_help(ctx), f"{path} --help has no example"
        if not isinstance(command, click.Group) and path != "gofer completion":
            names = {p.name for p in command.params}
            assert {"namespace", "output_format", "api_base_url", "token"} <= names, path


def test_every_list_command_takes_the_pagination_flags():
    for path, command in _commands(cli):
        if path.endswith(" list"):
            names = {p.name for p in command.params}
            assert {"limit", "offset", "reverse", "everything"} <= names, path


def test_the_cli_package_never_imports_django_or_the_server():
    server_packages = {
        "django",
        "rest_framework",
        "channels",
        "access",
        "apiv0",
        "events",
        "pipelines",
        "runs",
        "secretstore",
        "objectstore",
        "gofer_site",
        "tests",
    }
    offenders = []
    for file in (REPO / "cli").rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{file.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in server_packages]
    assert offenders == []


def test_completion_scripts_are_printed_for_bash_zsh_and_fish():
    import subprocess
    import sys

    for shell in ("bash", "zsh", "fish"):
        done = subprocess.run(
            [sys.executable, "-m", "gofer_cli", "completion", shell],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "_GOFER_COMPLETE" in done.stdout, shell
    env_done = subprocess.run(
        [sys.executable, "-m", "gofer_cli"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "_GOFER_COMPLETE": "bash_complete",
            "COMP_WORDS": "gofer pipeline con",
            "COMP_CWORD": "2",
            "PATH": "/usr/bin:/bin",
        },
        check=False,
    )
    assert "config" in env_done.stdout
