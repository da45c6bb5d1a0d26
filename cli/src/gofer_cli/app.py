"""The entry point: run the command tree, and turn every failure into a message on stderr and an exit code."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

import click

from gofer_cli.errors import ApiError, CliError, ExitCode
from gofer_cli.output import StdoutClosed


def report(error: CliError, fmt: str) -> None:
    """Print ``error`` on stderr: one JSON line with ``--output json``, else the API's code and message, the fields
    at fault, the hint and the request id."""
    if fmt == "json":
        sys.stderr.write(json.dumps(error.as_json(), separators=(",", ":")) + "\n")
        return
    from rich.console import Console
    from rich.text import Text

    # Off a terminal, long lines stay whole (Rich would wrap them at 80 columns).
    err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)
    if isinstance(error, ApiError):
        err.print(Text.assemble(("error: ", "bold red"), (f"{error.error_code}: ", "red"), error.api_message))
        fields = [e for e in error.errors if e.get("field") and e.get("message")]
        if len(fields) > 1 or (fields and fields[0].get("message") not in error.api_message):
            for item in fields:
                err.print(Text(f"  {item['field']}: {item['message']}"))
    else:
        err.print(Text.assemble(("error: ", "bold red"), error.message))
    if error.hint:
        err.print(Text(f"hint: {error.hint}", style="yellow"))
    if isinstance(error, ApiError) and error.request_id:
        err.print(Text(f"(request {error.request_id})", style="dim"))


def _format_from_argv(argv: list[str]) -> str:
    """The output format asked for on the command line, for errors raised before settings exist."""
    for index, arg in enumerate(argv):
        if arg in ("-o", "--output") and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--output="):
            return arg.split("=", 1)[1]
    return "human"


def main(argv: list[str] | None = None) -> None:
    """Run ``gofer`` with ``argv`` (default: sys.argv[1:]) and exit with the documented exit code."""
    from gofer_cli.commands import cli
    from gofer_cli.commands.base import State

    args = list(sys.argv[1:] if argv is None else argv)
    obj = State()
    code: Any
    try:
        code = cli.main(args=args, prog_name="gofer", standalone_mode=False, obj=obj)
    except click.exceptions.Abort:
        sys.stderr.write("\naborted\n")
        code = ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        code = ExitCode.INTERRUPTED
    except click.ClickException as error:
        error.show()
        code = ExitCode.USAGE if isinstance(error, click.UsageError) else ExitCode.ERROR
    except CliError as error:
        fmt = _format_from_argv(args)
        with contextlib.suppress(CliError):
            fmt = obj.settings.output_format.value or fmt
        report(error, fmt)
        code = error.exit_code
    except (BrokenPipeError, StdoutClosed):
        # The reader went away (gofer ... | head): not an error of ours. Point stdout at /dev/null so the
        # interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = ExitCode.OK
    if code is None or not isinstance(code, int):
        code = ExitCode.OK
    sys.exit(int(code))
