"""How ``pipeline_object{{key}}`` and ``run_object{{key}}`` resolve (registered in kernel/references.py).

Objects are decoded as lossy UTF-8, as in Gofer.
"""

from __future__ import annotations

from typing import Any

from kernel.errors import GoferError
from kernel.references import UnresolvedReference
from objectstore import services

# Linux refuses to exec with one environment string over 128 KiB (MAX_ARG_STRLEN, "KEY=value" included): a larger
# object is refused here with a message naming it, rather than as an obscure container start failure.
MAX_OBJECT_VARIABLE_BYTES = 128 * 1024 - 256


def pipeline_object(key: str, pipeline: Any, run: Any | None) -> str:
    try:
        data = services.read_pipeline_object(pipeline, key, MAX_OBJECT_VARIABLE_BYTES)
    except GoferError as exc:
        # The object store's messages name the key and never carry content.
        raise UnresolvedReference(exc.message) from None
    return data.decode("utf-8", errors="replace")


def run_object(key: str, pipeline: Any, run: Any | None) -> str:
    if run is None:
        raise UnresolvedReference(f"run_object{{{{{key}}}}} needs a run; there is none here")
    try:
        data = services.read_run_object(run, key, MAX_OBJECT_VARIABLE_BYTES)
    except GoferError as exc:
        raise UnresolvedReference(exc.message) from None
    return data.decode("utf-8", errors="replace")
