"""A fake Nomad agent for tests: the few HTTP endpoints Gofer's Nomad scheduler uses, with in-memory state.

It is a request checker first. Every request is recorded (``fake.requests``), and a request that does not match the
shape Nomad documents is refused the way Nomad refuses it, so a test fails instead of a production cluster:

- an unknown path answers 404 with an empty body (Nomad's fall-through) and a known path with the wrong method
  answers 405 ``Invalid method``;
- a query parameter the endpoint does not document answers 400 (stricter than Nomad, which ignores it: a misspelt
  parameter is silently dropped by the real thing, so it is worth catching here);
- a job that is not what Gofer means to register answers 400 with a Nomad-style message: no ``Job`` ("Job must be
  specified"), no ``Job.ID`` ("Job ID hasn't been provided"), unknown fields at any level of the job (again stricter
  than Nomad, whose JSON decoder drops them), a ``Type`` other than ``batch``, not exactly one group of one task,
  a ``Driver`` other than ``docker``, a docker ``Config`` key or value the driver's schema would refuse, resources
  under Nomad's minimums, a restart policy Nomad would reject. Real Nomad reports server-side validation failures
  with status 500 and the same kind of text; the fake uses 400 so a test can tell them from injected 500s.

Allocations exist only when a test says so (``set_allocation``): registering a job creates an evaluation and
nothing else, as if no client had picked it up yet. Tests then drive the lifecycle: ``set_allocation`` (pending,
running, complete, failed, lost; exit code, times, events), ``append_log`` and ``finish``, ``add_evaluation`` for
placement failures, ``fail_next`` to inject an error, ``acl_token`` to require ``X-Nomad-Token``.

Deregistering a job (``DELETE /v1/job/:id``) marks it stopped and, like a job whose kill signal is SIGKILL, ends its
running allocation at once with exit code 137; ``purge=true`` also forgets the job. ``exec`` speaks Nomad's exec
websocket protocol (JSON frames with base64 data) through the ``websockets`` library's server protocol: it echoes
stdin to stdout and, when stdin is closed or ``exec_exit_input`` arrives, reports ``exec_exit_code`` and hangs up.
Like current Nomad, it upgrades first and refuses after (bad token, unknown allocation, injected failure) with a
close frame: code 1011 for a 500, 1008 for anything else, Nomad's message as the reason.

Not implemented (answers 501, so a test notices): ``follow=true`` and framed (``plain=false``) log streaming.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import re
import select
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# Go's strconv.ParseBool, which Nomad uses for every boolean query parameter.
GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True}
GO_BOOLS |= {"0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
ZERO_TIME = "0001-01-01T00:00:00Z"
COMMON_PARAMS = {"namespace", "region", "index", "wait", "stale", "prefix", "pretty"}

# Fields of the api.Job structures Gofer may send (a subset of Nomad's; anything else is refused).
JOB_FIELDS = {"ID", "Name", "Type", "Namespace", "Region", "Datacenters", "Meta", "TaskGroups", "Priority"}
GROUP_FIELDS = {"Name", "Count", "RestartPolicy", "ReschedulePolicy", "Tasks", "Meta", "EphemeralDisk"}
TASK_FIELDS = {"Name", "Driver", "Config", "Env", "Resources", "KillSignal", "KillTimeout", "Meta", "LogConfig", "User"}
LOG_CONFIG_FIELDS = {"MaxFiles", "MaxFileSizeMB", "Disabled"}
RESOURCES_FIELDS = {"CPU", "Cores", "MemoryMB", "MemoryMaxMB"}
RESTART_FIELDS = {"Attempts", "Interval", "Delay", "Mode", "RenderTemplates"}
RESCHEDULE_FIELDS = {"Attempts", "Interval", "Delay", "DelayFunction", "MaxDelay", "Unlimited"}
REGISTER_FIELDS = {"Job", "EnforceIndex", "JobModifyIndex", "PolicyOverride", "PreserveCounts", "EvalPriority"}
# The docker driver's task config schema (drivers/docker/config.go), for the keys Gofer may use.
DOCKER_CONFIG = {
    "image": str,
    "entrypoint": list,
    "args": list,
    "command": str,
    "force_pull": bool,
    "labels": list,
    "auth": list,
    "cap_add": list,
    "cap_drop": list,
    "security_opt": list,
    "pids_limit": int,
    "readonly_rootfs": bool,
    "mount": list,
}
DOCKER_AUTH_FIELDS = {"username", "password", "email", "server_address"}
# The docker driver's ``mount`` block (type tmpfs) and its ``tmpfs_options`` block.
DOCKER_MOUNT_FIELDS = {"type", "target", "source", "readonly", "tmpfs_options", "bind_options", "volume_options"}
DOCKER_TMPFS_FIELDS = {"size", "mode"}


class Refused(Exception):
    """Answer the current request with ``status`` and Nomad's plain-text ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    status: int = 0  # what the fake answered

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Injected:
    method: str
    path: str
    status: int
    message: str
    then: Callable[[], Any] | None = None


