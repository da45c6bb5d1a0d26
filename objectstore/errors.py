"""Errors of the object store. All are domain errors, so the API renders them in the usual shape."""

from __future__ import annotations

from kernel.errors import Gone, LengthRequired, NotFound, TooLarge


class ObjectNotFound(NotFound):
    """No object under that key (in that pipeline, run or extension). The message names the key."""

    code = "not_found"


class RunObjectsExpired(Gone, ObjectNotFound):
    """The run's objects were deleted by run-object expiry: they existed once and will not come back (410, Gone
    first in its bases). Still an ObjectNotFound, for code that asks whether an object can be read."""

    code = "objects_expired"


class ObjectTooLarge(TooLarge):
    """An object is larger than the reader accepts (``read_pipeline_object``/``read_run_object``' ``max_bytes``)."""

    code = "object_too_large"


class BodyTooLarge(TooLarge):
    """An upload is larger than ``GOFER_OBJECT_MAX_BYTES``. Nothing was stored."""

    code = "body_too_large"


__all__ = ["BodyTooLarge", "LengthRequired", "ObjectNotFound", "ObjectTooLarge", "RunObjectsExpired"]
