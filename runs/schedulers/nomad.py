"""The Nomad scheduler: every task execution is one Nomad batch job, run by Nomad's ``docker`` driver.

The job's ID is ``spec.name``; it has one group (``gofer``) holding one task (``task``), restarts and reschedules
are disabled (a CI task must never be silently run twice), and Gofer's labels travel as the job's ``Meta`` and as
Docker labels. The shape is in ``job_for_spec`` and in docs/schedulers-nomad.md.

HTTP goes through python-nomad (address, ``X-Nomad-Token``, ``namespace`` and ``region`` query parameters, TLS).
Where python-nomad would encode a boolean the way Python prints it (``True``), the request is built here with
Nomad's documented lower-case spelling instead, and the log endpoint is read as bytes, not decoded text, because
log cursors count bytes.

Settings: ``GOFER_NOMAD_ADDR``, ``GOFER_NOMAD_TOKEN``, ``GOFER_NOMAD_NAMESPACE``, ``GOFER_NOMAD_DATACENTERS``,
``GOFER_NOMAD_REGION``, and, read with a default because they may not exist yet, ``GOFER_NOMAD_MHZ_PER_CORE``
(1000), ``GOFER_NOMAD_DEFAULT_MEMORY_MIB`` (1024), ``GOFER_NOMAD_TIMEOUT`` (30 s) and ``GOFER_NOMAD_CACERT`` ("").
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import math
import ssl
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import nomad
import nomad.api.exceptions as nomad_exc
import requests
from django.conf import settings
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from runs.schedulers.base import (
    WRITABLE_PATHS,
    ContainerSpec,
    EngineUnavailable,
    ExecSession,
    Hardening,
    LogLine,
    NoSuchContainer,
    Scheduler,
    SchedulerError,
    Started,
    State,
    Status,
    check_adoptable,
)

logger = logging.getLogger(__name__)

GROUP_NAME = "gofer"
TASK_NAME = "task"
# Nomad reserves CPU in MHz, not cores; without a spec.cpu we ask for Nomad's own default. It is a scheduling
# reservation and a CPU-shares weight, not a cap, so a small value does not slow a task down on an idle node.
DEFAULT_CPU_MHZ = 100
# Memory, unlike CPU, is a hard limit in Nomad's docker driver: Nomad's own default (300 MB) OOM-kills ordinary
# builds, hence GOFER_NOMAD_DEFAULT_MEMORY_MIB (1024) when the task does not say.

# A line longer than this is returned in pieces of this size: a task printing megabytes without a newline must
# not make every poll re-read and hold an ever-growing partial line.
MAX_LINE_BYTES = 64 * 1024
# At most this much is read from one stream in one request; the rest comes with the next request.
READ_CHUNK_BYTES = 1024 * 1024
FIRST_POLL_INTERVAL = 0.2
MAX_POLL_INTERVAL = 1.0

TERMINAL_CLIENT_STATUSES = {"complete", "failed", "lost"}
# Task event types that explain why a task failed without running its command to the end.
FAILURE_EVENT_TYPES = {
    "Driver Failure",
    "Setup Failure",
    "Failed Validation",
    "Failed Artifact Download",
    "Task hook failed",
    "Failed Restoring Task",
}
ZERO_TIME_PREFIX = "0001-01-01"
# Websocket close codes that mean "done", as opposed to Nomad's 1008/1011 for refused or failed exec requests.
NORMAL_CLOSE_CODES = {1000, 1001, 1005}

T = TypeVar("T")


class _HttpError(Exception):
    """Nomad answered with an HTTP error; ``text`` is Nomad's message (its error bodies are plain text)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"Nomad answered {status}: {text}")
        self.status = status
        self.text = text