def nomad_time(when: dt.datetime) -> str:
    """Nomad's RFC 3339 time with nanoseconds, as its API prints them."""
    when = when.astimezone(dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}123Z"


def _ns(when: dt.datetime) -> int:
    return int(when.timestamp() * 1_000_000_000)


def event(type_: str, when: dt.datetime | None = None, **fields: Any) -> dict[str, Any]:
    """A TaskEvent as Nomad's API returns it (the fields Gofer reads, plus a few always present)."""
    base: dict[str, Any] = {
        "Type": type_,
        "Time": _ns(when or dt.datetime.now(dt.UTC)),
        "FailsTask": False,
        "ExitCode": 0,
        "Signal": 0,
        "Message": "",
        "DriverError": "",
        "DriverMessage": "",
        "SetupError": "",
        "DisplayMessage": "",
        "Details": {},
    }
    base.update(fields)
    return base


class FakeNomad:
    """The fake agent. ``with FakeNomad() as fake: ... fake.address ...``; state is guarded by one lock."""

    def __init__(self, *, acl_token: str | None = None, namespace: str = "default") -> None:
        self.acl_token = acl_token
        self.namespace = namespace
        self.requests: list[RecordedRequest] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.allocations: dict[str, dict[str, Any]] = {}
        self.evaluations: dict[str, list[dict[str, Any]]] = {}
        self.logs: dict[str, dict[str, bytearray]] = {}
        self.signals: list[tuple[str, dict[str, Any]]] = []
        self.exec_frames: list[dict[str, Any]] = []
        self.exec_exit_code = 0
        self.exec_exit_input = b"exit\n"  # stdin that ends the exec'd command, like a shell's "exit"
        self.on_signal: Callable[[str, str], None] | None = None
        self._injected: list[_Injected] = []
        self._index = itertools.count(10)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> FakeNomad:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-nomad", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeNomad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- what tests read ----------------------------------------------------------------------------------------

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests with this method and exact path."""
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def registrations(self) -> list[dict[str, Any]]:
        """The bodies of every accepted job registration, in order."""
        with self._lock:
            return [
                r.json
                for r in self.requests
                if r.path == "/v1/jobs" and r.method in ("PUT", "POST") and r.status == 200
            ]

    def alloc_of(self, job_id: str) -> dict[str, Any] | None:
        """The job's newest allocation."""
        with self._lock:
            allocs = [a for a in self.allocations.values() if a["JobID"] == job_id]
            return max(allocs, key=lambda a: a["CreateIndex"]) if allocs else None

    # --- what tests drive ---------------------------------------------------------------------------------------

    def fail_next(
        self, method: str, path: str, status: int, message: str, then: Callable[[], Any] | None = None
    ) -> None:
        """Answer the next ``method path`` request with ``status`` and ``message`` instead of handling it, then run
        ``then`` (to change state "while" the request failed, as a race would)."""
        with self._lock:
            self._injected.append(_Injected(method, path, status, message, then))

    def set_allocation(
        self,
        job_id: str,
        *,
        client_status: str = "running",
        task_state: str | None = None,
        exit_code: int | None = None,
        started_at: dt.datetime | None = None,
        finished_at: dt.datetime | None = None,
        events: list[dict[str, Any]] | None = None,
        client_description: str = "",
        stdout: bytes = b"",
        stderr: bytes = b"",
        new: bool = False,
    ) -> str:
        """Create (or, unless ``new``, update) the job's newest allocation; returns its ID.

        ``task_state`` defaults from ``client_status`` (pending, running, else dead). Events default to what Nomad
        emits: Received, Task Setup, Started once running, Terminated with ``exit_code`` once dead (if given).
        A task that started gets ``started_at`` (default: now) and a dead one ``finished_at`` (default: now)."""
        with self._lock:
            if job_id not in self.jobs:
                raise KeyError(f"the fake has no job {job_id}")
            now = dt.datetime.now(dt.UTC)
            state = task_state or {"pending": "pending", "running": "running"}.get(client_status, "dead")
            has_started = state == "running" or (state == "dead" and (started_at is not None or exit_code is not None))
            if has_started and started_at is None:
                started_at = now
            if state == "dead" and finished_at is None:
                finished_at = now
            task_events = [event("Received", now), event("Task Setup", now, Message="Building Task Directory")]
            if has_started:
                task_events.append(event("Started", started_at))
            if state == "dead" and exit_code is not None:
                task_events.append(
                    event("Terminated", finished_at, ExitCode=exit_code, Details={"exit_code": str(exit_code)})
                )
            task_events.extend(events or [])
            alloc = None if new else self.alloc_of(job_id)
            index = next(self._index)
            if alloc is None:
                alloc = {
                    "ID": str(uuid.uuid4()),
                    "EvalID": str(uuid.uuid4()),
                    "Name": f"{job_id}.gofer[0]",
                    "NodeID": str(uuid.uuid4()),
                    "JobID": job_id,
                    "Namespace": self.namespace,
                    "TaskGroup": "gofer",
                    "DesiredStatus": "run",
                    "CreateIndex": index,
                    "CreateTime": _ns(now),
                }
                self.allocations[alloc["ID"]] = alloc
                self.logs[alloc["ID"]] = {"stdout": bytearray(), "stderr": bytearray()}
            task_name = self._task_name(job_id)
            alloc.update(
                {
                    "ClientStatus": client_status,
                    "ClientDescription": client_description,
                    "ModifyIndex": index,
                    "ModifyTime": _ns(now),
                    "TaskStates": {
                        task_name: {
                            "State": state,
                            "Failed": client_status == "failed",
                            "Restarts": 0,
                            "StartedAt": nomad_time(started_at) if started_at else ZERO_TIME,
                            "FinishedAt": nomad_time(finished_at) if finished_at else ZERO_TIME,
                            "Events": task_events,
                        }
                    },
                }
            )
            self.logs[alloc["ID"]]["stdout"] += stdout
            self.logs[alloc["ID"]]["stderr"] += stderr
            self.jobs[job_id]["Status"] = "dead" if state == "dead" else client_status
            return alloc["ID"]

    def append_log(self, alloc_id: str, stream: str, data: bytes) -> None:
        with self._lock:
            self.logs[alloc_id][stream] += data

    def finish(self, job_id: str, exit_code: int = 0, **kwargs: Any) -> str:
        """End the task of the job's newest allocation with ``exit_code`` (complete if 0, failed otherwise),
        keeping its start time."""
        with self._lock:
            alloc = self.alloc_of(job_id)
            started = None
            if alloc is not None:
                task = next(iter(alloc["TaskStates"].values()))
                if task["StartedAt"] != ZERO_TIME:
                    started = dt.datetime.fromisoformat(task["StartedAt"])
            return self.set_allocation(
                job_id,
                client_status="complete" if exit_code == 0 else "failed",
                exit_code=exit_code,
                started_at=kwargs.pop("started_at", started),
                **kwargs,
            )

    def add_evaluation(self, job_id: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            index = next(self._index)
            evaluation = {
                "ID": str(uuid.uuid4()),
                "JobID": job_id,
                "Namespace": self.namespace,
                "Type": "batch",
                "TriggeredBy": "job-register",
                "Status": "complete",
                "StatusDescription": "",
                "FailedTGAllocs": None,
                "CreateIndex": index,
                "ModifyIndex": index,
            }
            evaluation.update(fields)
            self.evaluations.setdefault(job_id, []).append(evaluation)
            return evaluation

    def _task_name(self, job_id: str) -> str:
        return self.jobs[job_id]["TaskGroups"][0]["Tasks"][0]["Name"]

    # --- request handling ---------------------------------------------------------------------------------------

    def _routes(self) -> list[tuple[re.Pattern[str], dict[str, Callable[..., Any]]]]:
        return [
            (re.compile(r"/v1/jobs"), {"GET": self._list_jobs, "PUT": self._register, "POST": self._register}),
            (re.compile(r"/v1/status/leader"), {"GET": self._leader}),
            (
                re.compile(r"/v1/job/(?P<job>[^/]+)"),
                {"GET": self._read_job, "PUT": self._update_job, "POST": self._update_job, "DELETE": self._stop_job},
            ),
            (re.compile(r"/v1/job/(?P<job>[^/]+)/allocations"), {"GET": self._job_allocations}),
            (re.compile(r"/v1/job/(?P<job>[^/]+)/evaluations"), {"GET": self._job_evaluations}),
            (re.compile(r"/v1/allocation/(?P<alloc>[^/]+)"), {"GET": self._read_allocation}),
            (re.compile(r"/v1/client/fs/logs/(?P<alloc>[^/]+)"), {"GET": self._logs}),
            (
                re.compile(r"/v1/client/allocation/(?P<alloc>[^/]+)/signal"),
                {"PUT": self._signal, "POST": self._signal},
            ),
            (re.compile(r"/v1/client/allocation/(?P<alloc>[^/]+)/exec"), {"GET": self._exec}),
        ]

    def handle(self, handler: _Handler, method: str) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        record = RecordedRequest(
            method, unquote(url.path), parse_qs(url.query, keep_blank_values=True), dict(handler.headers), body
        )
        with self._lock:
            self.requests.append(record)
        try:
            result = self._dispatch(handler, record)
        except Refused as refusal:
            record.status = refusal.status
            handler.send_plain(refusal.status, refusal.message)
            return
        if result is _HANDLED:
            record.status = 101
            return
        status, payload = result
        record.status = status
        if isinstance(payload, bytes):
            handler.send_plain(status, payload, content_type="text/plain")
        else:
            handler.send_json(status, payload)

    def _dispatch(self, handler: _Handler, record: RecordedRequest) -> Any:
        for pattern, methods in self._routes():
            match = pattern.fullmatch(record.path)
            if not match:
                continue
            if record.method not in methods:
                raise Refused(405, "Invalid method")
            if methods[record.method] == self._exec:
                # Nomad upgrades websockets before anything else; exec checks the token itself, after.
                return self._exec(record, handler=handler, **match.groupdict())
            self._check_token(record)
            self._take_injected(record)
            return methods[record.method](record, handler=handler, **match.groupdict())
        raise Refused(404, "")

    def _take_injected(self, record: RecordedRequest) -> None:
        with self._lock:
            for injected in self._injected:
                if injected.method == record.method and injected.path == record.path:
                    self._injected.remove(injected)
                    if injected.then is not None:
                        injected.then()
                    raise Refused(injected.status, injected.message)

    def _check_token(self, record: RecordedRequest) -> None:
        if self.acl_token is not None and record.header("X-Nomad-Token") != self.acl_token:
            raise Refused(403, "Permission denied")

    @staticmethod
    def _check_params(record: RecordedRequest, allowed: set[str]) -> None:
        for name, values in record.query.items():
            if name not in allowed | COMMON_PARAMS:
                raise Refused(400, f"fake nomad: {record.path} does not take the query parameter {name!r}")
            if len(values) != 1:
                raise Refused(400, f"fake nomad: query parameter {name!r} given {len(values)} times")

    @staticmethod
    def _bool_param(record: RecordedRequest, name: str, message: str) -> bool:
        raw = record.param(name)
        if raw in (None, ""):
            return False
        if raw not in GO_BOOLS:
            raise Refused(400, f'{message}: strconv.ParseBool: parsing "{raw}": invalid syntax')
        return GO_BOOLS[raw]

    def _visible(self, job_id: str, record: RecordedRequest) -> dict[str, Any] | None:
        job = self.jobs.get(job_id)
        namespace = record.param("namespace") or "default"
        if job is None or job.get("Namespace", "default") != namespace:
            return None
        return job

    # jobs

    def _leader(self, record: RecordedRequest, **_: Any) -> tuple[int, Any]:
        """Nomad's leader's RPC address, a JSON string (what /readyz asks, runs/schedulers/nomad.py ``ping``)."""
        return 200, "127.0.0.1:4647"

    def _list_jobs(self, record: RecordedRequest, **_: Any) -> tuple[int, Any]:
        self._check_params(record, {"filter", "meta", "next_token", "per_page"})
        with self._lock:
            stubs = [
                {"ID": j["ID"], "Name": j["Name"], "Type": j["Type"], "Status": j["Status"]} for j in self.jobs.values()
            ]
        return 200, stubs

    def _register(self, record: RecordedRequest, **_: Any) -> tuple[int, Any]:
        return self._register_body(record, url_job_id=None)

    def _update_job(self, record: RecordedRequest, job: str, **_: Any) -> tuple[int, Any]:
        return self._register_body(record, url_job_id=job)

    def _register_body(self, record: RecordedRequest, url_job_id: str | None) -> tuple[int, Any]:
        self._check_params(record, set())
        try:
            body = json.loads(record.body or b"null")
        except json.JSONDecodeError as exc:
            raise Refused(400, f"invalid character in request body: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("Job"), dict):
            raise Refused(400, "Job must be specified")
        _only(body, REGISTER_FIELDS, "the register request")
        job = body["Job"]
        if not isinstance(job.get("ID"), str) or not job["ID"]:
            raise Refused(400, "Job ID hasn't been provided")
        if url_job_id is not None and job["ID"] != url_job_id:
            raise Refused(400, "Job ID does not match name")
        validate_job(job)
        namespace = record.param("namespace") or "default"
        if job.get("Namespace", namespace) != namespace:
            raise Refused(500, f'mismatched request namespace in request: "{namespace}", "{job["Namespace"]}"')
        with self._lock:
            existing = self.jobs.get(job["ID"])
            if body.get("EnforceIndex"):
                wanted = int(body.get("JobModifyIndex") or 0)
                if existing is not None and wanted == 0:
                    raise Refused(500, "Enforcing job modify index 0: job already exists")
                if existing is None and wanted != 0:
                    raise Refused(500, f"Enforcing job modify index {wanted}: job does not exist")
            index = next(self._index)
            stored = json.loads(json.dumps(job))
            stored.setdefault("Namespace", namespace)
            stored.update({"Status": "pending", "Stop": False, "CreateIndex": index, "ModifyIndex": index})
            stored["JobModifyIndex"] = index
            self.jobs[job["ID"]] = stored
            evaluation = self.add_evaluation(job["ID"])
        return 200, {"EvalID": evaluation["ID"], "EvalCreateIndex": index, "JobModifyIndex": index, "Warnings": ""}

    def _read_job(self, record: RecordedRequest, job: str, **_: Any) -> tuple[int, Any]:
        self._check_params(record, set())
        with self._lock:
            found = self._visible(job, record)
            if found is None:
                raise Refused(404, "job not found")
            return 200, json.loads(json.dumps(found))

    def _stop_job(self, record: RecordedRequest, job: str, **_: Any) -> tuple[int, Any]:
        self._check_params(record, {"purge", "global", "eval_priority", "no_shutdown_delay"})
        purge_raw = record.param("purge") or ""
        if purge_raw and purge_raw not in GO_BOOLS:
            raise Refused(500, f'Failed to parse value of "purge" ({purge_raw}) as a bool')
        purge = GO_BOOLS.get(purge_raw, False)
        with self._lock:
            found = self._visible(job, record)
            if found is None:
                return 200, {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0}  # Nomad: not an error
            found["Stop"] = True
            found["Status"] = "dead"
            alloc = self.alloc_of(job)
            killed = [event("Killed", DisplayMessage="Task successfully killed")]
            if alloc is not None and alloc["ClientStatus"] == "running":
                self.finish(job, exit_code=137, events=killed)
            elif alloc is not None and alloc["ClientStatus"] == "pending":
                self.set_allocation(job, client_status="complete", task_state="dead", events=killed)
            if alloc is not None and alloc["ClientStatus"] in ("failed", "complete"):
                alloc["DesiredStatus"] = "stop"
                alloc["ClientStatus"] = "complete"  # an allocation Nomad was told to stop ends "complete"
            index = next(self._index)
            if purge:
                del self.jobs[job]
            evaluation = self.add_evaluation(job, TriggeredBy="job-deregister")
        return 200, {"EvalID": evaluation["ID"], "EvalCreateIndex": index, "JobModifyIndex": index}

    def _job_allocations(self, record: RecordedRequest, job: str, **_: Any) -> tuple[int, Any]:
        self._check_params(record, {"all"})
        self._bool_param(record, "all", "failed to parse all")
        with self._lock:
            if self._visible(job, record) is None:
                return 200, []  # Nomad lists no allocations (not a 404) for an unknown job
            stubs = [json.loads(json.dumps(a)) for a in self.allocations.values() if a["JobID"] == job]
        return 200, stubs

    def _job_evaluations(self, record: RecordedRequest, job: str, **_: Any) -> tuple[int, Any]:
        self._check_params(record, set())
        with self._lock:
            return 200, json.loads(json.dumps(self.evaluations.get(job, [])))

    # allocations

    def _read_allocation(self, record: RecordedRequest, alloc: str, **_: Any) -> tuple[int, Any]:
        self._check_params(record, set())
        with self._lock:
            found = self.allocations.get(alloc)
            if found is None:
                raise Refused(404, "alloc not found")
            return 200, json.loads(json.dumps(found))

    def _logs(self, record: RecordedRequest, alloc: str, **_: Any) -> tuple[int, Any]:
        self._check_params(record, {"task", "type", "follow", "offset", "origin", "plain"})
        task = record.param("task")
        if not task:
            raise Refused(400, "must provide task name")
        follow = self._bool_param(record, "follow", "failed to parse follow field to boolean")
        plain = self._bool_param(record, "plain", "failed to parse plain field to boolean")
        stream = record.param("type")
        if stream not in ("stdout", "stderr"):
            raise Refused(400, "must provide log type (stdout/stderr)")
        try:
            offset = int(record.param("offset") or "0")
        except ValueError as exc:
            raise Refused(400, f"error parsing offset: {exc}") from exc
        origin = record.param("origin") or "start"
        if origin not in ("start", "end"):
            raise Refused(400, "origin must be start or end")
        if follow or not plain:
            raise Refused(501, "fake nomad: only plain=true&follow=false log reads are implemented")
        with self._lock:
            found = self.allocations.get(alloc)
            if found is None:
                raise Refused(404, f'Unknown allocation "{alloc}"')
            state = found["TaskStates"].get(task)
            if state is None:
                raise Refused(400, f'unknown task name "{task}"')
            if state["StartedAt"] == ZERO_TIME:
                raise Refused(404, f'task "{task}" not started yet. No logs available')
            data = bytes(self.logs[alloc][stream])
        start = min(max(offset, 0), len(data)) if origin == "start" else max(len(data) - offset, 0)
        return 200, data[start:]

    def _signal(self, record: RecordedRequest, alloc: str, **_: Any) -> tuple[int, Any]:
        self._check_params(record, set())
        body = record.json
        if not isinstance(body, dict) or not isinstance(body.get("Signal"), str) or not body["Signal"]:
            raise Refused(400, "fake nomad: the signal request needs a Signal")
        _only(body, {"Signal", "Task"}, "the signal request")
        with self._lock:
            found = self.allocations.get(alloc)
            if found is None:
                raise Refused(404, f'Unknown allocation "{alloc}"')
            task = body.get("Task")
            if task and task not in found["TaskStates"]:
                raise Refused(500, f"Failed to signal task: {task}, err: task not found")
            if found["ClientStatus"] != "running":
                raise Refused(500, "Task not running")
            self.signals.append((alloc, body))
            callback = self.on_signal
        if callback is not None:
            callback(alloc, body["Signal"])
        return 200, {}

    def _exec(self, record: RecordedRequest, alloc: str, handler: _Handler, **_: Any) -> Any:
        if (record.header("Upgrade") or "").lower() != "websocket":
            raise Refused(500, "websocket connection not found in context")
        protocol = handler.upgrade_to_websocket()
        if protocol is None:
            return _HANDLED
        try:
            self._check_params(record, {"task", "command", "tty", "ws_handshake"})
            self._check_token(record)
            self._take_injected(record)
            try:
                command = json.loads(record.param("command") or "")
            except json.JSONDecodeError as exc:
                raise Refused(500, f"failed to marshal command into json: {exc}") from exc
            if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
                raise Refused(500, "failed to marshal command into json: not a list of strings")
            self._bool_param(record, "tty", "tty value is not a boolean")
            with self._lock:
                found = self.allocations.get(alloc)
                if found is None:
                    raise Refused(404, f'Unknown allocation "{alloc}"')
                if record.param("task") not in found["TaskStates"]:
                    raise Refused(400, "missing task name")
        except Refused as refusal:
            # As Nomad does: 1011 for internal errors, 1008 (policy violation) for every other refusal.
            handler.close_websocket(protocol, 1011 if refusal.status == 500 else 1008, refusal.message)
            return _HANDLED
        handler.run_exec_session(protocol)
        return _HANDLED


_HANDLED = object()


def _only(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise Refused(400, f"fake nomad: unknown field(s) {', '.join(unknown)} in {where}")


def _string_map(value: Any, where: str) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise Refused(400, f"json: cannot unmarshal {where} into Go value of type map[string]string")


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Refused(400, f"json: cannot unmarshal {type(value).__name__} into Go struct field {where} of type int")
    return value


def validate_job(job: dict[str, Any]) -> None:
    """Refuse (``Refused``) a job that is not one batch group of one docker task, or that Nomad would reject."""
    _only(job, JOB_FIELDS, "Job")
    if job.get("Type") != "batch":
        raise Refused(400, f"fake nomad: Gofer registers batch jobs only, not Type {job.get('Type')!r}")
    if "Datacenters" in job and (
        not isinstance(job["Datacenters"], list)
        or not job["Datacenters"]
        or not all(isinstance(d, str) for d in job["Datacenters"])
    ):
        raise Refused(400, "Job must specify at least one datacenter")
    if "Meta" in job:
        _string_map(job["Meta"], "Job.Meta")
    groups = job.get("TaskGroups")
    if not isinstance(groups, list) or len(groups) != 1:
        raise Refused(400, "fake nomad: Gofer jobs have exactly one task group")
    group = groups[0]
    _only(group, GROUP_FIELDS, "TaskGroups[0]")
    if not group.get("Name"):
        raise Refused(400, "Task Group 1 missing name")
    if _int(group.get("Count", 1), "TaskGroup.Count") != 1:
        raise Refused(400, "fake nomad: Gofer task groups have Count 1")
    restart = group.get("RestartPolicy")
    if restart is not None:
        _only(restart, RESTART_FIELDS, "RestartPolicy")
        if restart.get("Mode") not in ("delay", "fail"):
            raise Refused(400, f"Unsupported restart mode: {restart.get('Mode')!r}")
        if _int(restart.get("Attempts", 0), "RestartPolicy.Attempts") == 0 and restart.get("Mode") != "fail":
            raise Refused(400, f"Restart policy {restart.get('Mode')!r} with 0 attempts is ambiguous")
    reschedule = group.get("ReschedulePolicy")
    if reschedule is not None:
        _only(reschedule, RESCHEDULE_FIELDS, "ReschedulePolicy")
        _int(reschedule.get("Attempts", 0), "ReschedulePolicy.Attempts")
        if not isinstance(reschedule.get("Unlimited", False), bool):
            raise Refused(400, "json: cannot unmarshal into Go struct field ReschedulePolicy.Unlimited of type bool")
    tasks = group.get("Tasks")
    if not isinstance(tasks, list) or len(tasks) != 1:
        raise Refused(400, "fake nomad: Gofer task groups have exactly one task")
    task = tasks[0]
    _only(task, TASK_FIELDS, "Tasks[0]")
    if not task.get("Name"):
        raise Refused(400, "Task 1 missing name")
    if not task.get("Driver"):
        raise Refused(400, f'Task "{task["Name"]}" missing driver')
    if task["Driver"] != "docker":
        raise Refused(400, f"fake nomad: Gofer runs the docker driver, not {task['Driver']!r}")
    if "Env" in task:
        _string_map(task["Env"], "Task.Env")
    if "Meta" in task:
        _string_map(task["Meta"], "Task.Meta")
    if "User" in task and not isinstance(task["User"], str):
        raise Refused(400, "json: cannot unmarshal into Go struct field Task.User of type string")
    if "LogConfig" in task:
        _only(task["LogConfig"], LOG_CONFIG_FIELDS, "LogConfig")
    resources = task.get("Resources")
    if resources is not None:
        _only(resources, RESOURCES_FIELDS, "Resources")
        if "CPU" in resources and _int(resources["CPU"], "Resources.CPU") < 1:
            raise Refused(400, f"minimum CPU value is 1; got {resources['CPU']}")
        if "MemoryMB" in resources and _int(resources["MemoryMB"], "Resources.MemoryMB") < 10:
            raise Refused(400, f"minimum MemoryMB value is 10; got {resources['MemoryMB']}")
    validate_docker_config(task.get("Config"))


def validate_docker_config(config: Any) -> None:
    """The docker driver's schema for the keys Gofer uses (HCL JSON: blocks and list(map) as lists of objects)."""
    if not isinstance(config, dict):
        raise Refused(400, "fake nomad: task Config must be an object")
    if not isinstance(config.get("image"), str) or not config["image"]:
        raise Refused(400, 'Missing required argument: The argument "image" is required, but no definition was found.')
    for key, value in config.items():
        expected = DOCKER_CONFIG.get(key)
        if expected is None:
            raise Refused(400, f'Unsupported argument: An argument named "{key}" is not expected here.')
        if not isinstance(value, expected):
            raise Refused(400, f'Incorrect attribute value type: Inappropriate value for attribute "{key}".')
    for key in ("entrypoint", "args"):
        if key in config and not all(isinstance(item, str) for item in config[key]):
            raise Refused(400, f'Incorrect attribute value type: "{key}" must be a list of strings.')
    for labels in config.get("labels", []):
        _string_map(labels, "labels (list(map(string)))")
    for key in ("cap_add", "cap_drop", "security_opt"):
        if key in config and not all(isinstance(item, str) for item in config[key]):
            raise Refused(400, f'Incorrect attribute value type: "{key}" must be a list of strings.')
    for mount in config.get("mount", []):
        if not isinstance(mount, dict):
            raise Refused(400, "Incorrect mount block")
        _only(mount, DOCKER_MOUNT_FIELDS, "a mount block")
        if mount.get("type") != "tmpfs" or not isinstance(mount.get("target"), str):
            raise Refused(400, "fake nomad: Gofer mounts only tmpfs, with a target")
        for options in mount.get("tmpfs_options", []):
            _only(options, DOCKER_TMPFS_FIELDS, "tmpfs_options")
            if not isinstance(options.get("size"), int):
                raise Refused(400, 'Incorrect attribute value type: "size" must be a number.')
    auth = config.get("auth", [])
    if len(auth) > 1:
        raise Refused(400, 'Too many auth blocks: No more than one "auth" block is allowed.')
    for block in auth:
        if not isinstance(block, dict):
            raise Refused(400, "Incorrect auth block")
        _only(block, DOCKER_AUTH_FIELDS, "the auth block")
        _string_map(block, "auth")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeNomad
    protocol_version = "HTTP/1.1"
    server_version = "FakeNomad/1.0"
    # Headers and body go out in two writes; with Nagle on, each keep-alive request waits for a delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it
        pass  # keep pytest's output clean

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.fake.handle(self, "GET")

    def do_PUT(self) -> None:  # noqa: N802
        self.fake.handle(self, "PUT")

    def do_POST(self) -> None:  # noqa: N802
        self.fake.handle(self, "POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self.fake.handle(self, "DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self.fake.handle(self, "PATCH")

    def send_plain(self, status: int, body: str | bytes, content_type: str = "text/plain") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status: int, payload: Any) -> None:
        self.send_plain(status, json.dumps(payload), content_type="application/json")

    def upgrade_to_websocket(self) -> Any:
        """Answer the handshake with the ``websockets`` library's server protocol (which checks the client's side
        of it); None if the handshake was refused."""
        from websockets.server import ServerProtocol

        self.close_connection = True
        protocol = ServerProtocol()
        # http.server has already read the request; hand the protocol the same bytes so its parser starts there.
        raw = f"{self.requestline}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers.items()) + "\r\n"
        protocol.receive_data(raw.encode("latin-1"))
        (request,) = protocol.events_received()
        response = protocol.accept(request)
        protocol.send_response(response)
        self._flush(protocol)
        return protocol if response.status_code == 101 else None

    def close_websocket(self, protocol: Any, code: int, reason: str) -> None:
        protocol.send_close(code, reason)
        self._flush(protocol)

    def run_exec_session(self, protocol: Any) -> None:
        """The echo script: stdin data comes back as stdout; closing stdin or sending ``exec_exit_input`` ends the
        command with ``exec_exit_code``. Every frame received is kept in ``fake.exec_frames``."""
        from websockets.frames import Opcode

        sock = self.connection
        fake = self.fake

        def send(frame: dict[str, Any]) -> None:
            protocol.send_text(json.dumps(frame).encode())
            self._flush(protocol)

        done = False
        while not done and not fake._stopping.is_set():
            readable, _, _ = select.select([sock], [], [], 0.1)
            if not readable:
                continue
            data = sock.recv(65536)
            if not data:
                break
            protocol.receive_data(data)
            for frame in protocol.events_received():
                if frame.opcode == Opcode.CLOSE:
                    done = True
                    continue
                if frame.opcode != Opcode.TEXT:
                    continue
                message = json.loads(frame.data)
                with fake._lock:
                    fake.exec_frames.append(message)
                stdin = message.get("stdin") or {}
                if stdin.get("data"):
                    send({"stdout": {"data": stdin["data"]}})
                if stdin.get("close") or base64.b64decode(stdin.get("data") or "") == fake.exec_exit_input:
                    send({"stdout": {"close": True}})
                    send({"stderr": {"close": True}})
                    send({"exited": True, "result": {"exit_code": fake.exec_exit_code}})
                    done = True
            self._flush(protocol)
        # Like Nomad, hang up without a close frame once the command is over.

    def _flush(self, protocol: Any) -> None:
        for chunk in protocol.data_to_send():
            if chunk:
                self.connection.sendall(chunk)
