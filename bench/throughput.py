"""Throughput at saturation: task executions per second when many runs of a no-op task are queued at once.

Gofer: ``--runs`` runs of a one-task pipeline (``true`` in busybox) are triggered through the API as fast as
``--trigger-threads`` clients can, with the global and per-pipeline run limits raised so that admission never holds
runs back. Rate = runs / (last run's ``ended`` − first POST sent).

Baselines, on the same machine in the same process:

- raw queue: ``--queue-tasks`` no-op ``async_task("time.sleep", 0)`` enqueued through django-q2's own API (one
  broker connection; one transaction with the ORM broker), with the same broker and the same cluster (same
  GOFER_WORKERS) that just ran Gofer's runs; rate from the first enqueue to the last task's ``stopped`` time, which
  django-q2 records (the producer is much faster than the drain: its rate is printed). Gofer needs several queue
  steps per run (counted from the cluster's log), so its rate × steps is compared with this, and queue rate ÷ steps
  is the ceiling the queue alone puts on Gofer.
- raw Docker: ``--docker-containers`` ``docker run`` (SDK: create, start, wait; ``--network none --init``) with
  ``--docker-concurrency`` threads (default: as many as Gofer has workers).
"""

from __future__ import annotations

import math
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common

PIPELINE = "throughput"
UNLIMITED = {"GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT": "100000", "GOFER_PIPELINE_RUN_CONCURRENCY_LIMIT": "100000"}


