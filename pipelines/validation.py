"""Validation of pipeline configs as Gofer's SDKs emit them.

``parse_config`` checks a whole config and reports every fault at once, each with a path such as
``config.tasks[2].depends_on.build``: the pipeline's own fields here; each task's through the task spec
(pipelines/taskspec.py); then, across tasks, unique task ids, depends_on targets that exist and no cycles. It
returns a normalised ``ConfigSpec``; nothing is written until the whole config is valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from kernel.errors import ValidationFailed
from kernel.identifiers import check_identifier
from pipelines import sandbox
from pipelines.choices import ParallelismMode
from pipelines.taskspec import Collector, TaskSpec
from pipelines.taskspec import parse_variables as _parse_variables

MAX_TASKS = 200

PIPELINE_FIELDS = {
    "id",
    "name",
    "description",
    "parallelism",
    "parallelism_mode",
    "logging",
    "tasks",
    "run_token_grants",
}

# What a config may grant its run tokens beyond their default (access/services.py::run_token_roles), always on the
# pipeline itself: its own resources, never secrets, attach, subscriptions (their settings may reference secrets and
# go to an extension), tokens, roles, the system or another pipeline.
RUN_TOKEN_GRANT_RESOURCES = ("configs", "deployments", "events", "objects", "runs", "task_executions")
RUN_TOKEN_GRANT_ACTIONS = ("read", "write", "delete")
MAX_RUN_TOKEN_GRANTS = 10


@dataclass
class ConfigSpec:
    id: str
    name: str
    description: str
    parallelism: int
    parallelism_mode: str
    logging: bool
    tasks: list[TaskSpec]
    # Extra permissions of the run token, on this pipeline: [{"resources": ["runs"], "actions": ["write"]}].
    run_token_grants: list[dict[str, list[str]]] = field(default_factory=list)


def run_token_grant_strings(grants: list[dict[str, list[str]]]) -> list[str]:
    """Validated grants as sorted ``resource:action`` strings (how a run token carries them)."""
    return sorted(
        {f"{r}:{a}" for grant in grants for r in grant.get("resources", []) for a in grant.get("actions", [])}
    )


def _run_token_grants(value: Any, path: str, errors: Collector) -> list[dict[str, list[str]]]:
    """``run_token_grants``: a list of ``{"resources": [...], "actions": [...]}``, each resource one of
    RUN_TOKEN_GRANT_RESOURCES (no targets: always this pipeline), each action read, write or delete."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_RUN_TOKEN_GRANTS:
        errors.add(path, f"must be a list of at most {MAX_RUN_TOKEN_GRANTS} {{resources, actions}} objects")
        return []
    out = []
    for index, grant in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(grant, dict) or set(grant) - {"resources", "actions"}:
            errors.add(where, "must be an object with resources and actions only")
            continue
        resources, actions = grant.get("resources"), grant.get("actions")
        valid = True
        for name, items, allowed in (
            ("resources", resources, RUN_TOKEN_GRANT_RESOURCES),
            ("actions", actions, RUN_TOKEN_GRANT_ACTIONS),
        ):
            if not isinstance(items, list) or not items:
                errors.add(f"{where}.{name}", f"must be a non-empty list of {', '.join(allowed)}")
                valid = False
                continue
            for i, item in enumerate(items):
                if item not in allowed:
                    errors.add(
                        f"{where}.{name}[{i}]",
                        f"{item!r:.40} cannot be granted to a run token; one of {', '.join(allowed)}",
                    )
                    valid = False
        if valid:
            out.append({"resources": list(dict.fromkeys(resources)), "actions": list(dict.fromkeys(actions))})
    return out


def parse_variables(value: Any, path: str) -> list[dict[str, str]]:
    """Run variables as ``{K: V}`` or ``[{"key", "value"}]`` (the task spec's rule); raises naming every fault."""
    errors = Collector()
    out = _parse_variables(value, path, errors)
    if errors.errors:
        raise ValidationFailed.from_errors(errors.errors)
    return out


def _bool(value: Any, path: str, default: bool, errors: Collector) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        errors.add(path, "must be true or false")
        return default
    return value


def _string(value: Any, path: str, errors: Collector, *, max_length: int, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        errors.add(path, "must be a string")
        return default
    if len(value) > max_length:
        errors.add(path, f"must be at most {max_length} characters")
    return value


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
    errors = Collector()
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
            task = TaskSpec.parse(raw_task, f"{path}.tasks[{index}]", errors)
            if task is None:
                continue
            if sandbox.active():
                task = sandbox.restrict_task(task, raw_task, f"{path}.tasks[{index}]", errors)
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
    run_token_grants = _run_token_grants(raw.get("run_token_grants"), f"{path}.run_token_grants", errors)
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
        run_token_grants=run_token_grants,
    )
