"""Run every benchmark with modest sizes (a few minutes on a 2-core machine) and print one summary table.

Each benchmark runs as its own process (Django's settings are per process) with its own throw-away Gofer, so they
never share a database, a queue or containers. ``make bench`` runs this with the defaults: SQLite and the ORM broker,
as a fresh clone runs. ``--db postgres --redis`` measures the production configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
# Each benchmark with the sizes run_all uses; every size is an option of the script (see its --help).
BENCHMARKS: dict[str, list[str]] = {
    "orchestration_overhead": ["--tasks", "20", "--repeat", "3"],  # issue 9's goals are for 20 tasks
    "trigger_latency": ["--runs", "50", "--concurrency", "4"],
    "throughput": ["--runs", "150", "--queue-tasks", "500", "--docker-containers", "60"],
    "log_throughput": ["--lines", "200000", "--replays", "3"],
    "idle_websockets": ["--sockets", "100", "--seconds", "30"],
    "idle": ["--seconds", "65"],
    "api_list": ["--requests", "200"],  # PostgreSQL only (1,000,000 runs copied in the scratch database)
}
POSTGRES_ONLY = {"api_list"}
# Issue 9: crash safety with the fast paths on. The SIGKILL tests, run by pytest against the same configuration.
CRASH_TESTS = [
    "tests/runs/test_worker_processes.py::test_killed_worker_cluster_loses_no_run_no_line_and_runs_the_task_once",
    "tests/runs/test_scheduler_local.py",
]


def crash_safety(args: argparse.Namespace) -> common.Row:
    """Run the SIGKILL tests (a cluster killed mid-task; a worker killed after starting a task) as a bench row."""
    env = dict(os.environ, GOFER_TEST_DB=args.db)
    if args.redis:
        env["GOFER_TEST_REDIS"] = "1"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CRASH_TESTS]
    print(f"\n=== crash_safety: {' '.join(argv[1:])}", flush=True)
    result = subprocess.run(argv, cwd=common.REPO, env=env, capture_output=True, text=True, check=False)
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(summary, flush=True)
    words = summary.split()
    passed = sum(int(w) for w, nxt in zip(words, words[1:], strict=False) if nxt.startswith("passed"))
    row = common.Row("crash_safety", "SIGKILL tests passed (fast paths on)", "", passed, note=summary)
    return common.goal(row, "all pass", result.returncode == 0 and passed > 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--redis", action="store_true", help="Redis as broker and channel layer")
    p.add_argument("--workers", type=int, default=8, help="GOFER_WORKERS (Gofer's default: 8)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="extra server/worker environment")
    p.add_argument("--q-option", action="append", default=[], metavar="NAME=VALUE", help="see common.py --help")
    p.add_argument(
        "--only", action="append", choices=sorted([*BENCHMARKS, "crash_safety"]), help="run only these (repeatable)"
    )
    p.add_argument("--json", metavar="PATH", help="write every row and each benchmark's context as JSON")
    args = p.parse_args()

    shared = ["--db", args.db, "--workers", str(args.workers)] + (["--redis"] if args.redis else [])
    for item in args.set:
        shared += ["--set", item]
    for item in args.q_option:
        shared += ["--q-option", item]
    rows: list[common.Row] = []
    contexts: dict[str, object] = {}
    failed: list[str] = []
    started = time.monotonic()
    for name, sizes in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        if name in POSTGRES_ONLY and args.db != "postgres":
            continue
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            argv = [sys.executable, str(HERE / f"{name}.py"), *shared, *sizes, "--json", out.name]
            print(f"\n=== {name}: {' '.join(argv[1:-2])}", flush=True)
            t0 = time.monotonic()
            child = subprocess.Popen(argv)
            try:
                returncode = child.wait()
            except KeyboardInterrupt:
                # Let the benchmark clean up (its processes, containers, database) before we go.
                child.send_signal(signal.SIGTERM)
                child.wait(timeout=120)
                raise
            if returncode != 0:
                failed.append(name)
                continue
            result = json.loads(Path(out.name).read_text())
            print(f"=== {name}: {time.monotonic() - t0:.0f} s", flush=True)
        rows += [common.Row(**row) for row in result["rows"]]
        contexts[name] = result["context"]

    if not args.only or "crash_safety" in args.only:
        rows.append(crash_safety(args))

    machine = common.machine()
    print(f"\n## Summary ({args.db} + {'Redis' if args.redis else 'ORM broker'}, {args.workers} workers)\n")
    print(", ".join(f"{k}: {v}" for k, v in machine.items()))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"load average at the end: {load}; total {time.monotonic() - started:.0f} s")
    print("'× worse': how many times slower Gofer is than the baseline (1.00× = as fast).\n")
    print(common.table(rows, with_bench=True))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine, "contexts": contexts, "rows": [r.__dict__ for r in rows]}, indent=1)
        )
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    common.main_guard(main)
