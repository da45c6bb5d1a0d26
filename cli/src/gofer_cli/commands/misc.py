"""``gofer up``, ``gofer context`` and ``gofer completion``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.text import Text

from gofer_cli import config as settings_module
from gofer_cli import up as up_logic
from gofer_cli.client import Client, path
from gofer_cli.commands.base import GoferCommand, gofer_command, state
from gofer_cli.errors import ApiError, CliError, ExitCode


def register_commands(root: click.Group) -> None:
    root.add_command(up)
    root.add_command(context)
    root.add_command(completion)


def _print_diff(lines: list[str]) -> None:
    out = state().out
    for line in lines:
        if out.plain:
            out.line(line)
            continue
        style = (
            "green"
            if line.startswith("+")
            else "red"
            if line.startswith("-")
            else "cyan"
            if line.startswith("@@")
            else ""
        )
        if line.startswith(("+++", "---")):
            style = "bold"
        out.print(Text(line, style=style))


@gofer_command(None, "up")
@click.argument("target", metavar="PATH", type=click.Path(path_type=Path), default=Path("."), required=False)
@click.option("--deploy/--no-deploy", default=True, show_default=True, help="Deploy the registered version.")
@click.option("--force", is_flag=True, help="Register even when identical to the latest version.")
def up(target: Path, deploy: bool, force: bool) -> int:
    """Register a pipeline from a file (Python SDK, JSON, TOML or YAML) and deploy it.

    PATH is a pipeline file, or a directory holding one (gofer.py, pipeline.py, gofer.json, gofer.toml,
    gofer.yaml, ...; default: the current directory). A Python file is run with this CLI's own interpreter, so
    gofer_sdk is importable, and must print its config (Pipeline(...).finish() does). The config is checked with
    the server's rules, compared with the live version (the diff is shown), registered as a new version and
    deployed unless --no-deploy. A config identical to the latest version is not registered again (exit 0); that
    version is deployed if it is not live yet.

    JSON: {"pipeline_id", "file", "format", "registered": bool, "version", "identical_to", "deployed": bool,
    "diff": [lines], "pipeline": <register response or null>, "deployment": <deploy response or null>}.

    \b
    Examples:
      gofer up ./gofer.py
      gofer up pipelines/build.yaml --no-deploy
    """
    st = state()
    out = st.out
    file = up_logic.find_pipeline_file(target)
    config, kind = up_logic.load_config(file)
    up_logic.check_locally(config)
    pipeline_id = str(config["id"])
    namespace = st.namespace
    remote = up_logic.remote_configs(st.client, namespace, pipeline_id)
    new = up_logic.canonical(config)
    live = up_logic.canonical(remote.live) if remote.live else None
    live_label = f"{pipeline_id} v{remote.live['version']} (live)" if remote.live else f"{pipeline_id} (not live)"
    diff = up_logic.diff(live, new, live_label, str(file))
    result: dict[str, Any] = {
        "pipeline_id": pipeline_id,
        "namespace_id": namespace,
        "file": str(file),
        "format": kind,
        "registered": False,
        "version": None,
        "identical_to": None,
        "deployed": False,
        "diff": diff,
        "pipeline": None,
        "deployment": None,
    }
    if not out.json:
        if diff:
            _print_diff(diff)
        elif remote.live:
            out.info(f"No difference with the live version {remote.live['version']}.")
    if up_logic.has_registry_auth(config):
        out.warn(
            "registry passwords are not compared (the server never returns them); use --force to register a change"
        )
    latest = up_logic.canonical(remote.latest) if remote.latest else None
    version: int
    if latest is not None and latest == new and not force:
        version = int(remote.latest["version"])  # type: ignore[index]
        result["identical_to"] = version
        result["version"] = version
        out.info(
            f"Not registered: the config is identical to version {version}, the latest (--force registers it anyway)."
        )
        if not deploy or remote.latest.get("state") == "live":  # type: ignore[union-attr]
            out.document(result)
            return ExitCode.OK
    else:
        body = st.client.post(path("namespaces", namespace, "pipelines", pipeline_id, "configs"), {"config": config})
        version = int(body["pipeline"]["config"]["version"])
        result.update(registered=True, version=version, pipeline=body["pipeline"])
        out.info(f"Registered {pipeline_id} version {version}.")
    if deploy:
        deployment = st.client.mutate(
            "POST", path("namespaces", namespace, "pipelines", pipeline_id, "configs", version)
        )
        result.update(deployed=deployment.changed, deployment=deployment.body.get("deployment"))
        out.info(
            f"Deployed version {version}: new runs use it."
            if deployment.changed
            else deployment.message or "Already live."
        )
    else:
        out.hint(f"deploy it with: gofer pipeline config deploy {pipeline_id} {version}")
    out.document(result)
    return ExitCode.OK


@gofer_command(None, "context")
@click.option("--show-token", is_flag=True, help="Print the whole token instead of its first characters.")
def context(show_token: bool) -> None:
    """Show the settings in effect, where each comes from, and what the server says about them.

    Sources are, from weakest to strongest: default, ~/.gofer.toml, ~/.config/gofer/config.toml, environment
    (GOFER_API_BASE_URL, GOFER_TOKEN, GOFER_NAMESPACE), flags. The server part (its version, your token) is
    filled in when the server can be reached; context itself never fails because of the server.

    JSON: {"settings": {KEY: {"value", "source"}}, "config_files": [...], "server": {...}|null,
    "server_error": str|null, "token": <whoami>|null, "token_error": str|null}.

    \b
    Example:
      gofer context
    """
    st = state()
    out = st.out
    settings = st.settings
    values: dict[str, dict[str, Any]] = {}
    for key in settings_module.KEYS:
        value = settings.get(key)
        shown = value.value
        if key == "token" and shown and not show_token:
            shown = shown[:4] + "…"
        values[key] = {"value": shown, "source": value.source}
    doc: dict[str, Any] = {
        "settings": values,
        "config_files": list(settings.files_read),
        "server": None,
        "server_error": None,
        "token": None,
        "token_error": None,
    }
    client: Client = st.client
    try:
        doc["server"] = client.get("/system/metadata")
    except CliError as error:
        doc["server_error"] = error.message
    if settings.token.value and doc["server"] is not None:
        try:
            doc["token"] = client.get("/tokens/whoami").get("token")
        except ApiError as error:
            doc["token_error"] = f"{error.error_code}: {error.api_message}"

    def human() -> None:
        rows = [
            (
                key,
                values[key]["value"],
                Text.assemble(str(values[key]["value"] or "-"), (f"  ({values[key]['source']})", "dim")),
            )
            for key in settings_module.KEYS
        ]
        out.pairs(rows)
        server = doc["server"]
        if server is not None:
            out.pairs([("server", server, f"Gofer {server.get('semver')} {server.get('commit') or ''}".strip())])
        else:
            out.pairs([("server", None, Text(f"unreachable: {doc['server_error']}", style="red"))])
        if doc["token"]:
            who = doc["token"]
            out.pairs(
                [
                    (
                        "token user",
                        who.get("user"),
                        f"{who.get('user')} ({who.get('kind')}; roles: {', '.join(who.get('roles') or [])})",
                    )
                ]
            )
        elif doc["token_error"]:
            out.pairs([("token user", None, Text(doc["token_error"], style="red"))])
        if not settings.files_read:
            out.hint("no config file; gofer namespace set ID creates ~/.config/gofer/config.toml")

    out.document(doc, human=human)


@click.command(cls=GoferCommand)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    Examples:
      eval "$(gofer completion bash)"        # in ~/.bashrc
      gofer completion fish > ~/.config/fish/completions/gofer.fish
    """
    from click.shell_completion import get_completion_class

    ctx = click.get_current_context()
    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - Choice prevents it
        raise click.UsageError(f"unsupported shell {shell}")
    completer = cls(ctx.find_root().command, {}, "gofer", "_GOFER_COMPLETE")
    click.echo(completer.source())
