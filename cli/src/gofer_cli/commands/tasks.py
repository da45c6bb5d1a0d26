"""``gofer task ...``: the task executions of a run: list, get, logs, cancel, attach."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from typing import Any

import click

from gofer_cli import runs, streams, views
from gofer_cli.client import Page
from gofer_cli.commands.base import GoferGroup, gofer_command, list_options, report_mutation, state
from gofer_cli.errors import ExitCode


@click.group(cls=GoferGroup)
def task() -> None:
    """Task executions: one task of one run.

    \b
    Example:
      gofer task list build 42
    """


@gofer_command(task, "list")
@click.argument("pipeline_id")
@click.argument("run_id", type=int)
@list_options
def list_(pipeline_id: str, run_id: int, page: Page) -> None:
    """List a run's task executions.

    \b
    Example:
      gofer task list build 42
    """
    st = state()
    items = st.client.list(runs.run_path(st.namespace, pipeline_id, run_id, "tasks"), "task_executions", page)
    st.out.document({"task_executions": items}, human=lambda: st.out.rows(items, views.TASK_EXECUTION, "no tasks yet"))


@gofer_command(task)
@click.argument("pipeline_id")
@click.argument("run_id", type=int)
@click.argument("task_id")
def get(pipeline_id: str, run_id: int, task_id: str) -> None:
    """Show one task execution: state, exit code, reason, the variables it received.

    \b
    Example:
      gofer task get build 42 compile
    """
    st = state()
    body = st.client.get(runs.run_path(st.namespace, pipeline_id, run_id, "tasks", task_id))
    te = body["task_execution"]

    def human() -> None:
        views.detail(
            st.out,
            te,
            [
                ("task_id", "task"),
                ("state", "state"),
                ("status", "status"),
                ("status_reason", "reason"),
                ("exit_code", "exit code"),
                ("created", "created"),
                ("started", "started"),
                ("ended", "ended"),
                ("scheduler", "scheduler"),
                ("container_id", "container"),
                ("image_digest", "image digest"),
                ("logs_expired", "logs expired"),
                ("logs_removed", "logs removed"),
                ("variables", "variables"),
            ],
            {
                **views.humanised_times(),
                "state": lambda v, r: views.styled(v),
                "status": lambda v, r: views.styled(views.outcome(r)),
                "status_reason": lambda v, r: f"{v['reason']}: {v['description']}" if v else "-",
                "variables": lambda v, r: "\n".join(f"{x['key']}={x['value']} ({x['source']})" for x in v or []) or "-",
            },
        )
        spec = te.get("task") or {}
        st.out.pairs(
            [
                ("image", spec.get("image"), None),
                (
                    "command",
                    [*(spec.get("entrypoint") or []), *(spec.get("command") or [])],
                    " ".join([*(spec.get("entrypoint") or []), *(spec.get("command") or [])]) or "(image default)",
                ),
            ]
        )

    st.out.document(body, human=human)


@gofer_command(task)
@click.argument("pipeline_id")
@click.argument("run_id", type=int)
@click.argument("task_id")
@click.option(
    "-w",
    "--wait-for",
    type=click.IntRange(0, 3600),
    default=None,
    help="Seconds of graceful stop (SIGTERM) before SIGKILL; 0 kills at once. Default: the server's.",
)
def cancel(pipeline_id: str, run_id: int, task_id: str, wait_for: int | None) -> None:
    """Cancel one task execution.

    \b
    Example:
      gofer task cancel build 42 deploy --wait-for 30
    """
    st = state()
    result = st.client.mutate(
        "DELETE", runs.run_path(st.namespace, pipeline_id, run_id, "tasks", task_id), params={"wait_for": wait_for}
    )
    report_mutation(
        result, f"Cancelling task {task_id} of run {run_id}.", f"Nothing changed: task {task_id} has already finished."
    )


@gofer_command(task)
@click.argument("pipeline_id")
@click.argument("run_id", type=int)
@click.argument("task_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the task ends.")
def logs(pipeline_id: str, run_id: int, task_id: str, follow: bool) -> None:
    """Print a task's logs (stdout and stderr, in order).

    With --output json: {"lines": [{"line", "time", "stream", "text"}], "end": {"eof", "exit_code"} or null};
    with --follow, one such line object per line.

    \b
    Examples:
      gofer task logs build 42 compile
      gofer task logs build 42 compile --follow
    """
    st = state()
    out = st.out
    if not follow:
        lines, end = runs.read_logs(st.client, st.namespace, pipeline_id, run_id, task_id)
        if out.json:
            out.document({"lines": lines, "end": end})
        else:
            for line in lines:
                out.line(str(line.get("text", "")))
        return

    async def stream() -> None:
        api_path = runs.run_path(st.namespace, pipeline_id, run_id, "tasks", task_id, "logs")
        async with streams.open_stream(st.client, api_path, {"format": "json"}) as ws:
            async for record in streams.json_frames(ws):
                if record.get("eof"):
                    if out.json:
                        out.stream(record)
                    return
                if out.json:
                    out.stream(record)
                else:
                    out.line(str(record.get("text", "")))

    asyncio.run(stream())


@gofer_command(task)
@click.argument("pipeline_id")
@click.argument("run_id", type=int)
@click.argument("task_id")
@click.option("-c", "--command", default="/bin/sh", show_default=True, help="The command to run in the container.")
def attach(pipeline_id: str, run_id: int, task_id: str, command: str) -> int:
    """Run a command inside a running task's container, interactively (needs write permission on the task).

    Your terminal is put in raw mode while attached; the session ends when the command exits.

    \b
    Example:
      gofer task attach build 42 compile --command /bin/sh
    """
    st = state()
    api_path = runs.run_path(st.namespace, pipeline_id, run_id, "tasks", task_id, "attach")
    asyncio.run(_attach(st.client, api_path, command))
    return ExitCode.OK


async def _attach(client: Any, api_path: str, command: str) -> None:
    """Pump stdin to the socket and the socket to stdout until the remote command ends.

    stdin is read in a daemon thread (a terminal, a pipe or a file alike), so a read still blocked when the session
    ends never holds the process; the terminal is in raw mode only while attached, and restored on every exit.
    """
    loop = asyncio.get_running_loop()
    stdin_fd = sys.stdin.fileno()
    interactive = os.isatty(stdin_fd)
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def read_stdin() -> None:
        while True:
            try:
                data = os.read(stdin_fd, 4096)
            except OSError:
                data = b""
            loop.call_soon_threadsafe(queue.put_nowait, data)
            if not data:
                return

    async with streams.open_stream(client, api_path, {"command": command}) as ws:
        old_attrs = None
        if interactive:
            import termios
            import tty

            old_attrs = termios.tcgetattr(stdin_fd)
            tty.setraw(stdin_fd)

        async def pump_input() -> None:
            while True:
                data = await queue.get()
                if not data:
                    return
                await ws.send(data)

        threading.Thread(target=read_stdin, name="gofer-attach-stdin", daemon=True).start()
        sender = asyncio.create_task(pump_input())
        try:
            async for frame in streams.frames(ws):
                data = frame if isinstance(frame, bytes) else frame.encode()
                os.write(sys.stdout.fileno(), data)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            if old_attrs is not None:
                import termios

                termios.tcsetattr(stdin_fd, termios.TCSADRAIN, old_attrs)
