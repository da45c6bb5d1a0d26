"""The scheduler interface: how Gofer asks a container engine to run, watch, stop and clean up one task execution.

Every method is safe to call again after a crash: the orchestrator is "state in the database, idempotent steps in
workers", and any step may be re-driven by another worker after the first one died mid-call.

- ``start`` is idempotent by ``spec.name``: if a container of that name already exists (a worker died after asking
  for it), it is adopted, never started twice.
- ``logs`` resumes from an opaque ``cursor`` that the caller stores with every line it keeps, so a new worker
  continues exactly after the last stored line: no line lost, none duplicated.
- ``status`` reports the engine's own start and finish times, so times stay true even when nobody was watching.
"""

from __future__ import annotations

import datetime as dt
import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kernel.outbound import Policy, Refused, registry_of

# Labels every container carries, so that an engine's containers can be traced back to (and adopted by) Gofer.
LABEL_MANAGED = "dev.gofer.managed"
LABEL_NAMESPACE = "dev.gofer.namespace"
LABEL_PIPELINE = "dev.gofer.pipeline"
LABEL_RUN = "dev.gofer.run"
LABEL_TASK = "dev.gofer.task"
LABEL_TASK_EXECUTION = "dev.gofer.task_execution"
# The image as the task names it (the container is created from the image's id, which is all ``docker ps`` shows).
LABEL_IMAGE = "dev.gofer.image"
# Which Gofer installation started the container (access.SystemPreferences.installation_id): only its own are
# adopted and pruned, so two installations on one engine never take or delete each other's containers.
LABEL_INSTALLATION = "dev.gofer.installation"
# A third-party extension's long-lived service (triggers/supervisor.py); such containers have no task execution.
LABEL_EXTENSION = "dev.gofer.extension"


@dataclass(frozen=True)
class RegistryAuth:
    user: str
    password: str = field(repr=False)


# Where a task with a read-only root filesystem may write (each a size-capped tmpfs inside its container).
WRITABLE_PATHS = ("/tmp", "/workspace")  # noqa: S108 - paths inside the task's container, not on this host


@dataclass(frozen=True)
class Hardening:
    """How tightly a task's container is locked down (operator defaults, docs/security.md "Task containers").

    The default instance means "the engine's own defaults", for callers that are not the run engine."""

    user: str = ""  # "uid:gid" to run as whatever the image says; "" keeps the image's user
    read_only_rootfs: bool = False
    tmpfs_mib: int = 0  # size of each tmpfs in WRITABLE_PATHS (mounted when the root filesystem is read-only)
    no_new_privileges: bool = False
    capabilities: tuple[str, ...] | None = None  # kept after dropping all; None: the engine's defaults
    pids_limit: int = 0  # 0: none
    log_max_bytes: int = 0  # of the engine's own copy of the output, per file; 0: the engine's default
    log_max_files: int = 0


@dataclass(frozen=True)
class ContainerSpec:
    """What to run. ``name`` is unique per task execution and deterministic, which is what makes ``start``
    idempotent."""

    name: str
    image: str
    env: dict[str, str] = field(default_factory=dict, repr=False)
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    registry_auth: RegistryAuth | None = None
    always_pull: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    cpu: Decimal | None = None  # CPU cores
    memory_mib: int | None = None
    # Container port -> host port Gofer must reach the container on (an extension's service). Engines whose
    # containers share the host's network (local; Docker with network mode host) have nothing to do.
    ports: dict[int, int] = field(default_factory=dict)
    hardening: Hardening = field(default_factory=Hardening)
    # Where the engine may pull from (kernel/outbound.py), checked with DNS just before a pull; None: no check.
    registry_policy: Policy | None = None


@dataclass(frozen=True)
class Started:
    handle: str  # the engine's id for the container (Docker container id, Nomad job id, ...)
    image_digest: str = ""  # what actually ran: "repo@sha256:..." or an image id; "" if the engine cannot tell
    adopted: bool = False  # True when an existing container of that name was found instead of starting one


