"""Helpers shared by the scheduler tests (Docker, local, registry)."""

from __future__ import annotations

import time

from runs.schedulers.base import LogLine, Scheduler, State, Status


def wait_for(scheduler: Scheduler, handle: str, state: State = State.EXITED, timeout: float = 15) -> Status:
    """Poll ``status`` until the container is in ``state``; fail the test after ``timeout`` seconds."""
    give_up = time.monotonic() + timeout
    while True:
        status = scheduler.status(handle)
        if status.state == state:
            return status
        assert time.monotonic() < give_up, f"still {status} after {timeout}s"
        time.sleep(0.02)


def texts(lines: list[LogLine]) -> list[str]:
    return [line.text for line in lines]
