"""django-q2 entry points. Thin and stable: their dotted paths are stored in queued messages and schedules.

Never rename these functions without a data migration of django_q's Schedule rows and a drain of the queue.
"""

from __future__ import annotations

from runs.engine import driving, reconciling


def advance_run(run_pk: int) -> None:
    # The first task it readies is driven here, not queued (runs/engine/driving.py, continue_run).
    driving.advance_and_drive(run_pk)


def drive_task_execution(task_execution_pk: int) -> None:
    driving.drive_task_execution(task_execution_pk)


def reconcile() -> dict[str, int]:
    return reconciling.reconcile()
