"""Websockets of task executions: live logs and attach.

Logs: the consumer replays the task's stored log file from ``offset`` (a line number) and then follows the same
file as the worker appends to it, until the end marker. Replay and live are one read position in one file, so there
is no gap and no duplicate between them, and it works whichever process or machine the worker runs on (as long as
it writes to the same GOFER_LOG_DIR). ``format=raw`` (the default, what Gofer's CLI expects) sends each line's text;
``format=json`` sends ``{"line", "time", "stream", "text"}`` objects and a final ``{"eof": true, "exit_code"}``.
One line per frame by default (as Gofer v0); ``batch=true`` packs the lines read at once into frames of up to about
64 KiB, separated by ``\n`` (log lines never contain one), for clients that read fast. The worker's appends wake
the consumer (runs/log_wakeups.py); POLL_SECONDS is the fallback when no wake-up comes.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings

from kernel.api.views import rule
from kernel.api.websockets import GoferWebsocketConsumer, query_params
from kernel.choices import Action, Resource
from kernel.errors import Forbidden, GoferError
from runs import log_wakeups, logs, services
from runs.models import TaskExecution

logger = logging.getLogger(__name__)

# How often a follower looks at its file when no wake-up came (a writer on another machine, a lost wake-up).
POLL_SECONDS = 0.1


def _task_execution(consumer: GoferWebsocketConsumer) -> TaskExecution:
    """The task execution a websocket route names, in the pipeline the gate already resolved (sync)."""
    kwargs = consumer.scope["url_route"]["kwargs"]
    run = services.get_run(consumer.pipeline, kwargs["run_id"])
    return services.get_task_execution(run, kwargs["task_id"])


class TaskLogsConsumer(GoferWebsocketConsumer):
    """``GET (websocket) .../runs/{run_id}/tasks/{task_id}/logs?offset=N&format=raw|json&batch=false|true``."""

    rule = rule(Action.READ, Resource.RUNS, Resource.TASK_EXECUTIONS)

    async def open(self) -> None:
        try:
            self.fmt = logs.parse_format(query_params(self.scope).get("format"))
            self.offset = self.int_param("offset", 0)
            self.batch = self.bool_param("batch", False)
            self.te = await database_sync_to_async(_task_execution)(self)
            await database_sync_to_async(services.check_logs_readable)(self.te)
        except GoferError as error:
            await self.fail(error)
            return
        self.streamer = asyncio.create_task(self._stream())

    async def _stream(self) -> None:
        follower = logs.LogFollower(logs.path_for(self.te), start_line=self.offset)
        read = sync_to_async(follower.frames, thread_sensitive=False)
        try:
            # Subscribed before the first read: an append made while reading wakes the next wait at once.
            with log_wakeups.subscribe(follower.path) as wakeups:
                while True:
                    for frame in await read(self.fmt, self.batch):
                        await self.send(text_data=frame)
                    if follower.finished:
                        await self.close(code=1000)
                        return
                    if not follower.caught_up:
                        continue  # more is stored already: read on
                    if follower.missing:
                        # No file yet: the task has not started, or it ended without logs (removed, never started).
                        te = await database_sync_to_async(TaskExecution.objects.get)(pk=self.te.pk)
                        try:
                            await database_sync_to_async(services.check_logs_readable)(te)
                        except GoferError as error:
                            await self.fail(error)
                            return
                    await wakeups.wait_async(POLL_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("log stream of task execution %s failed", self.te.pk)
            await self.close(code=1011)

    async def disconnect(self, code: int) -> None:
        streamer = getattr(self, "streamer", None)
        if streamer is not None:
            streamer.cancel()


class TaskAttachConsumer(GoferWebsocketConsumer):
    """``GET (websocket) .../tasks/{task_id}/attach?command=/bin/sh``: an interactive command in the container.

    Needs write on runs, task executions *and* ``attach`` (a command in the container can read every secret the task
    has: write on runs is not enough, and run tokens never have attach). Operators turn it off for the whole server
    (GOFER_ALLOW_ATTACH=false) or per namespace (``allow_attach``). Each attach is an ``attached_task_execution``
    event and a timeline line; the output is masked like the task's logs (runs/attach.py).
    """

    rule = rule(Action.WRITE, Resource.RUNS, Resource.TASK_EXECUTIONS, Resource.ATTACH)

    async def open(self) -> None:
        try:
            if not settings.GOFER_ALLOW_ATTACH:
                raise Forbidden("attach is turned off on this server (GOFER_ALLOW_ATTACH)")
            command = query_params(self.scope).get("command", "/bin/sh")
            self.te = await database_sync_to_async(_task_execution)(self)
            self.session = await database_sync_to_async(services.attach)(self.principal, self.te, command)
        except GoferError as error:
            await self.fail(error)
            return
        self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            while True:
                data = await sync_to_async(self.session.recv, thread_sensitive=False)(0.2)
                if data is None:
                    await self.close(code=1000)
                    return
                if data:
                    await self.send(bytes_data=data)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("attach to task execution %s failed", self.te.pk)
            await self.close(code=1011)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        session = getattr(self, "session", None)
        if session is None:
            return
        payload = bytes_data if bytes_data is not None else (text_data or "").encode("utf-8")
        await sync_to_async(session.send, thread_sensitive=False)(payload)

    async def disconnect(self, code: int) -> None:
        pump = getattr(self, "pump", None)
        if pump is not None:
            pump.cancel()
        session = getattr(self, "session", None)
        if session is not None:
            await sync_to_async(session.close, thread_sensitive=False)()
