"""Validation of identifiers and of pipeline configs as Gofer's SDKs emit them.

``parse_config`` checks a whole config and reports every fault at once, each with a path such as
``config.tasks[2].depends_on.build``: unique task ids, depends_on targets that exist, no cycles, a sane parallelism,
images, variable names, timeouts and resources. It returns a normalised ``ConfigSpec``; nothing is written until the
whole config is valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from apiv0.errors import FieldError, ValidationFailed
from pipelines.choices import ParallelismMode, RequiredParentStatus
from pipelines.models import DEFAULT_TASK_TIMEOUT, MAX_TASK_TIMEOUT, MIN_TASK_TIMEOUT

# Always used with fullmatch: with match, "$" also matches before a trailing newline ("team-a\n").
IDENTIFIER_RE = re.compile(r"^[A-Za-z0-9-]+$")
IDENTIFIER_WITH_UNDERSCORE_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# Task ids appear in URLs too. Gofer's own examples use underscores (simple_task), so they are allowed here.
TASK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
VARIABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
IMAGE_RE = re.compile(r"^[^\s]{1,512}$")

MAX_TASKS = 200
MAX_VARIABLES = 500
MAX_VARIABLE_VALUE = 64 * 1024
MAX_ARGV = 1000
MAX_CPU = Decimal(256)
MIN_MEMORY_MIB = 4
MAX_MEMORY_MIB = 4 * 1024 * 1024

PIPELINE_FIELDS = {"id", "name", "description", "parallelism", "parallelism_mode", "logging", "tasks"}
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


def check_identifier(value: Any, field_name: str, *, max_length: int = 32, allow_underscore: bool = False) -> str:
    """Gofer's identifier rule: 3 to ``max_length`` characters of ``[A-Za-z0-9-]``. Raises naming ``field_name``."""
    pattern = IDENTIFIER_WITH_UNDERSCORE_RE if allow_underscore else IDENTIFIER_RE
    allowed = "letters, digits, '-' and '_'" if allow_underscore else "letters, digits and '-'"
    if not isinstance(value, str):
        raise ValidationFailed(f"{field_name}: must be a string", field=field_name)
    if not 3 <= len(value) <= max_length:
        raise ValidationFailed(f"{field_name}: must be 3 to {max_length} characters long", field=field_name)
    if not pattern.fullmatch(value):
        raise ValidationFailed(f"{field_name}: may only contain {allowed}", field=field_name)
    return value


@dataclass
class TaskSpec:
    id: str
    image: str
    description: str = ""
    registry_auth: dict[str, str] | None = None
    depends_on: dict[str, str] = field(default_factory=dict)
    variables: list[dict[str, str]] = field(default_factory=list)
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    inject_api_token: bool = False
    always_pull_newest_image: bool = False
    timeout: int = DEFAULT_TASK_TIMEOUT
    cpu: Decimal | None = None
    memory: int | None = None
    logging: bool = True


@dataclass
class ConfigSpec:
    id: str
    name: str
    description: str
    parallelism: int
    parallelism_mode: str
    logging: bool
    tasks: list[TaskSpec]


class _Collector:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))


def _bool(value: Any, path: str, default: bool, errors: _Collector) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        errors.add(path, "must be true or false")
        return default
    return value


def _string(value: Any, path: str, errors: _Collector, *, max_length: int, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        errors.add(path, "must be a string")
        return default
    if len(value) > max_length:
        errors.add(path, f"must be at most {max_length} characters")
    return value


def _argv(value: Any, path: str, errors: _Collector) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        errors.add(path, "must be a list of strings")
        return None
    if len(value) > MAX_ARGV:
        errors.add(path, f"must have at most {MAX_ARGV} items")
    return list(value) or None


def parse_variables(value: Any, path: str, errors: _Collector | None = None) -> list[dict[str, str]]:
    """Variables as ``{K: V}`` (Gofer's SDK form) or ``[{"key", "value"}]``; keys upper-cased, order kept.

    Raises ValidationFailed itself when no collector is given.
    """
    own = errors is None
    collector = errors or _Collector()
    out: list[dict[str, str]] = []
    if value is None:
        return out
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, dict) or "key" not in item or "value" not in item:
                collector.add(f"{path}[{index}]", "must be an object with key and value")
                continue
            items.append((item["key"], item["value"]))
    else:
        collector.add(path, "must be an object of NAME: value")
        items = []
    if len(items) > MAX_VARIABLES:
        collector.add(path, f"at most {MAX_VARIABLES} variables")
    seen: dict[str, str] = {}
    for key, val in items:
        where = f"{path}.{key!s:.64}"
        if not isinstance(key, str) or not VARIABLE_NAME_RE.fullmatch(key):
            collector.add(where, "variable names are letters, digits and '_', not starting with a digit")
            continue
        if not isinstance(val, str):
            collector.add(where, "value must be a string")
            continue
        if len(val) > MAX_VARIABLE_VALUE:
            collector.add(where, f"value must be at most {MAX_VARIABLE_VALUE} bytes")
            continue
        upper = key.upper()
        if upper in seen:
            collector.add(where, f"duplicates {seen[upper]!r} (names are upper-cased)")
            continue
        seen[upper] = key
        out.append({"key": upper, "value": val})
    if own and collector.errors:
        raise ValidationFailed.from_errors(collector.errors)
    return out


