"""What ``run watch``, ``--wait``, ``run logs`` and ``run get`` do, over raw API objects (no formatting here).

``RunWatcher`` follows one run live. It listens to the events websocket (``/api/events``) and refreshes a task
execution only when an event says it changed, and opens the logs websocket (``format=json``) of each task it is asked
to tail. The events stream sends only what commits after the socket opened, so the watcher connects first and reads
the run's state second: nothing can happen unseen between the two. A slow safety refresh (every
``SAFETY_REFRESH_SECONDS``) covers the rare event committed late; a token that may not read events (a task's own
run token) falls back to polling every ``POLL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gofer_cli.client import Client, Page, parse_json_lines, path
from gofer_cli.errors import ApiError, ExitCode, NetworkError

COMPLETE = "complete"
SAFETY_REFRESH_SECONDS = 5.0
POLL_SECONDS = 1.0
#: How long, once the run is complete, the watcher waits for open log streams to deliver their last lines.
LOG_DRAIN_SECONDS = 5.0
TASK_EVENTS = {
    "created_task_execution",
    "started_task_execution",
    "completed_task_execution",
    "started_task_execution_cancellation",
}
RUN_EVENTS = {"queued_run", "started_run", "completed_run", "started_run_cancellation"}
Json = dict[str, Any]


def run_path(namespace: str, pipeline: str, run_id: int | str, *rest: object) -> str:
    return path("namespaces", namespace, "pipelines", pipeline, "runs", run_id, *rest)


def is_complete(obj: Json) -> bool:
    return str(obj.get("state", "")).lower() == COMPLETE


def exit_code_of(run: Json) -> ExitCode:
    """0 for a successful run, RUN_CANCELLED for a cancelled one, RUN_FAILED otherwise (failed or unknown)."""
    status = str(run.get("status", "")).lower()
    if status == "successful":
        return ExitCode.OK
    if status == "cancelled":
        return ExitCode.RUN_CANCELLED
    return ExitCode.RUN_FAILED


def failing_tasks(tasks: Iterable[Json]) -> list[Json]:
    """The task executions that failed, in the run's order (what ``run get`` shows for a failed run)."""
    return [t for t in tasks if str(t.get("status", "")).lower() == "failed"]


def latest_run_id(client: Client, namespace: str, pipeline: str) -> int:
    """The number of the pipeline's newest run. Raises ApiError (404-like) when it has none."""
    runs = client.list(
        path("namespaces", namespace, "pipelines", pipeline, "runs"), "runs", Page(limit=1, reverse=True)
    )
    if not runs:
        raise ApiError(404, "not_found", f"pipeline {pipeline} has no runs yet")
    return int(runs[0]["run_id"])


def list_task_executions(client: Client, namespace: str, pipeline: str, run_id: int | str) -> list[Json]:
    return client.list(run_path(namespace, pipeline, run_id, "tasks"), "task_executions", Page(everything=True))


def read_logs(
    client: Client, namespace: str, pipeline: str, run_id: int | str, task_id: str
) -> tuple[list[Json], Json | None]:
    """A task's stored log lines (``{line, time, stream, text}``) and its end marker (None while it runs)."""
    response = client.send(
        "GET", run_path(namespace, pipeline, run_id, "tasks", task_id, "logs"), params={"format": "json"}
    )
    records = parse_json_lines(response.text)
    end = next((r for r in records if r.get("eof")), None)
    return [r for r in records if not r.get("eof")], end


def merge_by_time(per_task: dict[str, list[Json]]) -> list[Json]:
    """Every task's lines in one list ordered by time (ties keep each task's order), each with its ``task_id``."""
    streams = [[{**line, "task_id": task_id} for line in lines] for task_id, lines in per_task.items()]
    return list(heapq.merge(*streams, key=lambda line: line.get("time") or 0))


@dataclass
class Update:
    """One change seen by the watcher: ``kind`` is ``run``, ``task`` or ``log``; ``data`` is the raw API object (or
    the log line, with its ``task_id``)."""

    kind: str
    data: Json


@dataclass
class TaskState:
    task_execution: Json
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    streaming: bool = False
    stream_done: bool = False


