"""Domain errors: what a service function raises when it refuses a request, with no HTTP in it.

Every error has a stable ``code`` and a ``message`` that starts with the field it is about, plus ``errors``, the
list of fields at fault. Services, workers and commands raise these; only the API layer (kernel/api/errors.py)
turns them into HTTP statuses, in one table, so worker code never speaks HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class GoferError(Exception):
    """Base of every error Gofer reports on purpose. ``code`` is stable; clients may branch on it."""

    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors or [])
        if field is not None and not self.errors:
            self.errors.append(FieldError(field, message))


class ValidationFailed(GoferError):
    """The request is malformed. Raise with ``field=`` or ``errors=`` so the answer names what is wrong."""

    code = "validation_error"

    @classmethod
    def from_errors(cls, errors: list[FieldError]) -> ValidationFailed:
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        if len(errors) > 5:
            summary += f"; and {len(errors) - 5} more"
        return cls(summary, errors=errors)


class Unauthenticated(GoferError):
    """No credential, or one that is unknown, disabled or expired."""

    code = "unauthenticated"


class Forbidden(GoferError):
    """The caller may see the thing but lacks the permission the request needs."""

    code = "permission_denied"


class NotFound(GoferError):
    """The thing does not exist, or the caller may not see it (the two are never told apart)."""

    code = "not_found"

    @classmethod
    def of(cls, what: str, ident: object, field: str | None = None) -> NotFound:
        return cls(f"{what} {ident!s:.100} not found", field=field)


class Conflict(GoferError):
    """The request contradicts the current state (exists already, still running, in progress)."""

    code = "conflict"


class Gone(GoferError):
    """The thing existed but its content is no longer kept (expired or removed logs, expired run objects)."""

    code = "gone"


class TooLarge(GoferError):
    """A body or value is over its limit."""

    code = "body_too_large"


class LengthRequired(GoferError):
    """A streamed upload did not say how long it is, and must."""

    code = "length_required"


class TooMany(GoferError):
    """Over a per-caller cap (open streams per token); retry when one closes."""

    code = "rate_limited"


class RateLimited(TooMany):
    """Over a rate limit (kernel/api/ratelimits.py): 429, with ``Retry-After`` the seconds until the window ends."""

    def __init__(self, message: str, *, retry_after: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = max(1, int(retry_after))


class QuotaExceeded(Forbidden):
    """A namespace is at one of its quotas (pipelines/quotas.py) and waiting would not help: 403. ``quota`` names it;
    ``limit`` and ``used`` are what the answer shows (the API adds them to the error body as ``quota``)."""

    code = "quota_exceeded"
    # Seconds after which retrying may succeed; None: waiting does not help.
    retry_after: int | None = None

    def __init__(self, message: str, *, quota: str, limit: int, used: int, field: str | None = None) -> None:
        super().__init__(message, field=field or quota)
        self.quota, self.limit, self.used = quota, limit, used

    def details(self) -> dict[str, object]:
        return {"name": self.quota, "limit": self.limit, "used": self.used}


class QuotaExceededForNow(QuotaExceeded, TooMany):
    """A quota that frees up with time (runs per hour, queued runs): 429 with ``Retry-After``."""

    code = "quota_exceeded"

    def __init__(
        self, message: str, *, quota: str, limit: int, used: int, retry_after: int, field: str | None = None
    ) -> None:
        super().__init__(message, quota=quota, limit=limit, used=used, field=field)
        self.retry_after = max(1, int(retry_after))


class Unavailable(GoferError):
    """Refused for now: the kill switch, a disabled pipeline, a backend that cannot be reached."""

    code = "unavailable"
