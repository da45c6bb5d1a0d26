"""Validation of a pipeline config, with the server's rules and the server's messages.

``validate_config`` takes a config as Gofer's SDKs print it (a JSON-like ``dict``) and returns every fault at once
(within a task, the order may differ from the server's), each with the path the server would name
(``config.tasks[2].depends_on.build``). The rules are those of the server's ``pipelines/validation.py`` and
``pipelines/taskspec.py``; when they disagree the server wins, so this module only exists to fail early, before a
request is made, and with the same words. One rule cannot be checked here: the upper bound of ``parallelism`` is
a server setting (``GOFER_MAX_PARALLELISM``, 100 by default), so only ``parallelism >= 0`` is checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "DEFAULT_TASK_TIMEOUT",
    "MAX_TASK_TIMEOUT",
    "MIN_TASK_TIMEOUT",
    "ConfigError",
    "FieldError",
    "check_identifier",
    "validate_config",
]

# Always used with fullmatch: with match, "$" also matches before a trailing newline ("team-a\n").
IDENTIFIER_RE = re.compile(r"^[A-Za-z0-9-]+$")
TASK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
VARIABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
IMAGE_RE = re.compile(r"^[^\s]{1,512}$")

#: A task's timeout when none is given: 8 hours, in seconds.
DEFAULT_TASK_TIMEOUT = 8 * 3600
#: The shortest task timeout the server accepts: 5 minutes, in seconds.
MIN_TASK_TIMEOUT = 300
#: The longest task timeout the server accepts: 8 hours, in seconds.
MAX_TASK_TIMEOUT = 8 * 3600
MAX_TASKS = 200
MAX_VARIABLES = 500
MAX_VARIABLE_VALUE = 64 * 1024
MAX_ARGV = 1000
MAX_CPU = Decimal(256)
MIN_MEMORY_MIB = 4
MAX_MEMORY_MIB = 4 * 1024 * 1024
REQUIRED_PARENT_STATUSES = ("any", "success", "failure")
PARALLELISM_MODES = ("queue", "cancel_oldest")

# run_token_grants is passed through: the server checks it against the registrant's own permissions.
PIPELINE_FIELDS = {
    "id",
    "name",
    "description",
    "parallelism",
    "parallelism_mode",
    "logging",
    "run_token_grants",
    "tasks",
}
TASK_FIELDS = {
    "id",
    "description",
    "image",
    "registry_auth",
    "depends_on",
    "variables",
    "entrypoint",
    "command",
    "inject_api_token",
    "always_pull_newest_image",
    "timeout",
    "cpu",
    "memory",
    "logging",
}


@dataclass(frozen=True)
class FieldError:
    """One fault of a config: ``field`` is a path into the config (``config.tasks[0].image``), as the API names it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ConfigError(ValueError):
    """A config that the server would refuse. ``errors`` lists every fault found, in the server's order."""

    def __init__(self, errors: list[FieldError]) -> None:
        """An error listing ``errors``; its message summarises the first five."""
        self.errors = list(errors)
        summary = "; ".join(str(e) for e in errors[:5])
        if len(errors) > 5:
            summary += f"; and {len(errors) - 5} more"
        super().__init__(summary)


def check_identifier(value: Any, field: str = "id", *, max_length: int = 32) -> list[FieldError]:
    """Gofer's identifier rule for namespace and pipeline ids: 3 to 32 letters, digits and ``-``.

    Returns the faults (none when ``value`` is valid), naming ``field``.
    """
    if not isinstance(value, str):
        return [FieldError(field, "must be a string")]
    if not 3 <= len(value) <= max_length:
        return [FieldError(field, f"must be 3 to {max_length} characters long")]
    if not IDENTIFIER_RE.fullmatch(value):
        return [FieldError(field, "may only contain letters, digits and '-'")]
    return []


class _Collector:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bool(value: Any, path: str, errors: _Collector) -> None:
    if value is not None and not isinstance(value, bool):
        errors.add(path, "must be true or false")


