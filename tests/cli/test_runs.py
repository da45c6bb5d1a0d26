"""Real runs (local scheduler, real worker): pipeline run --wait, run watch, run logs, run get of a failed run, task
commands, cancellation, and the CLI working inside a task container with only the variables Gofer injects."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cli.conftest import Gofer, counting_pipeline, wait_until
from tests.conftest import deployed_pipeline
from tests.support.contract import RUN_FIELDS
from tests.support.contract import TASK_EXECUTION_FIELDS as TASK_FIELDS

pytestmark = [pytest.mark.slow]

LOG_FIELDS = {"task_id", "line", "time", "stream", "text"}


def test_pipeline_run_with_wait_passes_variables_and_exits_zero_when_the_run_succeeds(gofer: Gofer):
    counting_pipeline("count", n=2, pause=0.1)
    result = gofer("pipeline", "run", "count", "-v", "greeting=hello", "--wait", "-o", "json")
    run = result.json["run"]
    assert set(run) == RUN_FIELDS
    assert run["state"] == "complete" and run["status"] == "successful"
    assert {"key": "GREETING", "value": "hello", "source": "run_options"} in run["variables"]
    assert "waiting for it to finish" not in result.stdout  # progress goes to stderr only
    started = gofer.json("run", "start", "count")  # run start is the same command, without waiting here
    assert started["run"]["run_id"] == run["run_id"] + 1 and started["run"]["state"] == "pending"
    assert gofer("run", "watch", "count", "-o", "plain").code == 0


def test_run_watch_streams_run_task_and_log_updates_and_exits_with_the_runs_outcome(gofer: Gofer):
    counting_pipeline("count", n=6, pause=0.3)
    run_id = gofer.json("pipeline", "run", "count")["run"]["run_id"]
    watched = gofer("run", "watch", "count", "-o", "json")  # no RUN_ID: the latest run
    updates = watched.json_lines
    assert {u["type"] for u in updates} == {"run", "task_execution", "log"}
    assert all(set(u["run"]) == RUN_FIELDS for u in updates if u["type"] == "run")
    assert all(set(u["task_execution"]) == TASK_FIELDS for u in updates if u["type"] == "task_execution")
    assert updates[-1]["type"] == "run" and updates[-1]["run"]["status"] == "successful"
    assert updates[-1]["run"]["run_id"] == run_id
    logs = [u for u in updates if u["type"] == "log"]
    assert all(set(u) == {"type", *LOG_FIELDS} for u in logs)
    assert [u["text"] for u in logs if u["task_id"] == "count"] == [f"line-{i}" for i in range(1, 7)]
    states = [
        u["task_execution"]["state"]
        for u in updates
        if u["type"] == "task_execution" and u["task_execution"]["task_id"] == "count"
    ]
    assert states[-1] == "complete"

    human = gofer("run", "watch", "count", str(run_id))
    assert "count" in human.stdout and "successful" in human.stdout


def test_a_failed_run_exits_7_and_run_get_names_the_failing_task_and_its_logs_command(gofer: Gofer):
    counting_pipeline("count", n=2, pause=0.1, fail=True)
    waited = gofer("pipeline", "run", "count", "--wait", expect=7)
    assert "failed" in waited.stdout
    run_id = gofer.json("run", "list", "count", "--reverse", "-l", "1")["runs"][0]["run_id"]
    assert gofer("run", "watch", "count", str(run_id), expect=7).code == 7
    shown = gofer("run", "get", "count", str(run_id))
    assert "Failing tasks" in shown.stdout
    assert "count: abnormal_exit (exit code 3)" in shown.stdout
    assert f"gofer task logs count {run_id} count" in shown.stdout
    raw = gofer.json("run", "get", "count", str(run_id))
    assert set(raw) == {"run"} and raw["run"]["status_reason"]["reason"] == "abnormal_exit"
    tasks = {t["task_id"]: t for t in gofer.json("task", "list", "count", str(run_id))["task_executions"]}
    assert tasks["after"]["status"] == "skipped" and tasks["count"]["exit_code"] == 3


def test_run_logs_interleaves_every_tasks_lines_by_time_prefixed_with_the_task_id(gofer: Gofer):
    counting_pipeline("count", n=4, pause=0.25)
    run_id = gofer.json("pipeline", "run", "count", "--wait")["run"]["run_id"]
    lines = gofer.json("run", "logs", "count", str(run_id))["lines"]
    assert all(set(line) == LOG_FIELDS for line in lines)
    assert [line["time"] for line in lines] == sorted(line["time"] for line in lines)
    by_task = {}
    for line in lines:
        by_task.setdefault(line["task_id"], []).append(line["text"])
    assert by_task == {
        "count": ["line-1", "line-2", "line-3", "line-4"],
        "side": ["side-1", "side-2"],
        "after": ["after"],
    }
    # count and side ran at the same time: their lines are interleaved, not one task after the other.
    order = [line["task_id"] for line in lines if line["task_id"] != "after"]
    assert order != sorted(order, key=lambda t: t != "count") and order != sorted(order, key=lambda t: t != "side")
    plain = gofer("run", "logs", "count", str(run_id), "-o", "plain").stdout.splitlines()
    assert "count\tline-1" in plain and "side\tside-2" in plain and plain[-1] == "after\tafter"
    human = gofer("run", "logs", "count", str(run_id)).stdout
    assert "count │ line-1" in human


def test_run_logs_follow_prints_lines_live_until_the_run_ends(gofer: Gofer):
    counting_pipeline("count", n=8, pause=0.3)
    run_id = gofer.json("pipeline", "run", "count")["run"]["run_id"]
    followed = gofer("run", "logs", "count", str(run_id), "--follow", "-o", "json")
    lines = followed.json_lines
    assert all(set(line) == LOG_FIELDS for line in lines)
    texts = [line["text"] for line in lines if line["task_id"] == "count"]
    assert texts == [f"line-{i}" for i in range(1, 9)]  # every line once: replay and live do not overlap
    assert [line["text"] for line in lines if line["task_id"] == "after"] == ["after"]


def test_task_commands_show_logs_and_cancellation_reports_no_ops(gofer: Gofer):
    counting_pipeline("count", n=3, pause=0.1)
    run_id = str(gofer.json("pipeline", "run", "count", "--wait")["run"]["run_id"])
    tasks = gofer.json("task", "list", "count", run_id)["task_executions"]
    assert [t["task_id"] for t in tasks] == ["count", "side", "after"]
    one = gofer.json("task", "get", "count", run_id, "count")["task_execution"]
    assert set(one) == TASK_FIELDS and one["scheduler"] == "local"
    logs = gofer.json("task", "logs", "count", run_id, "count")
    assert [line["text"] for line in logs["lines"]] == ["line-1", "line-2", "line-3"]
    assert logs["end"]["eof"] is True and logs["end"]["exit_code"] == 0
    assert gofer("task", "logs", "count", run_id, "count").stdout == "line-1\nline-2\nline-3\n"
    followed = gofer("task", "logs", "count", run_id, "count", "--follow", "-o", "json").json_lines
    assert [f.get("text") for f in followed[:-1]] == ["line-1", "line-2", "line-3"] and followed[-1]["eof"] is True
    noop = gofer.json("task", "cancel", "count", run_id, "count", "--wait-for", "0")
    assert noop["changed"] is False and (noop["message"] is None or "already finished" in noop["message"])
    assert "already finished" in gofer("task", "cancel", "count", run_id, "count").stdout
    assert gofer.json("run", "cancel", "count", run_id)["changed"] is False
    refused = gofer("task", "attach", "count", run_id, "count", expect=5)
    assert "not running" in refused.stderr


def test_cancelling_a_running_run_makes_watch_exit_8(gofer: Gofer):
    counting_pipeline("count", n=60, pause=0.5)
    run_id = str(gofer.json("pipeline", "run", "count")["run"]["run_id"])
    watcher = subprocess.Popen(
        [sys.executable, "-m", "gofer_cli", "run", "watch", "count", run_id, "-o", "json"],
        env=gofer.base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: gofer.json("task", "get", "count", run_id, "count")["task_execution"]["state"] == "running",
            60,
            "the task to run",
        )
        assert gofer.json("run", "cancel", "count", run_id)["changed"] is True
        out, err = watcher.communicate(timeout=90)
    finally:
        watcher.kill()
    assert watcher.returncode == 8, err
    final = [json.loads(line) for line in out.splitlines()][-1]
    assert final["type"] == "run" and final["run"]["status"] == "cancelled"


def test_inside_a_task_the_injected_url_and_token_are_all_the_cli_needs(gofer: Gofer):
    command = f"{sys.executable} -m gofer_cli run get $GOFER_PIPELINE_ID $GOFER_RUN_ID --output json"
    deployed_pipeline(
        "default",
        "self-aware",
        {
            "id": "self-aware",
            "name": "Self aware",
            "tasks": [{"id": "ask", "image": "busybox", "inject_api_token": True, "command": ["sh", "-c", command]}],
        },
    )
    run_id = str(gofer.json("pipeline", "run", "self-aware", "--wait")["run"]["run_id"])
    lines = gofer.json("task", "logs", "self-aware", run_id, "ask")["lines"]
    seen = json.loads("\n".join(line["text"] for line in lines))
    assert seen["run"]["run_id"] == int(run_id) and seen["run"]["state"] == "running"
