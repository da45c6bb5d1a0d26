"""Errors of the object store. All are GoferErrors, so the API renders them in the usual shape."""

from __future__ import annotations

from apiv0.errors import GoferError, NotFound


class ObjectNotFound(NotFound):
    """No object under that key (in that pipeline, run or extension). The message names the key."""

    code = "not_found"


class RunObjectsExpired(ObjectNotFound):
    """The run's objects were deleted by run-object expiry: they existed once and will not come back (410)."""

    status = 410
    code = "objects_expired"


class ObjectTooLarge(GoferError):
    """An object is larger than the reader accepts (``read_pipeline_object``/``read_run_object``' ``max_bytes``)."""

    status = 413
    code = "object_too_large"


class BodyTooLarge(GoferError):
    """An upload is larger than ``GOFER_OBJECT_MAX_BYTES``. Nothing was stored."""

    status = 413
    code = "body_too_large"


class LengthRequired(GoferError):
    """A chunked upload reached a WSGI server, where Django cannot see a body without Content-Length."""

    status = 411
    code = "length_required"
