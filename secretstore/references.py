"""Gofer's interpolation syntax: a variable whose whole value is ``kind{{ key }}`` is a reference, not a value.

The kinds are ``pipeline_secret``, ``global_secret``, ``pipeline_object`` and ``run_object``. The prefix is matched
case-insensitively, whitespace around the value and inside the braces is ignored, and the key is the text inside
the braces (Gofer looked objects up by the variable's own key instead; we do not copy that bug). Anything else,
including a reference with an empty key, unbalanced or extra braces, or an unknown kind, is a plain value and is
passed through unchanged, as in Gofer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


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