def cpu_mhz(cores: Decimal | None, mhz_per_core: int) -> int:
    """Nomad's CPU reservation (MHz) for ``cores``: ``cores * mhz_per_core`` rounded up, at least 1 (Nomad's
    minimum); Nomad's default of 100 MHz when the spec gives no CPU."""
    if cores is None or cores <= 0:
        return DEFAULT_CPU_MHZ
    return max(1, math.ceil(Decimal(cores) * mhz_per_core))


def _hardening_config(hardening: Hardening) -> dict[str, Any]:
    """The docker driver settings that lock the container down, as Docker's scheduler applies them directly."""
    config: dict[str, Any] = {}
    if hardening.capabilities is not None:
        config["cap_drop"] = ["all"]
        config["cap_add"] = [c.lower() for c in hardening.capabilities]
    if hardening.no_new_privileges:
        config["security_opt"] = ["no-new-privileges"]
    if hardening.pids_limit:
        config["pids_limit"] = hardening.pids_limit
    if hardening.read_only_rootfs:
        config["readonly_rootfs"] = True
        # ``mount`` is an HCL block: a list of objects in JSON.
        config["mount"] = [
            {
                "type": "tmpfs",
                "target": path,
                "readonly": False,
                "tmpfs_options": [{"size": hardening.tmpfs_mib * 1024 * 1024}],
            }
            for path in WRITABLE_PATHS
        ]
    return config


