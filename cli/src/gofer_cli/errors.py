"""Exit codes and the errors the CLI reports: what went wrong, in the API's words, and a hint where one helps."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """The CLI's exit status. 0 only on success; each failure class has its own code (docs/cli.md, "Exit codes")."""

    OK = 0
    #: An error no other code covers: an unexpected answer from the server, a bug in the CLI.
    ERROR = 1
    #: Wrong arguments or flags, an unreadable or invalid local file, or input the API refused (400, 413, 415).
    USAGE = 2
    #: The object does not exist, or you may not see it (404), or its content is no longer kept (410).
    NOT_FOUND = 3
    #: No usable token (401), or the token lacks a permission (403).
    PERMISSION = 4
    #: The object exists already, or is in a state that forbids this (409).
    CONFLICT = 5
    #: The server failed (5xx, including 503 "new runs refused") or could not be reached (network, timeout).
    SERVER = 6
    #: The run finished but did not succeed (``run watch``, ``--wait``).
    RUN_FAILED = 7
    #: The run was cancelled (``run watch``, ``--wait``).
    RUN_CANCELLED = 8
    #: Interrupted with Ctrl-C.
    INTERRUPTED = 130


def exit_code_for_status(status: int) -> ExitCode:
    """The exit code of an API error with HTTP ``status``."""
    if status in (400, 405, 413, 415):
        return ExitCode.USAGE
    if status in (404, 410):
        return ExitCode.NOT_FOUND
    if status in (401, 403):
        return ExitCode.PERMISSION
    if status == 409:
        return ExitCode.CONFLICT
    if status >= 500:
        return ExitCode.SERVER
    return ExitCode.ERROR


class CliError(Exception):
    """An error to report to the user and exit with ``exit_code``. ``hint`` says what to do about it."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.ERROR, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint

    def as_json(self) -> dict[str, Any]:
        """The error as the one JSON line printed on stderr with ``--output json``."""
        return {"error_code": "cli_error", "message": self.message, "hint": self.hint, "exit_code": int(self.exit_code)}


class UsageError(CliError):
    """Bad arguments, flags or local files."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, ExitCode.USAGE, hint)

    def as_json(self) -> dict[str, Any]:
        return {**super().as_json(), "error_code": "usage_error"}


class NetworkError(CliError):
    """The API could not be reached: the message names the URL that was tried."""

    def __init__(self, url: str, reason: str, hint: str | None = None) -> None:
        super().__init__(f"could not reach the Gofer API at {url}: {reason}", ExitCode.SERVER, hint)
        self.url = url

    def as_json(self) -> dict[str, Any]:
        return {**super().as_json(), "error_code": "network_error", "url": self.url}


class ApiError(CliError):
    """An error response of the API: ``{error_code, message, request_id, errors: [{field, message}]}``."""

    def __init__(
        self,
        status: int,
        error_code: str,
        api_message: str,
        request_id: str = "",
        errors: list[dict[str, str]] | None = None,
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(api_message, exit_code_for_status(status))
        self.status = status
        self.error_code = error_code
        self.api_message = api_message
        self.request_id = request_id
        self.errors = list(errors or [])
        self.method = method
        self.url = url

    @classmethod
    def from_body(cls, status: int, body: Any, *, method: str = "", url: str = "") -> ApiError:
        """Build from a response body; a body not in the API's shape (a proxy's HTML page) still gives a message."""
        if isinstance(body, dict) and "message" in body:
            return cls(
                status=status,
                error_code=str(body.get("error_code") or f"http_{status}"),
                api_message=str(body.get("message")),
                request_id=str(body.get("request_id") or ""),
                errors=[e for e in body.get("errors") or [] if isinstance(e, dict)],
                method=method,
                url=url,
            )
        text = body if isinstance(body, str) else ""
        detail = f": {text.strip()[:200]}" if text.strip() else ""
        return cls(status, f"http_{status}", f"HTTP {status} from {url}{detail}", method=method, url=url)

    def as_json(self) -> dict[str, Any]:
        return {
            "error_code": self.error_code,
            "message": self.api_message,
            "request_id": self.request_id,
            "errors": self.errors,
            "status": self.status,
            "hint": self.hint,
            "exit_code": int(self.exit_code),
        }
