"""Attach sessions whose output is masked like the task's logs (issue 8, finding 1).

Attach runs in the server process, so the masker is built there, with the function the workers use for the logs
(runs/engine/masking.py::masker_for: the task's secret values and its run token). The masker works on lines, so the
output is passed on line by line as it arrives; a partial line (a shell prompt, a progress bar) is held back until
its end arrives or the command pauses for a moment (one ``recv`` that brings nothing), then masked and sent. What it
cannot catch is a secret whose output is split by such a pause (a task that prints it one character a second), as
the logs cannot catch a secret a task splits itself (docs/security.md, "Known to stay unprotected").
"""

from __future__ import annotations

from collections.abc import Callable

from runs.schedulers.base import ExecSession

# A partial line longer than this is masked and sent without waiting for its end (terminal output without newlines).
MAX_HELD_BYTES = 64 * 1024
NEWLINE = b"\n"


class MaskedSession(ExecSession):
    """An ExecSession whose output passes through ``mask`` before anyone sees it; input goes through untouched."""

    def __init__(self, inner: ExecSession, mask: Callable[[str], str] | None, on_close: Callable[[], None]) -> None:
        self.inner = inner
        self.mask = mask
        self.on_close = on_close
        self.held = b""
        self.ended = False
        self.closed = False

    def _masked(self, data: bytes) -> bytes:
        if self.mask is None or not data:
            return data
        lines = data.split(NEWLINE)
        # surrogateescape: bytes that are not UTF-8 (or a character cut in two) survive the round trip unchanged.
        return NEWLINE.join(
            self.mask(line.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape") for line in lines
        )

    def recv(self, timeout: float) -> bytes | None:
        if self.ended:
            return None
        data = self.inner.recv(timeout)
        if data is None:
            self.ended = True
            rest, self.held = self.held, b""
            # The command ended: what is held goes out now; the next call reports the end.
            return self._masked(rest) if rest else None
        if self.mask is None:
            return data
        if not data:
            # A pause: nothing more of the held line is coming soon; send it (a prompt must show).
            rest, self.held = self.held, b""
            return self._masked(rest)
        buffered = self.held + data
        cut = buffered.rfind(NEWLINE) + 1
        complete, self.held = buffered[:cut], buffered[cut:]
        if len(self.held) > MAX_HELD_BYTES:
            complete, self.held = buffered, b""
        return self._masked(complete)

    def send(self, data: bytes) -> None:
        self.inner.send(data)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.inner.close()
        finally:
            self.on_close()
