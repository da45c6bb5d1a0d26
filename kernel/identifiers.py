"""Identifiers: the rules every id in a path or body follows, and the parsers that enforce them.

Always used with ``fullmatch``: with ``match``, ``$`` also matches before a trailing newline (``"team-a\\n"``).
"""

from __future__ import annotations

import re
from typing import Any

from kernel.errors import ValidationFailed

IDENTIFIER_RE = re.compile(r"[A-Za-z0-9-]+")
IDENTIFIER_WITH_UNDERSCORE_RE = re.compile(r"[A-Za-z0-9_-]+")
# Task ids appear in URLs too. Gofer's own examples use underscores (simple_task), so they are allowed here.
TASK_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
_DECIMAL = re.compile(r"-?[0-9]{1,30}")


def check_identifier(value: Any, field_name: str, *, max_length: int = 32, allow_underscore: bool = False) -> str:
    """Gofer's identifier rule: 3 to ``max_length`` characters of ``[A-Za-z0-9-]``. Raises naming ``field_name``."""
    pattern = IDENTIFIER_WITH_UNDERSCORE_RE if allow_underscore else IDENTIFIER_RE
    allowed = "letters, digits, '-' and '_'" if allow_underscore else "letters, digits and '-'"
    if not isinstance(value, str):
        raise ValidationFailed(f"{field_name}: must be a string", field=field_name)
    if not 3 <= len(value) <= max_length:
        raise ValidationFailed(f"{field_name}: must be 3 to {max_length} characters long", field=field_name)
    if not pattern.fullmatch(value):
        raise ValidationFailed(f"{field_name}: may only contain {allowed}", field=field_name)
    return value


def strict_int(raw: object) -> int:
    """An integer written as plain ASCII decimal digits, optionally negative; raises ValueError otherwise.

    ``int()`` alone also takes " 7", "+7", "1_000" and non-ASCII digits, so "runs/1_0" would be run 10.
    """
    text = str(raw)
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"not a decimal integer: {text!r:.40}")
    return int(text)


def positive_int(raw: object, field_name: str) -> int:
    """A positive integer from a path parameter (run ids, deployment ids); a 400 naming the field otherwise."""
    try:
        number = strict_int(raw)
        if number < 1:
            raise ValueError
    except ValueError:
        raise ValidationFailed(f"{field_name}: must be a positive integer", field=field_name) from None
    return number
