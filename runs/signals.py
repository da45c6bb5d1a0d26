"""Hooks for the apps built on runs (docs/architecture.md, "Layers").

``run_admitted`` is sent by the engine after a run was admitted and its transaction committed, for housekeeping
that a new run triggers in its pipeline: the object store expires older runs' objects; the notifiers mark a
commit's check run ``in_progress``. ``run_finished`` and ``task_execution_finished`` are sent once the transaction
that recorded a run's or a task execution's completion (runs/engine/outcomes.py, the only writer of ``complete``)
has committed: the notifiers evaluate their rules then. Receivers run outside the engine's transaction; an
exception in one is logged and does not stop the run. A signal lost to a crash right after the commit is made up
for by its receivers' own sweep of the database (the notifiers re-evaluate recently finished runs).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

# kwargs: run
run_admitted = Signal()
# kwargs: run_pk
run_finished = Signal()
# kwargs: task_execution_pk, run_pk, pipeline_pk, task_execution (the instance as recorded, its run loaded: a
# receiver that needs only what was recorded reads no row; one that needs more reads it by pk)
task_execution_finished = Signal()


def send_after_commit(signal: Signal, **kwargs: Any) -> None:
    """Send ``signal`` with ``kwargs`` once the current transaction commits (never if it rolls back); a receiver's
    exception is logged, not raised into the engine."""

    def send() -> None:
        for receiver, outcome in signal.send_robust(sender=None, **kwargs):
            if isinstance(outcome, Exception):
                logger.error(
                    "%s failed on %s; its own sweep will catch up",
                    getattr(receiver, "__qualname__", receiver),
                    kwargs,
                    exc_info=outcome,
                )

    transaction.on_commit(send)
