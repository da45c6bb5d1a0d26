"""Pipelines and tasks, built in Python and printed as the JSON config the Gofer API registers.

A pipeline file builds a ``Pipeline`` and ends with ``.finish()``, which validates it with the server's rules and
prints the config as one line of JSON on stdout; ``gofer up FILE`` runs the file and registers what it printed::

    from gofer_sdk import Pipeline, RequiredParentStatus, Task, pipeline_secret, script

    Pipeline("build", "Build").description("Compiles and tests").tasks(
        Task("compile", "golang:1.22").script('''
            go build ./...
            go vet ./...
        '''),
        Task("test", "golang:1.22")
        .command("go", "test", "./...")
        .variable("GOFLAGS", "-count=1")
        .variable("API_KEY", pipeline_secret("api_key"))
        .depends_on("compile", RequiredParentStatus.SUCCESS)
        .timeout(minutes=30),
    ).finish()
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import textwrap
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Self

from gofer_sdk.validation import ConfigError, FieldError, validate_config

__all__ = ["ParallelismMode", "Pipeline", "RequiredParentStatus", "Task", "script"]


class RequiredParentStatus(StrEnum):
    """What a task needs from a parent task before it runs (``depends_on``)."""

    #: The parent finished in any way but cancelled: successful, failed or skipped.
    ANY = "Any"
    #: The parent succeeded. A failed or skipped parent makes this task skipped.
    SUCCESS = "Success"
    #: The parent failed (for clean-up or alerting tasks).
    FAILURE = "Failure"


class ParallelismMode(StrEnum):
    """What a new run does when its pipeline already runs ``parallelism`` runs."""

    #: Wait in ``pending``, in the order runs were started (the default).
    QUEUE = "queue"
    #: Cancel the pipeline's oldest running run ("only the latest commit matters").
    CANCEL_OLDEST = "cancel_oldest"


def script(text: str, shell: str = "/bin/sh") -> list[str]:
    """A command that runs a multi-line shell script: ``[shell, "-c", text]``, ``text`` dedented and stripped.

    ``shell`` defaults to ``/bin/sh``, which every image with a shell has (Gofer's SDKs used ``bash``, which minimal
    images such as busybox or alpine lack). Example::

        Task("deploy", "alpine:3").command(*script('''
            set -eu
            echo "deploying $GOFER_RUN_ID"
            ./deploy.sh
        '''))
    """
    return [shell, "-c", textwrap.dedent(text).strip() + "\n"]


def _seconds(seconds: float | dt.timedelta | None, minutes: float, hours: float) -> int:
    total = 0.0
    if isinstance(seconds, dt.timedelta):
        total += seconds.total_seconds()
    elif seconds is not None:
        total += seconds
    total += minutes * 60 + hours * 3600
    return int(total)


class Task:
    """One task of a pipeline: a container image and what to run in it.

    Every setter returns the task, so a task is built in one expression. ``Task(id, image)`` is enough: without a
    command the image's own runs. Task ids are 1 to 64 letters, digits, ``-`` and ``_``, starting with a letter or
    digit.
    """

    def __init__(self, id: str, image: str) -> None:  # noqa: A002 - Gofer's field name
        """A task ``id`` running ``image`` (an image reference such as ``busybox:latest``)."""
        self.id = id
        self.image = image
        self._description: str | None = None
        self._registry_auth: dict[str, str] | None = None
        self._depends_on: dict[str, str] = {}
        self._variables: dict[str, str] = {}
        self._entrypoint: list[str] | None = None
        self._command: list[str] | None = None
        self._inject_api_token = False
        self._always_pull_newest_image = False
        self._timeout: int | None = None
        self._cpu: float | None = None
        self._memory: int | None = None
        self._logging: bool | None = None

    def description(self, text: str) -> Self:
        """What the task does, shown in the UI and the CLI."""
        self._description = text
        return self

    def command(self, *argv: str) -> Self:
        """The command (arguments after the entrypoint), as separate arguments: ``command("echo", "hi")``."""
        self._command = list(argv)
        return self

    def entrypoint(self, *argv: str) -> Self:
        """Replace the image's entrypoint."""
        self._entrypoint = list(argv)
        return self

    def script(self, text: str, shell: str = "/bin/sh") -> Self:
        """Run a multi-line shell script as the command (see ``gofer_sdk.script``)."""
        self._command = script(text, shell)
        return self

    def variable(self, key: str, value: str) -> Self:
        """Set the environment variable ``key`` (upper-cased by the server) to ``value``.

        ``value`` may be an interpolation reference such as ``pipeline_secret("token")``.
        """
        self._variables[key] = value
        return self

    def variables(self, values: Mapping[str, str]) -> Self:
        """Set several environment variables at once (see ``variable``)."""
        for key, value in values.items():
            self.variable(key, value)
        return self

    def depends_on(self, task_id: str, status: RequiredParentStatus | str = RequiredParentStatus.SUCCESS) -> Self:
        """Run this task only after ``task_id`` has finished with ``status`` (by default: succeeded)."""
        self._depends_on[task_id] = _status(status)
        return self

    def depends_on_many(self, parents: Mapping[str, RequiredParentStatus | str]) -> Self:
        """Several parents at once: ``depends_on_many({"build": RequiredParentStatus.SUCCESS, "lint": "Any"})``."""
        for task_id, status in parents.items():
            self.depends_on(task_id, status)
        return self

    def registry_auth(self, user: str, password: str) -> Self:
        """Credentials to pull the image from a private registry (stored encrypted; never returned by the API)."""
        self._registry_auth = {"user": user, "pass": password}
        return self

    def inject_api_token(self, inject: bool = True) -> Self:
        """Give the task ``GOFER_TOKEN``, a token limited to this run's pipeline, so it can call the API (and the
        ``gofer`` CLI works inside the container with no set-up)."""
        self._inject_api_token = inject
        return self

    def always_pull_newest_image(self, pull: bool = True) -> Self:
        """Pull the image before every run, even when a copy is cached."""
        self._always_pull_newest_image = pull
        return self

    def timeout(self, seconds: float | dt.timedelta | None = None, *, minutes: float = 0, hours: float = 0) -> Self:
        """Stop the task after this long: ``timeout(600)``, ``timeout(minutes=10)`` or a ``timedelta``.

        The server accepts 5 minutes to 8 hours; the default is 8 hours.
        """
        self._timeout = _seconds(seconds, minutes, hours)
        return self

    def cpu(self, cores: float) -> Self:
        """Limit the task to this many CPU cores (0.001 to 256; fractions allowed)."""
        self._cpu = cores
        return self

    def memory(self, mib: int) -> Self:
        """Limit the task's memory, in MiB (4 to 4194304)."""
        self._memory = mib
        return self

    def logging(self, enabled: bool) -> Self:
        """Store the task's logs (the default) or not (``False``: nothing the task prints is kept)."""
        self._logging = enabled
        return self

    def to_dict(self) -> dict[str, Any]:
        """The task as the API's config JSON has it. Fields left unset are left out (the server's defaults)."""
        out: dict[str, Any] = {"id": self.id, "image": self.image}
        optional = {
            "description": self._description,
            "registry_auth": self._registry_auth,
            "depends_on": dict(self._depends_on) or None,
            "variables": dict(self._variables) or None,
            "entrypoint": self._entrypoint,
            "command": self._command,
            "timeout": self._timeout,
            "cpu": self._cpu,
            "memory": self._memory,
            "logging": self._logging,
        }
        out.update({key: value for key, value in optional.items() if value is not None})
        if self._inject_api_token:
            out["inject_api_token"] = True
        if self._always_pull_newest_image:
            out["always_pull_newest_image"] = True
        return out

    def __repr__(self) -> str:
        return f"Task({self.id!r}, {self.image!r})"


