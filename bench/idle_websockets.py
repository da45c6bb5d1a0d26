"""Idle event websockets: what ``--sockets`` open, idle ``/api/events`` listeners cost the server, and how fast events
still reach them.

Measured, on a real daphne with the stack's configuration (the embedded default: in-process Channels layer, so a
worker's events cannot be pushed to the server and reach listeners through each server process's watcher):

- CPU of the server process (percent of one core) over ``--seconds`` with the sockets open and nothing happening;
  the same server before the sockets open (its own idle cost);
- latency of an event to every listener: one made by the API in the server process (pushed through the Channels
  layer), and ones made by a worker in another process (a run's ``started_run`` ... ``completed_run``): the time
  from the event's ``emitted`` to its arrival at each socket, p50/max over all sockets.

Baseline, in this process on this machine: a plain ``websockets`` asyncio server (another process) holding as many
idle connections from the same client, whose CPU is measured the same way: the cost of an idle socket itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import common
from websockets.asyncio.client import connect

# The plain websockets server of the baseline: accepts connections and keeps them, idle, until killed.
BASELINE_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve
async def hold(ws):
    await ws.wait_closed()
async def main():
    async with serve(hold, "127.0.0.1", int(sys.argv[1]), ping_interval=20, ping_timeout=30):
        print("ready", flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115, PTH123 - one read
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / common.CLK_TCK


def percent_of_a_core(pid: int, seconds: float) -> float:
    start, began = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - start) / (time.monotonic() - began)


class Listeners:
    """``count`` websocket clients on one asyncio loop in a thread of this process, recording arrivals."""

    def __init__(self, url: str, headers: dict[str, str], count: int) -> None:
        self.url, self.headers, self.count = url, headers, count
        self.arrivals: list[tuple[str, float, float]] = []  # (kind, emitted epoch s, received epoch s)
        self.errors: list[str] = []  # error frames (a refused or closed stream)
        self.loop = asyncio.new_event_loop()
        self.sockets: list[Any] = []
        self.readers: list[asyncio.Task] = []

    async def _open(self) -> None:
        for _ in range(self.count):
            ws = await connect(self.url, additional_headers=self.headers, open_timeout=30, max_queue=None)
            self.sockets.append(ws)
            self.readers.append(asyncio.ensure_future(self._read(ws)))

    async def _read(self, ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                frame = json.loads(message)
                if "error_code" in frame:
                    self.errors.append(frame["error_code"])
                if "kind" in frame:
                    kind = next(iter(frame["kind"]))
                    self.arrivals.append((kind, frame["emitted"] / 1000, time.time()))

    async def _close(self) -> None:
        for ws in self.sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for reader in self.readers:
            reader.cancel()

    def start(self) -> None:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._open(), self.loop).result(timeout=300)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--sockets", type=int, default=100, help="idle listeners to open")
    p.add_argument("--seconds", type=float, default=30, help="how long the CPU is measured")
    p.add_argument("--runs", type=int, default=3, help="runs whose worker-side events are timed")
    args = p.parse_args()
    # The caps must leave room for the benchmark's own sockets (one token, one address); old versions ignore them.
    room = str(args.sockets + 50)
    env = {"GOFER_MAX_STREAMS_PER_TOKEN": room, "GOFER_MAX_CONNECTIONS_PER_CLIENT": room}
    rows: list[common.Row] = []
    with common.Stack(**common.stack_kwargs(args, **env)) as stack:
        server_pid = stack.server.proc.pid
        common.log(f"server idle, no sockets: {args.seconds:.0f} s")
        idle = percent_of_a_core(server_pid, args.seconds)

        port = common.free_port()
        baseline = subprocess.Popen(
            [sys.executable, "-c", BASELINE_SERVER, str(port)], stdout=subprocess.PIPE, text=True, env=os.environ
        )
        try:
            assert baseline.stdout.readline().strip() == "ready"
            plain = Listeners(f"ws://127.0.0.1:{port}/", {}, args.sockets)
            plain.start()
            time.sleep(2)
            common.log(f"baseline: a plain websockets server holding {args.sockets} idle connections")
            baseline_cpu = percent_of_a_core(baseline.pid, args.seconds)
            plain.stop()
        finally:
            baseline.terminate()
            baseline.wait(timeout=10)

        headers = {"Authorization": f"Bearer {stack.token}", "gofer-api-version": "v0"}
        listeners = Listeners(f"{stack.ws_url}/api/events", headers, args.sockets)
        listeners.start()
        time.sleep(5)  # every socket's first look at the database is over
        common.log(f"{args.sockets} idle event sockets: {args.seconds:.0f} s")
        busy = percent_of_a_core(server_pid, args.seconds)

        # Latency: an event made in the server process (pushed), then worker-side events of a few runs.
        listeners.arrivals.clear()
        stack.post("/api/namespaces", {"id": f"{stack.namespace}-x", "name": "x", "description": ""})
        time.sleep(3)
        pushed = [received - emitted for kind, emitted, received in listeners.arrivals if kind == "created_namespace"]
        stack.register("idle", [common.task("noop", stack.image)])
        listeners.arrivals.clear()
        stack.wait_runs([stack.trigger("idle") for _ in range(args.runs)], timeout=300)
        time.sleep(3)
        worker_kinds = {"started_run", "started_task_execution", "completed_task_execution", "completed_run"}
        from_workers = [r - e for kind, e, r in listeners.arrivals if kind in worker_kinds]
        listeners.stop()
        if listeners.errors:
            common.log(f"error frames on the listeners: {sorted(set(listeners.errors))} ({len(listeners.errors)})")

    def ms(values: list[float]) -> dict[str, float]:
        return common.describe([v * 1000 for v in values])

    push, work = ms(pushed), ms(from_workers)
    rows += [
        common.Row(
            "idle_websockets",
            f"server CPU, {args.sockets} idle event sockets",
            "% of a core",
            busy,
            f"plain websockets server, {args.sockets} idle connections",
            baseline_cpu,
        ),
        common.Row("idle_websockets", "server CPU, no sockets", "% of a core", idle),
        common.Row(
            "idle_websockets",
            "event made by the API, to every socket, p50",
            "ms",
            push["p50"],
            note=f"max {push['max']:.0f} ms over {push['n']} arrivals (pushed through the Channels layer)",
        ),
        common.Row(
            "idle_websockets",
            "event made by a worker, to every socket, p50",
            "ms",
            work["p50"],
            note=f"max {work['max']:.0f} ms over {work['n']} arrivals (no push across processes without Redis)",
        ),
    ]
    common.report(rows, args, {"stack": stack.describe(), "machine": common.machine(), "sockets": args.sockets})


if __name__ == "__main__":
    common.main_guard(main)
