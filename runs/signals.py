"""Hooks for the apps built on runs (docs/architecture.md, "Layers").

``run_admitted`` is sent by the engine after a run was admitted and its transaction committed, for housekeeping
that a new run triggers in its pipeline: the object store expires older runs' objects. Receivers run outside the
engine's transaction; an exception in one is logged and does not stop the run (the next run retries).
"""

from django.dispatch import Signal

# kwargs: run
run_admitted = Signal()
