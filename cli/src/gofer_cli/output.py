"""Presentation: the three output formats, and the rule that stdout carries only the output.

- ``human`` (default): tables, coloured states, relative times. Colour only on a terminal and without ``NO_COLOR``.
- ``plain``: tab-separated raw values, one line per row, no header; for ``cut``, ``awk`` and ``while read``.
- ``json``: the raw API fields. One JSON document on stdout, or for streams one JSON object per line.

Progress, hints and warnings always go to stderr, so ``gofer ... --output json | jq`` never sees them. Rows hold raw
values; a column's humaniser is applied only when rendering for people, so raw and humanised values never mix.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

Row = dict[str, Any]
Getter = Callable[[Row], Any]
Humaniser = Callable[[Any, Row], "str | Text"]


@dataclass(frozen=True)
class Column:
    """A table column: ``get`` extracts the raw value from a row; ``human`` renders it for people (default: str)."""

    header: str
    get: Getter
    human: Humaniser | None = None
    # A column only humans see (a coloured summary of others); plain output leaves it out.
    human_only: bool = False

    @property
    def name(self) -> str:
        return self.header.lower().replace(" ", "_")


def field(name: str, header: str | None = None, human: Humaniser | None = None) -> Column:
    """A column of the top-level field ``name``."""
    return Column(header or name.upper().replace("_", " "), lambda row: row.get(name), human)


def raw_text(value: Any) -> str:
    """A raw value as plain output prints it: strings as they are, booleans as true/false, None as empty, lists and
    objects as compact JSON; tabs and newlines escaped so one row stays one line."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    else:
        text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


class StdoutClosed(Exception):  # noqa: N818 - a condition, not an error of ours
    """The reader of stdout went away (``gofer ... | head``). Not an OSError, so Click does not turn it into exit 1;
    ``app.main`` exits 0."""


def _write(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise StdoutClosed from None


def _color_allowed(stream: Any) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


class Output:
    """Where and how a command prints. One per invocation; ``format`` is human, plain or json."""

    def __init__(self, fmt: str) -> None:
        self.format = fmt
        out_tty = _color_allowed(sys.stdout)
        err_tty = _color_allowed(sys.stderr)
        # Off a terminal Rich would wrap at 80 columns; files and pipes get long lines instead.
        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
        self.console = Console(
            highlight=False, no_color=not out_tty, force_terminal=out_tty or None, width=width, soft_wrap=False
        )
        err_width = None if sys.stderr.isatty() or os.environ.get("COLUMNS") else 200
        self.err = Console(
            stderr=True, highlight=False, no_color=not err_tty, force_terminal=err_tty or None, width=err_width
        )

    @property
    def json(self) -> bool:
        return self.format == "json"

    @property
    def plain(self) -> bool:
        return self.format == "plain"

    @property
    def human(self) -> bool:
        return self.format == "human"

    @property
    def interactive(self) -> bool:
        """Whether live displays (run watch's boxes, progress bars) may redraw stdout: human format on a terminal."""
        return self.human and sys.stdout.isatty()

    @property
    def progress_allowed(self) -> bool:
        """Whether progress bars may be drawn on stderr."""
        return sys.stderr.isatty()

    # --- documents and streams ------------------------------------------------------------------------------------

    def document(
        self, doc: Any, human: Callable[[], None] | None = None, plain: Callable[[], None] | None = None
    ) -> None:
        """The command's one result: ``doc`` as JSON, or the human/plain renderings (plain defaults to human's)."""
        if self.json:
            _write(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        elif self.plain and plain is not None:
            plain()
        elif human is not None:
            human()

    def stream(self, obj: dict[str, Any]) -> None:
        """One item of a stream in JSON: a single line, flushed at once so a reader sees it live."""
        _write(json.dumps(obj, separators=(",", ":")) + "\n")

    def line(self, text: str) -> None:
        """A line of text on stdout, as it is (no markup), flushed."""
        _write(text + "\n")

    def print(self, *renderables: Any) -> None:
        """Rich renderables on stdout (human format)."""
        try:
            self.console.print(*renderables)
        except BrokenPipeError:
            raise StdoutClosed from None

    # --- tables ---------------------------------------------------------------------------------------------------

    def rows(self, rows: Sequence[Row], columns: Sequence[Column], empty: str = "nothing to show") -> None:
        """A table of ``rows``: a Rich table for people, tab-separated raw values in plain (no header)."""
        if self.plain:
            for row in rows:
                self.line("\t".join(raw_text(c.get(row)) for c in columns if not c.human_only))
            return
        if not rows:
            self.err.print(f"[dim]{empty}[/dim]")
            return
        table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
        for column in columns:
            table.add_column(column.header, overflow="fold")
        for row in rows:
            table.add_row(*(_human(c, row) for c in columns))
        self.print(table)

    def pairs(self, items: Iterable[tuple[str, Any, Any]]) -> None:
        """A two-column detail view of ``(label, raw, human)`` triples; plain prints ``label<TAB>raw``."""
        items = list(items)
        if self.plain:
            for label, raw, _ in items:
                self.line(f"{label}\t{raw_text(raw)}")
            return
        table = Table(box=None, show_header=False, show_edge=False, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for label, raw, human in items:
            table.add_row(label, human if human is not None else _plain_human(raw))
        self.print(table)

    # --- stderr ---------------------------------------------------------------------------------------------------

    def info(self, message: str) -> None:
        """Progress or context for people, on stderr (never stdout), in every format but json."""
        if not self.json:
            self.err.print(message, markup=False, highlight=False)

    def hint(self, message: str) -> None:
        """A suggestion of what to do next, on stderr (dim), in every format but json."""
        if not self.json:
            self.err.print(Text(message, style="dim"))

    def warn(self, message: str) -> None:
        """A warning on stderr, in every format (JSON consumers read stderr as text)."""
        self.err.print(Text(f"warning: {message}", style="yellow"))

    def done(self, message: str) -> None:
        """What a command without a result document did (``Pipeline build disabled.``), on stdout for people."""
        if self.json:
            return
        if self.plain:
            self.line(message)
        else:
            self.print(Text(message))


def _plain_human(raw: Any) -> str:
    if raw is None or raw == "":
        return "-"
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    if isinstance(raw, (dict, list)):
        return json.dumps(raw, separators=(", ", ": "))
    return str(raw)


def _human(column: Column, row: Row) -> str | Text:
    value = column.get(row)
    if column.human is not None:
        return column.human(value, row)
    return _plain_human(value)
