"""The local scheduler: task commands run as plain processes on the worker's host. For development machines
without Docker; ``get_scheduler`` refuses it in sandbox mode, since it gives tasks the host.

Each "container" is a directory ``$GOFER_HOME/local-engine/<name>/`` (mode 0700) owned by a detached supervisor
process (runs/schedulers/local_supervisor.py), so a task keeps running, and its exit is recorded, when the worker
that started it dies. The handle is the name.

What it does not do (docs/schedulers.md, "Local process"):
- the image is ignored, and so are CPU and memory limits, registry credentials and ``always_pull``;
- the command is ``entrypoint + command``, executed directly (no shell); an image's default command does not exist
  here, so a spec with neither is refused;
- the environment is ``spec.env`` over a minimal base (PATH, HOME, LANG, LC_ALL, TZ, USER from the worker), never
  the worker's whole environment, which holds Gofer's own secrets;
- no isolation: the process runs as the worker's user, in ``<dir>/work``, with the host's network and files;
- no ``exec`` (attach).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from runs.schedulers.base import (
    LABEL_MANAGED,
    LABEL_TASK_EXECUTION,
    ContainerSpec,
    LogLine,
    NoSuchContainer,
    Scheduler,
    SchedulerError,
    Started,
    State,
    Status,
    check_adoptable,
    prunable,
)
from runs.schedulers.local_supervisor import write_json

SUPERVISOR = Path(__file__).with_name("local_supervisor.py")
# How long start() waits for the supervisor to report that the command runs (or could not).
START_TIMEOUT = 10.0
# A directory without a running supervisor younger than this is presumed to be set up by the worker that made it.
ADOPT_GRACE = 5.0
BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


def _parse_time(raw: str | None) -> dt.datetime | None:
    """A supervisor timestamp (RFC3339, UTC, nanoseconds) as a datetime (microseconds)."""
    if not raw:
        return None
    whole, _, fraction = raw.rstrip("Z").partition(".")
    parsed = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return parsed.replace(microsecond=int(fraction.ljust(9, "0")[:6]))


class LocalScheduler(Scheduler):
    """Host processes under detached supervisors. Holds no state but its directory: safe to share between threads
    and processes."""

    name = "local"

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or Path(settings.GOFER_HOME) / "local-engine")

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name):
            raise SchedulerError(f"{name!r} cannot name a local container", permanent=True)
        return self.root / name

    def _existing(self, handle: str) -> Path:
        directory = self._dir(handle)
        if not directory.is_dir():
            raise NoSuchContainer(f"no local container {handle}")
        return directory

    # --- start -------------------------------------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> Started:
        """Run ``entrypoint + command`` under a new supervisor, or adopt the one named ``spec.name``.

        Returns once the process runs (or has already ended). Raises a permanent SchedulerError when there is no
        command or the program cannot be executed; the directory then stays, for ``status`` and ``remove``."""
        argv = [*(spec.entrypoint or []), *(spec.command or [])]
        if not argv:
            raise SchedulerError(
                "the local scheduler runs entrypoint + command and has no image default: give the task a command",
                permanent=True,
            )
        directory = self._dir(spec.name)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            return self._adopt(directory, spec, argv)
        self._write_spec(directory, spec, argv)
        self._launch(directory)
        return self._await_start(directory, spec.name, adopted=False)

    def _write_spec(self, directory: Path, spec: ContainerSpec, argv: list[str]) -> None:
        env = {key: os.environ[key] for key in BASE_ENV_KEYS if key in os.environ}
        env.update(spec.env)
        labels = {**spec.labels, LABEL_MANAGED: "true"}
        write_json(directory / "spec.json", {"argv": argv, "env": env, "labels": labels, "image": spec.image})

    def _launch(self, directory: Path) -> None:
        with open(directory / "supervisor.log", "ab") as log:
            launcher = subprocess.Popen(  # noqa: S603 - our own script, with an absolute interpreter path
                [sys.executable, "-I", str(SUPERVISOR), str(directory)],
                cwd=directory,
                env={key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL") if key in os.environ},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        # Only the first fork, which exits as soon as it has forked the real supervisor.
        launcher.wait(timeout=30)

    def _await_start(self, directory: Path, name: str, *, adopted: bool) -> Started:
        give_up = time.monotonic() + START_TIMEOUT
        while (state := self._read_state(directory)) is None:
            if time.monotonic() > give_up:
                log = (directory / "supervisor.log").read_text(errors="replace")[-2000:].strip()
                raise SchedulerError(f"the local supervisor of {name} did not start: {log or 'no output'}")
            time.sleep(0.02)
        if state.get("error"):
            raise SchedulerError(f"{name} could not start: {state['error']}", permanent=True)
        return Started(handle=name, image_digest="", adopted=adopted)

    def _adopt(self, directory: Path, spec: ContainerSpec, argv: list[str]) -> Started:
        # The creator writes spec.json and launches the supervisor right after making the directory; only when
        # neither happened within the grace (it died) does the adopter finish the job. The supervisor's lock and
        # its "state.json exists" check make a second launch harmless.
        try:
            existing = json.loads((directory / "spec.json").read_text()).get("labels", {})
        except (FileNotFoundError, ValueError):
            existing = None  # its creator has not written it yet: it is being created for this very spec
        if existing is not None:
            check_adoptable(spec, existing)
        deadline = directory.stat().st_mtime + ADOPT_GRACE
        while self._read_state(directory) is None and not self._supervisor_alive(directory):
            if time.time() > deadline:
                if not (directory / "spec.json").exists():
                    self._write_spec(directory, spec, argv)
                self._launch(directory)
                break
            time.sleep(0.05)
        return self._await_start(directory, spec.name, adopted=True)

    # --- state -------------------------------------------------------------------------------------------------

    @staticmethod
    def _read_state(directory: Path) -> dict[str, Any] | None:
        try:
            return json.loads((directory / "state.json").read_text())
        except FileNotFoundError:
            return None

    @staticmethod
    def _supervisor_alive(directory: Path) -> bool:
        """Whether a supervisor holds the directory's lock (it does for its whole life)."""
        try:
            fd = os.open(directory / "supervisor.lock", os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return True
            raise
        finally:
            os.close(fd)  # also releases our shared lock, if we got it
        return False

    def find(self, name: str) -> str | None:
        return name if self._dir(name).is_dir() else None

    def status(self, handle: str) -> Status:
        """From the supervisor's record. A command whose supervisor died before recording its end is EXITED with no
        exit code and a message saying so."""
        directory = self._dir(handle)
        if not directory.is_dir():
            return Status(State.MISSING)
        state = self._read_state(directory)
        if state is None:
            return Status(State.PENDING)
        started_at, finished_at = _parse_time(state.get("started_at")), _parse_time(state.get("finished_at"))
        if "exit_code" in state:
            return Status(State.EXITED, state["exit_code"], started_at, finished_at, state.get("error", ""))
        if self._supervisor_alive(directory):
            return Status(State.RUNNING, None, started_at)
        # Re-read: the supervisor may have recorded the end between our two looks.
        state = self._read_state(directory) or state
        if "exit_code" in state:
            return Status(State.EXITED, state["exit_code"], started_at, _parse_time(state.get("finished_at")))
        return Status(State.EXITED, None, started_at, None, "the local supervisor died; the exit code is unknown")

    # --- logs ----------------------------------------------------------------------------------------------------

    def logs(self, handle: str, cursor: dict[str, Any] | None, *, follow_for: float = 0.0) -> Iterator[LogLine]:
        """Lines after ``cursor`` (``{"offset": <byte offset in logs.jsonl>}``). With ``follow_for``, polls for new
        lines up to that long, returning once the process has ended and every line is read."""
        directory = self._existing(handle)
        try:
            offset = int((cursor or {}).get("offset", 0))
        except (TypeError, ValueError) as exc:
            raise SchedulerError(f"invalid local log cursor {cursor!r}", permanent=True) from exc
        give_up = time.monotonic() + max(follow_for, 0.0)
        path = directory / "logs.jsonl"
        while True:
            # The end is checked before reading: the supervisor records it only after the last line is written.
            ended = self.status(handle).state in {State.EXITED, State.MISSING}
            read_any = False
            for line in self._read_from(path, offset):
                read_any = True
                offset = line.cursor["offset"]
                yield line
            if ended or time.monotonic() >= give_up:
                return
            if not read_any:
                time.sleep(min(0.1, max(give_up - time.monotonic(), 0)))

    @staticmethod
    def _read_from(path: Path, offset: int) -> Iterator[LogLine]:
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            return  # nothing written yet, or removed
        with fh:
            fh.seek(offset)
            for raw in fh:
                if not raw.endswith(b"\n"):
                    return  # being written: left for the next read
                offset += len(raw)
                record = json.loads(raw)
                yield LogLine(_parse_time(record["t"]), record["s"], record["l"], {"offset": offset})

    # --- stopping and cleaning -------------------------------------------------------------------------------------

    def _signal(self, handle: str, signum: int) -> None:
        directory = self._dir(handle)
        state = self._read_state(directory) if directory.is_dir() else None
        if not state or "exit_code" in state or "pgid" not in state:
            return  # gone, not started, or ended
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(state["pgid"], signum)

    def stop(self, handle: str) -> None:
        """SIGTERM to the command's process group. Unlike in a container, the command is not PID 1, so a shell that
        does not trap SIGTERM dies of it."""
        self._signal(handle, signal.SIGTERM)

    def kill(self, handle: str) -> None:
        self._signal(handle, signal.SIGKILL)

    def remove(self, handle: str) -> None:
        """Kill the command if it still runs, wait for its supervisor to finish, delete the directory."""
        directory = self._dir(handle)
        if not directory.is_dir():
            return
        self.kill(handle)
        give_up = time.monotonic() + 5
        while self._supervisor_alive(directory) and time.monotonic() < give_up:
            time.sleep(0.05)
        shutil.rmtree(directory, ignore_errors=True)

    def prune(
        self, older_than: dt.timedelta, is_done: Callable[[str], bool], *, installation: str | None = None
    ) -> int:
        """Remove ended local containers finished more than ``older_than`` ago whose task execution label
        ``is_done`` accepts."""
        if not self.root.is_dir():
            return 0
        cutoff = dt.datetime.now(dt.UTC) - older_than
        removed = 0
        for directory in sorted(self.root.iterdir()):
            status = self.status(directory.name) if _NAME.match(directory.name) else None
            if status is None or status.state != State.EXITED:
                continue
            if status.finished_at is None or status.finished_at > cutoff:
                continue
            try:
                labels = json.loads((directory / "spec.json").read_text()).get("labels", {})
            except (FileNotFoundError, ValueError):
                continue
            execution = labels.get(LABEL_TASK_EXECUTION)
            if execution and prunable(labels, installation) and is_done(execution):
                self.remove(directory.name)
                removed += 1
        return removed
