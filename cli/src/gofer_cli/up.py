"""``gofer up``: read a pipeline file, compare it with what the server has, register it and deploy it.

A pipeline file is Python (run with the CLI's own interpreter; it prints its config with
``gofer_sdk.Pipeline(...).finish()``), JSON, TOML or YAML (the same fields as the JSON). A directory is searched for
one of ``CANDIDATES``. Comparisons use a canonical form of both sides, normalised as the server normalises a config
(defaults filled in, variable names upper-cased, ``depends_on`` in lower case...), so a config that only differs in
spelling is recognised as identical. Registry passwords are never returned by the server and cannot be compared.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from gofer_cli.client import Client, path
from gofer_cli.errors import ApiError, UsageError
from gofer_sdk.validation import DEFAULT_TASK_TIMEOUT, validate_config

#: The files a directory is searched for, in this order; exactly one may exist.
CANDIDATES = (
    "gofer.py",
    "pipeline.py",
    "gofer.json",
    "pipeline.json",
    "gofer.toml",
    "pipeline.toml",
    "gofer.yaml",
    "gofer.yml",
    "pipeline.yaml",
    "pipeline.yml",
)
SUFFIXES = {".py": "python", ".json": "json", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}
PYTHON_TIMEOUT = 120
REDACTED = "[redacted]"
Json = dict[str, Any]


def find_pipeline_file(target: Path) -> Path:
    """``target`` itself when it is a file; for a directory, its one pipeline file (see ``CANDIDATES``)."""
    if not target.exists():
        raise UsageError(f"{target}: no such file or directory")
    if target.is_file():
        if target.suffix.lower() not in SUFFIXES:
            raise UsageError(
                f"{target}: not a pipeline file", hint="pipeline files end in .py, .json, .toml, .yaml or .yml"
            )
        return target
    found = [target / name for name in CANDIDATES if (target / name).is_file()]
    if not found:
        raise UsageError(
            f"{target}: no pipeline file here",
            hint=f"looked for {', '.join(CANDIDATES)}; or name the file: gofer up FILE",
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise UsageError(f"{target}: several pipeline files ({names})", hint="name the one to use: gofer up FILE")
    return found[0]


def load_config(file: Path) -> tuple[Json, str]:
    """The config a pipeline file describes, and its format (``python``, ``json``, ``toml``, ``yaml``)."""
    kind = SUFFIXES[file.suffix.lower()]
    try:
        if kind == "python":
            return _run_python(file), kind
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{file}: cannot be read: {exc.strerror}") from None
    try:
        if kind == "json":
            data = json.loads(text)
        elif kind == "toml":
            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{file}: not valid {kind.upper()}: {exc}") from None
    except Exception as exc:  # yaml.YAMLError and its subclasses
        raise UsageError(f"{file}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and set(data) == {"config"}:
        data = data["config"]  # a saved RegisterPipelineConfigRequest body works too
    if not isinstance(data, dict):
        raise UsageError(f"{file}: must describe one pipeline (an object), not a {type(data).__name__}")
    return data, kind


def _run_python(file: Path) -> Json:
    """Run a Python pipeline file with this interpreter (so ``gofer_sdk`` is importable) and read its JSON."""
    env = dict(os.environ)
    # The file's own directory first, so it can import helpers that sit beside it.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(file.parent.resolve()), env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(  # noqa: S603 - the user's own pipeline file, run as they asked
            [sys.executable, str(file.resolve())],
            cwd=file.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=PYTHON_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UsageError(f"{file}: did not finish within {PYTHON_TIMEOUT} s") from None
    if done.returncode != 0:
        detail = done.stderr.strip()[-2000:] or "(nothing on stderr)"
        raise UsageError(f"{file}: exited with status {done.returncode}:\n{detail}")
    return _parse_printed_config(done.stdout, file)


def _parse_printed_config(stdout: str, file: Path) -> Json:
    text = stdout.strip()
    candidates = [text] + [line for line in reversed(text.splitlines()) if line.strip().startswith("{")]
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    raise UsageError(
        f"{file}: printed no pipeline config",
        hint="end the file with Pipeline(...).finish(), which prints the config as JSON",
    )


# --- canonical form and diff ------------------------------------------------------------------------------------


def _argv(value: Any) -> list[str] | None:
    return list(value) if value else None


def _variables(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        items = value.items()
    else:
        items = ((v.get("key"), v.get("value")) for v in value or [] if isinstance(v, dict))
    return {str(k).upper(): v for k, v in items}


def _cpu(value: Any) -> float | None:
    if value is None:
        return None
    return float(Decimal(str(value)).quantize(Decimal("0.001")))


def canonical_task(task: Json) -> Json:
    """A task as the server stores it: defaults filled in, names upper-cased, passwords hidden."""
    auth = task.get("registry_auth")
    return {
        "id": task.get("id"),
        "image": task.get("image"),
        "description": task.get("description") or "",
        "command": _argv(task.get("command")),
        "entrypoint": _argv(task.get("entrypoint")),
        "depends_on": {str(k): str(v).lower() for k, v in (task.get("depends_on") or {}).items()},
        "variables": _variables(task.get("variables")),
        "registry_auth": {"user": auth.get("user"), "pass": REDACTED} if auth else None,
        "inject_api_token": bool(task.get("inject_api_token", False)),
        "always_pull_newest_image": bool(task.get("always_pull_newest_image", False)),
        "timeout": task.get("timeout") or DEFAULT_TASK_TIMEOUT,
        "cpu": _cpu(task.get("cpu")),
        "memory": task.get("memory"),
        "logging": task.get("logging", True) is not False,
    }


def canonical(config: Json) -> Json:
    """A config, submitted (SDK JSON) or returned by the API (``GET .../configs/{v}``), in one comparable form."""
    tasks = config.get("tasks") or []
    task_list = list(tasks.values()) if isinstance(tasks, dict) else list(tasks)
    return {
        "id": config.get("id") or config.get("pipeline_id"),
        "name": config.get("name"),
        "description": config.get("description") or "",
        "parallelism": config.get("parallelism") or 0,
        "parallelism_mode": config.get("parallelism_mode") or "queue",
        "logging": config.get("logging", True) is not False,
        "tasks": {str(t.get("id")): canonical_task(t) for t in sorted(task_list, key=lambda t: str(t.get("id")))},
    }


DEFAULTS: Json = {
    "description": "",
    "parallelism": 0,
    "parallelism_mode": "queue",
    "logging": True,
    "command": None,
    "entrypoint": None,
    "depends_on": {},
    "variables": {},
    "registry_auth": None,
    "inject_api_token": False,
    "always_pull_newest_image": False,
    "timeout": DEFAULT_TASK_TIMEOUT,
    "cpu": None,
    "memory": None,
}


def render(config: Json | None) -> list[str]:
    """A canonical config as diffable lines, one field per line (``tasks.build.image: "golang:1.22"``), sorted,
    fields at their default value left out: a change reads as the one line that changed."""
    if config is None:
        return []
    lines = []
    for key in sorted(k for k in config if k != "tasks"):
        if key in DEFAULTS and config[key] == DEFAULTS[key]:
            continue
        lines.append(f"{key}: {json.dumps(config[key], sort_keys=True)}")
    for task_id in sorted(config.get("tasks") or {}):
        task = config["tasks"][task_id]
        for key in sorted(k for k in task if k != "id"):
            if key in DEFAULTS and task[key] == DEFAULTS[key]:
                continue
            lines.append(f"tasks.{task_id}.{key}: {json.dumps(task[key], sort_keys=True)}")
    return lines


def diff(old: Json | None, new: Json, old_label: str, new_label: str) -> list[str]:
    """A unified diff (lines without newlines) from ``old`` to ``new``, both canonical; empty when identical."""
    return list(difflib.unified_diff(render(old), render(new), old_label, new_label, lineterm=""))


def has_registry_auth(config: Json) -> bool:
    tasks = config.get("tasks") or []
    return any(
        isinstance(t, dict) and t.get("registry_auth") for t in (tasks.values() if isinstance(tasks, dict) else tasks)
    )


# --- what the server has ----------------------------------------------------------------------------------------


@dataclass
class Remote:
    """The pipeline's configs on the server: the live one and the latest registered one (None when absent)."""

    live: Json | None
    latest: Json | None


def configs_path(namespace: str, pipeline: str, *rest: object) -> str:
    return path("namespaces", namespace, "pipelines", pipeline, "configs", *rest)


def remote_configs(client: Client, namespace: str, pipeline: str) -> Remote:
    """The live and latest configs of the pipeline; both None when the pipeline does not exist yet.

    A missing namespace is an error (``up`` never creates namespaces).
    """
    try:
        latest = client.get(configs_path(namespace, pipeline, 0)).get("config")
    except ApiError as error:
        if error.status == 404 and any(e.get("field") == "pipeline_id" for e in error.errors):
            return Remote(None, None)
        raise
    live = latest if latest and latest.get("state") == "live" else None
    if live is None:
        live = client.find(configs_path(namespace, pipeline), "configs", lambda c: c.get("state") == "live")
    return Remote(live, latest)


def check_locally(config: Json) -> None:
    """Raise UsageError listing every fault the server would report for ``config``."""
    errors = validate_config(config)
    if errors:
        listed = "\n".join(f"  {e.field}: {e.message}" for e in errors)
        raise UsageError(f"the pipeline config is invalid:\n{listed}")