def _string(value: Any, path: str, errors: _Collector, *, max_length: int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        errors.add(path, "must be a string")
    elif len(value) > max_length:
        errors.add(path, f"must be at most {max_length} characters")


def _argv(value: Any, path: str, errors: _Collector) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        errors.add(path, "must be a list of strings")
    elif len(value) > MAX_ARGV:
        errors.add(path, f"must have at most {MAX_ARGV} items")


def _variables(value: Any, path: str, errors: _Collector) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, dict) or "key" not in item or "value" not in item:
                errors.add(f"{path}[{index}]", "must be an object with key and value")
                continue
            items.append((item["key"], item["value"]))
    else:
        errors.add(path, "must be an object of NAME: value")
        items = []
    if len(items) > MAX_VARIABLES:
        errors.add(path, f"at most {MAX_VARIABLES} variables")
    seen: dict[str, str] = {}
    for key, val in items:
        where = f"{path}.{key!s:.64}"
        if not isinstance(key, str) or not VARIABLE_NAME_RE.fullmatch(key):
            errors.add(where, "variable names are letters, digits and '_', not starting with a digit")
            continue
        if not isinstance(val, str):
            errors.add(where, "value must be a string")
            continue
        if len(val) > MAX_VARIABLE_VALUE:
            errors.add(where, f"value must be at most {MAX_VARIABLE_VALUE} bytes")
            continue
        upper = key.upper()
        if upper in seen:
            errors.add(where, f"duplicates {seen[upper]!r} (names are upper-cased)")
            continue
        seen[upper] = key


