"""``gofer run ...`` (list, get, start, cancel, watch, logs, object) and the run-following displays."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Group
from rich.padding import Padding
from rich.panel import Panel
from rich.text import Text

from gofer_cli import humanize as h
from gofer_cli import runs, views
from gofer_cli.client import Page, path
from gofer_cli.commands import stores
from gofer_cli.commands.base import GoferGroup, gofer_command, list_options, parse_pairs, report_mutation, state
from gofer_cli.errors import ApiError, ExitCode
from gofer_cli.output import Output

TASK_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta", "bright_green")


@click.group(cls=GoferGroup)
def run() -> None:
    """Runs: executions of a pipeline's live config.

    \b
    Example:
      gofer run start build -v GIT_REF=main --wait
    """


def runs_path(namespace: str, pipeline_id: str) -> str:
    return path("namespaces", namespace, "pipelines", pipeline_id, "runs")


@gofer_command(run, "list")
@click.argument("pipeline_id")
@list_options
def list_(pipeline_id: str, page: Page) -> None:
    """List a pipeline's runs (oldest first; --reverse for the newest first).

    \b
    Example:
      gofer run list build --reverse --limit 10
    """
    st = state()
    items = st.client.list(runs_path(st.namespace, pipeline_id), "runs", page)
    st.out.document({"runs": items}, human=lambda: st.out.rows(items, views.RUN, "no runs"))


def describe_run(
    out: Output, namespace: str, pipeline_id: str, run_obj: dict[str, Any], tasks: list[dict[str, Any]] | None
) -> None:
    """A run for people; a failed run also lists its failing tasks, their reasons and how to read their logs."""
    views.detail(
        out,
        run_obj,
        [
            ("run_id", "run"),
            ("pipeline_id", "pipeline"),
            ("namespace_id", "namespace"),
            ("state", "state"),
            ("status", "status"),
            ("status_reason", "reason"),
            ("pipeline_config_version", "config version"),
            ("queued", "queued"),
            ("started", "started"),
            ("ended", "ended"),
            ("initiator", "initiator"),
            ("variables", "variables"),
        ],
        {
            **views.humanised_times(),
            "state": lambda v, r: views.styled(v),
            "status": lambda v, r: views.styled(views.outcome(r)),
            "status_reason": lambda v, r: f"{v['reason']}: {v['description']}" if v else "-",
            "initiator": lambda v, r: f"{v.get('user')} ({v.get('kind')})" if v else "-",
            "variables": lambda v, r: " ".join(f"{x['key']}={x['value']}" for x in v or []) or "-",
        },
    )
    if tasks is not None:
        summarise_failures(out, namespace, pipeline_id, run_obj, tasks)


def summarise_failures(
    out: Output, namespace: str, pipeline_id: str, run_obj: dict[str, Any], tasks: list[dict[str, Any]]
) -> None:
    failed = runs.failing_tasks(tasks)
    if not failed:
        return
    if out.plain:
        for te in failed:
            reason = te.get("status_reason") or {}
            out.line(f"failed\t{te['task_id']}\t{reason.get('reason', '')}\t{reason.get('description', '')}")
        return
    out.print(Text("\nFailing tasks:", style="bold red"))
    for te in failed:
        reason = te.get("status_reason") or {}
        exit_code = f" (exit code {te['exit_code']})" if te.get("exit_code") not in (None, 0) else ""
        out.print(
            Text.assemble(("  ✗ ", "red"), (te["task_id"], "bold"), f": {reason.get('reason', 'failed')}{exit_code}")
        )
        if reason.get("description") and reason["description"] != f"exit code {te.get('exit_code')}":
            out.print(Text(f"      {reason['description']}", style="dim"))
    ns_flag = "" if namespace == "default" else f" --namespace {namespace}"
    out.print(Text("\nSee their logs:", style="bold"))
    for te in failed:
        out.print(f"  gofer task logs {pipeline_id} {run_obj['run_id']} {te['task_id']}{ns_flag}")


@gofer_command(run)
@click.argument("pipeline_id")
@click.argument("run_id", type=int)
def get(pipeline_id: str, run_id: int) -> None:
    """Show a run. For a failed run: its failing tasks, why, and the command to see their logs.

    \b
    Example:
      gofer run get build 42
    """
    st = state()
    body = st.client.get(runs.run_path(st.namespace, pipeline_id, run_id))
    run_obj = body["run"]
    tasks = None
    if not st.out.json and str(run_obj.get("status")).lower() == "failed":
        tasks = runs.list_task_executions(st.client, st.namespace, pipeline_id, run_id)
    st.out.document(body, human=lambda: describe_run(st.out, st.namespace, pipeline_id, run_obj, tasks))


@gofer_command(run)
@click.argument("pipeline_id")
@click.option("-v", "--variable", "variables", multiple=True, metavar="KEY=VALUE", help="A run variable (repeatable).")
@click.option(
    "-w", "--wait", is_flag=True, help="Wait for the run to finish; exit with its outcome (0 only if it succeeded)."
)
def start(pipeline_id: str, variables: tuple[str, ...], wait: bool) -> int:
    """Start a run of the pipeline's live config (also: gofer pipeline run).

    \b
    Examples:
      gofer run start build
      gofer pipeline run build -v GIT_REF=main -v DEPLOY=false --wait
    """
    st = state()
    body = st.client.post(runs_path(st.namespace, pipeline_id), {"variables": parse_pairs(variables, "-v")})
    run_obj = body["run"]
    run_id = int(run_obj["run_id"])
    if not wait:
        st.out.document(body, human=lambda: st.out.done(f"Run {run_id} of {pipeline_id} started."))
        st.out.hint(f"follow it: gofer run watch {pipeline_id} {run_id}")
        return ExitCode.OK
    st.out.info(f"Run {run_id} of {pipeline_id} started; waiting for it to finish…")

    def progress(update: runs.Update) -> None:
        if update.kind == "task":
            st.out.info(f"  {update.data.get('task_id')}: {views.outcome(update.data)}")

    final = runs.watch(st.client, st.namespace, pipeline_id, run_id, progress, logs="none")
    tasks = runs.list_task_executions(st.client, st.namespace, pipeline_id, run_id) if not st.out.json else []
    st.out.document({"run": final}, human=lambda: finished(st.out, st.namespace, pipeline_id, final, tasks))
    return runs.exit_code_of(final)


def finished(
    out: Output, namespace: str, pipeline_id: str, run_obj: dict[str, Any], tasks: list[dict[str, Any]]
) -> None:
    """The one-line end of a run (and its failures)."""
    word = views.outcome(run_obj)
    took = h.span(run_obj.get("started"), run_obj.get("ended"))
    if out.plain:
        out.line(f"run\t{run_obj['run_id']}\t{run_obj.get('state')}\t{run_obj.get('status')}")
    else:
        out.print(Text.assemble(f"Run {run_obj['run_id']} of {pipeline_id} ", views.styled(word), f" after {took}."))
    summarise_failures(out, namespace, pipeline_id, run_obj, tasks)


@gofer_command(run)
@click.argument("pipeline_id")
@click.argument("run_id", type=int)
def cancel(pipeline_id: str, run_id: int) -> None:
    """Cancel a run: waiting tasks are cancelled, running ones stopped.

    \b
    Example:
      gofer run cancel build 42
    """
    st = state()
    result = st.client.mutate("DELETE", runs.run_path(st.namespace, pipeline_id, run_id))
    report_mutation(
        result, f"Cancelling run {run_id} of {pipeline_id}.", f"Nothing changed: run {run_id} has already finished."
    )


# --- watch ------------------------------------------------------------------------------------------------------


class LiveView:
    """run watch on a terminal: every task with its state; running tasks with their last lines in a box."""

    def __init__(self, watcher: runs.RunWatcher, pipeline_id: str) -> None:
        self.watcher = watcher
        self.pipeline_id = pipeline_id

    def __rich__(self) -> Group:
        run_obj = self.watcher.run
        tasks = tuple(self.watcher.tasks.values())  # a copy: the watcher adds tasks from the event loop
        header = Text.assemble(
            (f"Run {self.watcher.run_id}", "bold"),
            f" of {self.watcher.namespace}/{self.pipeline_id}  ",
            views.styled(views.outcome(run_obj) if run_obj else "…"),
            f"  {h.span(run_obj.get('started'), run_obj.get('ended'))}" if run_obj.get("started") else "",
            (f"  config v{run_obj.get('pipeline_config_version')}", "dim") if run_obj else "",
        )
        parts: list[Any] = [header]
        width = max((len(str(t.task_execution.get("task_id"))) for t in tasks), default=4)
        for task in tasks:
            te = task.task_execution
            word = views.outcome(te)
            line = Text.assemble(
                "  ",
                views.icon(te),
                " ",
                (str(te.get("task_id")).ljust(width), "bold"),
                "  ",
                views.styled(word),
                f"  {h.span(te.get('started'), te.get('ended'))}" if te.get("started") else "",
            )
            parts.append(line)
            if str(te.get("state")) in ("running", "processing") and task.tail:
                body = Text("\n".join(line[:500] for line in tuple(task.tail)), overflow="ellipsis", no_wrap=True)
                box = Panel(body, title=str(te.get("task_id")), title_align="left", border_style="dim", padding=(0, 1))
                parts.append(Padding(box, (0, 0, 0, 4)))
        return Group(*parts)


class LineView:
    """run watch off a terminal (human) and in plain: one line per change of the run or a task."""

    def __init__(self, out: Output) -> None:
        self.out = out

    def __call__(self, update: runs.Update) -> None:
        data = update.data
        if update.kind == "log":
            return
        if self.out.plain:
            if update.kind == "run":
                self.out.line(f"run\t{data.get('run_id')}\t{data.get('state')}\t{data.get('status')}")
            else:
                exit_code = "" if data.get("exit_code") is None else data["exit_code"]
                self.out.line(f"task\t{data.get('task_id')}\t{data.get('state')}\t{data.get('status')}\t{exit_code}")
            return
        stamp = h.clock(h.now_ms())
        if update.kind == "run":
            self.out.print(
                Text.assemble((stamp, "dim"), f" run {data.get('run_id')} ", views.styled(views.outcome(data)))
            )
        else:
            self.out.print(Text.assemble((stamp, "dim"), f" {data.get('task_id')} ", views.styled(views.outcome(data))))


def json_view(out: Output) -> Any:
    def emit(update: runs.Update) -> None:
        if update.kind == "run":
            out.stream({"type": "run", "run": update.data})
        elif update.kind == "task":
            out.stream({"type": "task_execution", "task_execution": update.data})
        else:
            out.stream({"type": "log", **update.data})

    return emit


@gofer_command(run)
@click.argument("pipeline_id")
@click.argument("run_id", type=int, required=False)
@click.option(
    "--lines", type=click.IntRange(0, 50), default=5, show_default=True, help="Log lines shown per running task."
)
def watch(pipeline_id: str, run_id: int | None, lines: int) -> int:
    """Follow a run live until it ends (default: the latest run); exit with its outcome.

    Every task is shown with its state; running tasks show their last log lines in a box. The display follows
    the events and logs websockets, not polling. Exit status: 0 successful, 7 failed, 8 cancelled.

    With --output json: one JSON object per line, {"type": "run"|"task_execution"|"log", ...}.

    \b
    Examples:
      gofer run watch build
      gofer run watch build 42 --output json | jq -c 'select(.type == "task_execution")'
    """
    st = state()
    if run_id is None:
        run_id = runs.latest_run_id(st.client, st.namespace, pipeline_id)
    out = st.out
    if out.json:
        final = runs.watch(st.client, st.namespace, pipeline_id, run_id, json_view(out), logs="all", tail=lines)
        return runs.exit_code_of(final)
    if out.interactive:
        from rich.live import Live

        holder: dict[str, Any] = {}

        def on_update(update: runs.Update) -> None:
            if "live" in holder:
                holder["live"].refresh()

        watcher = runs.RunWatcher(
            st.client,
            st.namespace,
            pipeline_id,
            run_id,
            on_update,
            logs="running" if lines else "none",
            tail=lines or 1,
        )
        import asyncio

        with Live(LiveView(watcher, pipeline_id), console=out.console, refresh_per_second=4, transient=False) as live:
            holder["live"] = live
            final = asyncio.run(watcher.watch())
            live.refresh()
        tasks = [t.task_execution for t in watcher.tasks.values()]
    else:
        watcher_final = runs.watch(st.client, st.namespace, pipeline_id, run_id, LineView(out), logs="none")
        final = watcher_final
        tasks = runs.list_task_executions(st.client, st.namespace, pipeline_id, run_id)
    finished(out, st.namespace, pipeline_id, final, tasks)
    return runs.exit_code_of(final)


# --- logs -------------------------------------------------------------------------------------------------------


class LogPrinter:
    """Prints combined log lines: ``task │ text`` for people (one colour per task), ``task<TAB>text`` in plain,
    one JSON object per line in json (follow) or collected into one document (no follow)."""

    def __init__(self, out: Output, task_ids: list[str]) -> None:
        self.out = out
        self.width = max((len(t) for t in task_ids), default=4)
        self.colours: dict[str, str] = {}
        for task_id in task_ids:
            self.colour(task_id)

    def colour(self, task_id: str) -> str:
        if task_id not in self.colours:
            self.colours[task_id] = TASK_COLOURS[len(self.colours) % len(TASK_COLOURS)]
            self.width = max(self.width, len(task_id))
        return self.colours[task_id]

    def __call__(self, line: dict[str, Any]) -> None:
        task_id = str(line.get("task_id"))
        if self.out.json:
            self.out.stream(_log_record(line))
        elif self.out.plain:
            self.out.line(f"{task_id}\t{line.get('text', '')}")
        else:
            prefix = Text(f"{task_id.ljust(self.width)} │ ", style=self.colour(task_id))
            self.out.print(Text.assemble(prefix, str(line.get("text", ""))))


def _log_record(line: dict[str, Any]) -> dict[str, Any]:
    return {k: line.get(k) for k in ("task_id", "line", "time", "stream", "text")}


@gofer_command(run)
@click.argument("pipeline_id")
@click.argument("run_id", type=int)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends.")
def logs(pipeline_id: str, run_id: int, follow: bool) -> int:
    """The logs of every task of a run, interleaved by time, each line prefixed with its task id.

    With --follow, lines are printed live as tasks write them, until the run ends (exit status as run watch).
    With --output json: {"lines": [{"task_id", "line", "time", "stream", "text"}]}, or with --follow one such
    object per line.

    \b
    Examples:
      gofer run logs build 42
      gofer run logs build 42 --follow
    """
    st = state()
    out = st.out
    tasks = runs.list_task_executions(st.client, st.namespace, pipeline_id, run_id)
    per_task: dict[str, list[dict[str, Any]]] = {}
    for te in tasks:
        task_id = str(te["task_id"])
        try:
            per_task[task_id], _ = runs.read_logs(st.client, st.namespace, pipeline_id, run_id, task_id)
        except ApiError as error:
            if error.status != 410:
                raise
            out.info(f"({task_id}: {error.api_message})")
    merged = runs.merge_by_time(per_task)
    printer = LogPrinter(out, list(per_task))
    if not follow:
        if out.json:
            out.document({"lines": [_log_record(line) for line in merged]})
        else:
            for line in merged:
                printer(line)
        return ExitCode.OK
    for line in merged:
        printer(line)
    offsets = {task_id: len(lines) for task_id, lines in per_task.items()}
    # Lines already printed from the replay are skipped by starting each stream at the count printed.

    def on_update(update: runs.Update) -> None:
        if update.kind == "log":
            printer(update.data)

    final = runs.watch(st.client, st.namespace, pipeline_id, run_id, on_update, logs="all", offsets=offsets)
    return runs.exit_code_of(final)


# --- run objects ------------------------------------------------------------------------------------------------


@run.group(cls=GoferGroup)
def object() -> None:  # noqa: A001 - the command's name
    """Objects stored with one run (they expire with the run's objects).

    \b
    Example:
      gofer run object list build 42
    """


def _run_base(pipeline_id: str, run_id: int) -> tuple[object, ...]:
    return ("namespaces", state().namespace, "pipelines", pipeline_id, "runs", run_id)


@gofer_command(object, "list")
@click.argument("pipeline_id")
@click.argument("run_id", type=int)
@list_options
def object_list(pipeline_id: str, run_id: int, page: Page) -> None:
    """List a run's objects.

    \b
    Example:
      gofer run object list build 42
    """
    stores.list_objects(_run_base(pipeline_id, run_id), page)


@gofer_command(object, "get")
@click.argument("pipeline_id")
@click.argument("run_id", type=int)
@click.argument("key")
@click.option(
    "-f",
    "--file",
    "file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to this file instead of stdout.",
)
def object_get(pipeline_id: str, run_id: int, key: str, file: str | None) -> None:
    """Download a run object (to stdout, or --file).

    \b
    Example:
      gofer run object get build 42 report.html --file report.html
    """
    stores.get_object(_run_base(pipeline_id, run_id), key, file)


@gofer_command(object, "put")
@click.argument("pipeline_id")
@click.argument("run_id", type=int)
@click.argument("key")
@click.argument("source", metavar="PATH|-")
@click.option("--force", is_flag=True, help="Replace the object if the key exists.")
def object_put(pipeline_id: str, run_id: int, key: str, source: str, force: bool) -> None:
    """Upload a file (or stdin, with -) as a run object.

    \b
    Example:
      gofer run object put build 42 report.html ./report.html
    """
    stores.put_object(_run_base(pipeline_id, run_id), key, source, force)


@gofer_command(object, "delete")
@click.argument("pipeline_id")
@click.argument("run_id", type=int)
@click.argument("key")
def object_delete(pipeline_id: str, run_id: int, key: str) -> None:
    """Delete a run object.

    \b
    Example:
      gofer run object delete build 42 report.html
    """
    stores.delete_object(_run_base(pipeline_id, run_id), key)
