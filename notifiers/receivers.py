"""What the notifiers app hears from the apps below it (connected in NotifiersConfig.ready)."""

from __future__ import annotations

from typing import Any

from notifiers import services


def on_run_finished(sender: Any, run_pk: int, **kwargs: Any) -> None:
    services.evaluate_run(run_pk)


def on_task_execution_finished(
    sender: Any, task_execution_pk: int, pipeline_pk: int | None = None, **kwargs: Any
) -> None:
    services.evaluate_task_execution(task_execution_pk, pipeline_pk)


def on_run_admitted(sender: Any, run: Any, **kwargs: Any) -> None:
    services.run_started(run.pk)
