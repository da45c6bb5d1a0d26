"""Resolving a task execution's variables into the container's environment, just before it starts.

References (``pipeline_secret{{key}}``, ``global_secret{{key}}``, ``pipeline_object{{key}}``, ``run_object{{key}}``)
are resolved here and nowhere else, in the worker, after the task's parents finished, so an upstream task can hand a
run object to a downstream one. The key inside the braces is the one looked up. A missing or forbidden reference
raises InterpolationError naming the variable and the key; the orchestrator then fails the task with
``failed_precondition``. The plaintext values of secrets (and of the run token) are returned separately so the
log pump can mask them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernel.references import UnresolvedReference, parse_reference
from kernel.references import resolve as resolve_reference
from runs.choices import VariableSource
from runs.variables import RUN_TOKEN_PLACEHOLDER


class InterpolationError(Exception):
    """A variable could not be resolved; the message names the variable and the key, never a secret value.

    ``transient`` is true when the store could not be read right now (Vault unreachable): worth retrying.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class Environment:
    env: dict[str, str] = field(default_factory=dict, repr=False)
    secret_values: list[str] = field(default_factory=list, repr=False)


def resolve(variables: list[dict[str, Any]], *, run: Any, run_token: str | None) -> Environment:
    """The container environment for ``variables`` (a task execution's stored list) within ``run``."""
    result = Environment()
    for variable in variables:
        key, value = variable["key"], variable.get("value", "")
        if variable.get("source") == VariableSource.SYSTEM and value == RUN_TOKEN_PLACEHOLDER:
            if not run_token:
                raise InterpolationError(f"variable {key}: the run's API token is no longer available (expired)")
            result.env[key] = run_token
            result.secret_values.append(run_token)
            continue
        reference = parse_reference(value) if isinstance(value, str) else None
        if reference is None:
            result.env[key] = value
            continue
        resolved, is_secret = _resolve_reference(reference, key, run.pipeline, run)
        result.env[key] = resolved
        if is_secret:
            result.secret_values.append(resolved)
    return result


def secret_values(variables: list[dict[str, Any]], *, run: Any, run_token: str | None) -> list[str]:
    """Only the secret values (for masking when a worker takes over a running task); unresolvable ones are skipped."""
    values = []
    for variable in variables:
        try:
            values.extend(resolve([variable], run=run, run_token=run_token).secret_values)
        except InterpolationError:
            continue
    return values


def resolve_settings(values: dict[str, str], *, pipeline: Any) -> Environment:
    """Resolve references in settings that belong to a pipeline but to no run (a subscription's settings).

    ``run_object`` references need a run and are refused with a message naming the setting.
    """
    result = Environment()
    for key, value in values.items():
        reference = parse_reference(value) if isinstance(value, str) else None
        if reference is None:
            result.env[key] = value
            continue
        resolved, is_secret = _resolve_reference(reference, key, pipeline, None)
        result.env[key] = resolved
        if is_secret:
            result.secret_values.append(resolved)
    return result


def _resolve_reference(reference: Any, var_key: str, pipeline: Any, run: Any | None) -> tuple[str, bool]:
    try:
        return resolve_reference(reference, pipeline=pipeline, run=run), reference.is_secret
    except UnresolvedReference as exc:
        raise InterpolationError(f"variable {var_key}: {exc.message}", transient=exc.transient) from None