def job_for_spec(
    spec: ContainerSpec,
    *,
    namespace: str,
    datacenters: list[str],
    region: str | None,
    mhz_per_core: int,
    default_memory_mib: int,
) -> dict[str, Any]:
    """The Nomad job (the ``Job`` object of ``POST /v1/jobs``) that runs ``spec`` exactly once."""
    config: dict[str, Any] = {"image": spec.image, "force_pull": spec.always_pull}
    if spec.entrypoint is not None:
        config["entrypoint"] = list(spec.entrypoint)
    if spec.command is not None:
        # ``args`` without ``command`` becomes the container's whole Cmd, which is what spec.command means.
        config["args"] = list(spec.command)
    if spec.registry_auth is not None:
        # ``auth`` is an HCL block: in Nomad's JSON a block is an object, or a list of objects.
        config["auth"] = [{"username": spec.registry_auth.user, "password": spec.registry_auth.password}]
    if spec.labels:
        # The docker driver declares ``labels`` as list(map(string)) (HCL1 compatibility), so a list of one map.
        config["labels"] = [dict(spec.labels)]
    config.update(_hardening_config(spec.hardening))
    task: dict[str, Any] = {
        "Name": TASK_NAME,
        "Driver": "docker",
        "Config": config,
        "Env": dict(spec.env),
        "Resources": {
            "CPU": cpu_mhz(spec.cpu, mhz_per_core),
            "MemoryMB": spec.memory_mib if spec.memory_mib else default_memory_mib,
        },
        # Deregistering the job is our "kill": with SIGKILL as the kill signal, it stops the container at once.
        # A graceful stop sends SIGTERM through the signal endpoint instead.
        "KillSignal": "SIGKILL",
    }
    if spec.hardening.user:
        task["User"] = spec.hardening.user
    if spec.hardening.log_max_bytes:
        # Nomad keeps its own copy of a task's output (what the logs API serves): bound it like Docker's.
        task["LogConfig"] = {
            "MaxFiles": spec.hardening.log_max_files or 1,
            "MaxFileSizeMB": max(1, spec.hardening.log_max_bytes // (1024 * 1024)),
        }
    job: dict[str, Any] = {
        "ID": spec.name,
        "Name": spec.name,
        "Type": "batch",
        "Namespace": namespace,
        "Meta": dict(spec.labels),
        "TaskGroups": [
            {
                "Name": GROUP_NAME,
                "Count": 1,
                # A failed task stays failed: Gofer decides about retries, Nomad must not restart or reschedule.
                "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
                "ReschedulePolicy": {"Attempts": 0, "Unlimited": False},
                "Tasks": [task],
            }
        ],
    }
    if datacenters:
        job["Datacenters"] = list(datacenters)
    if region:
        job["Region"] = region
    return job


def parse_nomad_time(value: Any) -> dt.datetime | None:
    """An aware datetime from Nomad's RFC 3339 (nanosecond) times; None for Go's zero time or junk."""
    if not isinstance(value, str) or not value or value.startswith(ZERO_TIME_PREFIX):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _event_text(event: dict[str, Any]) -> str:
    for key in ("DisplayMessage", "DriverError", "SetupError", "ValidationError", "DownloadError", "KillError"):
        text = event.get(key)
        if text:
            return str(text)
    return str(event.get("Message") or event.get("DriverMessage") or "")


def _newest(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not items:
        return None
    return max(items, key=lambda item: (item.get("CreateIndex") or 0, item.get("CreateTime") or 0))


def describe_placement_failure(failed_tg_allocs: dict[str, Any]) -> str:
    """A one-line explanation of an evaluation's ``FailedTGAllocs`` (why no node could take the task)."""
    reasons: list[str] = []
    for metric in failed_tg_allocs.values():
        metric = metric or {}
        available = metric.get("NodesAvailable") or {}
        if available and not any(available.values()):
            reasons.append(f"no ready client node in datacenter(s) {', '.join(sorted(available))}")
        for constraint, count in sorted((metric.get("ConstraintFiltered") or {}).items()):
            reasons.append(f"constraint {constraint!r} filtered {count} node(s)")
        for dimension, count in sorted((metric.get("DimensionExhausted") or {}).items()):
            reasons.append(f"{dimension} exhausted on {count} node(s)")
        for quota in metric.get("QuotaExhausted") or []:
            reasons.append(f"quota exhausted: {quota}")
        if not reasons and metric.get("NodesEvaluated") is not None:
            reasons.append(
                f"{metric.get('NodesEvaluated', 0)} node(s) evaluated, {metric.get('NodesFiltered', 0)} filtered, "
                f"{metric.get('NodesExhausted', 0)} exhausted"
            )
    detail = "; ".join(reasons) if reasons else "no node can run it"
    return f"Nomad cannot place the task yet: {detail}"


def _parse_cursor(cursor: dict[str, Any] | None) -> tuple[str | None, dict[str, int]]:
    """The allocation and byte offsets of a cursor this scheduler made; SchedulerError for anything else."""
    if not cursor:
        return None, {"stdout": 0, "stderr": 0}
    alloc_id = cursor.get("alloc")
    offsets = {name: cursor.get(name, 0) for name in ("stdout", "stderr")}
    valid_offsets = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in offsets.values())
    if not isinstance(alloc_id, str) or not alloc_id or not valid_offsets:
        raise SchedulerError(f"invalid Nomad log cursor {cursor!r}", permanent=True)
    return alloc_id, offsets


class _Stream:
    """One log stream of one allocation: bytes already returned (``emitted``) and bytes read after them that do
    not yet end a line (``partial``)."""

    def __init__(self, name: str, emitted: int) -> None:
        self.name = name
        self.emitted = emitted
        self.partial = b""

    @property
    def read_offset(self) -> int:
        return self.emitted + len(self.partial)

    def take_lines(self, data: bytes, final: bool) -> list[tuple[bytes, int]]:
        """Complete lines from ``partial + data``, each with its length in bytes (newline included). With
        ``final``, a last line without a newline is complete too: nothing more will be written."""
        buffer = self.partial + data
        lines: list[tuple[bytes, int]] = []
        start = 0
        while True:
            newline = buffer.find(b"\n", start, start + MAX_LINE_BYTES + 1)
            if newline >= 0:
                lines.append((buffer[start:newline], newline + 1 - start))
                start = newline + 1
            elif len(buffer) - start > MAX_LINE_BYTES:
                lines.append((buffer[start : start + MAX_LINE_BYTES], MAX_LINE_BYTES))
                start += MAX_LINE_BYTES
            else:
                break
        rest = buffer[start:]
        if final and rest:
            lines.append((rest, len(rest)))
            rest = b""
        self.partial = rest
        return lines


class NomadExecSession(ExecSession):
    """``task attach`` over Nomad's exec websocket: stdin goes out as ``{"stdin": {"data": base64}}`` frames,
    stdout and stderr come back as base64 frames, and ``{"exited": true}`` ends the session."""

    def __init__(self, connection: Any) -> None:
        self._ws = connection
        self._ended = False
        self.exit_code: int | None = None

    def send(self, data: bytes) -> None:
        try:
            self._ws.send(json.dumps({"stdin": {"data": base64.b64encode(data).decode("ascii")}}))
        except ConnectionClosed as exc:
            self._ended = True
            raise SchedulerError("the Nomad exec session has ended", permanent=True) from exc

    def recv(self, timeout: float) -> bytes | None:
        if self._ended:
            return None
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._ws.recv(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return b""
            except ConnectionClosed as exc:
                self._ended = True
                # Nomad upgrades first and validates after, so a refusal (unknown allocation, permission denied)
                # arrives as a close frame with an error code and Nomad's message; a finished command just hangs up.
                if exc.rcvd is not None and exc.rcvd.code not in NORMAL_CLOSE_CODES:
                    raise SchedulerError(f"Nomad ended the exec session: {exc.rcvd.reason}", permanent=True) from exc
                return None
            frame = json.loads(message) if message else {}
            output = b""
            for stream in ("stdout", "stderr"):
                data = (frame.get(stream) or {}).get("data")
                if data:
                    output += base64.b64decode(data)
            if frame.get("exited"):
                self._ended = True
                self.exit_code = (frame.get("result") or {}).get("exit_code")
                return output or None
            if output:
                return output
            # Heartbeats ({}) and "stream closed" frames carry nothing: keep waiting until the deadline.
            if time.monotonic() >= deadline:
                return b""

    def close(self) -> None:
        # Closing stdin first lets the command see EOF; a session that is already gone has nothing to close.
        with contextlib.suppress(Exception):
            if not self._ended:
                self._ws.send(json.dumps({"stdin": {"close": True}}))
        self._ended = True
        self._ws.close()


class NomadScheduler(Scheduler):
    """Runs task executions as Nomad batch jobs. Thread-safe: it holds only configuration and one HTTP session."""

    name = "nomad"

    def __init__(
        self,
        *,
        address: str | None = None,
        token: str | None = None,
        namespace: str | None = None,
        region: str | None = None,
        datacenters: list[str] | None = None,
        timeout: float | None = None,
        poll_interval: float = FIRST_POLL_INTERVAL,
    ) -> None:
        self.address = (address or settings.GOFER_NOMAD_ADDR).rstrip("/")
        self.token = token if token is not None else (settings.GOFER_NOMAD_TOKEN or None)
        self.namespace = namespace or settings.GOFER_NOMAD_NAMESPACE or "default"
        self.region = region if region is not None else (settings.GOFER_NOMAD_REGION or None)
        self.datacenters = list(datacenters if datacenters is not None else settings.GOFER_NOMAD_DATACENTERS)
        self.mhz_per_core = settings.GOFER_NOMAD_MHZ_PER_CORE
        self.default_memory_mib = settings.GOFER_NOMAD_DEFAULT_MEMORY_MIB
        self.timeout = float(timeout if timeout is not None else settings.GOFER_NOMAD_TIMEOUT)
        self.cacert = settings.GOFER_NOMAD_CACERT
        self.poll_interval = poll_interval
        self._session = requests.Session()
        # python-nomad turns verification off unless told: Gofer always verifies (the CA bundle, or the system's).
        self._nomad = nomad.Nomad(
            address=self.address,
            token=self.token,
            namespace=self.namespace,
            region=self.region,
            timeout=self.timeout,  # type: ignore[arg-type]  # annotated int; requests takes floats
            verify=self.cacert or True,  # type: ignore[arg-type]  # annotated bool; requests takes a CA path
            session=self._session,
        )

    # --- plumbing ---------------------------------------------------------------------------------------------

    def _call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one python-nomad call, turning its exceptions into ours: HTTP errors into ``_HttpError``, anything
        that never got an HTTP answer (refused, reset, timed out) into EngineUnavailable."""
        try:
            return func(*args, **kwargs)
        except nomad_exc.BaseNomadException as exc:
            response = exc.nomad_resp
            if isinstance(response, requests.Response):
                raise _HttpError(response.status_code, response.text.strip()) from exc
            raise EngineUnavailable(f"cannot reach Nomad at {self.address}: {response}") from exc
        except requests.RequestException as exc:  # python-nomad's TimeoutNomadException and streaming errors
            raise EngineUnavailable(f"cannot reach Nomad at {self.address}: {exc}") from exc
        except ValueError as exc:  # a body that is not JSON: a proxy's error page, say
            raise SchedulerError(f"Nomad at {self.address} answered something that is not JSON: {exc}") from exc

    def ping(self) -> None:
        try:
            self._call(self._nomad.status.leader.get_leader)
        except _HttpError as exc:
            raise EngineUnavailable(f"Nomad at {self.address} answered {exc.status}") from exc

    @staticmethod
    def _error(exc: _HttpError, doing: str) -> SchedulerError:
        # 4xx: the request is wrong or not allowed, and sending it again will not change that (429 aside).
        permanent = 400 <= exc.status < 500 and exc.status not in (408, 429)
        return SchedulerError(f"Nomad refused to {doing}: {exc.status} {exc.text}", permanent=permanent)

    @staticmethod
    def _path(value: str) -> str:
        return quote(value, safe="")

    def _get_job(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self._call(self._nomad.job.get_job, self._path(job_id))
        except _HttpError as exc:
            if exc.status == 404:
                return None
            raise self._error(exc, f"read job {job_id}") from exc

    def _allocations(self, job_id: str) -> list[dict[str, Any]]:
        try:
            return self._call(self._nomad.job.get_allocations, self._path(job_id)) or []
        except _HttpError as exc:
            raise self._error(exc, f"list the allocations of job {job_id}") from exc

    def _allocation(self, alloc_id: str) -> dict[str, Any] | None:
        try:
            return self._call(self._nomad.allocation.get_allocation, self._path(alloc_id))
        except _HttpError as exc:
            if exc.status == 404:
                return None
            raise self._error(exc, f"read allocation {alloc_id}") from exc

    def _deregister(self, job_id: str, *, purge: bool) -> None:
        params = {"purge": "true"} if purge else None
        try:
            self._call(self._nomad.job.request, self._path(job_id), method="delete", params=params)
        except _HttpError as exc:
            if exc.status == 404:
                return
            raise self._error(exc, f"stop job {job_id}") from exc

    # --- the interface ------------------------------------------------------------------------------------------

    def job_for(self, spec: ContainerSpec) -> dict[str, Any]:
        """The job ``start`` registers for ``spec``, with this scheduler's settings."""
        return job_for_spec(
            spec,
            namespace=self.namespace,
            datacenters=self.datacenters,
            region=self.region,
            mhz_per_core=self.mhz_per_core,
            default_memory_mib=self.default_memory_mib,
        )

    def start(self, spec: ContainerSpec) -> Started:
        """Register the job ``spec.name``, or adopt it if Nomad already has it (even finished, until Nomad's garbage
        collector purges it). Registration is check-and-set (``EnforceIndex`` with index 0: "only if new"), so two
        workers racing on one task execution register it once; the loser adopts. Image problems cannot be known
        here: Nomad pulls on the client, later, and ``status`` reports them."""
        existing = self._get_job(spec.name)
        if existing is not None:
            check_adoptable(spec, existing.get("Meta"))
            return Started(handle=spec.name, adopted=True)
        body = {"Job": self.job_for(spec), "EnforceIndex": True, "JobModifyIndex": 0}
        try:
            answer = self._call(self._nomad.jobs.register_job, body)
        except _HttpError as exc:
            raced = self._get_job(spec.name) if exc.status >= 500 else None
            if raced is not None:
                # "Enforcing job modify index 0: job already exists": another worker registered it first.
                check_adoptable(spec, raced.get("Meta"))
                return Started(handle=spec.name, adopted=True)
            raise self._error(exc, f"register job {spec.name}") from exc
        warnings = (answer or {}).get("Warnings")
        if warnings:
            logger.warning("Nomad registered job %s with warnings: %s", spec.name, warnings)
        return Started(handle=spec.name)

    def find(self, name: str) -> str | None:
        """The job ID ``name`` if Nomad knows that job (running, finished or stopped, but not purged)."""
        return name if self._get_job(name) is not None else None

    def status(self, handle: str) -> Status:
        """From the job's newest allocation: its client status and the task's state, events and times. A job
        with no allocation is PENDING, with the newest evaluation's placement failure as the message."""
        job = self._get_job(handle)
        if job is None:
            return Status(State.MISSING)
        alloc = _newest(self._allocations(handle))
        if alloc is None:
            if job.get("Stop"):
                return Status(State.EXITED, message="the Nomad job was stopped before it was placed on a node")
            if job.get("Status") == "dead":
                return Status(State.UNKNOWN, message="the Nomad job is dead and has no allocation")
            return Status(State.PENDING, message=self._placement_message(handle))
        return self._alloc_status(alloc)

    def _placement_message(self, job_id: str) -> str:
        try:
            evaluations = self._call(self._nomad.job.get_evaluations, self._path(job_id)) or []
        except _HttpError as exc:
            raise self._error(exc, f"list the evaluations of job {job_id}") from exc
        for evaluation in sorted(evaluations, key=lambda e: e.get("CreateIndex") or 0, reverse=True):
            if evaluation.get("FailedTGAllocs"):
                return describe_placement_failure(evaluation["FailedTGAllocs"])
            if evaluation.get("Status") in ("failed", "canceled"):
                return f"Nomad evaluation {evaluation.get('Status')}: {evaluation.get('StatusDescription') or ''}"
        return ""

    @staticmethod
    def _alloc_status(alloc: dict[str, Any]) -> Status:
        client_status = alloc.get("ClientStatus") or ""
        task = (alloc.get("TaskStates") or {}).get(TASK_NAME) or {}
        task_state = task.get("State") or ""
        events: list[dict[str, Any]] = task.get("Events") or []
        started_at = parse_nomad_time(task.get("StartedAt"))
        finished_at = parse_nomad_time(task.get("FinishedAt"))

        exit_code: int | None = None
        message = ""
        for event in events:
            if event.get("Type") == "Terminated":
                exit_code = int(event.get("ExitCode") or 0)
                if (event.get("Details") or {}).get("oom_killed") == "true":
                    message = "OOM killed: the task went over its memory limit"
            elif event.get("FailsTask") or event.get("Type") in FAILURE_EVENT_TYPES:
                message = _event_text(event) or message

        if client_status in TERMINAL_CLIENT_STATUSES or task_state == "dead":
            if client_status == "lost" and not message:
                message = f"Nomad lost the allocation: {alloc.get('ClientDescription') or 'its node went away'}"
            return Status(State.EXITED, exit_code, started_at, finished_at, message)
        if client_status == "unknown":
            # The client is disconnected: its last report (even "running") may be stale.
            return Status(State.UNKNOWN, None, started_at, None, "the Nomad client running the task is disconnected")
        if client_status == "running" or task_state == "running":
            return Status(State.RUNNING, None, started_at, None, message)
        if client_status == "pending":
            if not message and events:
                message = _event_text(events[-1])
            return Status(State.PENDING, None, started_at, None, message)
        return Status(State.UNKNOWN, None, started_at, finished_at, f"Nomad client status {client_status!r}")

    def logs(self, handle: str, cursor: dict[str, Any] | None, *, follow_for: float = 0.0) -> Iterator[LogLine]:
        """Lines of the newest allocation (or of ``cursor["alloc"]``) after ``cursor``, read with the filesystem
        logs API (``origin=start``, byte ``offset``, ``plain=true``, ``follow=false``) and polled while
        ``follow_for`` lasts.

        Each cursor counts the bytes of complete lines returned so far on both streams, so resuming from any line's
        cursor repeats nothing and skips nothing. A last line without a newline is held back until the task is
        dead (then it is complete). Nomad's logs carry no timestamps: a line is stamped with the time it was read,
        and the lines of one poll come stdout first, then stderr (their true order is unknowable)."""
        deadline = time.monotonic() + max(0.0, follow_for)
        alloc_id, offsets = _parse_cursor(cursor)
        if not alloc_id:
            alloc_id = self._wait_for_allocation(handle, deadline)
            if alloc_id is None:
                return
        streams = [_Stream("stdout", offsets["stdout"]), _Stream("stderr", offsets["stderr"])]
        interval = self.poll_interval
        while True:
            # Read the state before the logs: if the task was dead before the read, the read saw everything.
            alloc = self._allocation(alloc_id)
            if alloc is None:
                raise NoSuchContainer(f"Nomad has no allocation {alloc_id} (job {handle}) any more")
            dead = self._alloc_status(alloc).state == State.EXITED
            batch: list[tuple[str, bytes, dict[str, Any]]] = []
            drained = True
            for stream in streams:
                data, complete = self._read_log(alloc_id, stream.name, stream.read_offset)
                drained = drained and complete
                for raw, size in stream.take_lines(data, final=dead and complete):
                    stream.emitted += size
                    # The position right after this line, taken now: later lines of the batch move it on.
                    position = {"alloc": alloc_id, **{s.name: s.emitted for s in streams}}
                    batch.append((stream.name, raw, position))
            now = dt.datetime.now(dt.UTC)
            for name, raw, position in batch:
                yield LogLine(now, name, raw.decode("utf-8", errors="replace"), position)
            if not drained:
                continue  # more is waiting on the client: read it now, whatever the deadline
            remaining = deadline - time.monotonic()
            if dead or remaining <= 0:
                return
            interval = self.poll_interval if batch else min(interval * 2, MAX_POLL_INTERVAL)
            time.sleep(min(interval, remaining))

    def _wait_for_allocation(self, handle: str, deadline: float) -> str | None:
        interval = self.poll_interval
        while True:
            alloc = _newest(self._allocations(handle))
            if alloc is not None:
                return str(alloc["ID"])
            if self._get_job(handle) is None:
                raise NoSuchContainer(f"Nomad has no job {handle}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, MAX_POLL_INTERVAL)

    def _read_log(self, alloc_id: str, stream: str, offset: int) -> tuple[bytes, bool]:
        """Up to about READ_CHUNK_BYTES of ``stream`` from byte ``offset``, and whether that reached the end of what
        the client had. A 404 (task not started yet, or its files already collected) reads as empty."""
        params = {
            "task": TASK_NAME,
            "type": stream,
            "origin": "start",
            "offset": str(offset),
            "plain": "true",
            "follow": "false",
        }
        requester = self._nomad.client.stream_logs
        try:
            response = self._call(requester.request, self._path(alloc_id), method="get", params=params, stream=True)
        except _HttpError as exc:
            if exc.status == 404:
                return b"", True
            raise self._error(exc, f"read the {stream} of allocation {alloc_id}") from exc
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(chunk_size=64 * 1024):
                chunks.append(chunk)
                size += len(chunk)
                if size >= READ_CHUNK_BYTES:
                    break
        except requests.RequestException as exc:
            raise EngineUnavailable(f"reading logs from Nomad at {self.address} failed: {exc}") from exc
        finally:
            response.close()
        return b"".join(chunks), size < READ_CHUNK_BYTES

    def stop(self, handle: str) -> None:
        """SIGTERM to the task through ``POST /v1/client/allocation/:id/signal``. A task not started yet (placing,
        pulling) has nothing to signal: its job is deregistered instead. Finished or unknown jobs: nothing."""
        job = self._get_job(handle)
        if job is None or job.get("Stop"):
            return
        alloc = _newest(self._allocations(handle))
        state = self._alloc_status(alloc).state if alloc is not None else State.PENDING
        if state == State.EXITED:
            return
        if state != State.RUNNING or alloc is None:
            self._deregister(handle, purge=False)
            return
        try:
            self._call(self._nomad.client.allocation.signal_allocation, alloc["ID"], "SIGTERM", task=TASK_NAME)
        except _HttpError as exc:
            if exc.status == 404:
                return
            # "Task not running": it ended, or never started, between our read and the signal.
            after = self.status(handle).state
            if after in (State.EXITED, State.MISSING):
                return
            if after == State.PENDING:
                self._deregister(handle, purge=False)
                return
            raise self._error(exc, f"signal allocation {alloc['ID']}") from exc

    def kill(self, handle: str) -> None:
        """Deregister the job (``DELETE /v1/job/:id``): Nomad stops the task with its kill signal, SIGKILL. The job
        stays readable (status, logs) until Nomad's garbage collector purges it."""
        self._deregister(handle, purge=False)

    def remove(self, handle: str) -> None:
        """Deregister and purge the job (``DELETE /v1/job/:id?purge=true``); a missing job is not an error."""
        self._deregister(handle, purge=True)

    def exec(self, handle: str, command: list[str]) -> ExecSession:
        """``command`` inside the running task, over ``/v1/client/allocation/:id/exec`` (a websocket)."""
        alloc = _newest(self._allocations(handle))
        state = self._alloc_status(alloc).state if alloc is not None else State.PENDING
        if alloc is None or state != State.RUNNING:
            # Not running *yet* is worth another try; finished, lost or unknown is not.
            raise SchedulerError(f"cannot attach to {handle}: its task is {state}", permanent=state != State.PENDING)
        # The same token and region as the REST calls: python-nomad may have taken them from NOMAD_TOKEN/REGION.
        token, region = self._nomad.get_token(), self._nomad.region
        query: dict[str, str] = {"task": TASK_NAME, "command": json.dumps(command), "tty": "false"}
        query["namespace"] = self.namespace
        if region:
            query["region"] = region
        parts = urlsplit(self.address)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path.rstrip('/')}/v1/client/allocation/{self._path(str(alloc['ID']))}/exec"
        url = urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))
        context = None
        if scheme == "wss":
            context = ssl.create_default_context(cafile=self.cacert or None)
            if self._nomad.cert:
                context.load_cert_chain(*self._nomad.cert)
        headers = {"X-Nomad-Token": token} if token else None
        try:
            # No compression: Nomad's websocket server does not negotiate permessage-deflate. legacy=True: the
            # session outlives this call, so the connection cannot live in a ``with`` block.
            connection = connect(
                url,
                ssl=context,
                additional_headers=headers,
                compression=None,
                open_timeout=self.timeout,
                legacy=True,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", errors="replace").strip() if exc.response.body else ""
            raise self._error(_HttpError(status, body), f"open an exec session in {handle}") from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise EngineUnavailable(f"cannot open an exec session with Nomad at {self.address}: {exc}") from exc
        return NomadExecSession(connection)

    def close(self) -> None:
        self._session.close()
