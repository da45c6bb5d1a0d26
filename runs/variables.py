"""A task's environment: system variables, the task's own, the run's, with Gofer's precedence.

Precedence is run variables > task variables > system variables, by upper-cased key. The merged list, with each
value's ``source``, is stored on the task execution with secret and object references left *unresolved*
(``pipeline_secret{{key}}``); they are resolved only in the worker, just before the container starts
(runs/interpolation.py), so no plaintext secret is ever written to the database.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from runs.choices import VariableSource

# Stored in place of the run token: the worker substitutes the real secret when it builds the container's env.
RUN_TOKEN_PLACEHOLDER = "[run token]"  # noqa: S105 - a placeholder, not a secret


def system_variables(namespace_id: str, pipeline_slug: str, run_number: int, task: dict[str, Any]) -> list[dict]:
    values = {
        "GOFER_NAMESPACE_ID": namespace_id,
        "GOFER_PIPELINE_ID": pipeline_slug,
        "GOFER_RUN_ID": str(run_number),
        "GOFER_TASK_ID": task["id"],
        "GOFER_TASK_IMAGE": task["image"],
        "GOFER_API_BASE_URL": settings.GOFER_API_BASE_URL,
    }
    if task.get("inject_api_token"):
        values["GOFER_TOKEN"] = RUN_TOKEN_PLACEHOLDER
    return [{"key": k, "value": v, "source": VariableSource.SYSTEM} for k, v in values.items()]


def merge(*layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge variable lists; a later layer's key replaces an earlier one's. Keys are upper-cased, empty dropped."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for variable in layer:
            key = str(variable.get("key", "")).upper()
            if not key:
                continue
            merged.pop(key, None)  # keep the winner's position last, so the list reads in precedence order
            merged[key] = {"key": key, "value": variable.get("value", ""), "source": variable.get("source", "")}
    return list(merged.values())


def task_variables(task: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**v, "source": VariableSource.PIPELINE_CONFIG} for v in task.get("variables", [])]


def final_variables(namespace_id: str, pipeline_slug: str, run_number: int, task: dict, run_vars: list[dict]) -> list:
    """The task execution's variables, lowest precedence first: system, then task, then run."""
    return merge(system_variables(namespace_id, pipeline_slug, run_number, task), task_variables(task), run_vars)