class State(enum.StrEnum):
    PENDING = "pending"  # accepted, not running yet (pulling, placing)
    RUNNING = "running"
    EXITED = "exited"
    MISSING = "missing"  # the engine has no such container (removed, or never created)
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Status:
    state: State
    exit_code: int | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    message: str = ""  # the engine's explanation (OOM killed, image not found, placement failed, ...)


def check_pull_allowed(spec: ContainerSpec) -> None:
    """Raise NoSuchImage (permanent) when the spec's registry policy refuses the registry the image would be pulled
    from; engines that pull call it just before pulling."""
    if spec.registry_policy is None:
        return
    try:
        spec.registry_policy.check(*registry_of(spec.image))
    except Refused as exc:
        raise NoSuchImage(f"image {spec.image!r} was not pulled: its registry is not allowed: {exc}") from None


def check_adoptable(spec: ContainerSpec, labels: dict[str, str] | None) -> None:
    """Refuse to adopt a container named ``spec.name`` that this installation did not start for this task
    execution (a container planted under the right name, or another installation's). Raises a permanent
    SchedulerError; the task fails rather than report someone else's output as its own. Specs without an
    installation label (callers other than the run engine) adopt by name, as before."""
    wanted = spec.labels.get(LABEL_INSTALLATION)
    if wanted is None:
        return
    labels = labels or {}
    if labels.get(LABEL_INSTALLATION) != wanted or labels.get(LABEL_TASK_EXECUTION) != spec.labels.get(
        LABEL_TASK_EXECUTION
    ):
        raise SchedulerError(
            f"a container named {spec.name} exists that this Gofer installation did not start for this task; "
            "it was not adopted (remove it, or find out who created it)",
            permanent=True,
        )


def prunable(labels: dict[str, str] | None, installation: str | None) -> bool:
    """Whether a container with ``labels`` belongs to ``installation`` (None: any Gofer container)."""
    return installation is None or (labels or {}).get(LABEL_INSTALLATION) == installation


def truncation_note(dropped: int) -> str:
    """What ends a log line cut at GOFER_LOG_MAX_LINE_BYTES: how much was left out."""
    return f" [gofer: line truncated, {dropped} more bytes not kept]"


@dataclass(frozen=True)
class LogLine:
    time: dt.datetime
    stream: str  # "stdout" | "stderr"
    text: str  # without the trailing newline
    cursor: dict[str, Any]  # JSON-able; pass it back to logs() to continue right after this line


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def epoch_ns(time: dt.datetime) -> int:
    """Nanoseconds since the epoch of a datetime (its microseconds, exactly; a naive one is taken as UTC)."""
    if time.tzinfo is None:
        time = time.replace(tzinfo=dt.UTC)
    return (time - _EPOCH) // _MICROSECOND * 1000


@dataclass
class LogBatch:
    """Lines an engine had ready at once, in log order: ``lines`` are ``(epoch nanoseconds, stream, text)``, and
    ``cursor`` is the cursor right after the last of them (what ``logs()`` gives that line)."""

    lines: list[tuple[int, str, str]]
    cursor: dict[str, Any] | None


class SchedulerError(Exception):
    """An engine failure. ``reason`` is one of the codes below; ``permanent`` means retrying will not help."""

    reason = "scheduler_error"
    permanent = False

    def __init__(self, message: str, *, permanent: bool | None = None) -> None:
        super().__init__(message)
        if permanent is not None:
            self.permanent = permanent


class NoSuchImage(SchedulerError):
    reason = "no_such_image"
    permanent = True


class NoSuchContainer(SchedulerError):
    reason = "no_such_container"
    permanent = True


class EngineUnavailable(SchedulerError):
    """The engine cannot be reached right now (connection refused, timeout): worth retrying."""

    reason = "connection"
    permanent = False


class ExecSession(ABC):
    """An interactive command inside a running container (``task attach``)."""

    @abstractmethod
    def send(self, data: bytes) -> None: ...

    @abstractmethod
    def recv(self, timeout: float) -> bytes | None:
        """Output bytes, ``b""`` when nothing arrived within ``timeout``, ``None`` once the command ended."""

    @abstractmethod
    def close(self) -> None: ...


