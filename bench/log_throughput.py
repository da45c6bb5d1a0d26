"""Log throughput and latency: lines per second from a task that prints as fast as it can, through Gofer to a
websocket client, and how long a line takes from the container to the client.

One run of a one-task pipeline whose container prints ``--lines`` lines (``seq``, optionally padded with ``sed``).
Measured:

- live: a real websocket client (``websockets``' asyncio client, reading as fast as it can, ``batch=true``: several
  lines per frame) connects to ``.../logs`` as soon as the task execution exists and counts the lines it receives
  until the server closes the stream, checking that they are exactly the lines printed, in order, once each;
  lines/s between the first and the last frame, and from the container's start (Docker's StartedAt) to the last;
- ingest: lines / (the stored log file's last write − the container's start): how fast Gofer's worker pumps Docker's
  log into its durable JSON-lines file;
- latency: a second pipeline's task prints ``--ticks`` lines 0.1 s apart; a client (``format=json``, one line per
  frame, as Gofer's CLI reads) connected before the task starts takes, for each line, its arrival time − the time
  Docker stamped on it when the container wrote it (the line's ``time``). The first line's latency includes the
  worker picking the task up; the others are a running task's;
- replay: the same websocket on the finished task (``--replays`` times, median), one line per frame (the default)
  and ``batch=true``; and the same log through the HTTP endpoint (``GET .../logs``, one chunked response);
- a slower client: ``websockets``' sync client with its default flow control (16 frames queued), one line per frame,
  as a CLI printing to a terminal would read; the lines it receives before the server ends the stream are reported.

Baselines: reading the same stored log file directly in this process (``json.loads`` of each record), ``docker
logs`` of the container (SDK, whole log in one response: how fast Docker itself hands the log out, the ceiling for
ingest and live delivery; CLI, to /dev/null), and the container's own writing into Docker's log. Goals (issue 9):
ingest and live delivery >= 100,000 lines/s, first line <= 100 ms, every line delivered once. The client's own CPU
use is printed: a client near 100 % of one core is the limit itself.
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
TICK_PIPELINE = "ticks"
TICK_TASK = "tick"
GOAL_RATE = 100_000  # lines/s, ingest and live delivery (issue 9)
GOAL_FIRST_LINE = 0.100  # seconds from the container writing the first line to the client receiving it


def command(lines: int, pad: int) -> list[str]:
    if pad <= 0:
        return ["seq", "1", str(lines)]
    return ["sh", "-c", f"seq 1 {lines} | sed 's/^/{'x' * pad} /'"]


def expected_lines(lines: int, pad: int) -> list[str]:
    prefix = f"{'x' * pad} " if pad > 0 else ""
    return [f"{prefix}{i}" for i in range(1, lines + 1)]


def tick_command(ticks: int) -> list[str]:
    return ["sh", "-c", f"i=0; while [ $i -lt {ticks} ]; do echo tick-$i; i=$((i+1)); usleep 100000; done"]


def _headers(stack: common.Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}", "gofer-api-version": "v0"}


async def _receive(stack: common.Stack, url: str, *, batch: bool, keep: bool) -> dict[str, Any]:
    count, first, cpu, dropped = 0, None, time.process_time(), ""
    frames: list[str] = []
    opened = time.time()
    try:
        # max_queue=None: read frames as they come, never make the server wait for this client.
        async with connect_async(url, additional_headers=_headers(stack), max_size=None, max_queue=None) as ws:
            async for frame in ws:  # ends when the server closes with 1000 after the end marker
                if first is None:
                    first = time.time()
                count += frame.count("\n") + 1 if batch else 1
                if keep:
                    frames.append(frame)
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
        "frames": len(frames) if keep else None,
        "received": ("\n".join(frames).split("\n") if frames else []) if keep else None,
    }


def receive(stack: common.Stack, url: str, *, batch: bool = False, keep: bool = False) -> dict[str, Any]:
    """Open the log websocket and count lines until the server closes it (``keep``: also return them)."""
    if batch:
        url += ("&" if "?" in url else "?") + "batch=true"
    return asyncio.run(_receive(stack, url, batch=batch, keep=keep))


async def _latencies(stack: common.Stack, url: str) -> list[float]:
    """Arrival time − Docker's timestamp of each line, in seconds, one line per frame (format=json)."""
    out = []
    async with connect_async(f"{url}?format=json", additional_headers=_headers(stack), max_size=None) as ws:
        async for frame in ws:
            arrived = time.time()
            record = json.loads(frame)
            if "line" in record:
                out.append(arrived - record["time"] / 1000)
    return out


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


