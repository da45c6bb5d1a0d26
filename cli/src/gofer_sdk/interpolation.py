"""Interpolation wrappers: values that Gofer replaces just before a task's container starts.

A variable whose whole value is ``pipeline_secret{{key}}`` (or ``global_secret``, ``pipeline_object``,
``run_object``) is a reference: the server resolves it from its secret or object store when the task starts, so the
value never appears in the pipeline's config. These helpers spell the references, so a typo in the syntax cannot
silently become a plain value.
"""

from __future__ import annotations

__all__ = ["global_secret", "pipeline_object", "pipeline_secret", "run_object"]


def _reference(kind: str, key: str) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"{kind}: the key must be a non-empty string")
    if "{" in key or "}" in key:
        raise ValueError(f"{kind}: the key may not contain braces")
    return f"{kind}{{{{{key}}}}}"


def pipeline_secret(key: str) -> str:
    """A reference to the pipeline secret ``key`` (``gofer pipeline secret put``): ``pipeline_secret{{key}}``."""
    return _reference("pipeline_secret", key)


def global_secret(key: str) -> str:
    """A reference to the global secret ``key`` (``gofer secret global put``): ``global_secret{{key}}``.

    The secret's namespace regexes must allow the pipeline's namespace, or the task fails before it starts.
    """
    return _reference("global_secret", key)


def pipeline_object(key: str) -> str:
    """A reference to the pipeline object ``key`` (``gofer pipeline object put``): ``pipeline_object{{key}}``."""
    return _reference("pipeline_object", key)


def run_object(key: str) -> str:
    """A reference to the object ``key`` of the current run: ``run_object{{key}}``.

    An upstream task can store it (``gofer run object put``) for a downstream task to receive.
    """
    return _reference("run_object", key)
