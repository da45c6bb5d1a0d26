"""Where the CLI's settings come from: defaults < config files < environment < flags, each value with its source.

Files (TOML, Gofer's keys ``api_base_url``, ``token``, ``namespace``, ``output_format``; other keys are ignored, so
a Gofer ``~/.gofer.toml`` works as it is):

1. ``~/.gofer.toml``, Gofer's file, read if it exists;
2. ``~/.config/gofer/config.toml``, ours, read over it; ``gofer namespace set`` writes here.

Environment: ``GOFER_API_BASE_URL``, ``GOFER_TOKEN``, ``GOFER_NAMESPACE``, ``GOFER_OUTPUT_FORMAT``. Inside a task
container Gofer injects ``GOFER_API_BASE_URL``, ``GOFER_TOKEN`` (with ``inject_api_token``) and
``GOFER_NAMESPACE_ID``; the last is used as the namespace when ``GOFER_NAMESPACE`` is not set, since a task's token
only reaches its own namespace. Flags (``--api-base-url``, ``--token``, ``--namespace``, ``--output``) override all.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gofer_cli.errors import UsageError

DEFAULT_API_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_NAMESPACE = "default"
DEFAULT_OUTPUT_FORMAT = "human"
OUTPUT_FORMATS = ("human", "plain", "json")
KEYS = ("api_base_url", "token", "namespace", "output_format")
ENV = {
    "api_base_url": "GOFER_API_BASE_URL",
    "token": "GOFER_TOKEN",
    "namespace": "GOFER_NAMESPACE",
    "output_format": "GOFER_OUTPUT_FORMAT",
}
FLAGS = {
    "api_base_url": "--api-base-url",
    "token": "--token",
    "namespace": "--namespace",
    "output_format": "--output",
}
# Set by Gofer in every task container; the namespace of the run the task belongs to.
TASK_NAMESPACE_ENV = "GOFER_NAMESPACE_ID"


@dataclass(frozen=True)
class Value:
    """One setting's value and where it came from (``flag --token``, ``env GOFER_TOKEN``, a file path, ``default``)."""

    value: str | None
    source: str


@dataclass(frozen=True)
class Settings:
    """The settings in effect. Every value is a ``Value`` carrying its source, for ``gofer context`` and hints."""

    api_base_url: Value
    token: Value
    namespace: Value
    output_format: Value
    files_read: tuple[str, ...]

    def get(self, key: str) -> Value:
        return getattr(self, key)


def config_paths(home: Path) -> tuple[Path, Path]:
    """Gofer's ``~/.gofer.toml`` and ours, ``~/.config/gofer/config.toml``, in the order they are read."""
    return home / ".gofer.toml", home / ".config" / "gofer" / "config.toml"


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("HOME") or Path.home())


def read_file(path: Path) -> dict[str, Any]:
    """The TOML table in ``path`` (``{}`` when the file does not exist); a broken file is a usage error naming it."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}", hint="fix or remove the file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror}") from None


def load(flags: Mapping[str, str | None], env: Mapping[str, str] | None = None, home: Path | None = None) -> Settings:
    """Resolve every setting: flag, else environment, else our file, else Gofer's file, else the default.

    Guarantees a value for ``api_base_url``, ``namespace`` and ``output_format``; ``token`` may be None (anonymous).
    Raises UsageError for a broken config file or an unknown output format.
    """
    env = os.environ if env is None else env
    home = home or home_dir(env)
    layers: list[tuple[str, dict[str, Any]]] = []
    files_read = []
    for path in config_paths(home):
        table = read_file(path)
        if path.exists():
            files_read.append(str(path))
        layers.append((str(path), table))
    resolved: dict[str, Value] = {}
    for key in KEYS:
        value = Value(None, "default")
        for source, table in layers:  # later files override earlier ones
            raw = table.get(key)
            if raw is not None and raw != "":
                if not isinstance(raw, str):
                    raise UsageError(f"{source}: {key} must be a string, not {type(raw).__name__}")
                value = Value(raw, source)
        if key == "namespace" and env.get(TASK_NAMESPACE_ENV):
            value = Value(env[TASK_NAMESPACE_ENV], f"env {TASK_NAMESPACE_ENV}")
        if env.get(ENV[key]):
            value = Value(env[ENV[key]], f"env {ENV[key]}")
        if flags.get(key) not in (None, ""):
            value = Value(str(flags[key]), f"flag {FLAGS[key]}")
        resolved[key] = value
    if resolved["api_base_url"].value is None:
        resolved["api_base_url"] = Value(DEFAULT_API_BASE_URL, "default")
    if resolved["namespace"].value is None:
        resolved["namespace"] = Value(DEFAULT_NAMESPACE, "default")
    output = resolved["output_format"]
    if output.value is None:
        resolved["output_format"] = Value(DEFAULT_OUTPUT_FORMAT, "default")
    elif output.value not in OUTPUT_FORMATS:
        raise UsageError(
            f"output format {output.value!r} (from {output.source}) is not one of {', '.join(OUTPUT_FORMATS)}"
        )
    return Settings(**resolved, files_read=tuple(files_read))


def save(key: str, value: str, home: Path | None = None) -> Path:
    """Set ``key`` in ``~/.config/gofer/config.toml``, keeping the file's other keys; returns the file's path.

    The file is written whole to a temporary file and renamed, so a crash never leaves half a file; it is private
    (mode 0600) because it may hold a token.
    """
    import tomli_w

    if key not in KEYS:
        raise UsageError(f"unknown setting {key!r}; settings are {', '.join(KEYS)}")
    path = config_paths(home or home_dir())[1]
    table = read_file(path)
    table[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        tomli_w.dump(table, fh)
    os.replace(tmp, path)
    return path