def _status(status: RequiredParentStatus | str) -> str:
    """Gofer's spelling (``Success``) of a status given in any case; anything else is kept for validation to name."""
    if isinstance(status, RequiredParentStatus):
        return status.value
    for member in RequiredParentStatus:
        if isinstance(status, str) and status.lower() == member.value.lower():
            return member.value
    return status


class Pipeline:
    """A pipeline: an id, a name and a DAG of tasks. ``finish()`` validates it and prints its JSON config.

    Pipeline ids are 3 to 32 letters, digits and ``-`` (Gofer's identifier rule).
    """

    def __init__(self, id: str, name: str) -> None:  # noqa: A002 - Gofer's field name
        """A pipeline ``id`` with a human ``name`` (1 to 200 characters)."""
        self.id = id
        self.name = name
        self._description: str | None = None
        self._parallelism: int | None = None
        self._parallelism_mode: ParallelismMode | None = None
        self._logging: bool | None = None
        self._run_token_grants: list[dict[str, list[str]]] | None = None
        self._tasks: list[Task] = []

    def description(self, text: str) -> Self:
        """What the pipeline is for."""
        self._description = text
        return self

    def parallelism(self, runs: int, mode: ParallelismMode | str | None = None) -> Self:
        """At most ``runs`` runs of this pipeline at once (0: the server's default), and what a run over the limit
        does (``ParallelismMode.QUEUE``, the default, or ``ParallelismMode.CANCEL_OLDEST``)."""
        self._parallelism = runs
        if mode is not None:
            self._parallelism_mode = ParallelismMode(mode)
        return self

    def logging(self, enabled: bool) -> Self:
        """Store the logs of every task (the default), or of none (``False``)."""
        self._logging = enabled
        return self

    def run_token_grant(self, resources: Iterable[str], actions: Iterable[str]) -> Self:
        """Let the run token (``inject_api_token``) do more than read its pipeline's objects and use its own run's:
        e.g. ``run_token_grant(["runs"], ["write"])`` lets a task start runs of its own pipeline. The server allows
        configs, deployments, events, objects, runs and task_executions, and only what the registrant may do."""
        self._run_token_grants = [
            *(self._run_token_grants or []),
            {"resources": list(resources), "actions": list(actions)},
        ]
        return self

    def tasks(self, *tasks: Task | Iterable[Task]) -> Self:
        """Add tasks (or lists of tasks). Order does not matter to the server: ``depends_on`` decides it."""
        for item in tasks:
            if isinstance(item, Task):
                self._tasks.append(item)
            else:
                self._tasks.extend(item)
        return self

    def task(self, task: Task) -> Self:
        """Add one task."""
        self._tasks.append(task)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The config as the API's ``POST .../configs`` takes it in ``{"config": ...}``."""
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self._description is not None:
            out["description"] = self._description
        if self._parallelism is not None:
            out["parallelism"] = self._parallelism
        if self._parallelism_mode is not None:
            out["parallelism_mode"] = str(self._parallelism_mode)
        if self._logging is not None:
            out["logging"] = self._logging
        if self._run_token_grants is not None:
            out["run_token_grants"] = self._run_token_grants
        out["tasks"] = [task.to_dict() for task in self._tasks]
        return out

    def validate(self) -> list[FieldError]:
        """Every fault the server would report for this config (an empty list when it is valid)."""
        return validate_config(self.to_dict())

    def to_json(self, indent: int | None = None) -> str:
        """The config as JSON; raises ``ConfigError`` (with every fault) when the server would refuse it."""
        errors = self.validate()
        if errors:
            raise ConfigError(errors)
        return json.dumps(self.to_dict(), indent=indent, separators=None if indent else (",", ":"))

    def finish(self) -> None:
        """Validate the pipeline and print its config as one line of JSON on stdout (what ``gofer up`` reads).

        An invalid pipeline prints each fault on stderr and exits with status 2, printing nothing on stdout.
        """
        errors = self.validate()
        if errors:
            for error in errors:
                print(f"invalid pipeline: {error}", file=sys.stderr)
            raise SystemExit(2)
        sys.stdout.write(json.dumps(self.to_dict(), separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def __repr__(self) -> str:
        return f"Pipeline({self.id!r}, {self.name!r}, tasks={len(self._tasks)})"
