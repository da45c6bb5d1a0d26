"""Log throughput: lines per second from a task that prints as fast as it can, through Gofer to a websocket client.

One run of a one-task pipeline whose container prints ``--lines`` lines (``seq``, optionally padded with ``sed``).
Measured:

- live: a real websocket client (``websockets``' asyncio client, reading as fast as it can) connects to ``.../logs``
  as soon as the task execution exists and counts the frames it receives until the server closes the stream;
  lines/s between the first and the last frame, and from the container's start (Docker's StartedAt) to the last frame;
- ingest: lines / (the stored log file's last write − the container's start): how fast Gofer's worker pumps Docker's
  log into its durable JSON-lines file; compared with lines / (FinishedAt − StartedAt), how fast the container wrote
  them into Docker's own log;
- replay: the same websocket on the finished task (``--replays`` times, median): lines/s from connect to close; and
  the same log through the HTTP endpoint (``GET .../logs``, one chunked response);
- a slower client: ``websockets``' sync client with its default flow control (16 frames queued), as a CLI printing
  to a terminal would read; the lines it receives before the server ends the stream are reported.

Baselines: reading the same stored log file directly in this process (``json.loads`` of each record, what the
server does per line before sending it), and ``docker logs`` of the container (SDK, whole log in one response;
CLI, to /dev/null). The client's own CPU use is printed: a client near 100 % of one core is the limit itself.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import common
import docker
from websockets.asyncio.client import connect as connect_async
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect as connect_sync

PIPELINE = "logs"
TASK = "spew"


def command(lines: int, pad: int) -> list[str]:
    if pad <= 0:
        return ["seq", "1", str(lines)]
    return ["sh", "-c", f"seq 1 {lines} | sed 's/^/{'x' * pad} /'"]


def _headers(stack: common.Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}", "gofer-api-version": "v0"}


async def _receive(stack: common.Stack, url: str) -> dict[str, Any]:
    count, first, cpu, dropped = 0, None, time.process_time(), ""
    opened = time.time()
    try:
        # max_queue=None: read frames as they come, never make the server wait for this client.
        async with connect_async(url, additional_headers=_headers(stack), max_size=None, max_queue=None) as ws:
            async for _ in ws:  # ends when the server closes with 1000 after the end marker
                if first is None:
                    first = time.time()
                count += 1
    except ConnectionClosedError as exc:
        dropped = str(exc)
    last = time.time()
    return {
        "lines": count,
        "opened": opened,
        "first": first or last,
        "last": last,
        "cpu": time.process_time() - cpu,
        "dropped": dropped,
    }


def receive(stack: common.Stack, url: str) -> dict[str, Any]:
    """Open the log websocket and count frames until the server closes it."""
    return asyncio.run(_receive(stack, url))


def receive_slowly(stack: common.Stack, url: str) -> tuple[int, str]:
    """The sync client with default flow control; returns the frames received and how the stream ended."""
    count = 0
    try:
        with connect_sync(url, additional_headers=_headers(stack), open_timeout=30, max_size=None) as ws:
            for _ in ws:
                count += 1
    except ConnectionClosedError as exc:
        return count, f"connection dropped without a close frame ({exc})"
    return count, "closed normally (1000)"


def http_replay(stack: common.Stack, path: str) -> tuple[int, float]:
    started = time.monotonic()
    with stack.session.get(f"{stack.url}{path}", stream=True, timeout=300) as response:
        response.raise_for_status()
        count = sum(1 for _ in response.iter_lines(chunk_size=65536))
    return count, time.monotonic() - started


def read_file(path: Path) -> tuple[int, float]:
    started = time.monotonic()
    count = 0
    with open(path, "rb") as fh:
        for raw in fh:
            record = json.loads(raw)
            if not record.get("eof"):
                count += 1
    return count, time.monotonic() - started


def docker_logs(container_id: str) -> tuple[int, float, float]:
    """(lines, seconds through the SDK, seconds through the CLI) of reading the container's whole log."""
    client = docker.from_env(timeout=300)
    try:
        started = time.monotonic()
        data = client.api.logs(container_id, stdout=True, stderr=True, timestamps=True)
        sdk = time.monotonic() - started
    finally:
        client.close()
    started = time.monotonic()
    subprocess.run(["docker", "logs", "--timestamps", container_id], check=True, stdout=subprocess.DEVNULL, timeout=300)
    return data.count(b"\n"), sdk, time.monotonic() - started


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=200_000, help="lines the task prints")
    p.add_argument("--pad", type=int, default=0, help="characters added before each number (0: bare numbers)")
    p.add_argument("--replays", type=int, default=3, help="replays of the finished log per client (median)")
    args = p.parse_args()
    n = args.lines

    with common.Stack(**common.stack_kwargs(args)) as stack:
        stack.register(PIPELINE, [common.task(TASK, stack.image, command(n, args.pad))])
        trigger = stack.trigger(PIPELINE)
        tasks_path = f"{stack.pipeline_path(PIPELINE)}/runs/{trigger.run_id}/tasks"
        while not stack.get(tasks_path)["task_executions"]:
            time.sleep(0.02)
        url = f"{stack.ws_url}{tasks_path}/{TASK}/logs"
        common.log(f"live: {n} lines")
        live = receive(stack, url)
        stack.wait_runs([trigger])
        (te,) = stack.task_executions(PIPELINE, trigger.run_id)
        started, finished = common.engine_times(te)
        log_dir = stack.home / "logs" / stack.namespace / PIPELINE / str(trigger.run_id)
        (log_file,) = log_dir.glob(f"{TASK}.*.log")
        stored = log_file.stat().st_mtime
        common.log(f"replays: {args.replays} × {n} lines, websocket and HTTP")
        replays = [receive(stack, url) for _ in range(args.replays)]
        http = [http_replay(stack, f"{tasks_path}/{TASK}/logs") for _ in range(args.replays)]
        slow_count, slow_end = receive_slowly(stack, url)
        file_reads = [read_file(log_file) for _ in range(args.replays)]
        logs_lines, sdk_seconds, cli_seconds = docker_logs(te["container_id"])
        counts = {
            "docker logs": logs_lines,
            "stored file": file_reads[0][0],
            "live websocket": live["lines"],
            "websocket replays": [r["lines"] for r in replays],
            "HTTP replays": [c for c, _ in http],
        }
        common.log(f"lines received: {counts}; sync client: {slow_count} ({slow_end})")
        context = {
            "stack": stack.describe(),
            "machine": common.machine(),
            "args": vars(args),
            "log_file_bytes": log_file.stat().st_size,
            "counts": counts,
            "slow_client": [slow_count, slow_end],
        }

    def rate(r: dict[str, Any], since: float) -> float:
        return r["lines"] / (r["last"] - since)

    def complete(count: int) -> str:
        return "" if count == n else f"INCOMPLETE: {count} of {n} lines; "

    replay_cpu = statistics.median(r["cpu"] / (r["last"] - r["opened"]) for r in replays)
    live_cpu = live["cpu"] / (live["last"] - live["opened"])
    file_rate = statistics.median(n / seconds for _, seconds in file_reads)
    bench = "log_throughput"
    per_s = "lines/s"
    rows = [
        common.Row(bench, "replay, websocket (connect → close)", per_s,
                   statistics.median(rate(r, r["opened"]) for r in replays),
                   "reading the stored log file directly", file_rate, higher_is_better=True,
                   note=f"{complete(min(r['lines'] for r in replays))}the client used {replay_cpu:.0%} of a core"),
        common.Row(bench, "replay, HTTP GET .../logs (one chunked response)", per_s,
                   statistics.median(c / seconds for c, seconds in http),
                   "reading the stored log file directly", file_rate, higher_is_better=True,
                   note=complete(min(c for c, _ in http))),
        common.Row(bench, "replay, websocket", per_s, statistics.median(rate(r, r["opened"]) for r in replays),
                   "docker logs (SDK, whole log)", n / sdk_seconds, higher_is_better=True,
                   note=f"docker logs through the CLI: {n / cli_seconds:,.0f} lines/s"),
        common.Row(bench, "live, websocket (first → last frame)", per_s, rate(live, live["first"]),
                   "container writing into Docker's log", n / (finished - started), higher_is_better=True,
                   note=f"{complete(live['lines'])}the client used {live_cpu:.0%} of a core while open"),
        common.Row(bench, "live, websocket (container start → last frame)", per_s, rate(live, started),
                   "container writing into Docker's log", n / (finished - started), higher_is_better=True),
        common.Row(bench, "ingest (container start → stored log file complete)", per_s, n / (stored - started),
                   "container writing into Docker's log", n / (finished - started), higher_is_better=True,
                   note=f"the stored file takes {context['log_file_bytes'] / n:.0f} bytes per line"),
        common.Row(bench, "sync websocket client (default flow control): lines received", "lines", slow_count,
                   "lines the task printed", n, higher_is_better=True, note=f"{complete(slow_count)}{slow_end}"),
    ]  # fmt: skip
    common.log(f"live: {live}; container {started:.3f} → {finished:.3f}, stored file complete {stored:.3f}")
    common.report(rows, args, context)


if __name__ == "__main__":
    common.main_guard(main)
