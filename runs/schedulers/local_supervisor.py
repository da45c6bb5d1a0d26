"""The supervisor of one local "container": runs its command and records what happened, outliving the worker.

Started by ``LocalScheduler.start`` as ``python -I local_supervisor.py <directory>``; it uses only the standard
library and never imports Django, so it starts fast and does not depend on Gofer's settings. It detaches itself (a
second fork, so that init reaps it and the worker is left with no zombie), then, holding ``supervisor.lock`` for its
whole life so that there is never more than one per directory:

1. reads ``spec.json`` (``argv``, ``env``);
2. runs ``argv`` (no shell) in a new session, so that the process group can be signalled without the supervisor;
3. writes ``state.json`` (pid, start time) and appends every output line to ``logs.jsonl`` as
   ``{"t": "<RFC3339Nano UTC>", "s": "stdout"|"stderr", "l": "<text>"}``;
4. when the command exits, kills what is left of its process group (as a container's end kills everything in it),
   waits for the output to drain, and writes the exit code and finish time to ``state.json``.

If ``state.json`` already exists, the command ran (or is running) under an earlier supervisor: this one exits at
once, so that the command is never run twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

MAX_LINE_BYTES = 1024 * 1024  # a longer line is recorded as several lines


def now_rfc3339() -> str:
    """The current UTC time with nanoseconds, in the form Docker writes log timestamps."""
    ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically: a reader sees the old or the new content, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class LogWriter:
    """Appends JSON lines from both streams to one file; a line is written whole, under a lock."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self._lock = threading.Lock()

    def pump(self, pipe: IO[bytes], stream: str) -> None:
        for raw in iter(lambda: pipe.readline(MAX_LINE_BYTES), b""):
            text = raw[:-1] if raw.endswith(b"\n") else raw
            record = json.dumps({"t": now_rfc3339(), "s": stream, "l": text.decode("utf-8", errors="replace")})
            with self._lock:
                self._file.write(record + "\n")
                self._file.flush()
        pipe.close()

    def close(self) -> None:
        self._file.close()


def supervise(directory: Path) -> int:
    lock = open(directory / "supervisor.lock", "a")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another supervisor owns this directory
    state_path = directory / "state.json"
    if state_path.exists():
        return 0  # already ran, or runs under a supervisor that died: never run it twice
    spec = json.loads((directory / "spec.json").read_text())
    work = directory / "work"
    work.mkdir(mode=0o700, exist_ok=True)
    logs = LogWriter(directory / "logs.jsonl")
    try:
        child = subprocess.Popen(  # noqa: S603 - running the task's command is this program's job
            spec["argv"],
            env=spec["env"],
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        # Like a shell: 127 when the program is not there, 126 when it cannot be executed.
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        error = f"cannot run {spec['argv'][0]!r}: {exc.strerror}"
        write_json(state_path, {"exit_code": code, "error": error, "finished_at": now_rfc3339()})
        logs.close()
        return 0
    write_json(state_path, {"pid": child.pid, "pgid": child.pid, "started_at": now_rfc3339()})
    pumps = [
        threading.Thread(target=logs.pump, args=(child.stdout, "stdout"), daemon=True),
        threading.Thread(target=logs.pump, args=(child.stderr, "stderr"), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    returncode = child.wait()
    finished_at = now_rfc3339()
    # Background processes the command left behind would keep the pipes open (and outlive a container's end).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    for pump in pumps:
        pump.join(timeout=10)
    logs.close()
    exit_code = 128 - returncode if returncode < 0 else returncode  # killed by signal N: 128 + N, as shells say
    state = json.loads(state_path.read_text())
    write_json(state_path, {**state, "exit_code": exit_code, "finished_at": finished_at})
    return 0


def main(argv: list[str]) -> int:
    directory = Path(argv[1]).resolve()
    # Detach: the first child exits at once (the launcher waits for it), the grandchild is adopted by init.
    if os.fork() > 0:
        return 0
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    return supervise(directory)


if __name__ == "__main__":
    try:
        status = main(sys.argv)
    except Exception as exc:  # the launcher reads supervisor.log when state.json never appears
        print(f"gofer local supervisor failed: {exc!r}", file=sys.stderr)
        status = 1
    sys.stderr.flush()
    os._exit(status)