class RunWatcher:
    """Follows one run until it is complete. ``on_update`` is called for every change, in order, from one thread.

    ``logs``: ``"running"`` tails the tasks that run (for ``run watch``), ``"all"`` streams every task's logs from
    ``offsets`` (for ``run logs --follow``), ``"none"`` streams none (for ``--wait``).
    """

    def __init__(
        self,
        client: Client,
        namespace: str,
        pipeline: str,
        run_id: int,
        on_update: Callable[[Update], None],
        *,
        logs: str = "running",
        tail: int = 5,
        offsets: dict[str, int] | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.pipeline = pipeline
        self.run_id = run_id
        self.on_update = on_update
        self.logs = logs
        self.tail = tail
        self.offsets = offsets or {}
        self.run: Json = {}
        self.tasks: dict[str, TaskState] = {}
        self.events_available = True
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()

    # --- public ---------------------------------------------------------------------------------------------------

    async def watch(self) -> Json:
        """Follow the run until it is complete and its log streams have ended; returns the final run."""
        ready = asyncio.Event()
        events = asyncio.create_task(self._events(ready))
        try:
            await ready.wait()
            if events.done() and events.exception() is not None:
                raise events.exception()  # type: ignore[misc]
            await self._refresh_all()
            while not is_complete(self.run):
                timeout = SAFETY_REFRESH_SECONDS if self.events_available else POLL_SECONDS
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout=timeout)
                except TimeoutError:
                    await self._refresh_all()
                    continue
                await self._handle(item)
            await self._drain_logs()
            await self._refresh_tasks()
            # The run's outcome is the last thing a watcher sees: held back until the tasks' last lines are out.
            self.on_update(Update("run", self.run))
            return self.run
        finally:
            events.cancel()
            for stream in self._streams.values():
                stream.cancel()
            await asyncio.gather(events, *self._streams.values(), return_exceptions=True)

    # --- events ---------------------------------------------------------------------------------------------------

    async def _events(self, ready: asyncio.Event) -> None:
        from gofer_cli.streams import json_frames, open_stream  # websockets only for commands that stream

        try:
            async with open_stream(self.client, "/events") as ws:
                ready.set()
                async for event in json_frames(ws):
                    await self._queue.put(("event", event))
        except ApiError as error:
            if error.status in (401, 403, 404):
                # A token that may not read events (a task's run token): poll instead.
                self.events_available = False
                return
            raise
        except NetworkError:
            if not ready.is_set():
                raise
            # The events stream dropped: carry on by polling rather than failing the watch.
            self.events_available = False
        finally:
            ready.set()

    def _ours(self, details: Json) -> bool:
        return (
            details.get("namespace_id") == self.namespace
            and details.get("pipeline_id") == self.pipeline
            and str(details.get("run_id")) == str(self.run_id)
        )

    async def _handle(self, item: tuple[str, Any]) -> None:
        kind, payload = item
        if kind == "event":
            for name, details in (payload.get("kind") or {}).items():
                if not isinstance(details, dict) or not self._ours(details):
                    continue
                if name in TASK_EVENTS and details.get("task_execution_id"):
                    await self._refresh_task(str(details["task_execution_id"]))
                elif name in RUN_EVENTS:
                    await self._refresh_run()
                    if name == "started_run":
                        await self._refresh_tasks()
        elif kind == "log":
            task_id, line = payload
            state = self.tasks.get(task_id)
            if state is not None:
                state.tail.append(str(line.get("text", "")))
            self.on_update(Update("log", {"task_id": task_id, **line}))
        elif kind == "log_end":
            await self._refresh_task(payload)

    # --- refreshing -----------------------------------------------------------------------------------------------

    async def _get(self, api_path: str, params: dict[str, Any] | None = None) -> Json:
        async with self._lock:
            return await asyncio.to_thread(self.client.get, api_path, params)

    async def _refresh_all(self) -> None:
        await self._refresh_run()
        await self._refresh_tasks()

    async def _refresh_run(self) -> None:
        run = (await self._get(run_path(self.namespace, self.pipeline, self.run_id))).get("run") or {}
        if is_complete(run):
            self.run = run  # announced by watch() once the log streams are drained
        elif _changed(self.run, run):
            self.run = run
            self.on_update(Update("run", run))
        else:
            self.run = run

    async def _refresh_tasks(self) -> None:
        async with self._lock:
            tasks = await asyncio.to_thread(
                list_task_executions, self.client, self.namespace, self.pipeline, self.run_id
            )
        for te in tasks:
            self._apply_task(te)

    async def _refresh_task(self, task_id: str) -> None:
        try:
            body = await self._get(run_path(self.namespace, self.pipeline, self.run_id, "tasks", task_id))
        except ApiError as error:
            if error.status == 404:
                return
            raise
        self._apply_task(body.get("task_execution") or {})

    def _apply_task(self, te: Json) -> None:
        task_id = str(te.get("task_id"))
        state = self.tasks.get(task_id)
        if state is None:
            state = TaskState(te, deque(maxlen=self.tail))
            self.tasks[task_id] = state
            self.on_update(Update("task", te))
        elif _changed(state.task_execution, te):
            state.task_execution = te
            self.on_update(Update("task", te))
        else:
            state.task_execution = te
        wants_stream = self.logs == "all" or (
            self.logs == "running" and str(te.get("state")) in ("running", "processing")
        )
        if wants_stream and not state.streaming and not state.stream_done:
            state.streaming = True
            self._streams[task_id] = asyncio.create_task(self._stream_logs(task_id))

    async def _stream_logs(self, task_id: str) -> None:
        from gofer_cli.streams import json_frames, open_stream

        params = {"format": "json", "offset": self.offsets.get(task_id) or None}
        api_path = run_path(self.namespace, self.pipeline, self.run_id, "tasks", task_id, "logs")
        try:
            async with open_stream(self.client, api_path, params) as ws:
                async for record in json_frames(ws):
                    if record.get("eof"):
                        break
                    await self._queue.put(("log", (task_id, record)))
        except ApiError:
            pass  # no logs: skipped, logging off, removed (410); the task's state says why
        except NetworkError:
            pass  # the refreshes will notice a server that went away
        finally:
            state = self.tasks.get(task_id)
            if state is not None:
                state.stream_done = True
            await self._queue.put(("log_end", task_id))

    async def _drain_logs(self) -> None:
        """Deliver what the open log streams still send, for a little while after the run completed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOG_DRAIN_SECONDS
        while any(not t.done() for t in self._streams.values()) or not self._queue.empty():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                item = await asyncio.wait_for(self._queue.get(), timeout=min(remaining, 0.2))
                if item[0] == "log":
                    await self._handle(item)


def _changed(old: Json, new: Json) -> bool:
    keys = ("state", "status", "started", "ended", "exit_code", "status_reason")
    return any(old.get(k) != new.get(k) for k in keys)


def watch(
    client: Client, namespace: str, pipeline: str, run_id: int, on_update: Callable[[Update], None], **kwargs: Any
) -> Json:
    """Run a ``RunWatcher`` to the end (blocking); returns the final run."""
    watcher = RunWatcher(client, namespace, pipeline, run_id, on_update, **kwargs)
    return asyncio.run(watcher.watch())