def _task(raw: Any, path: str, errors: _Collector) -> TaskSpec | None:
    if not isinstance(raw, dict):
        errors.add(path, "must be an object")
        return None
    for unknown in sorted(set(raw) - TASK_FIELDS):
        errors.add(f"{path}.{unknown:.40}", "unknown field")
    task_id = raw.get("id")
    if not isinstance(task_id, str) or not TASK_ID_RE.fullmatch(task_id):
        errors.add(f"{path}.id", "required: 1 to 64 letters, digits, '-' or '_', starting with a letter or digit")
        task_id = None
    image = raw.get("image")
    if not isinstance(image, str) or not IMAGE_RE.fullmatch(image):
        errors.add(f"{path}.image", "required: a container image reference without spaces (at most 512 characters)")
        image = ""
    registry_auth = raw.get("registry_auth")
    if registry_auth is not None:
        if (
            not isinstance(registry_auth, dict)
            or not isinstance(registry_auth.get("user"), str)
            or not registry_auth.get("user")
            or not isinstance(registry_auth.get("pass"), str)
            or set(registry_auth) - {"user", "pass"}
        ):
            errors.add(f"{path}.registry_auth", "must be {user, pass} with a non-empty user")
            registry_auth = None
        else:
            registry_auth = {"user": registry_auth["user"], "pass": registry_auth["pass"]}
    depends_on: dict[str, str] = {}
    raw_depends = raw.get("depends_on") or {}
    if not isinstance(raw_depends, dict):
        errors.add(f"{path}.depends_on", "must be an object of task id: Any | Success | Failure")
    else:
        for parent, requirement in raw_depends.items():
            normalised = requirement.lower() if isinstance(requirement, str) else None
            if normalised not in RequiredParentStatus.values:
                errors.add(f"{path}.depends_on.{parent!s:.64}", "must be Any, Success or Failure")
                continue
            depends_on[str(parent)] = normalised
    timeout = raw.get("timeout", DEFAULT_TASK_TIMEOUT)
    if timeout is None:
        timeout = DEFAULT_TASK_TIMEOUT
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not MIN_TASK_TIMEOUT <= timeout <= MAX_TASK_TIMEOUT:
        errors.add(
            f"{path}.timeout", f"must be seconds between {MIN_TASK_TIMEOUT} (5 min) and {MAX_TASK_TIMEOUT} (8 h)"
        )
        timeout = DEFAULT_TASK_TIMEOUT
    cpu = raw.get("cpu")
    if cpu is not None:
        try:
            if isinstance(cpu, bool):
                raise InvalidOperation
            cpu = Decimal(str(cpu)).quantize(Decimal("0.001"))
            if not Decimal("0.001") <= cpu <= MAX_CPU:
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            errors.add(f"{path}.cpu", f"must be a number of CPU cores between 0.001 and {MAX_CPU}")
            cpu = None
    memory = raw.get("memory")
    if memory is not None and (
        not isinstance(memory, int) or isinstance(memory, bool) or not MIN_MEMORY_MIB <= memory <= MAX_MEMORY_MIB
    ):
        errors.add(f"{path}.memory", f"must be MiB between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB}")
        memory = None
    return TaskSpec(
        id=task_id or "",
        image=image or "",
        description=_string(raw.get("description"), f"{path}.description", errors, max_length=2000),
        registry_auth=registry_auth,
        depends_on=depends_on,
        variables=parse_variables(raw.get("variables"), f"{path}.variables", errors),
        entrypoint=_argv(raw.get("entrypoint"), f"{path}.entrypoint", errors),
        command=_argv(raw.get("command"), f"{path}.command", errors),
        inject_api_token=_bool(raw.get("inject_api_token"), f"{path}.inject_api_token", False, errors),
        always_pull_newest_image=_bool(
            raw.get("always_pull_newest_image"), f"{path}.always_pull_newest_image", False, errors
        ),
        timeout=timeout,
        cpu=cpu,
        memory=memory,
        logging=_bool(raw.get("logging"), f"{path}.logging", True, errors),
    )