class Scheduler(ABC):
    """One container engine. Implementations: docker, nomad, local (runs/schedulers/__init__.py)."""

    name: str = ""

    @abstractmethod
    def start(self, spec: ContainerSpec) -> Started:
        """Run ``spec``, or adopt the existing container named ``spec.name``. Pulls the image when needed (always
        when ``spec.always_pull``). Raises NoSuchImage, EngineUnavailable or SchedulerError."""

    @abstractmethod
    def find(self, name: str) -> str | None:
        """The handle of the container named ``name``, if the engine has one."""

    @abstractmethod
    def status(self, handle: str) -> Status:
        """The container's state with the engine's own start/finish times and exit code."""

    @abstractmethod
    def logs(self, handle: str, cursor: dict[str, Any] | None, *, follow_for: float = 0.0) -> Iterator[LogLine]:
        """Lines after ``cursor`` (all lines when None), in order. With ``follow_for`` > 0, keeps waiting for new
        lines up to that many seconds while the container runs; returns early once it has exited and every line was
        read."""

    # The most lines, and about the most bytes of text, the default ``log_batches`` puts in one batch.
    LOG_BATCH_LINES = 2000
    LOG_BATCH_BYTES = 1024 * 1024

    def log_batches(self, handle: str, cursor: dict[str, Any] | None, *, follow_for: float = 0.0) -> Iterator[LogBatch]:
        """The lines of ``logs()``, grouped: each batch is what the engine had ready at once, so a caller that stores
        a batch as soon as it comes stores each line without waiting for the next. This default groups up to
        LOG_BATCH_LINES lines (or LOG_BATCH_BYTES of text) as ``logs()`` yields them, since it cannot tell when the
        engine has nothing more; Docker's engine reads its stream in blocks and yields one batch per block."""
        lines: list[tuple[int, str, str]] = []
        size = 0
        last: LogLine | None = None
        iterator = self.logs(handle, cursor, follow_for=follow_for)
        try:
            for line in iterator:
                lines.append((epoch_ns(line.time), line.stream, line.text))
                size += len(line.text)
                last = line
                if len(lines) >= self.LOG_BATCH_LINES or size >= self.LOG_BATCH_BYTES:
                    yield LogBatch(lines, last.cursor)
                    lines, size = [], 0
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        if lines and last is not None:
            yield LogBatch(lines, last.cursor)

    @abstractmethod
    def stop(self, handle: str) -> None:
        """Ask the container to stop gracefully (SIGTERM). Returns at once; does nothing if it already exited."""

    @abstractmethod
    def kill(self, handle: str) -> None:
        """Stop the container now (SIGKILL). Does nothing if it already exited."""

    @abstractmethod
    def remove(self, handle: str) -> None:
        """Delete a finished container and what the engine keeps of it. Missing containers are not an error."""

    def exec(self, handle: str, command: list[str]) -> ExecSession:
        """Start ``command`` interactively inside the running container."""
        raise SchedulerError(f"the {self.name} scheduler cannot attach to containers", permanent=True)

    def prune(
        self, older_than: dt.timedelta, is_done: Callable[[str], bool], *, installation: str | None = None
    ) -> int:
        """Remove Gofer's containers that exited more than ``older_than`` ago and whose task execution (the value of
        their LABEL_TASK_EXECUTION label) ``is_done`` says is finished with; with ``installation``, only those
        carrying that LABEL_INSTALLATION. Returns how many. Optional."""
        return 0

    def service_bind_host(self, host: str) -> str:
        """The address a service started with ``ContainerSpec.ports`` must listen on inside its container, so that
        Gofer reaches it on ``host`` and the published port. Engines whose containers share the host's network: the
        host address itself."""
        return host

    def ping(self) -> None:  # noqa: B027 - engines in this process (memory, local) are always there
        """Raise (EngineUnavailable) when the engine cannot be reached now; cheap (/readyz calls it)."""

    def close(self) -> None:  # noqa: B027 - optional hook; most engines hold nothing to release
        """Release connections."""
