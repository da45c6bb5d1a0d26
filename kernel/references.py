"""Gofer's interpolation syntax: a variable whose whole value is ``kind{{ key }}`` is a reference, not a value.

The kinds are ``pipeline_secret``, ``global_secret``, ``pipeline_object`` and ``run_object``. The prefix is matched
case-insensitively, whitespace around the value and inside the braces is ignored, and the key is the text inside
the braces (Gofer looked objects up by the variable's own key instead; we do not copy that bug). Anything else,
including a reference with an empty key, unbalanced or extra braces, or an unknown kind, is a plain value and is
passed through unchanged, as in Gofer.

What a reference resolves to is owned by the app that stores it: the secret store resolves secrets, the object store
objects. They register a resolver per kind when Django starts (their ``AppConfig.ready``), so that whoever resolves
references (the run engine, subscription settings) needs neither app: ``resolve(reference, pipeline=..., run=...)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ReferenceKind(StrEnum):
    # Names of reference kinds, not passwords.
    PIPELINE_SECRET = "pipeline_secret"  # noqa: S105
    GLOBAL_SECRET = "global_secret"  # noqa: S105
    PIPELINE_OBJECT = "pipeline_object"
    RUN_OBJECT = "run_object"


# The key may not contain braces, so "a}}b" or "{{a}}" inside is malformed rather than a strange key.
_REFERENCE_RE = re.compile(
    r"\A\s*(?P<kind>" + "|".join(k.value for k in ReferenceKind) + r")\{\{\s*(?P<key>[^{}]*?)\s*\}\}\s*\Z",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Reference:
    kind: ReferenceKind
    key: str

    @property
    def is_secret(self) -> bool:
        return self.kind in (ReferenceKind.PIPELINE_SECRET, ReferenceKind.GLOBAL_SECRET)

    def __str__(self) -> str:
        return f"{self.kind.value}{{{{{self.key}}}}}"


def parse_reference(value: str) -> Reference | None:
    """The reference ``value`` spells, or None when it is a plain value (see the module docstring)."""
    if not isinstance(value, str):
        return None
    match = _REFERENCE_RE.match(value)
    if match is None or not match.group("key"):
        return None
    return Reference(ReferenceKind(match.group("kind").lower()), match.group("key"))


class UnresolvedReference(Exception):
    """A reference could not be resolved. The message names the key and says why, never holding a value.

    ``transient`` is true when the store could not be read right now (Vault unreachable): worth retrying.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


# (key, pipeline, run or None) -> the value. Raises UnresolvedReference.
Resolver = Callable[[str, Any, Any], str]

_resolvers: dict[ReferenceKind, Resolver] = {}


def register(kind: ReferenceKind, resolver: Resolver) -> None:
    """Make ``resolver`` the one for ``kind`` (called by the owning app at start-up)."""
    _resolvers[kind] = resolver


def resolve(reference: Reference, *, pipeline: Any, run: Any | None) -> str:
    """The value ``reference`` names for ``pipeline`` (and ``run``; None where there is no run, as for subscription
    settings). Raises UnresolvedReference; a kind whose app is not installed is unresolvable, not an error."""
    resolver = _resolvers.get(reference.kind)
    if resolver is None:
        raise UnresolvedReference(f"{reference}: nothing on this server resolves {reference.kind.value} references")
    return resolver(reference.key, pipeline, run)
