"""Idle cost: what a Gofer with nothing to do costs, in database statements per second and CPU.

After the stack is ready and warmed up (two runs, see common.Stack) and has settled for ``--settle`` seconds, nothing
happens for ``--seconds``: every SQL statement the server and worker processes send is counted in Django's cursor
(bench/counting_settings.py) and their CPU is read from /proc. The window should hold at least one minute, so that
the reconciler's schedule (once a minute) is in it.

Baseline, in the same process on the same machine: the same installation with django-q2's own ORM broker (``poll``
0.2 s), as Gofer was before runs/broker.py, with ``--q-option broker_class=none``. With ``--redis`` there is no
baseline (the Redis broker never polled the database). Goal (issue 9): <= 1 statement per second and < 1 % of a core,
in the embedded default.
"""

from __future__ import annotations

import collections
import re
import tempfile
import time
from pathlib import Path

import common


def count(directory: Path) -> int:
    total = 0
    for entry in directory.iterdir():
        if entry.suffix:
            continue
        try:
            total += int(entry.read_text() or 0)
        except (OSError, ValueError):
            continue
    return total


def breakdown(directory: Path, since: float, until: float, top: int = 15) -> None:
    """Print the statements logged between ``since`` and ``until`` (``BENCH_QUERY_LOG``), grouped by their shape
    (literals and parameters blanked), most frequent first: where an idle installation's statements come from."""
    shapes: collections.Counter[str] = collections.Counter()
    for log in directory.glob("*.sql"):
        for line in log.read_text(errors="replace").splitlines():
            stamp, _, sql = line.partition(" ")
            try:
                if not since <= float(stamp) <= until:
                    continue
            except ValueError:
                continue
            shapes[re.sub(r"'[^']*'|\b\d+\b", "?", sql)[:110]] += 1
    window = max(until - since, 1e-9)
    common.log(f"statements by shape over {window:.0f} s:")
    for shape, n in shapes.most_common(top):
        common.log(f"  {n / window:6.3f}/s  {shape}")


def _process_ticks(pgids: list[int]) -> dict[int, tuple[int, str]]:
    """CPU ticks (user + system) and name of every process in the groups ``pgids``."""
    out: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            name = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:70]
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) in pgids:
            out[int(entry.name)] = (int(fields[11]) + int(fields[12]), name)
    return out


def cpu_breakdown(before: dict[int, tuple[int, str]], after: dict[int, tuple[int, str]], wall: float) -> None:
    """Print each process's share of a core over the window, busiest first (``--breakdown``)."""
    rows = sorted(
        ((ticks - before.get(pid, (0, ""))[0], pid, name) for pid, (ticks, name) in after.items()), reverse=True
    )
    common.log(f"CPU by process over {wall:.0f} s (% of a core):")
    for ticks, pid, name in rows:
        common.log(f"  {100 * ticks / common.CLK_TCK / wall:6.3f} %  {pid}  {name}")


def measure(args, label: str, q_options: list[str], seconds: float, settle: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="gofer-bench-queries-") as qdir:
        args.q_option = [*q_options, *args.q_option_user]
        env = {"DJANGO_SETTINGS_MODULE": "bench.counting_settings", "BENCH_QUERY_DIR": qdir}
        if args.breakdown:
            env["BENCH_QUERY_LOG"] = "1"
        kwargs = common.stack_kwargs(args, **env)
        with common.Stack(**kwargs) as stack:
            time.sleep(settle)
            start = count(Path(qdir))
            began = time.time()
            groups = [stack.server.proc.pid, stack.worker.proc.pid]
            ticks_before = _process_ticks(groups)
            with common.CpuMeter(stack) as cpu:
                time.sleep(seconds)
            ended = time.time()
            if args.breakdown:
                cpu_breakdown(ticks_before, _process_ticks(groups), ended - began)
            time.sleep(1.5)  # the writers write within a second
            statements = count(Path(qdir)) - start
            if args.breakdown:
                breakdown(Path(qdir), began, ended)
        result = cpu.result
        out = {
            "queries_per_s": statements / result.wall,
            "workers_cpu": 100 * result.workers / result.wall,
            "server_cpu": 100 * result.server / result.wall,
        }
        common.log(
            f"{label}: {out['queries_per_s']:.2f} statements/s, workers {out['workers_cpu']:.2f} % of a core, "
            f"server {out['server_cpu']:.2f} %"
        )
        return out


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=65, help="the idle window measured")
    p.add_argument("--settle", type=float, default=5, help="seconds to wait after the warm-up before measuring")
    p.add_argument("--no-baseline", action="store_true", help="skip the stock ORM broker's installation")
    p.add_argument("--breakdown", action="store_true", help="log every statement and print them grouped by shape")
    args = p.parse_args()
    args.q_option_user = list(args.q_option)

    gofer = measure(args, "gofer", [], args.seconds, args.settle)
    stock = None
    if not args.redis and not args.no_baseline:
        stock = measure(args, "django-q2 ORM broker", ["broker_class=none"], args.seconds, args.settle)
    embedded = args.db == "sqlite" and not args.redis
    b = "idle"
    base = "django-q2's polling ORM broker (before)" if stock else ""
    rows = [
        common.goal(
            common.Row(b, "idle: SQL statements/s (server + workers)", "/s", gofer["queries_per_s"], base,
                       stock["queries_per_s"] if stock else None),
            "<= 1 /s", gofer["queries_per_s"] <= 1.0),
        common.goal(
            common.Row(b, "idle: CPU, % of a core (server + workers)", "%", gofer["workers_cpu"] + gofer["server_cpu"],
                       base, stock["workers_cpu"] + stock["server_cpu"] if stock else None),
            "< 1 %", gofer["workers_cpu"] + gofer["server_cpu"] < 1.0),
        common.Row(b, "idle: workers' CPU, % of a core", "%", gofer["workers_cpu"], base,
                   stock["workers_cpu"] if stock else None),
    ]  # fmt: skip
    if not embedded:
        for row in rows:
            row.note = (row.note + " " if row.note else "") + "(the goal is set for the embedded default)"
    common.report(rows, args, {"machine": common.machine(), "args": {k: v for k, v in vars(args).items()}})


if __name__ == "__main__":
    common.main_guard(main)