def _task(raw: Any, path: str, errors: _Collector) -> tuple[str, dict[str, str]] | None:
    """Check one task; returns its id (``""`` when invalid) and its depends_on, or None when it is not an object."""
    if not isinstance(raw, dict):
        errors.add(path, "must be an object")
        return None
    for unknown in sorted(set(raw) - TASK_FIELDS):
        errors.add(f"{path}.{unknown:.40}", "unknown field")
    # Checked field by field in the API's order (id, description, image, ...), as the server does.
    task_id = raw.get("id")
    if not isinstance(task_id, str) or not TASK_ID_RE.fullmatch(task_id):
        errors.add(f"{path}.id", "required: 1 to 64 letters, digits, '-' or '_', starting with a letter or digit")
        task_id = ""
    _string(raw.get("description"), f"{path}.description", errors, max_length=2000)
    image = raw.get("image")
    if not isinstance(image, str) or not IMAGE_RE.fullmatch(image):
        errors.add(f"{path}.image", "required: a container image reference without spaces (at most 512 characters)")
    registry_auth = raw.get("registry_auth")
    if registry_auth is not None and (
        not isinstance(registry_auth, dict)
        or not isinstance(registry_auth.get("user"), str)
        or not registry_auth.get("user")
        or not isinstance(registry_auth.get("pass"), str)
        or set(registry_auth) - {"user", "pass"}
    ):
        errors.add(f"{path}.registry_auth", "must be {user, pass} with a non-empty user")
    depends_on: dict[str, str] = {}
    raw_depends = raw.get("depends_on") or {}
    if not isinstance(raw_depends, dict):
        errors.add(f"{path}.depends_on", "must be an object of task id: Any | Success | Failure")
    else:
        for parent, requirement in raw_depends.items():
            normalised = requirement.lower() if isinstance(requirement, str) else None
            if normalised not in REQUIRED_PARENT_STATUSES:
                errors.add(f"{path}.depends_on.{parent!s:.64}", "must be Any, Success or Failure")
                continue
            depends_on[str(parent)] = normalised
    _variables(raw.get("variables"), f"{path}.variables", errors)
    _argv(raw.get("entrypoint"), f"{path}.entrypoint", errors)
    _argv(raw.get("command"), f"{path}.command", errors)
    _bool(raw.get("inject_api_token"), f"{path}.inject_api_token", errors)
    _bool(raw.get("always_pull_newest_image"), f"{path}.always_pull_newest_image", errors)
    timeout = raw.get("timeout")
    if timeout is not None and (not _is_int(timeout) or not MIN_TASK_TIMEOUT <= timeout <= MAX_TASK_TIMEOUT):
        errors.add(
            f"{path}.timeout", f"must be seconds between {MIN_TASK_TIMEOUT} (5 min) and {MAX_TASK_TIMEOUT} (8 h)"
        )
    cpu = raw.get("cpu")
    if cpu is not None:
        try:
            if isinstance(cpu, bool):
                raise InvalidOperation
            cores = Decimal(str(cpu)).quantize(Decimal("0.001"))
            if not Decimal("0.001") <= cores <= MAX_CPU:
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            errors.add(f"{path}.cpu", f"must be a number of CPU cores between 0.001 and {MAX_CPU}")
    memory = raw.get("memory")
    if memory is not None and (not _is_int(memory) or not MIN_MEMORY_MIB <= memory <= MAX_MEMORY_MIB):
        errors.add(f"{path}.memory", f"must be MiB between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB}")
    _bool(raw.get("logging"), f"{path}.logging", errors)
    return task_id, depends_on


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a list of task ids (first id repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for parent in graph.get(node, []):
            if parent not in graph:
                continue
            if state.get(parent) == 1:
                return [*stack[stack.index(parent) :], parent]
            if state.get(parent) is None:
                found = visit(parent)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for task_id in graph:
        if state.get(task_id) is None:
            found = visit(task_id)
            if found:
                return found
    return None


def validate_config(raw: Any, pipeline_id: str | None = None, path: str = "config") -> list[FieldError]:
    """Every fault the server would report for ``raw`` (empty when it would accept it), in the server's order.

    ``pipeline_id`` is the id in the request path, when known: the config's ``id`` must equal it.
    """
    errors = _Collector()
    if not isinstance(raw, dict):
        return [FieldError(path, "must be an object")]
    for unknown in sorted(set(raw) - PIPELINE_FIELDS):
        errors.add(f"{path}.{unknown:.40}", "unknown field")
    config_id = raw.get("id")
    id_errors = check_identifier(config_id, f"{path}.id")
    errors.errors.extend(id_errors)
    if not id_errors and pipeline_id is not None and config_id != pipeline_id:
        errors.add(f"{path}.id", f"{config_id!r} does not match the pipeline id in the path ({pipeline_id!r})")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors.add(f"{path}.name", "required: a string of 1 to 200 characters")
    parallelism = raw.get("parallelism")
    if parallelism is not None and (not _is_int(parallelism) or parallelism < 0):
        errors.add(f"{path}.parallelism", "must be 0 (the server default) or more")
    mode = raw.get("parallelism_mode")
    if mode and mode not in PARALLELISM_MODES:
        errors.add(f"{path}.parallelism_mode", f"must be one of {', '.join(PARALLELISM_MODES)}")
    raw_tasks = raw.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        errors.add(f"{path}.tasks", "required: a list of at least one task")
    elif len(raw_tasks) > MAX_TASKS:
        errors.add(f"{path}.tasks", f"at most {MAX_TASKS} tasks")
    else:
        index_of: dict[str, int] = {}
        tasks: list[tuple[str, dict[str, str]]] = []
        for index, raw_task in enumerate(raw_tasks):
            checked = _task(raw_task, f"{path}.tasks[{index}]", errors)
            if checked is None:
                continue
            task_id, depends_on = checked
            if task_id and task_id in index_of:
                errors.add(
                    f"{path}.tasks[{index}].id", f"duplicate task id {task_id!r} (also tasks[{index_of[task_id]}])"
                )
                continue
            if task_id:
                index_of[task_id] = index
            tasks.append((task_id, depends_on))
        for task_id, depends_on in tasks:
            for parent in depends_on:
                if parent == task_id:
                    errors.add(
                        f"{path}.tasks[{index_of[task_id]}].depends_on.{parent}", "a task cannot depend on itself"
                    )
                elif parent not in index_of:
                    errors.add(
                        f"{path}.tasks[{index_of.get(task_id, 0)}].depends_on.{parent:.64}", "no task with this id"
                    )
        if not errors.errors:
            cycle = _find_cycle({task_id: list(depends_on) for task_id, depends_on in tasks})
            if cycle:
                errors.add(f"{path}.tasks", f"dependency cycle: {' -> '.join(cycle)}")
    _string(raw.get("description"), f"{path}.description", errors, max_length=2000)
    _bool(raw.get("logging"), f"{path}.logging", errors)
    return errors.errors
