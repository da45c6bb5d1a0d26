"""Orchestration overhead: one run of N no-op container tasks through Gofer against the same containers run directly.

Gofer: ``POST .../runs`` (timed from just before the request is sent) → queue → workers → Docker → the run's
``ended`` time (the server's clock, which is this machine's). Two shapes of the same N tasks (``true`` in busybox):

- independent: N root tasks, which Gofer may start all at once; compared with N ``docker run`` in parallel;
- chain: task i depends on task i-1 succeeding; compared with N ``docker run`` one after the other.

Baselines go through the Docker SDK (create, start, wait), with the options Gofer's Docker scheduler uses
(``--network none``, ``--init``), and ``docker run --rm`` through the CLI for the sequential case. Gofer's runs and the
baselines alternate, ``--repeat`` times; medians are reported. Containers are removed between rounds, outside any
timed section.

The chain also gives the per-hop latency: from a task's exit (Docker's FinishedAt) to its child's start (Docker's
StartedAt), against the gap between two sequential ``docker run`` calls measured the same way.
"""

from __future__ import annotations

import statistics

import common


def chain_hops(stack: common.Stack, pipeline_id: str, run_id: int, order: list[str]) -> list[float]:
    """Seconds from each task's exit to the next task's start, from Docker's own times (as Gofer recorded them)."""
    by_task = {te["task_id"]: te for te in stack.task_executions(pipeline_id, run_id)}
    times = [common.engine_times(by_task[t]) for t in order]
    return [times[i + 1][0] - times[i][1] for i in range(len(times) - 1)]


def baseline_hops(runs: list[common.DockerRun]) -> list[float]:
    return [runs[i + 1].started_at - runs[i].finished_at for i in range(len(runs) - 1)]


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=10, help="N: tasks per run (at most 200)")
    p.add_argument("--repeat", type=int, default=3, help="rounds of each measurement (medians are reported)")
    args = p.parse_args()
    n = args.tasks

    with common.Stack(**common.stack_kwargs(args)) as stack:
        baseline = common.Baseline(stack)
        independent = [common.task(f"t{i}", stack.image) for i in range(n)]
        chain_order = [f"t{i}" for i in range(n)]
        chain = [
            common.task(t, stack.image, depends_on={chain_order[i - 1]: "success"} if i else None)
            for i, t in enumerate(chain_order)
        ]
        stack.register("independent", independent)
        stack.register("chain", chain)

        walls: dict[str, list[float]] = {k: [] for k in ("independent", "chain", "parallel", "sequential", "cli")}
        hops: dict[str, list[float]] = {"gofer": [], "docker": []}
        for round_ in range(1, args.repeat + 1):
            for name in ("independent", "chain"):
                trigger = stack.trigger(name)
                run = stack.wait_runs([trigger], poll=0.1)[0]
                walls[name].append(run["ended"] / 1000 - trigger.sent)
                if name == "chain":
                    hops["gofer"].extend(chain_hops(stack, name, trigger.run_id, chain_order))
            wall, _ = baseline.run_many(n, concurrency=n)
            walls["parallel"].append(wall)
            wall, runs = baseline.run_many(n, concurrency=1)
            walls["sequential"].append(wall)
            hops["docker"].extend(baseline_hops(runs))
            with common.timed() as elapsed:
                for _ in range(n):
                    baseline.cli_run()
            walls["cli"].append(elapsed())
            common.log(
                f"round {round_}: gofer independent {walls['independent'][-1]:.2f} s, chain {walls['chain'][-1]:.2f} s;"
                f" docker parallel {walls['parallel'][-1]:.2f} s, sequential {walls['sequential'][-1]:.2f} s,"
                f" CLI sequential {walls['cli'][-1]:.2f} s"
            )
            baseline.cleanup()
            stack.remove_containers()
        baseline.close()
        context = {"stack": stack.describe(), "machine": common.machine(), "args": vars(args)}

    med = {k: statistics.median(v) for k, v in walls.items()}
    bench = "orchestration_overhead"
    rows = [
        common.goal(common.Row(bench, f"{n} independent tasks: run wall time", "s", med["independent"],
                               f"{n} × docker run, in parallel (SDK)", med["parallel"]),
                    "<= 1.00×", med["independent"] <= 1.00 * med["parallel"]),
        common.goal(common.Row(bench, f"chain of {n} tasks: run wall time", "s", med["chain"],
                               f"{n} × docker run, sequential (SDK)", med["sequential"]),
                    "<= 1.10×", med["chain"] <= 1.10 * med["sequential"]),
        common.Row(bench, f"chain of {n} tasks: run wall time", "s", med["chain"],
                   f"{n} × docker run --rm, sequential (CLI)", med["cli"]),
        common.Row(bench, "chain: task exit → next task start, p50", "s", common.percentile(hops["gofer"], 50),
                   "docker run exit → next start, p50", common.percentile(hops["docker"], 50)),
        common.Row(bench, "chain: task exit → next task start, p99", "s", common.percentile(hops["gofer"], 99),
                   "docker run exit → next start, p99", common.percentile(hops["docker"], 99)),
        common.Row(bench, "chain: Gofer's added time per task", "s", (med["chain"] - med["sequential"]) / n,
                   note="(chain wall − sequential docker wall) / N"),
    ]  # fmt: skip
    common.report(rows, args, context)


if __name__ == "__main__":
    common.main_guard(main)