def _find_cycle(tasks: list[TaskSpec]) -> list[str] | None:
    """A dependency cycle as a list of task ids (first id repeated at the end), or None."""
    graph = {t.id: list(t.depends_on) for t in tasks}
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


def parse_config(raw: Any, pipeline_slug: str, path: str = "config") -> ConfigSpec:
    """Validate a pipeline config (Gofer's ``RegisterPipelineConfigRequest.config``); raise with every fault found."""
    errors = _Collector()
    if not isinstance(raw, dict):
        raise ValidationFailed(f"{path}: must be an object", field=path)
    for unknown in sorted(set(raw) - PIPELINE_FIELDS):
        errors.add(f"{path}.{unknown:.40}", "unknown field")
    config_id = raw.get("id")
    try:
        check_identifier(config_id, f"{path}.id")
    except ValidationFailed as exc:
        # check_identifier's message starts with the field; the collector adds it again when it summarises.
        errors.add(f"{path}.id", exc.message.removeprefix(f"{path}.id: "))
    else:
        if config_id != pipeline_slug:
            errors.add(f"{path}.id", f"{config_id!r} does not match the pipeline id in the path ({pipeline_slug!r})")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors.add(f"{path}.name", "required: a string of 1 to 200 characters")
        name = ""
    parallelism = raw.get("parallelism", 0)
    if parallelism is None:
        parallelism = 0
    max_parallelism = settings.GOFER_MAX_PARALLELISM
    if not isinstance(parallelism, int) or isinstance(parallelism, bool) or not 0 <= parallelism <= max_parallelism:
        errors.add(
            f"{path}.parallelism",
            f"must be 0 (the server default, {settings.GOFER_PIPELINE_RUN_CONCURRENCY_LIMIT}) to {max_parallelism}",
        )
        parallelism = 0
    mode = raw.get("parallelism_mode") or ParallelismMode.QUEUE
    if mode not in ParallelismMode.values:
        errors.add(f"{path}.parallelism_mode", f"must be one of {', '.join(ParallelismMode.values)}")
        mode = ParallelismMode.QUEUE
    raw_tasks = raw.get("tasks")
    tasks: list[TaskSpec] = []
    if not isinstance(raw_tasks, list) or not raw_tasks:
        errors.add(f"{path}.tasks", "required: a list of at least one task")
    elif len(raw_tasks) > MAX_TASKS:
        errors.add(f"{path}.tasks", f"at most {MAX_TASKS} tasks")
    else:
        index_of: dict[str, int] = {}
        for index, raw_task in enumerate(raw_tasks):
            task = _task(raw_task, f"{path}.tasks[{index}]", errors)
            if task is None:
                continue
            if task.id and task.id in index_of:
                errors.add(
                    f"{path}.tasks[{index}].id", f"duplicate task id {task.id!r} (also tasks[{index_of[task.id]}])"
                )
                continue
            if task.id:
                index_of[task.id] = index
            tasks.append(task)
        for task in tasks:
            for parent in task.depends_on:
                if parent == task.id:
                    errors.add(
                        f"{path}.tasks[{index_of[task.id]}].depends_on.{parent}", "a task cannot depend on itself"
                    )
                elif parent not in index_of:
                    errors.add(
                        f"{path}.tasks[{index_of.get(task.id, 0)}].depends_on.{parent:.64}", "no task with this id"
                    )
        if not errors.errors:
            cycle = _find_cycle(tasks)
            if cycle:
                errors.add(f"{path}.tasks", f"dependency cycle: {' -> '.join(cycle)}")
    description = _string(raw.get("description"), f"{path}.description", errors, max_length=2000)
    logging = _bool(raw.get("logging"), f"{path}.logging", True, errors)
    if errors.errors:
        raise ValidationFailed.from_errors(errors.errors)
    return ConfigSpec(
        id=config_id,
        name=name,
        description=description,
        parallelism=parallelism,
        parallelism_mode=mode,
        logging=logging,
        tasks=tasks,
    )
