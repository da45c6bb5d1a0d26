"""Sandbox mode (GOFER_SANDBOX=true): what a registered task may ask for, and the caps every task container gets.

A config asking for more than the sandbox gives is refused at registration with a 400 naming the field
(``config.tasks[i].timeout``...), before anything is written; a task that asks for nothing gets the cap. The engine
applies the same caps again when a run is admitted (a config registered before sandbox mode was turned on), and
locks the container down (runs/sandbox.py). docs/sandbox.md lists them.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from django.conf import settings

from pipelines.taskspec import Collector, TaskSpec


def active() -> bool:
    return bool(settings.GOFER_SANDBOX)


@dataclasses.dataclass(frozen=True)
class Caps:
    """What one sandbox task may have at most."""

    timeout: int  # seconds
    cpu: Decimal  # cores
    memory_mib: int


def caps() -> Caps:
    return Caps(
        timeout=settings.GOFER_SANDBOX_MAX_TASK_TIMEOUT,
        cpu=Decimal(str(settings.GOFER_SANDBOX_TASK_CPU)),
        memory_mib=settings.GOFER_SANDBOX_TASK_MEMORY_MIB,
    )


def restrict_task(task: TaskSpec, raw: dict[str, Any], path: str, errors: Collector) -> TaskSpec:
    """The task as the sandbox runs it: faults for what it asks beyond the caps (added to ``errors`` with their
    path), the caps for what it leaves unset. ``raw`` is the task as registered (to tell an unset timeout from
    the default one)."""
    limits = caps()
    if task.registry_auth is not None:
        errors.add(f"{path}.registry_auth", "registry credentials are not accepted in sandbox mode")
    timeout = task.timeout
    if raw.get("timeout") is None:
        timeout = min(task.timeout, limits.timeout)
    elif task.timeout > limits.timeout:
        errors.add(
            f"{path}.timeout",
            f"at most {limits.timeout} seconds in sandbox mode (GOFER_SANDBOX_MAX_TASK_TIMEOUT), not {task.timeout}",
        )
    if task.cpu is not None and task.cpu > limits.cpu:
        errors.add(f"{path}.cpu", f"at most {limits.cpu} cores in sandbox mode (GOFER_SANDBOX_TASK_CPU)")
    if task.memory is not None and task.memory > limits.memory_mib:
        errors.add(f"{path}.memory", f"at most {limits.memory_mib} MiB in sandbox mode (GOFER_SANDBOX_TASK_MEMORY_MIB)")
    return dataclasses.replace(task, timeout=timeout)


def capped_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A task execution's snapshot (``TaskSpec.snapshot()``) with the sandbox caps applied: timeout, CPU and memory
    at most the caps, and set to them when the task left them to the operator's defaults."""
    limits = caps()
    out = dict(snapshot)
    out["timeout"] = min(int(out.get("timeout") or limits.timeout), limits.timeout)
    cpu = out.get("cpu")
    out["cpu"] = float(min(Decimal(str(cpu)), limits.cpu) if cpu is not None else limits.cpu)
    memory = out.get("memory")
    out["memory"] = min(int(memory), limits.memory_mib) if memory is not None else limits.memory_mib
    out["registry_auth"] = None
    return out
