"""Hiding secret values in task logs before they are stored or streamed.

The run engine builds one ``Masker`` per task execution from the secret values it injected and passes every log line
through ``mask``. What is hidden, and why (each rule answers a leak other CI systems shipped):

- every line of a value, on its own: a multi-line value (a PEM key, a kubeconfig) is printed over several log
  lines, so matching only the whole value would hide nothing. Lines are stripped of surrounding whitespace, since
  tools re-indent what they print;
- the base64 forms of the value: standard and URL-safe alphabets, with and without ``=`` padding, and the form of
  the value's longest prefix whose length is a multiple of 3 bytes, which is also the start of the base64 of
  ``value + anything`` (``echo "$SECRET" | base64`` adds a newline). Long base64 is also matched in the pieces
  tools wrap it into: 64 characters a line (openssl) and 76 (GNU base64);
- the base64 forms at every alignment: a value base64-encoded after 1 or 2 other bytes (``user:password`` in a
  basic-auth header) encodes differently from the value alone; its bytes from the next 3-byte group on are matched;
- the percent-encoded forms (``p%40ss`` in a URL, ``+`` for spaces in a form) when they differ from the value, and
  the hex forms (lower and upper case);
- nothing that stands for fewer than ``min_length`` characters of the value (``GOFER_SECRET_MASK_MIN_LENGTH``,
  default 4), in any form: masking ``1``, ``yes`` or the base64 of ``yes`` would blank unrelated text.

Every occurrence is replaced by ``********`` (``REPLACEMENT``), whatever its length, so the output does not reveal
the length. Occurrences that overlap or touch (two secrets side by side, or a short secret inside a longer one) are
merged and replaced once, so no piece of the longer value is left visible.

Speed: all the strings are compiled into one regex shaped as a prefix tree (longest match first) and a line is
scanned once, whatever the number of secrets: about 50,000 lines a second with 40 secrets on a laptop core.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from django.conf import settings

REPLACEMENT = "********"
# Line lengths base64 tools wrap their output at unless told not to: openssl (PEM) 64, GNU base64 (MIME) 76.
BASE64_LINE_LENGTHS = (64, 76)


def _encoded_bytes(form: str) -> int:
    """How many bytes of the value a piece of base64 spells."""
    return len(form.rstrip("=")) * 3 // 4


def _base64_forms(data: bytes, min_length: int) -> set[str]:
    """The base64 forms of ``data`` wherever it sits in the encoded stream.

    Base64 works on groups of 3 bytes, so the value encodes three ways depending on how many bytes come before it
    (``printf 'user:%s' "$PASSWORD" | base64``, a basic-auth header): at offset 0, its own encoding; at offsets 1
    and 2, the encoding of the value without its first 2 or 1 bytes (those share a group with the unknown prefix and
    come out differently), which then starts on a group boundary. For each, the form of the whole rest (the value
    ends the stream) and of its longest 3-byte-aligned prefix (something follows) are needles.
    """
    forms: set[str] = set()
    chunks: list[bytes] = []
    for skip in (0, 2, 1):  # offsets 0, 1 and 2
        rest = data[skip:]
        chunks += [rest, rest[: len(rest) - len(rest) % 3]]
    for chunk in chunks:
        if len(chunk) < min_length:
            continue
        standard = base64.b64encode(chunk).decode("ascii")
        urlsafe = base64.urlsafe_b64encode(chunk).decode("ascii")
        for form in (standard, urlsafe):
            forms.add(form)
            forms.add(form.rstrip("="))
        if chunk is not chunks[0] and chunk is not chunks[1]:
            continue  # wrapped lines are cut from the start of the stream: only offset 0 lines up with them
        for width in BASE64_LINE_LENGTHS:
            if len(standard) > width:
                pieces = (standard[i : i + width] for i in range(0, len(standard), width))
                forms.update(piece for piece in pieces if _encoded_bytes(piece) >= min_length)
    return forms


def needles_for(value: str, min_length: int) -> set[str]:
    """The strings that give ``value`` away in a log line.

    Only what stands for at least ``min_length`` characters of the value counts: a short value's base64 is longer
    than the value, but masking it would blank unrelated text just the same.
    """
    candidates = {line.strip() for line in value.splitlines()}
    if len(value.strip()) >= min_length:
        candidates.add(value.strip())
        candidates |= _base64_forms(value.encode("utf-8"), min_length)
        encoded = quote(value, safe="")
        if encoded != value:
            candidates.add(encoded)
        plus_encoded = quote_plus(value, safe="")
        if plus_encoded != value:
            candidates.add(plus_encoded)
        # Hex, as xxd -p, od and sha tooling print bytes: both cases.
        hex_form = value.encode("utf-8").hex()
        candidates |= {hex_form, hex_form.upper()}
    # A candidate with a line break can never be inside one log line; its lines are candidates already.
    return {c for c in candidates if len(c) >= min_length and "\n" not in c and "\r" not in c}


def _trie_regex(needles: list[str]) -> str:
    """One regex matching any of ``needles``, longest match first, shaped as a prefix tree.

    ``(?:abc|abd)`` becomes ``ab(?:c|d)``: at each position the engine follows one branch instead of trying every
    needle, several times faster than a flat alternation with hundreds of needles. Where a needle ends inside a
    longer one, the rest is an optional group, and greedy matching prefers the longer.
    """
    end = ""  # a key no character can take
    trie: dict[str, dict] = {}
    for needle in needles:
        node = trie
        for char in needle:
            node = node.setdefault(char, {})
        node[end] = {}

    def build(node: dict[str, dict]) -> str:
        prefix = []
        while True:
            chars = sorted(k for k in node if k != end)
            if len(chars) == 1 and end not in node:
                prefix.append(re.escape(chars[0]))
                node = node[chars[0]]
                continue
            break
        if not chars:
            return "".join(prefix)
        branches = [re.escape(char) + build(node[char]) for char in chars]
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end in node:
            body = f"(?:{body})?"
        return "".join(prefix) + body

    return build(trie)


# Needles per prefix tree when one tree for all of them nests too deep for the regex compiler.
FALLBACK_GROUP_SIZE = 200


def _compile(needles: list[str]) -> list[re.Pattern[str]]:
    """The patterns that together find every needle. A lookahead matches at every position without consuming, so
    overlapping occurrences are all reported.

    One prefix tree normally. Hundreds of needles that are prefixes of each other (``aaaa``, ``aaaaa``...) nest too
    deep for Python's regex compiler; they are then split into groups of ``FALLBACK_GROUP_SIZE``, one tree each.
    """
    if not needles:
        return []
    try:
        return [re.compile(f"(?=({_trie_regex(needles)}))")]
    except (RecursionError, re.error):
        groups = [needles[i : i + FALLBACK_GROUP_SIZE] for i in range(0, len(needles), FALLBACK_GROUP_SIZE)]
        return [re.compile(f"(?=({_trie_regex(group)}))") for group in groups]


class Masker:
    """Masks a fixed set of secret values in log lines. Build it once per task execution; ``mask`` is thread-safe."""

    def __init__(self, values: Iterable[str], min_length: int | None = None) -> None:
        if min_length is None:
            min_length = settings.GOFER_SECRET_MASK_MIN_LENGTH
        self.min_length = max(1, int(min_length))
        needles: set[str] = set()
        for value in values:
            if isinstance(value, str) and value:
                needles |= needles_for(value, self.min_length)
        # Sorted for a deterministic pattern; the prefix tree itself makes the longest needle win at a position.
        self._needles = sorted(needles, key=lambda n: (-len(n), n))
        self._patterns = _compile(self._needles)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    @property
    def needle_count(self) -> int:
        return len(self._needles)

    def mask(self, line: str) -> str:
        """``line`` with every occurrence of a secret (in any form above) replaced by ``REPLACEMENT``."""
        if not self._patterns or not line:
            return line
        found = [
            (match.start(), match.start() + len(match.group(1)))
            for pattern in self._patterns
            for match in pattern.finditer(line)
        ]
        if len(self._patterns) > 1:
            found.sort()
        spans: list[list[int]] = []
        for start, end in found:
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        if not spans:
            return line
        out = []
        position = 0
        for start, end in spans:
            out.append(line[position:start])
            out.append(REPLACEMENT)
            position = end
        out.append(line[position:])
        return "".join(out)