def wait_for_task(stack: common.Stack, tasks_path: str) -> None:
    while not stack.get(tasks_path)["task_executions"]:
        time.sleep(0.02)


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=200_000, help="lines the task prints")
    p.add_argument("--pad", type=int, default=0, help="characters added before each number (0: bare numbers)")
    p.add_argument("--replays", type=int, default=3, help="replays of the finished log per client (median)")
    p.add_argument("--ticks", type=int, default=20, help="lines of the latency task, 0.1 s apart (0: no latency)")
    args = p.parse_args()
    n = args.lines

    # Finished containers are kept (and removed with the stack) so that `docker logs` can be measured on them.
    with common.Stack(**common.stack_kwargs(args, GOFER_CONTAINER_PRUNE_AFTER="3600")) as stack:
        stack.register(PIPELINE, [common.task(TASK, stack.image, command(n, args.pad))])
        trigger = stack.trigger(PIPELINE)
        tasks_path = f"{stack.pipeline_path(PIPELINE)}/runs/{trigger.run_id}/tasks"
        wait_for_task(stack, tasks_path)
        url = f"{stack.ws_url}{tasks_path}/{TASK}/logs"
        common.log(f"live: {n} lines, batch=true")
        live = receive(stack, url, batch=True, keep=True)
        in_order = live.pop("received") == expected_lines(n, args.pad)
        stack.wait_runs([trigger])
        (te,) = stack.task_executions(PIPELINE, trigger.run_id)
        started, finished = common.engine_times(te)
        log_dir = stack.home / "logs" / stack.namespace / PIPELINE / str(trigger.run_id)
        (log_file,) = log_dir.glob(f"{TASK}.*.log")
        stored = log_file.stat().st_mtime
        common.log(f"replays: {args.replays} × {n} lines, websocket (per line, batched) and HTTP")
        replays = [receive(stack, url) for _ in range(args.replays)]
        batched = [receive(stack, url, batch=True) for _ in range(args.replays)]
        http = [http_replay(stack, f"{tasks_path}/{TASK}/logs") for _ in range(args.replays)]
        slow_count, slow_end = receive_slowly(stack, url)
        file_reads = [read_file(log_file) for _ in range(args.replays)]
        logs_lines, sdk_seconds, cli_seconds = docker_logs(te["container_id"])
        latencies: list[float] = []
        if args.ticks > 0:
            common.log(f"latency: {args.ticks} lines 0.1 s apart, one frame each")
            stack.register(TICK_PIPELINE, [common.task(TICK_TASK, stack.image, tick_command(args.ticks))])
            tick = stack.trigger(TICK_PIPELINE)
            tick_path = f"{stack.pipeline_path(TICK_PIPELINE)}/runs/{tick.run_id}/tasks"
            wait_for_task(stack, tick_path)
            latencies = asyncio.run(_latencies(stack, f"{stack.ws_url}{tick_path}/{TICK_TASK}/logs"))
            stack.wait_runs([tick])
        counts = {
            "docker logs": logs_lines,
            "stored file": file_reads[0][0],
            "live websocket (batched)": live["lines"],
            "websocket replays": [r["lines"] for r in replays],
            "batched websocket replays": [r["lines"] for r in batched],
            "HTTP replays": [c for c, _ in http],
            "latency task": len(latencies),
        }
        common.log(f"lines received: {counts}; sync client: {slow_count} ({slow_end}); live in order: {in_order}")
        context = {
            "stack": stack.describe(),
            "machine": common.machine(),
            "args": vars(args),
            "log_file_bytes": log_file.stat().st_size,
            "counts": counts,
            "slow_client": [slow_count, slow_end],
            "live_frames": live["frames"],
            "live_exact": in_order,
            "latencies_s": [round(x, 4) for x in latencies],
            "load_average": Path("/proc/loadavg").read_text().split()[:3],
        }

    def rate(r: dict[str, Any], since: float) -> float:
        return r["lines"] / (r["last"] - since)

    def complete(count: int) -> str:
        return "" if count == n else f"INCOMPLETE: {count} of {n} lines; "

    replay_cpu = statistics.median(r["cpu"] / (r["last"] - r["opened"]) for r in replays)
    live_cpu = live["cpu"] / (live["last"] - live["opened"])
    file_rate = statistics.median(n / seconds for _, seconds in file_reads)
    docker_rate = n / sdk_seconds
    writing_rate = n / max(finished - started, 1e-3)
    ingest = n / (stored - started)
    live_rate = rate(live, live["first"])
    bench = "log_throughput"
    per_s = "lines/s"
    exact = live["lines"] == n and in_order
    rows = [
        common.goal(common.Row(bench, "ingest (container start → stored log file complete)", per_s, ingest,
                               "docker logs (SDK, whole log)", docker_rate, higher_is_better=True,
                               note=f"the stored file takes {context['log_file_bytes'] / n:.0f} bytes per line; "
                                    f"the container wrote into Docker's log at {writing_rate:,.0f} lines/s"),
                    f">= {GOAL_RATE:,} lines/s", ingest >= GOAL_RATE),
        common.goal(common.Row(bench, "live, websocket batch=true (first → last frame)", per_s, live_rate,
                               "docker logs (SDK, whole log)", docker_rate, higher_is_better=True,
                               note=f"{complete(live['lines'])}{live['frames']} frames; "
                                    f"the client used {live_cpu:.0%} of a core while open"),
                    f">= {GOAL_RATE:,} lines/s", live_rate >= GOAL_RATE),
        common.Row(bench, "live, websocket batch=true (container start → last frame)", per_s, rate(live, started),
                   "docker logs (SDK, whole log)", docker_rate, higher_is_better=True),
        common.goal(common.Row(bench, "live: every line once, in order", "lines", live["lines"],
                               "lines the task printed", n, higher_is_better=True,
                               note="" if exact else "the lines received differ from the lines printed"),
                    "exactly", exact),
    ]  # fmt: skip
    if latencies:
        rows += [
            common.goal(common.Row(bench, "first line: container wrote it → client received it", "s", latencies[0]),
                        f"<= {GOAL_FIRST_LINE * 1000:.0f} ms", latencies[0] <= GOAL_FIRST_LINE),
            common.Row(bench, f"line latency of a running task, p50 ({len(latencies)} lines)", "s",
                       statistics.median(latencies)),
            common.Row(bench, "line latency of a running task, max", "s", max(latencies),
                       note=f"{complete(len(latencies)) if len(latencies) != args.ticks else ''}"
                            f"every line: {', '.join(f'{x * 1000:.0f}' for x in latencies)} ms"),
        ]  # fmt: skip
    rows += [
        common.Row(bench, "replay, websocket, one line per frame (connect → close)", per_s,
                   statistics.median(rate(r, r["opened"]) for r in replays),
                   "reading the stored log file directly", file_rate, higher_is_better=True,
                   note=f"{complete(min(r['lines'] for r in replays))}the client used {replay_cpu:.0%} of a core"),
        common.Row(bench, "replay, websocket batch=true (connect → close)", per_s,
                   statistics.median(rate(r, r["opened"]) for r in batched),
                   "reading the stored log file directly", file_rate, higher_is_better=True,
                   note=complete(min(r["lines"] for r in batched))),
        common.Row(bench, "replay, HTTP GET .../logs (one chunked response)", per_s,
                   statistics.median(c / seconds for c, seconds in http),
                   "reading the stored log file directly", file_rate, higher_is_better=True,
                   note=complete(min(c for c, _ in http))),
        common.Row(bench, "replay, websocket, one line per frame", per_s,
                   statistics.median(rate(r, r["opened"]) for r in replays),
                   "docker logs (SDK, whole log)", docker_rate, higher_is_better=True,
                   note=f"docker logs through the CLI: {n / cli_seconds:,.0f} lines/s"),
        common.Row(bench, "sync websocket client (default flow control): lines received", "lines", slow_count,
                   "lines the task printed", n, higher_is_better=True, note=f"{complete(slow_count)}{slow_end}"),
    ]  # fmt: skip
    common.log(f"live: {live}; container {started:.3f} → {finished:.3f}, stored file complete {stored:.3f}")
    common.report(rows, args, context)


if __name__ == "__main__":
    common.main_guard(main)