def processed_steps(log_path: Path) -> dict[str, int]:
    """How many queue tasks of each function the cluster's workers have started so far, from the line each worker
    logs when it starts one (the "Processed" lines come from the monitor, which can lag far behind)."""
    counts: dict[str, int] = {}
    for match in re.finditer(r" processing \S+ '([\w.]+)'", log_path.read_text(errors="replace")):
        counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def gofer_phase(stack: common.Stack, runs: int, threads: int) -> dict[str, float]:
    before = processed_steps(stack.worker.log_path)
    triggers: list[common.Trigger] = []
    lock = threading.Lock()

    def client(count: int) -> None:
        session = stack.new_session()
        try:
            for _ in range(count):
                trigger = stack.trigger(PIPELINE, session)
                with lock:
                    triggers.append(trigger)
        finally:
            session.close()

    shares = [runs // threads + (1 if i < runs % threads else 0) for i in range(threads)]
    with common.CpuMeter(stack) as cpu:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for future in [pool.submit(client, share) for share in shares if share]:
                future.result()
        by_number = {t.run_id: t for t in triggers}
        complete = [r for r in stack.wait_all(PIPELINE, runs + 1) if r["run_id"] in by_number]  # +1: warm-up run
    first_sent = min(t.sent for t in triggers)
    last_returned = max(t.returned for t in triggers)
    ends = [r["ended"] / 1000 for r in complete]
    # Let the cluster log its last lines before counting.
    time.sleep(1)
    after = processed_steps(stack.worker.log_path)
    steps = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return {
        "rate": runs / (max(ends) - first_sent),
        "latency_p50": common.percentile([r["ended"] / 1000 - by_number[r["run_id"]].sent for r in complete], 50),
        "wall": max(ends) - first_sent,
        "trigger_rate": runs / (last_returned - first_sent),
        "steps_per_run": sum(v for k, v in steps.items() if k.startswith("runs.tasks.")) / runs,
        "steps": steps,
        "cpu": cpu.result.per(runs),
    }


def queue_phase(stack: common.Stack, count: int) -> dict[str, float]:
    stack.setup_django()
    from django.db import close_old_connections, transaction
    from django_q.brokers import get_broker
    from django_q.models import Task
    from django_q.tasks import async_task

    group = f"bench-queue-{stack.id}"
    with common.CpuMeter(stack) as cpu:
        started = time.time()
        # One transaction: with the ORM broker the cluster sees all the tasks at once, so the drain is measured, not
        # this single producer's insert rate (with Redis there is no transaction; RPUSH is faster than the drain).
        broker = get_broker()  # one connection; async_task would otherwise open one per call
        with transaction.atomic():
            for _ in range(count):
                # save=True: Gofer's settings keep no successful results (save_limit -1), but this phase counts
                # finished tasks by their result rows. One extra insert per task, which Gofer's own steps do not pay.
                async_task("time.sleep", 0, group=group, broker=broker, save=True)
        enqueued = time.time()
        deadline = time.monotonic() + 600
        while Task.objects.filter(group=group).count() < count:
            if time.monotonic() > deadline:
                raise TimeoutError("the raw queue tasks did not all finish within 600 s")
            time.sleep(0.2)
            close_old_connections()
    stops = [s.timestamp() for s in Task.objects.filter(group=group).values_list("stopped", flat=True)]
    close_old_connections()
    return {
        "cpu": cpu.result.per(count),
        # First enqueue → last task done. The producer is at least ten times faster than the drain (enqueue_rate
        # tells), so this is the cluster's drain rate, whichever broker.
        "drain": count / (max(stops) - started),
        "enqueue_rate": count / (enqueued - started),
    }


def docker_phase(stack: common.Stack, count: int, concurrency: int) -> dict[str, float]:
    baseline = common.Baseline(stack)
    try:
        with common.CpuMeter(stack) as cpu:
            wall, _ = baseline.run_many(count, concurrency)
        baseline.cleanup()
    finally:
        baseline.close()
    return {"rate": count / wall, "cpu": cpu.result.per(count)}


def prefill_results(stack: common.Stack, count: int) -> None:
    """Store ``count`` old successful django-q2 results, as a long-running installation always has ``save_limit``
    (1000) of them: the cluster's result saving reads them all for every task it records (django_q/monitor.py)."""
    import datetime as dt
    import uuid

    stack.setup_django()
    from django.db import close_old_connections
    from django_q.models import Task

    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    rows = [
        Task(
            id=uuid.uuid4().hex,
            name=f"bench-prefill-{i}",
            func="runs.tasks.advance_run",
            args=(i,),
            kwargs={},
            result=None,
            group=f"bench-prefill-{stack.id}",
            started=old,
            stopped=old,
            success=True,
        )
        for i in range(count)
    ]
    Task.objects.bulk_create(rows, batch_size=500)
    close_old_connections()


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=200, help="Gofer runs (one no-op task each)")
    p.add_argument("--trigger-threads", type=int, default=2, help="API clients triggering the runs")
    p.add_argument(
        "--queue-tasks", type=int, default=500, help="raw django-q2 no-op tasks (at most 1000: save_limit; 0: skip)"
    )
    p.add_argument("--docker-containers", type=int, default=100, help="raw docker run containers (0: skip)")
    p.add_argument("--docker-concurrency", type=int, default=0, help="threads for raw docker (0: --workers)")
    p.add_argument(
        "--prefill-results",
        type=int,
        default=0,
        help="store this many old django-q2 results first (1000: the steady state of a long-running installation)",
    )
    args = p.parse_args()
    if args.queue_tasks > 1000:
        p.error("--queue-tasks: django-q2 keeps at most save_limit (1000) results, which is how completion is seen")

    with common.Stack(**common.stack_kwargs(args, **UNLIMITED)) as stack:
        stack.register(PIPELINE, [common.task("noop", stack.image)])
        stack.wait_runs([stack.trigger(PIPELINE)])  # the pipeline's first run: warm-up
        if args.prefill_results:
            common.log(f"storing {args.prefill_results} old django-q2 results")
            prefill_results(stack, args.prefill_results)
        common.log(f"gofer: {args.runs} runs, {args.trigger_threads} trigger threads")
        gofer = gofer_phase(stack, args.runs, args.trigger_threads)
        common.log(f"gofer: {gofer}")
        stack.remove_containers()
        queue = {"drain": None, "enqueue_rate": None, "cpu": "not measured"}
        if args.queue_tasks:
            common.log(f"raw queue: {args.queue_tasks} no-op tasks")
            queue = queue_phase(stack, args.queue_tasks)
            common.log(f"raw queue: {queue}")
        concurrency = args.docker_concurrency or args.workers
        dock = {"rate": None, "cpu": "not measured"}
        if args.docker_containers:
            common.log(f"raw docker: {args.docker_containers} containers, {concurrency} at a time")
            dock = docker_phase(stack, args.docker_containers, concurrency)
            common.log(f"raw docker: {dock}")
        context = {"stack": stack.describe(), "machine": common.machine(), "args": vars(args), "gofer": gofer}

    bench = "throughput"
    per_s = "/s"
    steps = gofer["steps_per_run"] or math.nan
    rows = [
        _throughput_goal(
            common.Row(bench, "task executions/s (first POST → last run ended)", per_s, gofer["rate"],
                       f"docker run/s, {concurrency} threads", dock["rate"], higher_is_better=True,
                       note=f"Gofer: {gofer['cpu']}. docker run: {dock['cpu']}"),
            gofer["rate"], dock["rate"]),
        common.Row(bench, f"queue steps/s (executions/s × {steps:.1f} steps per run)", per_s, gofer["rate"] * steps,
                   "raw django-q2 no-op tasks/s (drain)", queue["drain"], higher_is_better=True,
                   note=f"raw queue ceiling for Gofer: {(queue['drain'] or math.nan) / steps:.1f} runs/s; steps "
                        f"{gofer['steps']}. Raw queue: {queue['cpu']}"),
        common.Row(bench, "run latency under load, p50 (POST sent → run ended)", "s", gofer["latency_p50"],
                   note="every run is queued at once, so this is mostly waiting for a worker"),
        common.Row(bench, "runs triggered/s through the API", per_s, gofer["trigger_rate"],
                   "raw django-q2 enqueue/s (one producer)", queue["enqueue_rate"], higher_is_better=True,
                   note=f"{args.trigger_threads} client threads"),
    ]  # fmt: skip
    common.report(rows, args, context)


def _throughput_goal(row: common.Row, rate: float | None, docker_rate: float | None) -> common.Row:
    """Issue 9: at saturation, at least 0.9 x as many task executions per second as raw ``docker run``s with as
    many threads as Gofer has workers (only judged when the baseline ran)."""
    if rate is None or docker_rate is None or math.isnan(rate) or math.isnan(docker_rate):
        return row
    return common.goal(row, ">= 0.90× docker", rate >= 0.9 * docker_rate)


if __name__ == "__main__":
    common.main_guard(main)
